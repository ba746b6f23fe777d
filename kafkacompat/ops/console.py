"""The web console: brokers and controller, topics (partitions, offsets, sizes, configs), a
message browser, consumer groups (members, assignments, lag) and live throughput sparklines.

Server-rendered pages plus one small script (the sparklines) shipped in the package; nothing is
fetched from elsewhere. Read-only unless ``http.console.write.enable`` is set; then topics can be
created and deleted and an empty group's offsets reset, each behind HTTP basic auth as one of the
broker's SASL users.
"""

from __future__ import annotations

import json
import struct
import time
from importlib import resources
from urllib.parse import urlsplit

from kafkacompat.broker.broker import Broker
from kafkacompat.broker.config_catalog import topic_config_entries
from kafkacompat.coordinators.group_offsets import OffsetAndMetadata
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.ops.auth import basic_credentials, check_user
from kafkacompat.ops.browse import browse, format_timestamp, show_bytes
from kafkacompat.ops.html import Cell, e, layout, link, table, url
from kafkacompat.ops.http import Request, Response, text
from kafkacompat.ops.metrics import BrokerMetrics, group_lags

__all__ = ["Console", "decode_assignment"]

STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


def decode_assignment(data: bytes) -> dict[str, list[int]]:
    """A consumer-protocol assignment (version, [topic, [partition]], user data); {} when it
    is not one."""
    found: dict[str, list[int]] = {}
    try:
        pos = 2
        (topics,) = _I32.unpack_from(data, pos)
        pos += 4
        for _ in range(max(topics, 0)):
            (length,) = _I16.unpack_from(data, pos)
            topic = data[pos + 2 : pos + 2 + length].decode()
            pos += 2 + length
            (count,) = _I32.unpack_from(data, pos)
            pos += 4
            found[topic] = [_I32.unpack_from(data, pos + 4 * i)[0] for i in range(count)]
            pos += 4 * count
    except (struct.error, UnicodeDecodeError):
        return {}
    return found


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


