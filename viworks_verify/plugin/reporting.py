"""What a run reports: one-line verdicts (no pytest internals), redaction, waivers applied, the JSON
summary, the HTML report's verdict banner, grid and host column, the terminal's sections."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_html import extras as html_extras

from viworks_verify.core.redaction import REDACTOR
from viworks_verify.core.verdict import CheckFailed
from viworks_verify.gather.gathering import Gathering
from viworks_verify.plugin.state import Run
from viworks_verify.report.drift import selected
from viworks_verify.report.summary import CheckOutcome, evidence_html, html_summary, run_facts, summary_document
from viworks_verify.report.top import banner_html, drift_html, grid_html, waivers_html


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_RunReports(config), "viworks-run-reports")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None and call.excinfo.errisinstance(CheckFailed):
        # A check's own one-line verdict is the whole story: not the exception it was handling.
        report.longrepr = _verdict(item, str(call.excinfo.value))
    elif (
        report.failed
        and call.excinfo is not None
        and call.excinfo.errisinstance(pytest.fail.Exception)
        and not call.excinfo.value.pytrace
    ):
        report.longrepr = _verdict(item, call.excinfo.value.msg)
    elif report.failed and call.excinfo is not None and call.excinfo.errisinstance(AssertionError):
        crash = getattr(report.longrepr, "reprcrash", None)
        verdict = str(call.excinfo.value).split("\nassert ")[0]
        if crash is not None and verdict and not verdict.startswith("assert "):
            # The summary line (terminal, JUnit message) is the check's own verdict; pytest's
            # introspection of the comparison stays in the traceback for whoever wants it.
            crash.message = verdict
    _redact_longrepr(report)
    for index, (name, text) in enumerate(report.sections):
        report.sections[index] = (name, REDACTOR.redact(text))
    if report.failed:
        evidence = Run.of(item.config).recorder.evidence.get(item.nodeid, [])
        report.extras = [*getattr(report, "extras", []), *(html_extras.html(evidence_html(e)) for e in evidence)]
        for item_evidence in evidence:  # JUnit and the terminal get it too, as a report section
            report.sections.append((f"evidence: {item_evidence.label}", REDACTOR.redact(item_evidence.text)))
    _apply_waivers(item, report)


def _apply_waivers(item: pytest.Item, report: pytest.TestReport) -> None:
    """A failure a waiver covers is shown as waived (pytest's xfail: it does not fail the run); past the
    waiver's expiry it stays a failure that says so. A pass under a waiver makes the waiver stale."""
    run = Run.of(item.config)
    if not run.runs_checks or report.when not in ("setup", "call"):
        return
    check = getattr(item, "originalname", item.name)
    if report.passed and report.when == "call":
        run.waivers.record_pass(check, run.host_of(item))
    if not report.failed:
        return
    waiver, holds = run.waivers.for_failure(check, run.host_of(item))
    if waiver is None:
        return
    if holds:
        report.outcome = "skipped"
        report.wasxfail = f"waived until {waiver.expires.isoformat()}: {waiver.justification}"
        return
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        crash.message += f" [waiver expired on {waiver.expires.isoformat()}: {waiver.justification}]"
    report.sections.append(("waiver", f"expired on {waiver.expires.isoformat()}: {waiver.describe()}"))


@dataclasses.dataclass
class CheckVerdict:
    """A failure that is just the check's one-line verdict.

    It has what pytest's reports read of a failure (``toterminal`` for the terminal and the HTML
    report, ``reprcrash.message`` for the short summary line and JUnit's message attribute) without
    pytest's private representation classes. Across pytest-xdist it travels as its text.
    """

    message: str
    path: str
    lineno: int

    @property
    def reprcrash(self) -> CheckVerdict:
        return self

    def toterminal(self, out) -> None:
        out.line(self.message)

    def __str__(self) -> str:
        return self.message


def _verdict(item: pytest.Item, message: str) -> CheckVerdict:
    _, line, _ = item.location
    return CheckVerdict(message, str(item.path), (line or 0) + 1)


def _redact_longrepr(report: pytest.TestReport) -> None:
    """Pass whatever a failure or skip shows through the redactor, keeping pytest's structure.

    The structure matters: JUnit's message and the terminal's summary line come from the crash
    entry; flattening the report to text would put the traceback's first lines there instead.
    """
    longrepr = report.longrepr
    if longrepr is None:
        return
    if isinstance(longrepr, CheckVerdict):
        longrepr.message = REDACTOR.redact(longrepr.message)
        return
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        path, line, reason = longrepr
        report.longrepr = (path, line, REDACTOR.redact(reason))
        return
    if isinstance(longrepr, str) or not hasattr(longrepr, "chain"):
        report.longrepr = REDACTOR.redact(str(longrepr))
        return
    for traceback, crash, _description in longrepr.chain:
        if crash is not None:
            crash.message = REDACTOR.redact(crash.message)
        for entry in traceback.reprentries:
            if hasattr(entry, "lines"):
                entry.lines = [REDACTOR.redact(line) for line in entry.lines]
            if getattr(entry, "reprfuncargs", None) is not None:
                entry.reprfuncargs.args = [
                    (name, REDACTOR.redact(str(value))) for name, value in entry.reprfuncargs.args
                ]
            if getattr(entry, "reprlocals", None) is not None:
                entry.reprlocals.lines = [REDACTOR.redact(line) for line in entry.reprlocals.lines]
    if longrepr.reprcrash is not None:
        longrepr.reprcrash.message = REDACTOR.redact(longrepr.reprcrash.message)
    longrepr.sections = [(name, REDACTOR.redact(text), sep) for name, text, sep in longrepr.sections]


class _RunReports:
    """The suite's own reports of a run (JSON summary, HTML header and host column), bound to its config."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.run = Run.of(config)
        self.outcomes: list[CheckOutcome] = []
        self.started = dt.datetime.now(dt.UTC)
        self._drift: dict | None = None
        self._drift_done = False

    def facts(self) -> dict[str, str]:
        target = self.run.settings.name if self.run.runs_checks else self.config.getoption("--target")
        return run_facts(target, Path(self.config.rootpath), self.started)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and report.outcome == "passed":
            return
        verdict = "error" if report.when != "call" and report.failed else report.outcome
        if hasattr(report, "wasxfail"):
            verdict = "waived"
        crash = getattr(report.longrepr, "reprcrash", None)
        message = (
            report.longrepr[2]
            if isinstance(report.longrepr, tuple)
            else crash.message
            if crash is not None
            else str(report.longrepr or "")
        )
        name = re.sub(r"\[.*\]$", "", report.nodeid.split("::")[-1])
        properties = dict(report.user_properties)
        self.outcomes.append(
            CheckOutcome(
                name,
                str(properties.get("host", "")),
                verdict,
                _first_line(message),
                str(properties.get("area", "")),
                str(properties.get("row", "")),
            )
        )

    def drift(self) -> dict | None:
        """The drift since ``--baseline`` over every host of the run (None without a baseline), once."""
        if not self._drift_done:
            self._drift_done = True
            drift = self.run.drift
            if drift is not None:
                ignored = selected(drift.items, self.run.settings.drift.ignore)
                self._drift = dataclasses.replace(
                    drift, items=[item for item in drift.items if item not in ignored]
                ).to_json()
        return self._drift

    def waivers(self) -> list[dict]:
        return self.run.waivers.report() if self.run.runs_checks else []

    def rows(self) -> list[tuple[str, str]]:
        """The report grid's rows in reading order: backend hosts, the edge, each gateway
        (and any other host a check named)."""
        if not self.run.runs_checks:
            return []
        rows = [(host.id, f"{host.id} (backend host)") for host in self.run.hosts_of_kind("backend")]
        rows.append((self.run.edge_id, f"{self.run.edge_id} (edge)"))
        rows += [(host.id, host.id) for host in self.run.hosts_of_kind("gateway")]
        known = {row for row, _ in rows}
        rows += [(row, row) for row in dict.fromkeys(o.row for o in self.outcomes) if row and row not in known]
        return rows

    def release_observed(self) -> str:
        facts = self.run.recorder.facts
        parts = [f"version {facts['backend version (observed)']}" if facts.get("backend version (observed)") else ""]
        if facts.get("backend binary sha256 (observed)"):
            parts.append(
                f"binary sha256 {facts['backend binary sha256 (observed)'][:12]}…, "
                f"{facts.get('backend binary size (observed)', '')}"
            )
        return "; ".join(p for p in parts if p)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        out = self.config.getoption("--snapshot-out")
        source = self.run.started_source
        if out and source is not None:
            source.run_snapshot().save(Path(out))
        self.drift()  # while the source still answers (the HTML report asks for it later)
        if source is not None:
            source.close()
        path = self.config.getoption("--json-summary")
        if path:
            document = summary_document(
                self.facts(), self.outcomes, self.run.recorder, int(exitstatus), self.drift(), self.waivers()
            )
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(document, indent=2) + "\n")

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report) -> None:
        report.title = "ViWorkS deploy verification"

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        target = self.facts()["target"]
        prefix.append(
            banner_html(target, self.release_observed(), self.outcomes, self.rows(), self.drift(), self.waivers())
        )
        prefix.append(grid_html(self.outcomes, self.rows()))
        if self.drift() is not None:
            prefix.append(drift_html(self.drift()))
        if self.waivers():
            prefix.append(waivers_html(self.waivers()))
        prefix.extend(html_summary(self.facts(), self.run.recorder))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.insert(2, "<th>Host</th>")

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        cells.insert(2, f"<td>{html.escape(str(dict(report.user_properties).get('host', '')))}</td>")


def _first_line(message: str) -> str:
    """The line of a failure an operator acts on (pytest's ``E   ...`` line when there is one)."""
    for line in message.splitlines():
        if line.startswith("E "):
            return line[1:].strip()
    return message.strip().splitlines()[0] if message.strip() else ""


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    run = Run.of(config)
    rows = run.recorder.summary()
    if rows:
        terminalreporter.section("viworks figures")
        for row in rows:
            terminalreporter.write_line(
                f"{row['name']:<40} n={row['count']:<3} p50={row['p50']:.1f} {row['unit']}  "
                f"p95={row['p95']:.1f} {row['unit']}  max={row['max']:.1f} {row['unit']}"
            )
    source = run.started_source
    if isinstance(source, Gathering) and source.read_in_process:
        terminalreporter.section("viworks gathering")
        for reason in source.read_in_process:
            terminalreporter.write_line(f"read in the pytest process instead: {reason}")
    reports = config.pluginmanager.get_plugin("viworks-run-reports")
    drift = reports.drift() if reports is not None else None
    if drift is not None:
        terminalreporter.section("viworks drift since the baseline")
        terminalreporter.write_line(drift["summary"])
        for line in [*drift["notes"], *(item["line"] for item in drift["items"])]:
            terminalreporter.write_line(REDACTOR.redact(line))
    waivers = reports.waivers() if reports is not None else []
    if waivers:
        terminalreporter.section("viworks waivers")
        for waiver in waivers:
            terminalreporter.write_line(waiver["line"])
