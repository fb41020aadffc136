"""The lab replica, end to end: up, the contract's behaviour, idempotence, and a clean down.

Tests run in file order; the last one takes the lab down. The lab is driven by its command line,
and judged by what a user could observe (the API, nginx, Docker), not by its internals.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ElementTree

import pytest

from tests.conftest import REPO, run_lab, run_suite
from viworks_verify.backend.api import BackendApi
from viworks_verify.edge.endpoint import EdgeEndpoint
from viworks_verify.target.settings import load_settings
from viworks_verify.target.tokens import mint_token
from viworks_verify.wire.probe_agent import open_session, upgrade_status

pytestmark = pytest.mark.lab

PKI = REPO / ".lab" / "pki"
LAB_CONTAINERS = {
    "viworks-backend-agent-new",
    "viworks-nginx",
    "viworks-postgres",
    "viworks-redis",
    "viworks-gw-lab-01",
}


def _lab_state(docker_client):
    return {
        c.name: (c.id, c.attrs["State"]["StartedAt"])
        for c in docker_client.containers.list(all=True, filters={"label": "viworks.lab=1"})
    }


def test_up_starts_every_container_on_the_contract_networks(lab, docker_client):
    containers = {c.name: c for c in docker_client.containers.list(filters={"label": "viworks.lab=1"})}
    assert LAB_CONTAINERS <= set(containers)
    backend_networks = set(containers["viworks-backend-agent-new"].attrs["NetworkSettings"]["Networks"])
    assert backend_networks == {"viworks-internal", "viworks-public"}
    assert set(containers["viworks-postgres"].attrs["NetworkSettings"]["Networks"]) == {"viworks-internal"}
    # Exposure: only the edge (80, 443) and the gateway hosts' ssh are published, on loopback only.
    published = {
        name: sorted(
            (b["HostIp"], port)
            for port, bindings in (c.attrs["NetworkSettings"]["Ports"] or {}).items()
            for b in bindings or []
        )
        for name, c in containers.items()
    }
    assert published["viworks-nginx"] == [("127.0.0.1", "443/tcp"), ("127.0.0.1", "80/tcp")]
    assert published["viworks-gw-lab-01"] == [("127.0.0.1", "22/tcp")]
    for name in ("viworks-backend-agent-new", "viworks-postgres", "viworks-redis"):
        assert published[name] == [], name


def test_backend_container_is_bare_like_production(lab, docker_client):
    backend = docker_client.containers.get("viworks-backend-agent-new")
    for tool in ("ps", "ss", "netstat", "curl"):
        assert backend.exec_run(["sh", "-c", f"command -v {tool}"]).exit_code != 0, f"{tool} is in the backend image"


def _api(lab_secrets, role="operator") -> BackendApi:
    """The API as a user reaches it: through the edge."""
    edge = EdgeEndpoint(load_settings("lab", REPO / "targets").edge)  # the lab's target exists once it is up
    return BackendApi(edge, mint_token(lab_secrets["jwt_secret"], subject="lab-test", role=role))


def test_gateway_agent_is_online_after_up(lab, lab_secrets):
    with _api(lab_secrets) as api:
        agent = api.agent_info("gw-lab-01")
    assert agent["status"] == "Online"
    assert agent["site"] == "lab" and "get_system_health" in agent["capabilities"]


def test_system_health_command_round_trips_through_the_gateway(lab, lab_secrets):
    with _api(lab_secrets) as api:
        submitted = api.submit_command("get_system_health", {}, ["gw-lab-01"], timeout_s=30)
        assert submitted.status == 201, submitted.response.text
        correlation_id = submitted.json()["correlation_id"]
        command = api.wait_for_command(correlation_id, 30)
    assert command["status"] == "Completed", command
    result = command["result"]
    assert result["status"] == "SUCCESS" and result["error_code"] == "NONE"
    readings = json.loads(result["stdout"])
    for name in ("memory_usage_percent", "disk_usage_percent", "uptime_seconds"):
        assert readings[name] > 0, readings
    assert len(readings["load_average"]) == 3


def test_nginx_refuses_an_agent_upgrade_without_a_client_certificate(lab):
    edge = EdgeEndpoint(load_settings("lab", REPO / "targets").edge)
    assert upgrade_status(edge, client_cert=None, client_key=None) == 403
    with open_session(edge, client_cert=PKI / "suite-probe-01.crt", client_key=PKI / "suite-probe-01.key") as session:
        assert session.response.status_code == 101


def test_the_smoke_suite_passes_against_the_healthy_lab(lab, tmp_path):
    junit = tmp_path / "junit.xml"
    done = run_suite("-m", "smoke", "--target", "lab", junit=junit)
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    failures = int(suite.get("failures")) + int(suite.get("errors"))
    assert done.returncode == 0 and failures == 0, done.stdout[-4000:]
    assert int(suite.get("tests")) >= 10


def test_the_gate_leaves_only_a_short_sudo_line_in_the_gateways_journal(lab, docker_client, tmp_path):
    """sudo logs each command line to the journal: the gathering script goes in on standard input, so
    the line is ``/bin/sh -s -- ARGS`` and the operator's journal is not 6 KB of the suite per run."""
    gateway = docker_client.containers.get("viworks-gw-lab-01")
    since = gateway.exec_run(["date", "+%Y-%m-%d %H:%M:%S"]).output.decode().strip()
    done = run_suite("-m", "smoke and gateway and infra", "--target", "lab", junit=tmp_path / "junit.xml")
    assert done.returncode == 0, done.stdout[-2000:]
    logged = gateway.exec_run(["journalctl", "_COMM=sudo", "--since", since, "--no-pager", "-o", "cat"]).output.decode()
    commands = [line for line in logged.splitlines() if "COMMAND=" in line]
    assert commands, f"sudo logged no command since {since}: {logged[-500:]}"
    assert all("COMMAND=/bin/sh -s -- " in line and "@@" not in line for line in commands), commands
    assert max(len(line) for line in commands) < 600


