"""ClientSocket: receives what arrives whether it polls or sleeps, sends everything, reports
a closed peer, and never lets one connection keep the loop to itself."""

from __future__ import annotations

import socket

import pytest
import trio

from kafkacompat.server.socket_io import POLL_PASSES, ClientSocket, ConnectionLost


async def test_receives_data_that_arrives_while_polling_and_after_sleeping() -> None:
    left, right = socket.socketpair()
    client = ClientSocket(left)
    with left, right:
        right.sendall(b"first")
        assert await client.recv(1024) == b"first"
        waits = client.waits
        async with trio.open_nursery() as nursery:

            async def late_sender() -> None:
                await trio.sleep(0.05)  # long after the polls: the receive is asleep by then
                right.sendall(b"second")

            nursery.start_soon(late_sender)
            assert await client.recv(1024) == b"second"
        # It polled POLL_PASSES times, then slept once.
        assert client.waits - waits == POLL_PASSES + 1


async def test_recv_into_and_send_all_move_every_byte() -> None:
    left, right = socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sender, receiver = ClientSocket(left), ClientSocket(right)
    payload = bytes(range(256)) * 4096  # 1 MiB: more than the socket buffers hold
    received = bytearray()
    with left, right:
        async with trio.open_nursery() as nursery:

            async def send() -> None:
                await sender.send_all(payload)
                left.shutdown(socket.SHUT_WR)

            nursery.start_soon(send)
            buffer = memoryview(bytearray(65536))
            while count := await receiver.recv_into(buffer):
                received += buffer[:count]
    assert received == payload


async def test_a_closed_peer_reads_as_end_of_stream_and_fails_sends() -> None:
    left, right = socket.socketpair()
    client = ClientSocket(left)
    right.close()
    with left:
        assert await client.recv(1024) == b""
        with pytest.raises(ConnectionLost):
            for _ in range(100):
                await client.send_all(b"x" * 65536)


async def test_close_wakes_a_sleeping_receive() -> None:
    left, right = socket.socketpair()
    client = ClientSocket(left)
    outcome: list[BaseException] = []

    async def receive() -> None:
        try:
            await client.recv(1024)
        except ConnectionLost as exc:
            outcome.append(exc)

    with right:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            await trio.sleep(0.05)
            client.close()
    assert len(outcome) == 1
