"""The C record walk agrees with the Python one: whatever it accepts, Python accepts with the
same figures; whatever it refuses goes to Python, which decides."""

from __future__ import annotations

import random

import pytest

from kafkacompat.errors import ProtocolError
from kafkacompat.protocol import record_validation
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.protocol.records import HEADER_SIZE

fast_walk = record_validation._fast_walk
pytestmark = pytest.mark.skipif(fast_walk is None, reason="the C record walk is not built")


def batches() -> list[bytes]:
    made = []
    for n in (1, 3, 40):
        records = [
            Record(
                i,
                1_700_000_000_000 + 7 * i,
                None if i % 3 == 0 else f"k{i}".encode(),
                b"v" * (i * 37 % 300) if i % 5 else None,
                [("h", b"x" * i), ("e", b"")] if i % 2 else [],
            )
            for i in range(n)
        ]
        made.append(encode_batch(records))
    return made


def python_walk(body: bytes, count: int) -> tuple[int, int, int, int] | None:
    try:
        return record_validation._walk(body, HEADER_SIZE, len(body), count, "")
    except (IndexError, ProtocolError, record_validation.RecordValidationError):
        return None


@pytest.mark.parametrize("seed", range(4))
def test_c_walk_never_accepts_what_python_refuses(seed: int) -> None:
    rng = random.Random(seed)
    assert fast_walk is not None
    for data in batches():
        count = int.from_bytes(data[57:61], "big")
        assert fast_walk(data, HEADER_SIZE, len(data), count) == python_walk(data, count)
        for _ in range(3000):
            body = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(HEADER_SIZE, len(body))
                body[at] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, rng.randrange(256)))
            if rng.random() < 0.2:
                body = body[: rng.randrange(HEADER_SIZE, len(body) + 1)]
            claimed = max(1, count + rng.choice((0, 0, 0, -1, 1)))
            fast = fast_walk(bytes(body), HEADER_SIZE, len(body), claimed)
            if fast is not None:
                assert fast == python_walk(bytes(body), claimed), (seed, bytes(body).hex())


def test_c_walk_refuses_bad_bounds_without_reading_outside() -> None:
    assert fast_walk is not None
    data = batches()[1]
    assert fast_walk(data, HEADER_SIZE, len(data) + 10, 3) is None
    assert fast_walk(data, len(data), len(data), 3) is None
    assert fast_walk(data, HEADER_SIZE, len(data), 0) is None
