"""The top of the HTML report: the verdict first, then where it failed, host by area.

- a GO / NO-GO banner: the target, the release observed, failing checks per host, the drift since
  the baseline (when one was given) and the waivers in force;
- a grid, one row per host (backend host, edge, each gateway), one column per area (the ``area``
  marker of each check), each cell green, red, amber (a waived failure) or grey (skipped), linking
  to the list of its checks below it.

Pure functions of the run's outcomes; every string that leaves here is escaped and redacted.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from viworks_verify.core.redaction import REDACTOR
from viworks_verify.report.summary import CheckOutcome

AREAS = (
    ("containers", "containers"),
    ("network", "network"),
    ("nginx", "nginx"),
    ("tls", "TLS/mTLS"),
    ("unit", "unit"),
    ("files", "files"),
    ("identity", "identity"),
    ("session", "session"),
    ("round-trip", "round trip"),
)
FAILING = ("failed", "error")
GO, NO_GO = "GO", "NO-GO"

# pytest-html puts its environment table first: once the page is parsed, it moves to the end, so the verdict leads.
MOVE_ENVIRONMENT_DOWN = """<script>
document.addEventListener("DOMContentLoaded", function () {
  ["environment-header", "environment"].forEach(function (id) {
    var element = document.getElementById(id);
    if (element) { document.body.appendChild(element); }
  });
});
</script>"""
STYLE = """<style>
.viworks-banner { padding: 14px 20px; border-radius: 6px; color: #fff; margin: 8px 0 14px; }
.viworks-banner.go { background: #1a7f37; } .viworks-banner.no-go { background: #cf222e; }
.viworks-banner .verdict { font-size: 44px; font-weight: 700; letter-spacing: 1px; }
.viworks-banner table td, .viworks-banner table th { color: #fff; padding: 1px 12px 1px 0; \
text-align: left; vertical-align: top; }
table.viworks-grid { border-collapse: collapse; margin: 6px 0 12px; }
table.viworks-grid th, table.viworks-grid td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: center; }
table.viworks-grid th.row { text-align: left; }
table.viworks-grid td a { color: #fff; text-decoration: none; font-weight: 600; }
td.cell-passed { background: #1a7f37; } td.cell-failed { background: #cf222e; }
td.cell-waived { background: #bf8700; } td.cell-skipped { background: #8c959f; } td.cell-none { background: #f6f8fa; }
.viworks-cells details { margin: 2px 0; } \
.viworks-cells details.passed:not(:target), .viworks-cells details.skipped:not(:target) { display: none; } \
.viworks-cells li.failed, .viworks-cells li.error { color: #cf222e; }
</style>"""


def verdict(outcomes: Iterable[CheckOutcome]) -> str:
    return NO_GO if any(o.outcome in FAILING for o in outcomes) else GO


def banner_html(
    target: str,
    release: str,
    outcomes: list[CheckOutcome],
    rows: list[tuple[str, str]],
    drift: dict[str, Any] | None,
    waivers: list[dict[str, Any]],
) -> str:
    """The verdict in large type with what an operator reads next."""
    decision = verdict(outcomes)
    failing: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.outcome in FAILING:
            failing[outcome.row or outcome.host] = failing.get(outcome.row or outcome.host, 0) + 1
    labels = dict(rows)
    per_host = ", ".join(f"{labels.get(host, host)}: {count}" for host, count in failing.items()) or "none"
    counts = {
        kind: sum(1 for o in outcomes if o.outcome == kind)
        for kind in ("passed", "failed", "error", "waived", "skipped")
    }
    lines = [
        ("target", target),
        ("release observed", release or "not observed"),
        ("checks", ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "none ran"),
        ("failing checks per host", per_host),
    ]
    if drift is not None:
        lines.append(("drift since the baseline", drift["summary"]))
    in_force = [w for w in waivers if w["status"] in ("applied", "expired")]
    if waivers:
        lines.append(
            ("waivers", "; ".join(w["line"] for w in in_force) or f"{len(waivers)} on file, none applied in this run")
        )
    body = "".join(f"<tr><th>{_text(k)}</th><td>{_text(v)}</td></tr>" for k, v in lines)
    css = "go" if decision == GO else "no-go"
    return (
        f"{STYLE}{MOVE_ENVIRONMENT_DOWN}<div class='viworks-banner {css}' id='viworks-verdict'>"
        f"<div class='verdict'>{decision}</div><table>{body}</table></div>"
    )


def grid_html(outcomes: list[CheckOutcome], rows: list[tuple[str, str]]) -> str:
    """Host-by-area grid; each cell links to the list of its checks, under the grid."""
    areas = list(AREAS)
    extra = sorted({o.area for o in outcomes if o.area and o.area not in dict(AREAS)})
    areas += [(name, name) for name in extra]
    cells: dict[tuple[str, str], list[CheckOutcome]] = {}
    for outcome in outcomes:
        cells.setdefault((outcome.row or outcome.host, outcome.area or "other"), []).append(outcome)
    if any(area == "other" for _, area in cells):
        areas.append(("other", "other"))
    head = "".join(f"<th>{_text(label)}</th>" for _, label in areas)
    body, details = [], []
    for row_index, (row, label) in enumerate(rows):
        tds = []
        for area, area_label in areas:
            found = cells.get((row, area), [])
            if not found:
                tds.append("<td class='cell-none'></td>")
                continue
            state = _cell_state(found)
            anchor = f"cell-{row_index}-{area}"
            tds.append(
                f"<td class='cell-{state}' title='{_text(state)}'>"
                f"<a href='#{anchor}'>{_text(_cell_text(found))}</a></td>"
            )
            details.append(_cell_details(anchor, f"{label} / {area_label}", state, found))
        body.append(f"<tr><th class='row'>{_text(label)}</th>{''.join(tds)}</tr>")
    return (
        "<h2>Hosts and areas</h2><table class='viworks-grid' id='viworks-grid'>"
        f"<tr><th>host</th>{head}</tr>{''.join(body)}</table>"
        f"<div class='viworks-cells'>{''.join(details)}</div>"
    )


def drift_html(drift: dict[str, Any]) -> str:
    items = "".join(f"<li><code>{_text(item['line'])}</code></li>" for item in drift["items"])
    notes = "".join(f"<p>{_text(note)}</p>" for note in drift.get("notes", []))
    return (
        f"<h2>Drift since the baseline</h2><p>{_text(drift['summary'])}</p>{notes}"
        f"<ul class='viworks-drift'>{items}</ul>"
    )


def waivers_html(waivers: list[dict[str, Any]]) -> str:
    items = "".join(f"<li class='waiver-{_text(w['status'])}'>{_text(w['line'])}</li>" for w in waivers)
    return f"<h2>Waivers</h2><ul class='viworks-waivers'>{items}</ul>"


def _cell_state(found: list[CheckOutcome]) -> str:
    kinds = {o.outcome for o in found}
    if kinds & set(FAILING):
        return "failed"
    if "waived" in kinds:
        return "waived"
    if "passed" in kinds:
        return "passed"
    return "skipped"


def _cell_text(found: list[CheckOutcome]) -> str:
    failing = sum(1 for o in found if o.outcome in FAILING)
    return f"{failing}/{len(found)} failed" if failing else f"{len(found)}"


def _cell_details(anchor: str, title: str, state: str, found: list[CheckOutcome]) -> str:
    items = "".join(
        f"<li class='{_text(o.outcome)}'><code>{_text(o.check)}</code>: {_text(o.outcome)}"
        f"{' - ' + _text(o.message) if o.message and o.outcome != 'passed' else ''}</li>"
        for o in found
    )
    opened = " open" if state in ("failed", "waived") else ""
    return (
        f"<details id='{anchor}' class='{state}'{opened}>"
        f"<summary>{_text(title)}: {_text(state)}</summary><ul>{items}</ul></details>"
    )


def _text(value: Any) -> str:
    return html.escape(REDACTOR.redact(str(value)))
