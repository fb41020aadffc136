"""The release report as a person reads it: rendered by headless Chromium, summary and evidence visible.

Regenerate the screenshot by hand with: .venv/bin/pytest tests/test_html_report.py
(it writes reports/report.png from a smoke run against the lab with the one-network fault in).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import BIN, REPO, run_lab, run_suite
from viworks_verify.report.top import AREAS

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def chromium() -> str:
    if shutil.which("chromium") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, timeout=900)
        if shutil.which("chromium") is None:  # an old package list: refresh once
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=900)
            subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, timeout=900)
    path = shutil.which("chromium")
    assert path, "Debian's chromium could not be installed (apt-get install chromium)"
    return path


@pytest.fixture(scope="module")
def faulted_report(lab, tmp_path_factory):
    """The HTML, JUnit and JSON reports of a smoke run with one fault in, against a baseline taken before it."""
    directory = tmp_path_factory.mktemp("report")
    baseline = subprocess.run(
        [str(BIN / "viworks-verify"), "snapshot", "--target", "lab", "-o", str(directory / "baseline.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert baseline.returncode == 0, baseline.stderr
    broken = run_lab("break", "one-network")
    assert broken.returncode == 0, broken.stderr[-2000:]
    try:
        done = run_suite(
            "-m",
            "smoke",
            "--target",
            "lab",
            "--tb=short",
            f"--html={directory / 'report.html'}",
            "--self-contained-html",
            f"--json-summary={directory / 'summary.json'}",
            f"--baseline={directory / 'baseline.json'}",
            junit=directory / "junit.xml",
        )
    finally:
        healed = run_lab("heal")
    assert healed.returncode == 0, healed.stderr[-2000:]
    assert done.returncode == 1, done.stdout[-3000:]
    return directory


def _render(chromium: str, page, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            *options,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_report_leads_with_the_verdict_and_a_host_by_area_grid(chromium, faulted_report):
    dom = _render(chromium, faulted_report / "report.html", "--dump-dom").stdout
    banner = dom.index("viworks-banner no-go")
    assert banner < dom.index('id="environment"'), "the verdict comes before pytest-html's environment table"
    assert re.search(r"class=\"verdict\">NO-GO<", dom)
    for expected in (
        "release observed",
        "version 1.4.2-lab",
        "failing checks per host",
        "local://backend-lab (backend host): 1",
        "drift since the baseline",
        "drift on 1 of 3 hosts (backend-lab): 1 changed",
    ):
        assert expected in dom[banner : dom.index("Hosts and areas")], f"{expected!r} is not in the banner"
    grid = dom[dom.index('id="viworks-grid"') : dom.index("</table>", dom.index('id="viworks-grid"'))]
    rows = re.findall(r"<tr><th class=\"row\">(.*?)</th>(.*?)</tr>", grid)
    assert [label for label, _ in rows] == [
        "local://backend-lab (backend host)",
        "https://agent.lab.test (edge)",
        "ssh://gw-lab-01",
    ]
    cells = {label: re.findall(r"<td class=\"cell-(\w+)\"", tds) for label, tds in rows}
    network = [label for label, _ in AREAS].index("network")
    assert cells["local://backend-lab (backend host)"][network] == "failed"
    assert all(
        state in ("passed", "none")
        for label, states in cells.items()
        for i, state in enumerate(states)
        if (label, i) != ("local://backend-lab (backend host)", network)
    ), cells
    assert 'href="#cell-0-network"' in grid and 'id="cell-0-network"' in dom
    assert (
        "backend-lab.containers[viworks-backend-agent-new].networks: "
        "[viworks-internal, viworks-public] -&gt; [viworks-internal]" in dom
    )


def test_the_report_renders_with_its_summary_and_a_failures_evidence(chromium, faulted_report):
    dom = _render(chromium, faulted_report / "report.html", "--dump-dom").stdout
    for expected in (
        "ViWorkS deploy verification",
        "suite commit",
        "backend version (observed)",
        "GET /health latency",
        "test_backend_agent_is_on_exactly_the_expected_networks",
        "local://backend-lab",
        "evidence: viworks-backend-agent-new networks",
        "missing viworks-public",
    ):
        assert expected in dom, f"{expected!r} is not in the page Chromium rendered"
    screenshot = REPO / "reports" / "report.png"
    screenshot.parent.mkdir(exist_ok=True)
    shot = _render(chromium, faulted_report / "report.html", "--window-size=1400,1100", f"--screenshot={screenshot}")
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-1000:]


def test_junit_names_the_host_and_the_json_summary_is_compact(faulted_report):
    junit = (faulted_report / "junit.xml").read_text()
    assert 'name="test_backend_agent_is_on_exactly_the_expected_networks[local://backend-lab]"' in junit
    summary = json.loads((faulted_report / "summary.json").read_text())
    assert summary["exit_code"] == 1 and summary["counts"]["failed"] == 1 and summary["verdict"] == "NO-GO"
    assert [item["path"] for item in summary["drift"]["items"]] == [
        "backend-lab.containers[viworks-backend-agent-new].networks"
    ]
    (failure,) = summary["failures"]
    assert failure["host"] == "local://backend-lab" and "missing viworks-public" in failure["message"]
    assert {"target", "suite commit", "backend version (observed)"} <= set(summary["facts"])
    assert any(row["name"] == "GET /health latency" for row in summary["figures"])
