"""The report card: client x version x scenario -> pass / fail / skip, as markdown and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MARKS = {"pass": "✅ pass", "fail": "❌ fail", "skip": "⏭️ skip"}


def _cell(result: dict[str, Any]) -> str:
    mark = MARKS[result["status"]]
    if result["status"] == "fail" and result["allowlisted"]:
        mark = "‼️ FAIL (allow-listed)"
    elif result["status"] == "pass" and not result["allowlisted"]:
        mark += " (new)"
    return mark


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(report: dict[str, Any]) -> str:
    clients = report["clients"]
    results = {(r["client"], r["scenario"]): r for r in report["results"]}
    title = f" — {report['title']}" if report["title"] else ""
    lines = [
        f"# Compatibility report card{title}",
        "",
        f"Generated {report['generated']} against {report['broker']} in {report['duration_seconds']}s. "
        f"Overall: **{'OK' if report['ok'] else 'ALLOW-LISTED FAILURES'}**.",
        "",
        "| client | version | pass | fail | skip | allow-listed failing |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for client in clients:
        mine = [r for r in report["results"] if r["client"] == client["name"]]
        count = {s: sum(r["status"] == s for r in mine) for s in MARKS}
        broken = sum(r["allowlisted"] and r["status"] != "pass" for r in mine)
        lines.append(
            f"| {client['name']} | {client['version']} | {count['pass']} | {count['fail']} "
            f"| {count['skip']} | {broken} |"
        )
    lines += ["", "## Scenarios", ""]
    lines.append(
        "| scenario | " + " | ".join(f"{c['name']} {c['version']}" for c in clients) + " |"
    )
    lines.append("| --- " * (len(clients) + 1) + "|")
    for scenario in report["scenarios"]:
        row = [_cell(results[(c["name"], scenario["name"])]) for c in clients]
        lines.append(f"| `{scenario['name']}` | " + " | ".join(row) + " |")
    lines += [
        "",
        "✅ pass, ❌ fail (not on the allow-list: reported, not fatal), ⏭️ skip (the client cannot "
        "express it), ‼️ an allow-listed scenario that did not pass (the run fails), "
        "(new) a pass not yet on the allow-list.",
        "",
        "## Failures and skips",
        "",
    ]
    for r in report["results"]:
        if r["status"] != "pass":
            lines.append(
                f"- **{r['client']}** `{r['scenario']}` {r['status']}: {_escape(r['error'] or '')}"
            )
    lines += ["", "## Allow-lists", ""]
    lines += [f"- {c['name']}: `{c['allowlist']}`" for c in clients]
    lines += ["", "## Scenario descriptions", ""]
    lines += [f"- `{s['name']}`: {s['description']}" for s in report["scenarios"]]
    return "\n".join(lines) + "\n"


def write_report(folder: Path, report: dict[str, Any]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    markdown = render(report)
    (folder / "REPORT.md").write_text(markdown, encoding="utf-8")
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return markdown
