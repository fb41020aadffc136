"""Drift between snapshots, with no host: ``viworks-verify diff`` as operators run it, and the gate's ``--baseline``.

The recorded snapshots of the lab (``fixtures/snapshots``) are the deployments compared: the healthy
one against itself, against one recorded with a fault in, and against copies with one fact changed.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN, REPO, run_suite
from tests.test_checks_on_snapshots import SNAPSHOTS, TARGET, healthy, judge
from viworks_verify.gather.snapshot import RunSnapshot
from viworks_verify.report.drift import diff_runs, matches


def verify(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "viworks-verify"), *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def _write(tmp_path: Path, name: str, snapshot: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(snapshot))
    return path


def _gateway(snapshot: dict[str, Any]) -> dict[str, Any]:
    return next(h for h in snapshot["hosts"] if h["kind"] == "gateway")


# ------------------------------------------------------------------------------- viworks-verify diff


def test_a_snapshot_diffs_empty_against_itself():
    done = verify("diff", str(SNAPSHOTS / "healthy.json"), str(SNAPSHOTS / "healthy.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no drift: 3 hosts" in done.stdout


def test_what_changes_with_every_start_is_not_drift(tmp_path):
    """PIDs, start times, Docker's addresses, clocks and the journal differ between two reads of one deployment."""
    later = healthy()
    gateway = _gateway(later)
    gateway["unit"]["value"].update(
        MainPID="4242", InvocationID="0" * 32, ActiveEnterTimestamp="Thu 2026-12-03 09:00:00 UTC", NRestarts="1"
    )
    gateway["process"]["value"]["pid"] = 4242
    gateway["clock_skew"]["value"]["seconds"] = 0.4
    gateway["journal"]["value"]["connected"] = "a later session established line"
    backend = next(h for h in later["hosts"] if h["kind"] == "backend")
    agent = backend["containers"]["viworks-backend-agent-new"]["value"]
    agent["State"]["StartedAt"] = "2026-12-03T09:00:00Z"
    agent["NetworkSettings"]["Networks"]["viworks-public"]["IPAddress"] = "172.29.0.9"
    agent["RestartCount"] = 1
    path = _write(tmp_path, "later.json", later)
    done = verify("diff", str(SNAPSHOTS / "healthy.json"), str(path))
    assert done.returncode == 0 and "10 volatile differences ignored" in done.stdout, done.stdout
    listed = verify("diff", "--all", str(SNAPSHOTS / "healthy.json"), str(path))
    assert listed.returncode == 0 and "(volatile) gw-lab-01.unit.MainPID: 7071 -> 4242" in listed.stdout, listed.stdout
    # A restart count at the target's threshold is no longer noise.
    agent["RestartCount"] = 3
    done = verify("diff", str(SNAPSHOTS / "healthy.json"), str(_write(tmp_path, "restarting.json", later)))
    assert (
        done.returncode == 1
        and "backend-lab.containers[viworks-backend-agent-new].restart_count: 0 -> 3" in done.stdout
    ), done.stdout


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            "binary-drift",
            [
                "backend-lab.binary: 36.7 KB (37585 bytes) sha256 b60fb2f908d2… "
                "-> 36.8 KB (37723 bytes) sha256 3a86b0b2fe68…"
            ],
        ),
        (
            "one-network",
            [
                "backend-lab.containers[viworks-backend-agent-new].networks: "
                "[viworks-internal, viworks-public] -> [viworks-internal]"
            ],
        ),
        (
            "nginx-wrong-port",
            [
                "backend-lab.nginx.http.server[agent.lab.test:443].location[/ws/].proxy_pass: "
                "http://viworks-backend-agent-new:8081 -> http://viworks-backend-agent-new:8080"
            ],
        ),
        (
            "script-not-executable",
            [
                "gw-lab-01.files[/opt/viworks/scripts/add_vpn_user.sh].mode: 0755 -> 0644",
                "gw-lab-01.scripts_root[add_vpn_user.sh].mode: 0755 -> 0644",
            ],
        ),
        # Artifacts known by content: the same path, owner and mode, another build or another script.
        (
            "gateway-binary-drift",
            [
                "gw-lab-01.binary: 37.9 KB (38771 bytes) sha256 5b398336a0c5… "
                "-> 38.0 KB (38902 bytes) sha256 a85a196e420a…"
            ],
        ),
        (
            "script-tampered",
            [
                "gw-lab-01.scripts_root[add_user.sh].content: 298 bytes sha256 a8454efe0202… "
                "-> 331 bytes sha256 24683c546a1c…"
            ],
        ),
        (
            "script-stray",
            [
                "gw-lab-01.scripts_root.entries: +cleanup.sh",
                "gw-lab-01.scripts_root[cleanup.sh].content: added 13 bytes sha256 d7ac283f0efb…",
                "gw-lab-01.scripts_root[cleanup.sh].kind: added regular file",
                "gw-lab-01.scripts_root[cleanup.sh].mode: added 0777",
                "gw-lab-01.scripts_root[cleanup.sh].owner: added root",
            ],
        ),
        (
            "backend-extra-network",
            [
                "backend-lab.containers[viworks-backend-agent-new].networks: "
                "[viworks-internal, viworks-public] -> [bridge, viworks-internal, viworks-public]"
            ],
        ),
        ("db-down", ["backend-lab.containers[viworks-postgres].status: running -> exited"]),
    ],
)
def test_a_recorded_fault_is_exactly_its_drift(fault, expected):
    done = verify("diff", str(SNAPSHOTS / "healthy.json"), str(SNAPSHOTS / f"{fault}.json"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[1:] == expected, done.stdout


def test_nginx_is_compared_as_structure_not_as_text(tmp_path):
    """The same configuration from other files, at other lines, in another order of servers: no drift."""
    moved = healthy()
    backend = next(h for h in moved["hosts"] if h["kind"] == "backend")

    def relocate(directives: list[dict[str, Any]]) -> None:
        for directive in directives:
            directive["file"], directive["line"] = "/etc/nginx/sites-enabled/agent", directive["line"] + 40
            relocate(directive.get("block") or [])

    relocate(backend["nginx"]["value"]["tree"])
    http = next(d for d in backend["nginx"]["value"]["tree"] if d["name"] == "http")
    http["block"].reverse()
    done = verify("diff", str(SNAPSHOTS / "healthy.json"), str(_write(tmp_path, "moved.json", moved)))
    assert done.returncode == 0, done.stdout


def test_a_one_gateway_dev_snapshot_diffs_against_a_fleet_by_role(tmp_path):
    prod = healthy()
    template = _gateway(prod)
    prod["hosts"].remove(template)
    for name in ("gw-site-a", "gw-site-b"):
        gateway = copy.deepcopy(template)
        gateway.update(name=name, host=f"ssh://{name}")
        prod["hosts"].append(gateway)
    _gateway(prod)["unit"]["value"]["Restart"] = "no"  # gw-site-a
    done = verify("diff", str(SNAPSHOTS / "healthy.json"), str(_write(tmp_path, "prod.json", prod)))
    assert done.returncode == 1, done.stdout
    assert done.stdout.splitlines()[1:] == ["gw-site-a.unit.Restart: always -> no"], done.stdout


def test_a_changed_secret_is_named_and_never_shown(tmp_path):
    before, after = healthy(), healthy()
    _gateway(after)["env"]["value"]["VIW_AGENT_SIGNING_PUBKEY"] = "hmac-sha256:" + "0" * 32
    done = verify(
        "diff",
        str(_write(tmp_path, "a.json", before)),
        str(_write(tmp_path, "b.json", after)),
        f"--html={tmp_path / 'diff.html'}",
    )
    assert done.returncode == 1
    assert "gw-lab-01.config.VIW_AGENT_SIGNING_PUBKEY: secret value changed (values not shown)" in done.stdout
    page = (tmp_path / "diff.html").read_text()
    assert "hmac-sha256" not in done.stdout + page and "VIW_AGENT_SIGNING_PUBKEY" in page


def test_secrets_hashed_with_different_keys_are_not_compared(tmp_path):
    before, after = healthy(), healthy()
    before["secret_key_id"], after["secret_key_id"] = "a" * 16, "b" * 16
    _gateway(after)["env"]["value"]["VIW_AGENT_SIGNING_PUBKEY"] = "hmac-sha256:" + "0" * 32
    done = verify("diff", str(_write(tmp_path, "a.json", before)), str(_write(tmp_path, "b.json", after)))
    assert done.returncode == 0 and "secret values not compared" in done.stdout, done.stdout


def test_ignored_paths_leave_the_diff(tmp_path):
    done = verify(
        "diff",
        str(SNAPSHOTS / "healthy.json"),
        str(SNAPSHOTS / "pin-mismatch.json"),
        "--ignore",
        "certificates,edge.certificate",
    )
    assert done.returncode == 0 and "no drift outside the ignored paths" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such snapshot file"),
        ("this is not json", "not a JSON snapshot"),
        (
            json.dumps({"format": "viworks-snapshot/0", "hosts": []}),
            "not a viworks-snapshot/1 snapshot (format: 'viworks-snapshot/0')",
        ),
        (
            json.dumps({"format": "viworks-snapshot/1", "hosts": [{"kind": "gateway"}]}),
            "a host entry is not a snapshot",
        ),
    ],
)
def test_a_bad_snapshot_file_is_a_one_line_usage_error(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    done = verify("diff", str(path), str(SNAPSHOTS / "healthy.json"))
    assert done.returncode == 4 and expected in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not done.stdout


def test_drift_paths_are_selected_by_their_parts():
    path = "backend-1.containers[viworks-backend-agent-new].networks"
    assert matches(path, "networks") and matches(path, "containers.networks") and matches(path, "backend-*")
    assert matches("gw-lab-01.unit.Restart", "unit.Restart") and matches("gw-lab-01.unit.Restart", "gw-lab-01.unit")
    assert not matches("gw-lab-01.unit.RestartUSec", "unit.Restart") and not matches(path, "binary")
    assert matches("gw-lab-01.files[/opt/viworks/agent/.env].mode", "files[/opt/viworks/agent/.env]")


def test_every_recorded_fault_is_seen_as_drift():
    """No fault the lab injects leaves a deployment that compares equal to the healthy one."""
    baseline = RunSnapshot.load(SNAPSHOTS / "healthy.json")
    quiet = [
        path.stem
        for path in SNAPSHOTS.glob("*.json")
        if path.stem != "healthy" and not diff_runs(baseline, RunSnapshot.load(path)).significant()
    ]
    assert not quiet, f"faults invisible to the diff: {quiet}"


# ---------------------------------------------------------------------------------- the gate


def test_fail_on_drift_fails_exactly_one_check_naming_the_host_and_both_builds(tmp_path):
    verdicts = judge(
        SNAPSHOTS / "binary-drift.json",
        tmp_path,
        f"--baseline={SNAPSHOTS / 'healthy.json'}",
        "--fail-on-drift=binary",
        f"--json-summary={tmp_path / 'summary.json'}",
    )
    drift_failures = {
        case: message for case, message in verdicts.failed.items() if case.startswith("test_no_gated_drift")
    }
    assert drift_failures == {
        "test_no_gated_drift_since_the_baseline[local://backend-lab]": (
            f"local://backend-lab: gated facts since the baseline {SNAPSHOTS / 'healthy.json'}: "
            "expected no drift; found backend-lab.binary: "
            "36.7 KB (37585 bytes) sha256 b60fb2f908d2… -> 36.8 KB (37723 bytes) sha256 3a86b0b2fe68…"
        ),
    }, verdicts.output
    assert {
        "test_no_gated_drift_since_the_baseline[ssh://gw-lab-01]",
        "test_no_gated_drift_since_the_baseline[https://agent.lab.test]",
    } <= verdicts.passed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["verdict"] == "NO-GO" and [item["path"] for item in summary["drift"]["items"]] == [
        "backend-lab.binary"
    ]


def test_a_baseline_alone_reports_drift_without_gating_on_it(tmp_path):
    verdicts = judge(
        SNAPSHOTS / "one-network.json",
        tmp_path,
        f"--baseline={SNAPSHOTS / 'healthy.json'}",
        f"--json-summary={tmp_path / 's.json'}",
    )
    assert not any(case.startswith("test_no_gated_drift") for case in (*verdicts.passed, *verdicts.failed))
    assert "drift on 1 of 3 hosts (backend-lab): 1 changed" in verdicts.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["drift"]["items"][0]["line"].endswith(
        "networks: [viworks-internal, viworks-public] -> [viworks-internal]"
    )


def test_the_targets_drift_settings_gate_and_ignore(tmp_path):
    target = tmp_path / "target.toml"
    target.write_text(
        (SNAPSHOTS / "target.toml")
        .read_text()
        .replace('"../', f'"{REPO}/fixtures/')
        .replace('ca_bundle = "root.crt"', f'ca_bundle = "{SNAPSHOTS / "root.crt"}"')
        + '\n[drift]\nfail_on = ["networks", "binary"]\nignore = ["viworks-backend-agent-new.networks"]\n'
    )
    verdicts = judge(
        SNAPSHOTS / "one-network.json", tmp_path, f"--baseline={SNAPSHOTS / 'healthy.json'}", f"--target={target}"
    )
    assert "test_no_gated_drift_since_the_baseline[local://backend-lab]" in verdicts.passed, verdicts.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--fail-on-drift=binary",), "--fail-on-drift needs --baseline"),
        ((f"--baseline={SNAPSHOTS / 'target.toml'}",), "--baseline"),
    ],
)
def test_drift_options_used_wrongly_are_usage_errors(tmp_path, args, expected):
    done = run_suite(
        f"--target={TARGET}", f"--snapshot-in={SNAPSHOTS / 'healthy.json'}", "-q", *args, junit=tmp_path / "junit.xml"
    )
    assert done.returncode == 4 and expected in done.stderr, done.stdout[-2000:] + done.stderr[-2000:]
