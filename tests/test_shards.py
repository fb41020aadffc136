"""``--shard K/N``: a fleet split across runners by host, judged on a recorded fleet of four gateways.

The shards together run exactly the checks of the unsharded run, each once, with the same outcome; all
of a gateway host's checks are in one shard; the backend's and the edge's are in shard 1 only.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.conftest import BIN, REPO, run_suite

SNAPSHOTS = REPO / "fixtures" / "snapshots"
TARGET = SNAPSHOTS / "target.toml"
GATEWAYS = ("gw-lab-01", "gw-lab-02", "gw-lab-03", "gw-lab-04")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Path:
    """The healthy recorded lab with three more gateway hosts, copies of its one under other names."""
    snapshot = json.loads((SNAPSHOTS / "healthy.json").read_text())
    gateway = next(host for host in snapshot["hosts"] if host["kind"] == "gateway")
    for name in GATEWAYS[1:]:
        more = copy.deepcopy(gateway)
        more["name"], more["host"] = name, f"ssh://{name}"
        snapshot["hosts"].append(more)
    path = tmp_path_factory.mktemp("fleet") / "fleet.json"
    path.write_text(json.dumps(snapshot))
    return path


def _judged(snapshot: Path, junit: Path, *args: str) -> dict[str, str]:
    """Each check case the run ran (``check[host]``) and its outcome: passed, failed or skipped."""
    done = run_suite(
        "--target", str(TARGET), "--snapshot-in", str(snapshot), "-q", *args, "tests_infra", "tests_e2e", junit=junit
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
    outcomes = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        verdict = next((tag for tag in ("failure", "error", "skipped") if case.find(tag) is not None), "passed")
        outcomes[case.get("name", "")] = verdict
    return outcomes


@pytest.mark.parametrize("count", [2, 3])
def test_the_shards_run_every_check_once_with_the_same_outcome(fleet, tmp_path, count):
    whole = _judged(fleet, tmp_path / "whole.xml")
    shards = [_judged(fleet, tmp_path / f"shard-{k}.xml", f"--shard={k}/{count}") for k in range(1, count + 1)]
    ran = [case for shard in shards for case in shard]
    assert sorted(ran) == sorted(whole), "every check once, in one shard"
    assert {case: outcome for shard in shards for case, outcome in shard.items()} == whole
    for name in GATEWAYS:  # a gateway host's checks are in one shard
        holding = [k for k, shard in enumerate(shards, 1) if any(f"ssh://{name}" in case for case in shard)]
        assert len(holding) == 1, f"{name} in shards {holding}"
    for shard in shards[1:]:  # the fleet-wide checks (of no gateway host or agent): shard 1 only
        assert not [case for case in shard if not re.search(r"ssh://gw-|agent://", case)], sorted(shard)


@pytest.mark.parametrize("given", ["0/2", "3/2", "two/4", "1"])
def test_a_shard_that_is_not_k_of_n_is_one_line_and_exit_4(fleet, tmp_path, given):
    done = run_suite(
        "--target", str(TARGET), "--snapshot-in", str(fleet), f"--shard={given}", junit=tmp_path / "junit.xml"
    )
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 4 and len(lines) == 1 and lines[0].startswith("ERROR: --shard: expected K/N"), lines


def _merge(tmp_path: Path, *shards: Path) -> tuple[int, str, Path]:
    junit = tmp_path / "merged.xml"
    done = subprocess.run(
        [
            str(BIN / "viworks-verify"),
            "merge",
            *map(str, shards),
            "--junit",
            str(junit),
            "--html",
            str(tmp_path / "merged.html"),
            "--json-summary",
            str(tmp_path / "merged.json"),
            "--target",
            "lab",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr, junit


def _outcomes_in(junit: Path) -> dict[str, str]:
    return {
        case.get("name", ""): next((t for t in ("failure", "error", "skipped") if case.find(t) is not None), "passed")
        for case in ElementTree.parse(junit).getroot().iter("testcase")
    }


@pytest.mark.parametrize("broken", [None, "gw-lab-03"])
def test_merged_shards_are_the_unsharded_run(fleet, tmp_path, broken):
    """One verdict, one JUnit, one report: the same checks and outcomes as one runner's run, GO or NO-GO."""
    snapshot = fleet
    if broken:  # a gateway whose .env lacks its id: its shard fails, and so does the merged gate
        data = json.loads(fleet.read_text())
        host = next(h for h in data["hosts"] if h.get("name") == broken)
        del host["env"]["value"]["VIW_AGENT_ID"]
        snapshot = tmp_path / "broken.json"
        snapshot.write_text(json.dumps(data))
    whole = _judged(snapshot, tmp_path / "whole.xml")
    for k in (1, 2):
        _judged(snapshot, tmp_path / f"shard-{k}.xml", f"--shard={k}/2")
    code, output, merged = _merge(tmp_path, tmp_path / "shard-1.xml", tmp_path / "shard-2.xml")
    summary = json.loads((tmp_path / "merged.json").read_text())
    assert _outcomes_in(merged) == whole
    assert (code, summary["verdict"]) == ((1, "NO-GO") if broken else (0, "GO")), output
    assert all(f"ssh://{broken}" in f["host"] for f in summary["failures"]) and bool(summary["failures"]) == bool(
        broken
    )
    page = (tmp_path / "merged.html").read_text()
    assert ("NO-GO" if broken else ">GO<") in page and all(f"ssh://{name}" in page for name in GATEWAYS)


def test_overlapping_shards_are_a_usage_error(fleet, tmp_path):
    _judged(fleet, tmp_path / "shard-1.xml", "--shard=1/2")
    code, output, _ = _merge(tmp_path, tmp_path / "shard-1.xml", tmp_path / "shard-1.xml")
    assert code == 4 and "not shards of one split" in output, output
