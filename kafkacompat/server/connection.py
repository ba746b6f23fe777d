"""One client connection: read a frame, answer it, write the response, strictly in order."""

from __future__ import annotations

import logging
import math
from time import perf_counter

import trio

from kafkacompat.broker.dispatch import TIME_ONE_REQUEST_IN, DropConnection, RequestPipeline
from kafkacompat.broker.session import Session
from kafkacompat.config import HostPort
from kafkacompat.errors import ProtocolError, is_resource_exhausted
from kafkacompat.listeners import Listener
from kafkacompat.protocol.framing import FrameReader
from kafkacompat.server.accepting import ListenerSecurity, accept_connection, peer_of
from kafkacompat.server.idle import IdleConnections, IdleTimer
from kafkacompat.server.sending import ResponseTruncated, send_response
from kafkacompat.server.socket_io import ConnectionLost, SendStalled
from kafkacompat.server.tls_transport import TlsHandshakeFailed
from kafkacompat.server.transport import Transport

log = logging.getLogger("kafkacompat.server")

#: The listener of a connection served without one named (tests that drive `serve_connection`).
PLAINTEXT_LISTENER = Listener("PLAINTEXT", "PLAINTEXT", HostPort("127.0.0.1", 0))

RECEIVE_CHUNK = 64 * 1024
MAX_RECEIVE_CHUNK = 1024 * 1024
#: Requests answered in a row without waiting for the socket before the task yields anyway,
#: so a client that keeps its connection full cannot starve the others.
MAX_REQUESTS_WITHOUT_YIELD = 16


async def receive_frame(
    client: Transport, reader: FrameReader, timer: IdleTimer
) -> memoryview | None:
    """The next request frame, or None when the client closed the connection.

    The connection counts as idle while it waits for bytes: from the last bytes received.
    """
    frame = reader.next_frame()
    if frame is not None:
        return frame
    while frame is None:
        timer.waiting_since = trio.current_time()
        room = reader.receive_buffer()
        if room is not None:
            # A large frame goes straight into its own buffer, not through chunk copies.
            received = await client.recv_into(room)
            reader.received(received)
        else:
            want = min(max(reader.wanted(), RECEIVE_CHUNK), MAX_RECEIVE_CHUNK)
            chunk = await client.recv(want)
            received = len(chunk)
            reader.feed(chunk)
        if not received:
            return None
        frame = reader.next_frame()
    timer.waiting_since = math.inf
    return frame


async def serve_connection(
    stream: trio.SocketStream,
    pipeline: RequestPipeline,
    idle: IdleConnections,
    max_request_bytes: int,
    send_timeout: float = math.inf,
    listener: Listener | None = None,
    security: ListenerSecurity | None = None,
) -> None:
    """Serve one connection until the client leaves, idles too long or sends something
    unanswerable.

    Like Kafka, a connection is muted while its request is handled, so responses go out in the
    order requests came in and a client cannot queue unbounded work.
    """
    if security is None:
        security = ListenerSecurity(listener or PLAINTEXT_LISTENER)
    try:
        client, session = await accept_connection(stream, security, send_timeout)
    except TlsHandshakeFailed as exc:
        log.info("closing connection from %s: %s", peer_of(stream), exc)
        await trio.aclose_forcefully(stream)
        return
    peer = session.peer
    reader = FrameReader(max_request_bytes)
    try:
        intercept = pipeline.intercept
        if intercept is not None and intercept.refuses_connection(session):
            log.info("closing connection from %s: refused by fault injection", peer)
            return
        with trio.CancelScope() as scope:
            timer = idle.add(scope)
            try:
                await _serve_requests(client, reader, pipeline, session, timer)
            finally:
                idle.remove(timer)
        if scope.cancelled_caught:
            log.info("closing connection from %s: idle for over %g s", peer, idle.max_idle_seconds)
    except DropConnection as exc:
        log.info("closing connection from %s: %s", peer, exc)
    except (ProtocolError, ResponseTruncated, SendStalled) as exc:
        log.warning("closing connection from %s: %s", peer, exc)
    except ConnectionLost:
        pass
    except Exception as exc:
        if is_resource_exhausted(exc):  # out of descriptors or disk: one clear line
            log.error("closing connection from %s: %s", peer, exc)
        else:
            log.exception("closing connection from %s after an internal error", peer)
    finally:
        client.close()


async def _wait_out_throttle(session: Session) -> None:
    """A throttled connection reads nothing until its throttle time is over (KIP-219)."""
    if session.muted_until > trio.current_time():
        await trio.sleep_until(session.muted_until)
    session.muted_until = 0.0


async def _serve_requests(
    client: Transport,
    reader: FrameReader,
    pipeline: RequestPipeline,
    session: Session,
    timer: IdleTimer,
) -> None:
    # With connection hooks (metrics), one request in TIME_ONE_REQUEST_IN of each API is timed:
    # queued from its frame being read (or, for bytes already received when a throttle mute
    # began, from the mute) to its handling, handled (decode to encode), then the response's
    # write (sendfile included). The others, and every request without hooks: truth tests only.
    timed = pipeline.connection_hooks
    untimed, handlers = pipeline.untimed, pipeline.handlers
    api_key = -1
    timing = False
    queued_from = started = handled = 0.0
    muted_at = 0.0
    unyielded = 0
    while True:
        waits = client.waits
        frame = await receive_frame(client, reader, timer)
        if frame is None:
            return
        if timed:
            if not session.raw_sasl_tokens and len(frame) >= 2:
                api_key = frame[0] << 8 | frame[1]
                left = untimed.get(api_key, 0)
                if left:
                    untimed[api_key] = left - 1
                elif api_key in handlers:  # an unknown key closes the connection, untimed
                    untimed[api_key] = TIME_ONE_REQUEST_IN - 1
                    timing = True
                    queued_from = muted_at or perf_counter()
                    started = perf_counter()
            muted_at = 0.0
        response = await pipeline.handle_frame(frame, session)
        if timing:
            handled = perf_counter()
        if response is not None:
            await send_response(client, response)
        if timing:
            timing = False
            sent = perf_counter()
            for hook in timed:
                hook(
                    api_key,
                    started - queued_from,
                    handled - started,
                    sent - handled,
                    sent - queued_from,
                )
        if session.close_after_response is not None:
            # Failed authentication: the client reads the error before the connection closes.
            await trio.sleep(session.close_after_response)
            raise DropConnection("authentication failed")
        if session.muted_until:
            if timed and reader.buffered:
                muted_at = perf_counter()
            await _wait_out_throttle(session)
        if client.waits != waits:
            unyielded = 0
        else:
            unyielded += 1
            if unyielded >= MAX_REQUESTS_WITHOUT_YIELD:
                unyielded = 0
                await trio.lowlevel.checkpoint()
