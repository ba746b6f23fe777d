"""Small HTML helpers for the console's server-rendered pages (every value escaped)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from urllib.parse import quote

__all__ = ["Cell", "e", "layout", "link", "table", "url"]


class Cell:
    """Markup already escaped, put into a table as it is."""

    __slots__ = ("markup",)

    def __init__(self, markup: str) -> None:
        self.markup = markup


def e(value: object) -> str:
    return escape(str(value), quote=True)


def url(*parts: str | int) -> str:
    return "/" + "/".join(quote(str(p), safe="") for p in parts)


def link(href: str, label: object, **attrs: str) -> Cell:
    extra = "".join(f' {name.replace("_", "-")}="{e(v)}"' for name, v in attrs.items())
    return Cell(f'<a href="{e(href)}"{extra}>{e(label)}</a>')


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, id: str = "", empty: str = ""
) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f"<td>{c.markup if isinstance(c, Cell) else e(c)}</td>" for c in row)
        body.append(f"<tr>{cells}</tr>")
    if not body and empty:
        body.append(f'<tr><td colspan="{len(headers)}" class="empty">{e(empty)}</td></tr>')
    ident = f' id="{e(id)}"' if id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def layout(title: str, body: str, *, cluster: str, writes: bool) -> str:
    mode = "changes enabled (basic auth)" if writes else "read-only"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · kafkacompat</title>
<link rel="stylesheet" href="/static/console.css">
</head><body>
<header><a class="brand" href="/">kafkacompat</a>
<nav><a href="/">Overview</a><a href="/topics">Topics</a><a href="/groups">Consumer groups</a>
<a href="/metrics">Metrics</a></nav>
<span class="meta">cluster {e(cluster)} · {e(mode)}</span></header>
<main><h1>{e(title)}</h1>
{body}
</main>
<script src="/static/console.js"></script>
</body></html>
"""
