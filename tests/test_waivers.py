"""Waivers, judged on a recorded snapshot with a fault in (one-network): a known failure accepted until a date.

A waived check still runs and is shown as waived; the gate stays green for it and red for anything
else; past its expiry the failure counts again and says so; a waiver whose check passes is stale;
a waiver without an expiry or a justification is refused before anything runs.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.conftest import run_suite
from tests.test_checks_on_snapshots import SNAPSHOTS, TARGET, judge

NETWORK_CHECK = "test_backend_agent_is_on_exactly_the_expected_networks"


def _waivers(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "waivers.toml"
    path.write_text("\n".join(f"[[waiver]]\n{entry}\n" for entry in entries))
    return path


def _judge_with(tmp_path: Path, waivers: Path, snapshot: str = "one-network"):
    verdicts = judge(
        SNAPSHOTS / f"{snapshot}.json", tmp_path, f"--waivers={waivers}", f"--json-summary={tmp_path / 'summary.json'}"
    )
    return verdicts, json.loads((tmp_path / "summary.json").read_text())


def _until(days: int) -> str:
    return (dt.date.today() + dt.timedelta(days=days)).isoformat()


def test_a_waived_failure_keeps_the_gate_green_and_stays_visible(tmp_path):
    waivers = _waivers(
        tmp_path,
        (
            f'check = "{NETWORK_CHECK}"\nhost = "backend-lab"\n'
            'justification = "INC-4711: second network in the March deploy"\n'
            f"expires = {_until(30)}"
        ),
    )
    verdicts, summary = _judge_with(tmp_path, waivers)
    assert verdicts.exit_code == 0 and not verdicts.failed, verdicts.output
    assert summary["verdict"] == "GO" and summary["counts"].get("waived") == 1
    (waived,) = summary["waived"]
    assert waived["check"] == NETWORK_CHECK and "missing viworks-public" in waived["message"]
    assert summary["waivers"][0]["status"] == "applied"
    assert f"waived: {NETWORK_CHECK} on backend-lab" in verdicts.output


def test_a_waiver_covers_only_its_check(tmp_path):
    """Another fault on the same host still fails the gate."""
    waivers = _waivers(tmp_path, f'check = "{NETWORK_CHECK}"\njustification = "known"\nexpires = {_until(30)}')
    verdicts, summary = _judge_with(tmp_path, waivers, snapshot="db-down")
    assert verdicts.exit_code == 1 and "test_containers_are_running[local://backend-lab]" in verdicts.failed
    assert summary["verdict"] == "NO-GO" and summary["waivers"][0]["status"] == "stale"


def test_an_expired_waiver_fails_the_check_and_says_so(tmp_path):
    expired = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    waivers = _waivers(tmp_path, f'check = "{NETWORK_CHECK}"\njustification = "INC-4711"\nexpires = {expired}')
    verdicts, summary = _judge_with(tmp_path, waivers)
    assert verdicts.exit_code == 1
    message = verdicts.failed[f"{NETWORK_CHECK}[local://backend-lab]"]
    assert "missing viworks-public" in message and f"[waiver expired on {expired}: INC-4711]" in message
    assert summary["waivers"][0]["status"] == "expired"


def test_a_waiver_for_a_passing_check_is_reported_stale(tmp_path):
    waivers = _waivers(
        tmp_path,
        f'check = "{NETWORK_CHECK}"\njustification = "fixed since"\nexpires = {_until(30)}',
        f'check = "test_that_was_renamed"\njustification = "old"\nexpires = {_until(30)}',
    )
    verdicts, summary = _judge_with(tmp_path, waivers, snapshot="healthy")
    assert verdicts.exit_code == 0
    assert [w["status"] for w in summary["waivers"]] == ["stale", "unmatched"]
    assert f"stale: the check passes, remove the waiver: {NETWORK_CHECK}" in verdicts.output


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (f'check = "{NETWORK_CHECK}"\njustification = "forever"', "needs an expiry date"),
        (f'check = "{NETWORK_CHECK}"\nexpires = 2027-01-31', "needs a justification"),
        (f'check = "{NETWORK_CHECK}"\njustification = "x"\nexpires = "next week"', "is not a date"),
        ('justification = "x"\nexpires = 2027-01-31', "needs the check it waives"),
    ],
)
def test_a_waiver_missing_what_makes_it_temporary_is_refused(tmp_path, entry, expected):
    done = run_suite(
        f"--target={TARGET}",
        f"--snapshot-in={SNAPSHOTS / 'one-network.json'}",
        f"--waivers={_waivers(tmp_path, entry)}",
        "-q",
        junit=tmp_path / "junit.xml",
    )
    assert done.returncode == 4 and expected in done.stderr, done.stdout[-2000:] + done.stderr[-2000:]
    assert "passed" not in done.stdout  # refused before anything ran