def test_the_smoke_suite_passes_reading_one_host_at_a_time(lab, tmp_path):
    """A connection budget of one queues every host behind the one being read: slower, the same verdict."""
    junit = tmp_path / "junit.xml"
    done = run_suite("-m", "smoke", "--target", "lab", "--max-connections", "1", junit=junit)
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert done.returncode == 0 and int(suite.get("failures")) + int(suite.get("errors")) == 0, done.stdout[-4000:]


def test_the_smoke_suite_spread_over_workers_runs_every_check_once(lab, tmp_path):
    """``pytest -n 2`` (pytest-xdist): the same checks as a serial run, each run once, all passing."""
    collected = run_suite("-m", "smoke", "--target", "lab", "--collect-only", "-q", junit=tmp_path / "collected.xml")
    expected = sorted(line.split("::", 1)[1] for line in collected.stdout.splitlines() if "::" in line)
    junit = tmp_path / "junit.xml"
    done = run_suite("-m", "smoke", "--target", "lab", "-n", "2", junit=junit)
    assert done.returncode == 0, done.stdout[-4000:]
    # The checks acting as the synthetic agent are one group, on one worker (their ids say so: "@group").
    ran = sorted(case.get("name").split("@", 1)[0] for case in ElementTree.parse(junit).getroot().iter("testcase"))
    assert ran == expected


# What changes from one reading to the next on a healthy, idle lab.
_VOLATILE = {"gathered_at", "gather_ms", "clock_skew", "engine_offset_s", "taken_at", "journal"}


def _stable(value):
    if isinstance(value, dict) and "sockets" in value and "processes" in value:
        # A container's sockets: its listeners are facts; connections and the reading shell itself are not.
        return sorted((s["address"], s["port"]) for s in value["sockets"] if s.get("state") == "0A")
    if isinstance(value, dict):
        return {key: _stable(item) for key, item in value.items() if key not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(item) for item in value]
    return value


def test_the_head_start_child_reads_what_the_pytest_process_reads(lab, tmp_path):
    """The gathering child (started before pytest loads the suite) and in-process gathering agree."""
    snapshots = {}
    for mode, env in (("child", {}), ("in-process", {"VIWORKS_GATHER_IN_PROCESS": "1"})):
        path = tmp_path / f"{mode}.json"
        done = run_suite(
            "-m",
            "infra and smoke",
            "--target",
            "lab",
            f"--snapshot-out={path}",
            junit=tmp_path / f"{mode}.xml",
            env=env,
        )
        assert done.returncode == 0, done.stdout[-3000:]
        assert "read in the pytest process instead" not in done.stdout, done.stdout[-3000:]
        snapshots[mode] = {host["host"]: _stable(host) for host in json.loads(path.read_text())["hosts"]}
    assert sorted(snapshots["child"]) == sorted(snapshots["in-process"])
    for host, facts in snapshots["child"].items():
        assert facts == snapshots["in-process"][host], host


def test_up_twice_changes_nothing(lab, docker_client):
    before = _lab_state(docker_client)
    started = time.monotonic()
    done = run_lab("up")
    warm_s = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    assert _lab_state(docker_client) == before
    assert "built " not in done.stderr  # nothing rebuilt
    print(f"warm up: {warm_s:.1f} s")


def test_down_leaves_nothing(lab, docker_client):
    done = run_lab("down")
    assert done.returncode == 0, done.stderr[-2000:]
    assert docker_client.containers.list(all=True, filters={"label": "viworks.lab=1"}) == []
    assert docker_client.networks.list(names=["viworks-internal", "viworks-public"]) == []
