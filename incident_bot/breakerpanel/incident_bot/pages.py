"""The bot's pages for people: the incident list and one incident's timeline, server-rendered,
no JavaScript, everything escaped."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from html import escape
from typing import Any

__all__ = ["incident", "index"]

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d1d1f}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
.open{color:#c62828}.acknowledged{color:#ef6c00}.resolved{color:#2e7d32}.attached{color:#546e7a}
.banner{background:#fff3cd;border:1px solid #e0c36b;padding:.5rem .8rem;margin-bottom:1rem}
img.chart{max-width:100%;height:auto;border:1px solid #ddd}
code,pre{font:12px ui-monospace,monospace}pre{white-space:pre-wrap;max-height:12rem;overflow:auto;margin:0}
"""


def _when(at: float | None) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else ""


def _page(title: str, body: str, *, dry_run: bool) -> str:
    banner = (
        '<p class="banner"><b>Dry run</b>: notifications are recorded here, none is sent to PagerDuty or Slack.</p>'
        if dry_run
        else ""
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{banner}{body}</body></html>"
    )


def index(rows: list[dict[str, Any]], *, dry_run: bool) -> str:
    lines = []
    for r in rows:
        status = escape(r["status"])
        quiet = " (recovering)" if r.get("quiet_since") and r["status"] != "resolved" else ""
        lines.append(
            f'<tr><td><a href="incidents/{r["id"]}">#{r["id"]}</a></td><td>{escape(r["title"])}</td>'
            f'<td class="{status}">{status}{quiet}</td><td>{escape(r["severity"])}</td><td>{r["flaps"]}</td>'
            f"<td>{_when(r['opened_at'])}</td><td>{_when(r.get('resolved_at'))}</td></tr>"
        )
    table = (
        "<table><tr><th>#</th><th>breaker</th><th>status</th><th>severity</th><th>flaps</th>"
        f"<th>opened</th><th>resolved</th></tr>{''.join(lines)}</table>"
        if lines
        else "<p>No incident yet.</p>"
    )
    return _page("Incidents", f"<h1>Incidents</h1>{table}", dry_run=dry_run)


def _chart(found: dict[str, Any], svg: str | None) -> str:
    """The latest chart, inline: an ``<img>`` of the SVG as a data URI, so that nothing in the
    SVG (whose text quotes breaker names) can run or style the page; and the list of every chart
    drawn, each a signed link to its PNG and SVG."""
    drawn = found.get("charts") or []
    if not drawn:
        return ""
    latest = drawn[-1]
    image = ""
    if svg:
        source = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
        alt = f"Chart v{latest['version']}: state, failure and slow-call rates, calls, breakers under it"
        image = f'<p><img class="chart" src="{source}" alt="{escape(alt)}"></p>'
    links = "".join(
        f"<li>v{c['version']} ({escape(c['reason'])}), {_when(c['created_at'])}, the last {c['minutes']} min: "
        f'<a href="{escape(c["png_url"])}">PNG</a> <a href="{escape(c["svg_url"])}">SVG</a></li>'
        for c in drawn
    )
    return f"<h2>Chart</h2>{image}<ul>{links}</ul>"


def incident(found: dict[str, Any], *, dry_run: bool, chart_svg: str | None = None) -> str:
    """One incident; ``chart_svg`` is its latest chart (drawn inline)."""
    status = escape(found["status"])
    head = (
        f'<p><a href="../">All incidents</a></p><h1>#{found["id"]} {escape(found["title"])}</h1>'
        f'<p class="{status}">{status}, {escape(found["severity"])}, {found["flaps"]} flap(s), '
        f"opened {_when(found['opened_at'])}. PagerDuty dedup key <code>{escape(found['dedup_key'])}</code>.</p>"
    )
    if found.get("parent_id"):
        head += f'<p>Attached to its root cause, <a href="{found["parent_id"]}">incident #{found["parent_id"]}</a>.</p>'
    children = "".join(
        f'<li><a href="{c["id"]}">#{c["id"]} {escape(c["title"])}</a> ({escape(c["status"])})</li>'
        for c in found.get("children", [])
    )
    if children:
        head += f"<h2>Attached: what this root cause touched</h2><ul>{children}</ul>"
    timeline = "".join(
        f"<tr><td>{_when(e['at'])}</td><td>{escape(e['kind'])}</td><td>{escape(e['text'])}</td></tr>"
        for e in found["timeline"]
    )
    alert_rows = "".join(
        f"<tr><td>{escape(a['alertname'])}</td><td>{escape(a['status'])}</td><td>{escape(a['severity'])}</td>"
        f"<td>{escape(str(a['annotations'].get('summary', '')))}</td></tr>"
        for a in found["alerts"]
    )
    deliveries = "".join(
        f"<tr><td>{escape(d['target'])} {escape(d['action'])}</td><td>{escape(d['destination'])}</td>"
        f"<td>{escape(d['status'])}{' (dry run)' if d['dry_run'] else ''}</td><td>{d['attempts']}</td>"
        f"<td>{escape(d['last_error'] or '')}</td>"
        f"<td><pre>{escape(str((d['payload'] or {}).get('delivered', json.dumps(d['payload']))))}</pre></td></tr>"
        for d in found["deliveries"]
    )
    body = (
        f"{head}{_chart(found, chart_svg)}"
        f"<h2>Timeline</h2><table><tr><th>at</th><th>what</th><th></th></tr>{timeline}</table>"
        f"<h2>Alerts</h2><table><tr><th>alert</th><th>status</th><th>severity</th><th>summary</th></tr>{alert_rows}</table>"
        "<h2>Deliveries</h2><table><tr><th>what</th><th>to</th><th>status</th><th>attempts</th><th>error</th>"
        f"<th>request</th></tr>{deliveries}</table>"
    )
    return _page(f"#{found['id']} {found['title']}", body, dry_run=dry_run)