class Console:
    """Routes the console's paths to its pages and (when enabled) its changes."""

    def __init__(self, broker: Broker, metrics: BrokerMetrics) -> None:
        self.broker = broker
        self.metrics = metrics
        self.writes = broker.config.get_bool("http.console.write.enable")
        if not _STATIC:
            _STATIC.update(_load_static())

    def _page(self, title: str, body: str, status: int = 200) -> Response:
        html = layout(title, body, cluster=self.broker.cluster_id, writes=self.writes)
        return Response(html.encode(), status)

    async def handle(self, request: Request) -> Response:
        parts = list(request.segments)
        try:
            if request.method == "POST":
                return await self._change(request, parts)
            if not parts:
                return self.overview()
            if parts[0] == "static" and len(parts) == 2:
                return _static(parts[1])
            if parts == ["api", "throughput"]:
                return self.throughput()
            if parts[0] == "topics":
                if len(parts) == 1:
                    return self.topics()
                if len(parts) == 2:
                    return self.topic(parts[1])
                if len(parts) == 3 and parts[2] == "messages":
                    return await self.messages(parts[1], request)
            if parts[0] == "groups":
                if len(parts) == 1:
                    return self.groups()
                if len(parts) == 2:
                    return self.group(parts[1])
        except KafkaError as exc:
            return self._page("Error", f'<p class="error">{e(exc)}</p>', 400)
        return self._page("Not found", "<p>No such page.</p>", 404)

    # -- overview ---------------------------------------------------------------------------------

    def overview(self) -> Response:
        image = self.broker.services.metadata.image
        rows = []
        for info in image.brokers:
            endpoints = ", ".join(f"{p.listener} {p.host}:{p.port}" for p in info.endpoints)
            role = "controller" if info.node_id == image.controller_id else ""
            rows.append((info.node_id, f"{info.host}:{info.port}", endpoints or "-", role))
        hosted = self.broker.partitions.partitions()
        spark = "".join(
            f'<div class="spark-box"><div class="spark-title">{e(label)}</div>'
            f'<svg class="spark" data-series="{key}" data-label="rate-{key}" '
            f'viewBox="0 0 240 40" preserveAspectRatio="none"><polyline points=""/></svg>'
            f'<div class="rate"><span id="rate-{key}">…</span> {e(unit)}</div></div>'
            for key, label, unit in (
                ("messages_in", "Messages in", "msg/s"),
                ("bytes_in", "Bytes in", "B/s"),
                ("bytes_out", "Bytes out", "B/s"),
            )
        )
        body = (
            f"<section><h2>Cluster</h2><dl><dt>Cluster id</dt><dd>{e(image.cluster_id)}</dd>"
            f"<dt>Controller</dt><dd>node {e(image.controller_id)}</dd>"
            f"<dt>Topics</dt><dd>{len(image.topics)}</dd>"
            f"<dt>Partitions hosted</dt><dd>{len(hosted)}</dd></dl></section>"
            "<section><h2>Brokers</h2>"
            + table(("Node", "Address", "Listeners", "Role"), rows, id="brokers")
            + '</section><section><h2>Throughput</h2><div class="sparks">'
            + spark
            + "</div></section>"
        )
        return self._page("Overview", body)

    def throughput(self) -> Response:
        messages_in, bytes_in = self.metrics.totals_in()
        totals = {
            "t": time.monotonic(),
            "messages_in": messages_in,
            "bytes_in": bytes_in,
            "bytes_out": sum(self.metrics.counters.bytes_out.values()),
        }
        return Response(json.dumps(totals).encode(), content_type="application/json")

    # -- topics -----------------------------------------------------------------------------------

    def topics(self) -> Response:
        partitions = self.broker.partitions
        rows = []
        for topic in self.broker.services.metadata.image.list_topics():
            hosted = [partitions.partition_or_none(topic.name, i) for i in range(topic.partitions)]
            present = [p for p in hosted if p is not None]
            messages = sum(p.high_watermark - p.log_start_offset for p in present)
            size = sum(p.size_in_bytes for p in present)
            name = link(url("topics", topic.name), topic.name, data_topic=topic.name)
            rows.append((name, topic.partitions, messages, size, "yes" if topic.internal else ""))
        body = table(
            ("Topic", "Partitions", "Messages", "Size (bytes)", "Internal"),
            rows,
            id="topics",
            empty="No topics yet.",
        )
        if self.writes:
            body += (
                '<section><h2>Create a topic</h2><form method="post" action="/topics">'
                '<input name="name" placeholder="name" required> '
                '<input name="partitions" type="number" min="1" value="1"> '
                "<button>Create</button></form></section>"
            )
        return self._page("Topics", body)

    def topic(self, name: str) -> Response:
        image = self.broker.services.metadata.image.topic(name)
        if image is None:
            return self._page("Not found", f"<p>No topic {e(name)}.</p>", 404)
        rows = []
        config = None
        for assignment in image.assignment:
            hosted = self.broker.partitions.partition_or_none(name, assignment.index)
            if hosted is None:
                continue
            config = hosted.config
            browse_link = link(
                f"{url('topics', name, 'messages')}?partition={assignment.index}", "browse"
            )
            rows.append(
                (
                    assignment.index,
                    assignment.leader,
                    hosted.log_start_offset,
                    hosted.high_watermark,
                    hosted.size_in_bytes,
                    browse_link,
                )
            )
        body = "<section><h2>Partitions</h2>" + table(
            ("Partition", "Leader", "Start offset", "End offset", "Size (bytes)", ""),
            rows,
            id="partitions",
        )
        body += "</section>"
        if config is not None:
            entries = topic_config_entries(self.broker.config, image.configs, config)
            configs = [
                (c.name, c.value or "", "override" if c.name in image.configs else "default")
                for c in entries
            ]
            body += "<section><h2>Configs</h2>"
            body += table(("Name", "Value", "Source"), configs, id="configs") + "</section>"
        if self.writes:
            body += (
                f'<section><h2>Delete</h2><form method="post" action="{e(url("topics", name))}">'
                '<input type="hidden" name="action" value="delete">'
                "<button>Delete this topic</button></form></section>"
            )
        return self._page(f"Topic {name}", body)

    async def messages(self, name: str, request: Request) -> Response:
        index = _int(request.arg("partition", "0")) or 0
        hosted = self.broker.partitions.partition(name, index)
        offset = _int(request.arg("offset")) if request.arg("offset") else None
        timestamp = _int(request.arg("timestamp")) if request.arg("timestamp") else None
        limit = _int(request.arg("limit", "20")) or 20
        mode = request.arg("format", "auto")
        if mode not in ("auto", "text", "json", "hex"):
            mode = "auto"
        page = await browse(hosted, offset, timestamp, limit)
        rows = []
        for record in page.records:
            key_kind, key = show_bytes(record.key, mode)
            value_kind, value = show_bytes(record.value, mode)
            headers = "".join(
                f'<div class="header"><b>{e(k)}</b>: '
                f'<span class="{show_bytes(v, mode)[0]}">{e(show_bytes(v, mode)[1])}</span></div>'
                for k, v in record.headers
            )
            rows.append(
                (
                    record.offset,
                    format_timestamp(record.timestamp),
                    Cell(f'<pre class="{key_kind}">{e(key)}</pre>'),
                    Cell(f'<pre class="{value_kind}">{e(value)}</pre>'),
                    Cell(headers),
                )
            )
        partitions = self.broker.services.metadata.image.topic(name)
        count = partitions.partitions if partitions is not None else 1
        options = "".join(
            f'<option value="{i}"{" selected" if i == index else ""}>{i}</option>'
            for i in range(count)
        )
        formats = "".join(
            f"<option{' selected' if f == mode else ''}>{f}</option>"
            for f in ("auto", "text", "json", "hex")
        )
        form = (
            f'<form method="get" class="browse">Partition <select name="partition">{options}'
            f'</select> Offset <input name="offset" type="number" value="'
            f'{"" if offset is None else offset}"> or timestamp (ms) <input name="timestamp" '
            f'type="number" value="{"" if timestamp is None else timestamp}"> Show '
            f'<select name="format">{formats}</select> <input name="limit" type="number" '
            f'value="{limit}" min="1" max="500"> <button>Go</button></form>'
        )
        summary = (
            f"<p>Partition {index}: offsets {page.start_offset} to {page.end_offset}; "
            f"{len(page.records)} records shown.</p>"
        )
        next_href = (
            f"{url('topics', name, 'messages')}?partition={index}&offset={page.next_offset}"
            f"&limit={limit}&format={mode}"
        )
        more = link(next_href, "Next page →", id="next-page").markup
        body = (
            form
            + summary
            + table(
                ("Offset", "Timestamp", "Key", "Value", "Headers"),
                rows,
                id="messages",
                empty="No records here.",
            )
            + f'<p class="pager">{more}</p>'
        )
        return self._page(f"Messages of {name}", body)

    # -- consumer groups --------------------------------------------------------------------------

    def groups(self) -> Response:
        coordinator = self.broker.groups.coordinator
        states = {g: (t, s) for g, t, s in coordinator.list_groups()}
        lags = group_lags(self.broker)
        rows = []
        for group_id in sorted(set(states) | set(lags)):
            protocol_type, state = states.get(group_id, ("", "Empty"))
            members = len(coordinator.describe_group(group_id).members) if group_id in states else 0
            total = sum(lag for _t, _p, _c, lag in lags.get(group_id, []))
            name = link(url("groups", group_id), group_id, data_group=group_id)
            rows.append((name, state, protocol_type or "-", members, total))
        body = table(
            ("Group", "State", "Protocol type", "Members", "Lag"),
            rows,
            id="groups",
            empty="No consumer groups yet.",
        )
        return self._page("Consumer groups", body)

    def group(self, group_id: str) -> Response:
        coordinator = self.broker.groups.coordinator
        described = coordinator.describe_group(group_id)
        lags = group_lags(self.broker).get(group_id, [])
        members = []
        for member in described.members:
            assigned = decode_assignment(member.assignment)
            shown = "; ".join(f"{t}: {', '.join(map(str, ps))}" for t, ps in assigned.items())
            members.append((member.member_id, member.client_id, member.client_host, shown or "-"))
        offsets = []
        for topic, index, committed, lag in lags:
            hosted = self.broker.partitions.partition_or_none(topic, index)
            end = hosted.high_watermark if hosted is not None else "-"
            offsets.append((topic, index, committed, end, lag))
        body = (
            f"<p>State <b>{e(described.state)}</b>, protocol type "
            f"{e(described.protocol_type or '-')}, protocol {e(described.protocol_name or '-')}, "
            f'total lag <b id="total-lag">{sum(r[4] for r in offsets)}</b>.</p>'
            "<section><h2>Members</h2>"
            + table(
                ("Member", "Client id", "Host", "Assignment"),
                members,
                id="members",
                empty="No members.",
            )
            + "</section><section><h2>Offsets and lag</h2>"
            + table(
                ("Topic", "Partition", "Committed", "End offset", "Lag"),
                offsets,
                id="offsets",
                empty="No committed offsets.",
            )
            + "</section>"
        )
        if self.writes:
            body += (
                '<section><h2>Reset offsets</h2><form method="post" action="'
                f'{e(url("groups", group_id))}"><input name="topic" placeholder="topic" required> '
                '<input name="partition" type="number" min="0" value="0"> to '
                '<select name="to"><option>earliest</option><option>latest</option>'
                '<option value="offset">offset</option></select> '
                '<input name="offset" type="number" placeholder="offset"> '
                "<button>Reset</button></form><p>Only while the group has no members.</p></section>"
            )
        return self._page(f"Group {group_id}", body)

    # -- changes ----------------------------------------------------------------------------------

    async def _change(self, request: Request, parts: list[str]) -> Response:
        if not self.writes:
            return text("the console is read-only (http.console.write.enable=false)\n", 403)
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            # Browsers resend basic-auth credentials to any page's form: same origin only.
            return text("changes are accepted from the console's own pages only\n", 403)
        given = basic_credentials(request.headers.get("authorization", ""))
        if given is None or not await check_user(self.broker, *given):
            return Response(
                b"authentication required\n",
                401,
                "text/plain; charset=utf-8",
                [("www-authenticate", 'Basic realm="kafkacompat console"')],
            )
        form = request.form()
        controller = self.broker.controller
        if parts == ["topics"]:
            name = form.get("name", "").strip()
            await controller.create_topic(name, _int(form.get("partitions", "1")) or 1)
            return _redirect(url("topics", name))
        if len(parts) == 2 and parts[0] == "topics" and form.get("action") == "delete":
            await controller.delete_topic(parts[1])
            return _redirect("/topics")
        if len(parts) == 2 and parts[0] == "groups":
            return self._reset(parts[1], form)
        return text("unknown change\n", 400)

    def _reset(self, group_id: str, form: dict[str, str]) -> Response:
        topic, index = form.get("topic", ""), _int(form.get("partition", "0")) or 0
        hosted = self.broker.partitions.partition(topic, index)
        target = form.get("to", "earliest")
        if target == "earliest":
            offset = hosted.log_start_offset
        elif target == "latest":
            offset = hosted.high_watermark
        else:
            offset = _int(form.get("offset", "")) or 0
        errors = self.broker.groups.coordinator.commit_offsets(
            group_id, "", None, -1, {(topic, index): OffsetAndMetadata(offset)}
        )
        error = errors.get((topic, index), ErrorCode.NONE)
        if error != ErrorCode.NONE:
            return text(f"offset reset refused: {ErrorCode(error).name}\n", 409)
        return _redirect(url("groups", group_id))


def _redirect(location: str) -> Response:
    return Response(b"", 303, "text/plain; charset=utf-8", [("location", location)])


def _load_static() -> dict[str, Response]:
    """The console's stylesheet and script, read once (they ship in the package)."""
    found = {}
    for entry in resources.files("kafkacompat.ops").joinpath("static").iterdir():
        kind = STATIC_TYPES.get(entry.name[entry.name.rfind(".") :])
        if kind is not None:
            found[entry.name] = Response(entry.read_bytes(), 200, kind)
    return found


_STATIC: dict[str, Response] = {}


def _static(name: str) -> Response:
    if not _STATIC:
        _STATIC.update(_load_static())
    found = _STATIC.get(name)
    return found if found is not None else text("not found\n", 404)
