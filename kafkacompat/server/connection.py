"""One client connection: read a frame, answer it, write the response, strictly in order."""

from __future__ import annotations

import logging

import trio

from kafkacompat.broker.broker import Broker
from kafkacompat.errors import ProtocolError
from kafkacompat.protocol.framing import FrameReader
from kafkacompat.server.sending import ResponseTruncated, send_response

log = logging.getLogger("kafkacompat.server")

RECEIVE_CHUNK = 64 * 1024
MAX_RECEIVE_CHUNK = 1024 * 1024


def peer_name(stream: trio.SocketStream) -> str:
    try:
        address = stream.socket.getpeername()
    except OSError:
        return "unknown peer"
    return f"{address[0]}:{address[1]}"


async def receive_frame(
    stream: trio.SocketStream, reader: FrameReader, idle_seconds: float
) -> memoryview | None:
    """The next request frame, or None when the client closed or idled too long."""
    frame = reader.next_frame()
    while frame is None:
        received = 0
        with trio.move_on_after(idle_seconds):
            room = reader.receive_buffer()
            if room is not None:
                # A large frame goes straight into its own buffer, not through chunk copies.
                try:
                    received = await stream.socket.recv_into(room)
                except OSError:
                    return None
                reader.received(received)
            else:
                want = min(max(reader.wanted(), RECEIVE_CHUNK), MAX_RECEIVE_CHUNK)
                chunk = await stream.receive_some(want)
                received = len(chunk)
                reader.feed(chunk)
        if not received:
            return None
        frame = reader.next_frame()
    return frame


async def serve_connection(stream: trio.SocketStream, broker: Broker) -> None:
    """Serve one connection until the client leaves or sends something unanswerable.

    Like Kafka, a connection is muted while its request is handled, so responses go out in the
    order requests came in and a client cannot queue unbounded work.
    """
    peer = peer_name(stream)
    reader = FrameReader(broker.config.get_int("socket.request.max.bytes"))
    idle_seconds = broker.config.get_int("connections.max.idle.ms") / 1000
    try:
        while True:
            frame = await receive_frame(stream, reader, idle_seconds)
            if frame is None:
                return
            response = await broker.handle_frame(frame, peer)
            if response is not None:
                await send_response(stream, response)
    except (ProtocolError, ResponseTruncated) as exc:
        log.warning("closing connection from %s: %s", peer, exc)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except Exception:
        log.exception("closing connection from %s after an internal error", peer)
    finally:
        await trio.aclose_forcefully(stream)
