"""The console's message browser: records of one partition from an offset (or the first at a
timestamp), a page at a time, and how a key or value is shown (text, pretty JSON or hex).

Where to read is decided on the loop (the partition's index, as a fetch does); the bytes are
read and decoded on a worker thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import trio

from kafkacompat.errors import KafkaError
from kafkacompat.partitions.partition import Partition
from kafkacompat.protocol.record_codec import Record, decode_batch
from kafkacompat.protocol.records import iter_batches

__all__ = ["Page", "browse", "format_timestamp", "show_bytes"]

#: Bytes read per step while filling a page.
READ_BYTES = 1024 * 1024
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class Page:
    records: list[Record]
    #: Where the next page starts; equal to the end offset when nothing follows yet.
    next_offset: int
    start_offset: int
    end_offset: int


def _decode(data: bytes, offset: int, limit: int) -> tuple[list[Record], int]:
    """Records at or after ``offset`` (at most ``limit``; control batches are not shown) and
    the offset after the last record or batch looked at."""
    records: list[Record] = []
    after = offset
    for pos, header in iter_batches(data):
        after = max(after, header.last_offset + 1)
        if header.is_control:
            continue
        _header, decoded = decode_batch(data, pos)
        for record in decoded:
            if record.offset >= offset:
                records.append(record)
                if len(records) == limit:
                    return records, record.offset + 1
    return records, after


async def browse(
    partition: Partition, offset: int | None, timestamp: int | None, limit: int
) -> Page:
    """A page of records from ``offset``, or from the first record at or after ``timestamp``
    (neither: from the log start)."""
    limit = max(1, min(limit, MAX_PAGE))
    start, end = partition.log_start_offset, partition.high_watermark
    if timestamp is not None:
        found = partition.offset_for_timestamp(timestamp)
        offset = end if found is None else found.offset
    position = start if offset is None else min(max(offset, start), end)
    records: list[Record] = []
    while len(records) < limit and position < end:
        try:
            read = partition.read(position, READ_BYTES)
        except KafkaError:
            break
        data = await trio.to_thread.run_sync(read.read_bytes)
        if not data:
            break
        more, after = await trio.to_thread.run_sync(_decode, data, position, limit - len(records))
        records += more
        if after <= position:
            break
        position = after
    return Page(records, position, start, end)


def format_timestamp(ms: int) -> str:
    if ms < 0:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d} UTC"


def _hex(data: bytes) -> str:
    return " ".join(data[i : i + 2].hex() for i in range(0, len(data), 2))


def show_bytes(data: bytes | None, mode: str = "auto") -> tuple[str, str]:
    """``(kind, text)`` for a key, value or header: kind is null, json, text or hex. ``auto``
    pretty-prints JSON, shows UTF-8 text as it is and anything else as hex."""
    if data is None:
        return "null", "null"
    if mode == "hex":
        return "hex", _hex(data)
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return "hex", _hex(data)
    if mode in ("auto", "json"):
        try:
            parsed = json.loads(decoded)
        except ValueError:
            parsed = None
        else:
            if isinstance(parsed, dict | list) or mode == "json":
                return "json", json.dumps(parsed, indent=2, ensure_ascii=False, sort_keys=False)
    if decoded.isprintable() or all(c.isprintable() or c in "\n\r\t" for c in decoded):
        return "text", decoded
    return "hex", _hex(data)
