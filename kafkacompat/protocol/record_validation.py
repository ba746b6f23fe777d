"""Record-level validation of a produced RecordBatch v2, as Apache Kafka's LogValidator does it.

Sans-IO. `validate_batch` walks every record of one batch (decompressing it, bounded, when it is
compressed), reading the varints in place without building an object per record, and refuses:

- structure (INVALID_RECORD, the batch as a whole): a record length or any inner length (key,
  value, header count, header key and value) that leaves its record or the batch, a varint cut
  short, fewer records than the header's count, or bytes left over after the last record;
- decompression (CORRUPT_MESSAGE, the batch as a whole): an invalid stream, or one inflating past
  `RecordRules.max_decompressed` (decompression stops there: see `decompression_limit`);
- per record (reported with its index in ``record_errors``): an offset delta other than its index
  (INVALID_RECORD), a record without a key on a compacted topic (INVALID_RECORD), under
  CreateTime a timestamp outside ``[now - message.timestamp.before.max.ms, now +
  message.timestamp.after.max.ms]`` (INVALID_TIMESTAMP), and a producer-set LogAppendTime where
  Kafka refuses it (INVALID_TIMESTAMP). A record has at most one error (offset, key, timestamp
  in that order); any INVALID_TIMESTAMP makes the batch's code INVALID_TIMESTAMP. Past
  `MAX_ERROR_MESSAGES` faulty records, the rest are listed with a null message.

Kafka reads the header-level facts (CRC, magic, count versus lastOffsetDelta, control and
producer id bits) before this; `records.assign_offsets` checks those and then calls the
validator it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

from kafkacompat.errors import ErrorCode, KafkaError, ProtocolError, RecordValidationError
from kafkacompat.protocol.compression import DEFAULT_MAX_DECOMPRESSED, decompress
from kafkacompat.protocol.primitives import read_varlong
from kafkacompat.protocol.records import (
    COMPRESSION_MASK,
    HEADER_SIZE,
    NO_TIMESTAMP,
    TIMESTAMP_TYPE_BIT,
    BatchHeader,
    Buffer,
)

__all__ = [
    "DECOMPRESSION_CEILING",
    "DECOMPRESSION_RATIO",
    "LONG_MAX",
    "MAX_ERROR_MESSAGES",
    "RecordRules",
    "ValidatedBatch",
    "decompression_limit",
    "validate_batch",
]

LONG_MAX = 2**63 - 1
#: A compressed batch may inflate to this many times ``max.message.bytes`` ...
DECOMPRESSION_RATIO = 16
#: ... but never to more than this, whatever ``max.message.bytes`` says.
DECOMPRESSION_CEILING = 512 * 1024 * 1024
#: Per-record error messages quoted in the summary message, as Kafka does.
_QUOTED_ERRORS = 3
#: Records beyond this many faulty ones are reported by index alone (a null message), so a
#: batch of many bad records cannot make an answer of megabytes.
MAX_ERROR_MESSAGES = 100


def decompression_limit(max_message_bytes: int) -> int:
    """Decompressed bytes a produced record set may inflate to: ``DECOMPRESSION_RATIO`` times
    ``max.message.bytes``, at least 64 MiB (`DEFAULT_MAX_DECOMPRESSED`, what the read paths
    allow per batch) and at most `DECOMPRESSION_CEILING`. With Kafka's default 1 MiB that is
    64 MiB; a bomb is refused once its output passes the limit, never inflated whole."""
    wanted = max(DEFAULT_MAX_DECOMPRESSED, DECOMPRESSION_RATIO * max_message_bytes)
    return min(wanted, DECOMPRESSION_CEILING)


@dataclass(frozen=True, slots=True)
class RecordRules:
    """What the records of a batch must satisfy on one partition.

    ``producer_rules`` off (batches the broker writes itself) keeps the structure checks and
    skips the key, timestamp and offset-delta rules.
    """

    now_ms: int
    topic_partition: str = ""
    log_append_time: bool = False
    timestamp_before_max_ms: int = LONG_MAX
    timestamp_after_max_ms: int = LONG_MAX
    compacted: bool = False
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED
    producer_rules: bool = True


class ValidatedBatch(NamedTuple):
    """What `validate_batch` learnt: the largest record timestamp (-1 when none has one) and
    how many bytes decompressing the batch produced (0 when it is not compressed)."""

    max_timestamp: int
    decompressed_size: int


def _invalid(message: str) -> RecordValidationError:
    return RecordValidationError(ErrorCode.INVALID_RECORD, message)


def _where(rules: RecordRules) -> str:
    return f" in topic partition {rules.topic_partition}"


def validate_batch(
    buf: Buffer,
    header: BatchHeader,
    rules: RecordRules,
    pos: int = 0,
    *,
    max_decompressed: int | None = None,
    now_ms: int | None = None,
) -> ValidatedBatch:
    """Check the records of the v2 batch at ``pos`` of ``buf`` (header ``header``) against
    ``rules``; decompression stops past ``max_decompressed`` bytes (default: the rules' limit,
    a caller checking several batches passes what is left of it).

    Raises `RecordValidationError` (see the module docstring for which check gives which code).
    The CRC is not checked here: the caller does that first.
    """
    now = rules.now_ms if now_ms is None else now_ms
    count = header.records_count
    if count <= 0:
        raise _invalid(f"Invalid reported count for record batch: {count}{_where(rules)}")
    codec = header.attributes & COMPRESSION_MASK
    body: Buffer
    if codec:
        limit = rules.max_decompressed if max_decompressed is None else max_decompressed
        data = memoryview(buf)[pos + HEADER_SIZE : pos + header.size]
        try:
            body = decompress(codec, data, max_size=limit)
        except KafkaError as exc:
            raise RecordValidationError(exc.code, exc.message + _where(rules)) from exc
        start, end = 0, len(body)
    else:
        body, start, end = buf, pos + HEADER_SIZE, pos + header.size
    walked = None if _fast_walk is None else _fast_walk(body, start, end, count)
    if walked is None:  # no C walk, or it found something the Python walk must explain
        where = _where(rules)
        try:
            walked = _walk(body, start, end, count, where)
        except (IndexError, ProtocolError):
            raise _invalid(f"Found invalid record structure{where}") from None
    min_delta, max_delta, offset_faults, null_keys = walked
    lat_bit = header.attributes & TIMESTAMP_TYPE_BIT
    if lat_bit:  # the records of a LogAppendTime batch carry its max timestamp
        min_ts = max_ts = header.max_timestamp
    else:
        min_ts = header.base_timestamp + min_delta
        max_ts = max(header.base_timestamp + max_delta, NO_TIMESTAMP)
    # Any fault the walk counted is looked at record by record; a timestamp range that may hold
    # one too (a record without a timestamp is not checked, which only the slow path knows).
    if rules.producer_rules and (
        offset_faults
        or (rules.compacted and null_keys)
        or (lat_bit and (rules.log_append_time or max_ts == NO_TIMESTAMP))
        or (
            not rules.log_append_time
            and (
                min_ts < now - rules.timestamp_before_max_ms
                or max_ts > now + rules.timestamp_after_max_ms
            )
        )
    ):
        if now != rules.now_ms:
            rules = replace(rules, now_ms=now)
        errors, bad_timestamp = _record_errors(body, start, count, header, rules, _where(rules))
        if errors:
            raise _summarise(errors, bad_timestamp)
    return ValidatedBatch(max_ts, len(body) if codec else 0)


_FastWalk = Callable[[Buffer, int, int, int], "tuple[int, int, int, int] | None"]
_fast_walk: _FastWalk | None
try:
    from kafkacompat.protocol._record_walk import walk as _fast_walk
except ImportError:  # built without a C compiler: the Python walk does it all
    _fast_walk = None

#: Zigzag value of each one-byte varint.
_ZIGZAG = [(b >> 1) ^ -(b & 1) for b in range(0x80)]


def _walk(buf: Buffer, p: int, end: int, count: int, where: str) -> tuple[int, int, int, int]:
    """Walk the ``count`` records from ``p`` to exactly ``end``, checking their structure.

    Returns the smallest and largest timestamp delta, how many offset deltas differ from the
    record's index, and how many keys are null. Raises INVALID_RECORD; IndexError or
    ProtocolError mean a varint ran out of bytes. This is the hot loop: varints of one and two
    bytes (the common cases) are decoded inline, longer ones by read_varlong; all lengths are
    zigzag varints and a negative key or value length means null.
    """
    zigzag, varlong = _ZIGZAG, read_varlong
    min_delta, max_delta = LONG_MAX, -LONG_MAX
    offset_faults = null_keys = 0
    for i in range(count):
        b = buf[p]  # record length
        if b < 0x80:
            v, p = zigzag[b], p + 1
        else:
            b1 = buf[p + 1]
            if b1 < 0x80:
                v = (b & 0x7F) | (b1 << 7)
                v, p = (v >> 1) ^ -(v & 1), p + 2
            else:
                v, p = varlong(buf, p)
        rend = p + v
        if v <= 0 or rend > end:
            if p > end:
                raise _invalid(f"Record batch declares {count} records but holds {i}{where}")
            raise _invalid(f"Invalid record size {v} at index {i}{where}")
        p += 1  # attributes: unused in v2
        b = buf[p]  # timestamp delta
        if b < 0x80:
            v, p = zigzag[b], p + 1
        else:
            b1 = buf[p + 1]
            if b1 < 0x80:
                v = (b & 0x7F) | (b1 << 7)
                v, p = (v >> 1) ^ -(v & 1), p + 2
            else:
                v, p = varlong(buf, p)
        if v < min_delta:
            min_delta = v
        if v > max_delta:
            max_delta = v
        b = buf[p]  # offset delta
        if b < 0x80:
            v, p = zigzag[b], p + 1
        else:
            b1 = buf[p + 1]
            if b1 < 0x80:
                v = (b & 0x7F) | (b1 << 7)
                v, p = (v >> 1) ^ -(v & 1), p + 2
            else:
                v, p = varlong(buf, p)
        if v != i:
            offset_faults += 1
        b = buf[p]  # key length
        if b < 0x80:
            v, p = zigzag[b], p + 1
        else:
            b1 = buf[p + 1]
            if b1 < 0x80:
                v = (b & 0x7F) | (b1 << 7)
                v, p = (v >> 1) ^ -(v & 1), p + 2
            else:
                v, p = varlong(buf, p)
        if v > 0:
            p += v
        elif v < 0:
            if v < -1:  # Kafka reads any negative length as null; clients stall on these
                raise _invalid(f"Invalid record key size {v} at index {i}{where}")
            null_keys += 1
        b = buf[p]  # value length
        if b < 0x80:
            v, p = zigzag[b], p + 1
        else:
            b1 = buf[p + 1]
            if b1 < 0x80:
                v = (b & 0x7F) | (b1 << 7)
                v, p = (v >> 1) ^ -(v & 1), p + 2
            else:
                v, p = varlong(buf, p)
        if v > 0:
            p += v
        elif v < -1:
            raise _invalid(f"Invalid record value size {v} at index {i}{where}")
        b = buf[p]  # header count
        if b < 0x80:
            v, p = zigzag[b], p + 1
        else:
            b1 = buf[p + 1]
            if b1 < 0x80:
                v = (b & 0x7F) | (b1 << 7)
                v, p = (v >> 1) ^ -(v & 1), p + 2
            else:
                v, p = varlong(buf, p)
        if v:
            p = _skip_headers(buf, p, rend, v, where)
        if p != rend:
            raise _invalid(f"Record at index {i} does not end where its length says{where}")
    if p != end:
        raise _invalid(f"Record batch holds {end - p} bytes after its {count} records{where}")
    return min_delta, max_delta, offset_faults, null_keys


def _skip_headers(buf: Buffer, p: int, rend: int, n_headers: int, where: str) -> int:
    """Skip ``n_headers`` record headers from ``p``; each key length must be >= 0."""
    if n_headers < 0 or n_headers > rend - p:
        raise _invalid(f"Found invalid number of record headers {n_headers}{where}")
    for _ in range(n_headers):
        key_len, p = read_varlong(buf, p)
        if key_len < 0:
            raise _invalid(f"Invalid negative header key size {key_len}{where}")
        value_len, p = read_varlong(buf, p + key_len)
        if value_len > 0:
            p += value_len
        elif value_len < -1:
            raise _invalid(f"Invalid header value size {value_len}{where}")
        if p > rend:
            break  # the caller refuses the record
    return p


def _record_errors(
    buf: Buffer, p: int, count: int, header: BatchHeader, rules: RecordRules, where: str
) -> tuple[list[tuple[int, str | None]], bool]:
    """The per-record errors of a batch whose structure `_walk` accepted, and whether one is
    about a timestamp (the slow path, taken only when the walk saw a fault)."""
    lat_bit = header.attributes & TIMESTAMP_TYPE_BIT
    # Kafka's timestamp rule: a CreateTime topic checks each record's time (a LogAppendTime
    # batch's records all carry its max timestamp; none at all is refused); a LogAppendTime
    # topic checks nothing, except that producers may not set LogAppendTime themselves.
    check_ts = not rules.log_append_time
    lo = rules.now_ms - rules.timestamp_before_max_ms
    hi = rules.now_ms + rules.timestamp_after_max_ms
    errors: list[tuple[int, str | None]] = []
    bad_timestamp = False
    for i in range(count):
        length, p = read_varlong(buf, p)
        rend = p + length
        ts_delta, q = read_varlong(buf, p + 1)
        offset_delta, q = read_varlong(buf, q)
        key_len, _ = read_varlong(buf, q)
        p = rend
        ts = header.max_timestamp if lat_bit else header.base_timestamp + ts_delta
        message: str | None
        if offset_delta != i:
            message = f"Inner record offset delta {offset_delta} is not {i}{where}"
        elif rules.compacted and key_len < 0:
            message = f"Compacted topic cannot accept message without key{where}."
        elif check_ts and ts != NO_TIMESTAMP and (ts < lo or ts > hi):
            bad_timestamp = True
            message = _timestamp_message(ts, i, lo, hi)
        elif lat_bit and (rules.log_append_time or ts == NO_TIMESTAMP):
            bad_timestamp = True
            message = _LAT_MESSAGE
        else:
            continue
        errors.append((i, message if len(errors) < MAX_ERROR_MESSAGES else None))
    return errors, bad_timestamp


_LAT_MESSAGE = "Invalid timestamp type: producers should not set timestamp type to LogAppendTime."


def _timestamp_message(ts: int, index: int, lo: int, hi: int) -> str:
    return (
        f"Timestamp {ts} of the record at index {index} is out of range. "
        f"The timestamp should be within [{lo}, {hi}]"
    )


def _summarise(errors: list[tuple[int, str | None]], bad_timestamp: bool) -> RecordValidationError:
    """One error for the batch from its per-record errors, worded as Kafka words it."""
    if bad_timestamp:
        return RecordValidationError(
            ErrorCode.INVALID_TIMESTAMP,
            "One or more records have been rejected due to invalid timestamp",
            errors,
        )
    quoted = "; ".join(f"index {i}: {m}" for i, m in errors[:_QUOTED_ERRORS])
    return RecordValidationError(
        ErrorCode.INVALID_RECORD,
        f"One or more records have been rejected due to {len(errors)} record errors in total, "
        f"and only showing the first three errors at most: [{quoted}]",
        errors,
    )
