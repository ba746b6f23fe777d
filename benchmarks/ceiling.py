"""Physical ceilings on this machine: loopback TCP bandwidth and a Trio ping-pong round-trip rate.

The ping-pong server is what a request/response broker could at best be in Trio: read a
size-prefixed frame, answer a small frame, nothing else. Clients are blocking sockets in
other processes (like librdkafka's C threads), so the server process is the one measured.
"""

from __future__ import annotations

import socket
import struct
import time
from multiprocessing.connection import Connection

SIZE = struct.Struct(">i")
REQUEST = SIZE.pack(100) + bytes(100)
RESPONSE = SIZE.pack(40) + bytes(40)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return bytes(data)


def pingpong_server(port_out: Connection) -> None:
    """Serve until killed: one answer per request frame, in order, per connection."""
    import trio

    async def handle(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        try:
            while True:
                while len(buffer) < 4 or len(buffer) < 4 + SIZE.unpack_from(buffer)[0]:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                del buffer[: 4 + SIZE.unpack_from(buffer)[0]]
                await stream.send_all(RESPONSE)
        except trio.BrokenResourceError:
            pass

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port_out.send(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(handle, listeners)

    trio.run(main)


def pingpong_client(
    port: int, seconds: float, request: bytes = REQUEST, host: str = "127.0.0.1"
) -> dict[str, float]:
    """Sequential request/response round trips for `seconds`."""
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        count = 0
        start = time.perf_counter()
        stop_at = start + seconds
        while True:
            sock.sendall(request)
            (size,) = SIZE.unpack(_recv_exactly(sock, 4))
            _recv_exactly(sock, size)
            count += 1
            if count % 64 == 0 and time.perf_counter() >= stop_at:
                break
        return {"messages": count, "seconds": time.perf_counter() - start}


def produce_frame(topic: str) -> bytes:
    """A Produce v9 request (acks=1) of one 100-byte record, encoded by our own codecs."""
    from kafkacompat.protocol.messages import produce_request, request_header
    from kafkacompat.protocol.messages.produce_request import (
        PartitionProduceData,
        ProduceRequest,
        TopicProduceData,
    )
    from kafkacompat.protocol.messages.request_header import RequestHeader
    from kafkacompat.protocol.record_codec import Record, encode_batch

    batch = encode_batch([Record(0, int(time.time() * 1000), None, bytes(100))])
    request = ProduceRequest(
        transactional_id=None,
        acks=1,
        timeout_ms=30000,
        topic_data=[TopicProduceData(topic, [PartitionProduceData(0, batch)])],
    )
    body = bytearray()
    request_header.ENCODERS[2](RequestHeader(0, 9, 1, "bench"), body)
    produce_request.ENCODERS[9](request, body)
    return SIZE.pack(len(body)) + body


def raw_produce_client(bootstrap: str, topic: str, seconds: float) -> dict[str, float]:
    """`pingpong_client` sending one-record Produce requests to a broker."""
    from kafkacompat.protocol.messages import produce_response

    host, _, port = bootstrap.rpartition(":")
    frame = produce_frame(topic)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(frame)
        (size,) = SIZE.unpack(_recv_exactly(sock, 4))
        body = memoryview(_recv_exactly(sock, size))[5:]  # correlation id, empty tagged fields
        response, _ = produce_response.DECODERS[9](body, 0)
        code = response.responses[0].partition_responses[0].error_code
        if code:
            raise RuntimeError(f"produce failed with error {code}")
    return pingpong_client(int(port), seconds, frame, host)


def loopback_receiver(port_out: Connection) -> None:
    """Receive until the sender closes; send the port, then the result, through `port_out`."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port_out.send(server.getsockname()[1])
        conn, _ = server.accept()
        with conn:
            buffer = bytearray(1 << 20)
            view = memoryview(buffer)
            received = 0
            start = time.perf_counter()
            while True:
                n = conn.recv_into(view)
                if not n:
                    break
                received += n
            elapsed = time.perf_counter() - start
    port_out.send({"bytes": received, "seconds": elapsed})


def loopback_sender(port: int, seconds: float) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        chunk = bytes(1 << 20)
        stop_at = time.perf_counter() + seconds
        while time.perf_counter() < stop_at:
            sock.sendall(chunk)
