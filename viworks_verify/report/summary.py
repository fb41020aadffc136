"""The run's reports beyond pytest's own: the header facts, the JSON summary, the HTML fragments.

Pure functions of what the run recorded; the pytest plugin calls them. Every string that leaves
here has been through the redactor.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import html
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

from viworks_verify import __version__
from viworks_verify.core.redaction import REDACTOR
from viworks_verify.report.recorder import Evidence, Recorder


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    check: str  # the test function
    host: str  # the host id it is about
    outcome: str  # passed, failed, skipped, error, waived
    message: str
    area: str = ""  # the check's area marker (the report grid's column)
    row: str = ""  # the host id of the report grid's row it counts in (a gateway's for its agent's checks)


def suite_commit(repo: Path) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def run_facts(target: str, repo: Path, started: dt.datetime) -> dict[str, str]:
    return {
        "target": target,
        "suite version": __version__,
        "suite commit": suite_commit(repo),
        "started (UTC)": started.strftime("%Y-%m-%d %H:%M:%S"),
        "run from": f"{getpass.getuser()}@{socket.gethostname()}",
    }


def summary_document(
    facts: dict[str, str],
    outcomes: list[CheckOutcome],
    recorder: Recorder,
    exit_code: int,
    drift: dict[str, Any] | None = None,
    waivers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
    document = {
        "verdict": "NO-GO"
        if any(o.outcome in ("failed", "error") for o in outcomes) or exit_code not in (0, 5)
        else "GO",
        "facts": {**facts, **recorder.facts},
        "exit_code": exit_code,
        "counts": counts,
        "failures": [dataclasses.asdict(o) for o in outcomes if o.outcome in ("failed", "error")],
        "waived": [dataclasses.asdict(o) for o in outcomes if o.outcome == "waived"],
        "waivers": waivers or [],
        "drift": drift,
        "figures": recorder.summary(),
    }
    return json.loads(REDACTOR.redact(json.dumps(document)))


def evidence_html(evidence: Evidence) -> str:
    """A failure's evidence, inline in its row of the HTML report."""
    return (
        f"<div class='viworks-evidence'><strong>evidence: {html.escape(evidence.label)}</strong>"
        f"<pre>{html.escape(REDACTOR.redact(evidence.text))}</pre></div>"
    )


def html_summary(facts: dict[str, str], recorder: Recorder) -> list[str]:
    """HTML fragments for the top of the report: the run's facts, then the figures table."""
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(REDACTOR.redact(v))}</td></tr>"
        for k, v in {**facts, **recorder.facts}.items()
    )
    parts = [f"<h2>Run</h2><table class='viworks-facts'>{rows}</table>"]
    figures = recorder.summary()
    if figures:
        body = "".join(
            f"<tr><td>{html.escape(str(r['name']))}</td><td>{r['count']}</td>"
            f"<td>{r['p50']:.1f} {html.escape(str(r['unit']))}</td>"
            f"<td>{r['p95']:.1f} {html.escape(str(r['unit']))}</td>"
            f"<td>{r['max']:.1f} {html.escape(str(r['unit']))}</td></tr>"
            for r in figures
        )
        parts.append(
            "<h2>Figures</h2><table class='viworks-figures'>"
            "<tr><th>figure</th><th>n</th><th>p50</th><th>p95</th><th>max</th></tr>"
            f"{body}</table>"
        )
    return parts
