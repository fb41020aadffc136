"""Every check judged on recorded snapshots, with no host: the healthy lab passes, each fault fails its check.

The front door is the one operators use: a separate ``pytest`` run, here with ``--snapshot-in`` (the
recorded facts instead of the live target) and the lab target as it was at recording
(``fixtures/snapshots/target.toml``). Two sources of faulty facts:

- snapshots recorded from the lab with a fault injected (``fixtures/snapshots/<fault>.json``,
  written by ``fixtures/snapshots/record.py``);
- the healthy snapshot with one fact changed, for the faults the lab cannot inject. Each changed
  host is a copy of the healthy one under its own name, all in one snapshot: one run judges them
  all, and each host's failures must be exactly its own check's.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from tests.conftest import REPO, run_suite
from tests.legacy_signatures import legacy_signed
from viworks_verify.pki import certs

SNAPSHOTS = REPO / "fixtures" / "snapshots"
TARGET = SNAPSHOTS / "target.toml"
CHECK_PATHS = ("tests_infra", "tests_e2e")


@dataclasses.dataclass(frozen=True)
class Verdicts:
    exit_code: int
    passed: set[str]  # test case names (check[host])
    failed: dict[str, str]  # case name -> message
    output: str

    def failing_checks_of(self, host_id: str, beside: tuple[str, ...] = ()) -> dict[str, str]:
        """The checks failing for ``host_id``: its own, and those pairing it with the hosts ``beside`` only."""
        found = {}
        for case, message in self.failed.items():
            params = case[case.index("[") + 1 : -1] if "[" in case else ""
            if host_id not in params:
                continue
            rest = params.replace(host_id, "")
            for other in beside:
                rest = rest.replace(other, "")
            if not rest.strip("-"):
                found[re.sub(r"\[.*\]$", "", case)] = message
        return found


def judge(snapshot: Path | dict[str, Any], tmp_path: Path, *args: str) -> Verdicts:
    if isinstance(snapshot, dict):
        path = tmp_path / "snapshot.json"
        path.write_text(json.dumps(snapshot))
        snapshot = path
    junit = tmp_path / "junit.xml"
    done = run_suite("--target", str(TARGET), "--snapshot-in", str(snapshot), "-q", *args, *CHECK_PATHS, junit=junit)
    passed, failed = set(), {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        verdict = case.find("failure") if case.find("failure") is not None else case.find("error")
        if verdict is not None:
            failed[name] = verdict.get("message") or ""
        elif case.find("skipped") is None:
            passed.add(name)
    return Verdicts(done.returncode, passed, failed, done.stdout[-3000:] + done.stderr[-2000:])


def healthy() -> dict[str, Any]:
    return json.loads((SNAPSHOTS / "healthy.json").read_text())


def _host(snapshot: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(h for h in snapshot["hosts"] if h["kind"] == kind)


# ----------------------------------------------------------------------------- recorded faults

JUDGED_CHECK_COUNT = 65  # every check that judges facts (tests_infra and the TLS edge's), on one gateway


def test_the_healthy_lab_passes_every_check(tmp_path):
    verdicts = judge(SNAPSHOTS / "healthy.json", tmp_path)
    assert verdicts.exit_code == 0 and not verdicts.failed, verdicts.output
    assert len(verdicts.passed) == JUDGED_CHECK_COUNT, verdicts.output


# The host each recorded fault breaks, and what must fail on it (check -> words of its message).
RECORDED = {
    "one-network": ("backend", {"test_backend_agent_is_on_exactly_the_expected_networks": "missing viworks-public"}),
    "db-down": ("backend", {"test_containers_are_running": "viworks-postgres is exited"}),
    "binary-drift": ("backend", {"test_backend_binary_is_the_expected_release": "is not the expected build"}),
    "ws-server-down": ("backend", {"test_backend_agent_listens_on_ws_port": "found nothing listening on it"}),
    "nginx-wrong-port": (
        "backend",
        {"test_nginx_ws_location_proxies_to_backend_agent_ws_port": "proxies to http://viworks-backend-agent-new:8080"},
    ),
    # One cause, one failure: the checks that need the agent running skip naming it.
    "gateway-stopped": ("gateway", {"test_unit_is_loaded_enabled_and_active": "ActiveState=inactive"}),
    "gateway-unit-masked": ("gateway", {"test_unit_is_loaded_enabled_and_active": "LoadState=masked"}),
    "gateway-bad-execstart": (
        "gateway",
        {
            "test_unit_program_exists_and_is_executable": "does not exist",
            "test_unit_file_is_the_released_one": "expected the release's unit file",
        },
    ),
    "backend-extra-network": ("backend", {"test_backend_agent_is_on_exactly_the_expected_networks": "also on bridge"}),
    "script-stray": (
        "gateway",
        {"test_scripts_root_holds_only_the_declared_scripts": "cleanup.sh (regular file, mode 0777 world-writable"},
    ),
    "script-tampered": ("gateway", {"test_scripts_are_the_released_ones": "add_user.sh sha256"}),
    "env-unknown-key": (
        "gateway",
        {
            "test_env_has_no_key_the_agent_does_not_know": (
                "VIW_AGENT_CMD_TIMEOUT (did you mean VIW_AGENT_CMD_TIMEOUT_SECS?)"
            )
        },
    ),
    "gateway-binary-drift": ("gateway", {"test_gateway_binary_is_the_expected_release": "is not the expected build"}),
    "client-cert-missing": ("gateway", {"test_client_certificate_key_and_ca_are_present": "client.crt does not exist"}),
    "script-missing": ("gateway", {"test_scripts_are_present_and_executable": "add_vpn_user.sh does not exist"}),
    "script-not-executable": ("gateway", {"test_scripts_are_present_and_executable": "not executable"}),
    "env-missing-key": ("gateway", {"test_env_has_every_required_key": "VIW_AGENT_SITE missing"}),
    "agent-ports-exposed": (
        "backend",
        {
            "test_backend_agent_postgres_and_redis_publish_no_port": (
                "viworks-backend-agent-new publishes 8080/tcp on 127.0.0.1:8080"
            )
        },
    ),
    "identity-header-passthrough": (
        "backend",
        {
            "test_nginx_sets_the_identity_headers_on_every_location_to_the_backend_agent": (
                "sets X-Client-CN from $http_x_client_cn (the client's own header)"
            )
        },
    ),
}
# Faults of the edge itself: one edge per run, so each is judged alone.
RECORDED_EDGE = {
    "pin-mismatch": {
        "test_gateway_pin_matches_the_served_certificate": "expected the gateway to pin the served key",
        "test_served_key_matches_the_configured_pin": "matches none of the configured pins",
    },
    "cert-expired": {
        "test_served_chain_validates_for_the_agent_domain": "expired on",
        "test_served_certificate_is_not_near_expiry": "expected the served certificate to be valid",
    },
    "edge-cert-cn-only": {"test_served_chain_validates_for_the_agent_domain": "subject CN"},
    "edge-cert-unsupported-key": {"test_served_chain_validates_for_the_agent_domain": "an EC key on secp521r1"},
}
HEALTHY_HOSTS = ("local://backend-lab", "ssh://gw-lab-01", "https://agent.lab.test")


def _renamed(host: dict[str, Any], name: str) -> dict[str, Any]:
    scheme = host["host"].split("://")[0]
    host["name"], host["host"] = name, f"{scheme}://{name}"
    return host


@pytest.fixture(scope="module")
def recorded_faults(tmp_path_factory) -> Verdicts:
    """One snapshot: the healthy hosts, plus the broken host of each recorded fault, named for the fault."""
    snapshot = healthy()
    for fault, (kind, _) in RECORDED.items():
        recorded = json.loads((SNAPSHOTS / f"{fault}.json").read_text())
        snapshot["hosts"].append(_renamed(_host(recorded, kind), fault))
    return judge(snapshot, tmp_path_factory.mktemp("recorded"))


@pytest.mark.parametrize("fault", sorted(RECORDED))
def test_a_recorded_fault_fails_exactly_its_checks(recorded_faults, fault):
    kind, expected = RECORDED[fault]
    failing = recorded_faults.failing_checks_of(f"{'local' if kind == 'backend' else 'ssh'}://{fault}", HEALTHY_HOSTS)
    assert set(failing) == set(expected), f"{fault}: failing {sorted(failing)}"
    for check, words in expected.items():
        assert words in failing[check], f"{fault}: {check}: {failing[check]!r} does not say {words!r}"


@pytest.mark.parametrize("fault", sorted(RECORDED_EDGE))
def test_a_recorded_edge_fault_fails_exactly_its_checks(fault, tmp_path):
    verdicts = judge(SNAPSHOTS / f"{fault}.json", tmp_path)
    failing = {re.sub(r"\[.*\]$", "", case): message for case, message in verdicts.failed.items()}
    assert verdicts.exit_code == 1, verdicts.output
    assert set(failing) == set(RECORDED_EDGE[fault]), f"{fault}: failing {sorted(failing)}"
    for check, words in RECORDED_EDGE[fault].items():
        assert words in failing[check], f"{fault}: {check}: {failing[check]!r} does not say {words!r}"


# ------------------------------------------------------------------ one fact changed at a time


def _directives(tree: list[dict[str, Any]], name: str, inside: str | None = None, parent_args: tuple = ()):
    for directive in tree:
        if directive["name"] == name and (inside is None or parent_args == (inside,)):
            yield directive
        if "block" in directive:
            args = tuple(directive["args"]) if directive["name"] == "location" else parent_args
            yield from _directives(directive["block"], name, inside, args)


def _nginx(host: dict[str, Any]) -> list[dict[str, Any]]:
    return host["nginx"]["value"]["tree"]


def _set_header(host, location: str, header: str, value: str) -> None:
    for directive in _directives(_nginx(host), "proxy_set_header", location):
        if directive["args"][0] == header:
            directive["args"][1] = value


def _first(host, name: str, location: str | None = None) -> dict[str, Any]:
    return next(_directives(_nginx(host), name, location))


def _leaf_pem(snapshot: dict[str, Any]) -> str:
    return _host(snapshot, "edge")["served_leaf"]["value"]


def _spki_of(pem: str) -> str:
    public = certs.load_pem_certificates(pem.encode())[0].public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@dataclasses.dataclass(frozen=True)
class Change:
    kind: str  # "backend" or "gateway": the host it changes
    check: str  # the one check it must fail
    says: str  # words the failure message must contain
    apply: Callable[[dict[str, Any], dict[str, Any]], None]  # (host, whole snapshot)
    also: tuple[str, ...] = ()  # checks that rightly fail with it (a cross-host check pairing it with a healthy host)


def _mode(path: str, mode: int):
    def apply(host, _):
        host["files"]["value"]["stats"][path]["mode"] = mode

    return apply


def _env(key: str, value: str):
    def apply(host, _):
        host["env"]["value"][key] = value

    return apply


def _unit(key: str, value: str):
    def apply(host, _):
        host["unit"]["value"][key] = value

    return apply


def _agent_files(host, _):
    host["agent_files"]["value"]["/app/viworks-backend-agent"]["executable"] = False


def _drop_api_listener(host, _):
    host["agent_listeners"]["value"]["sockets"] = [
        s for s in host["agent_listeners"]["value"]["sockets"] if s["port"] != 8080
    ]


def _restarting(host, _):
    host["containers"]["viworks-redis"]["value"]["RestartCount"] = 9


def _published_everywhere(host, _):
    # The real deployment's 8080-8081:8080-8081, as the engine reports it (and Redis' too, configured).
    agent = host["containers"]["viworks-backend-agent-new"]["value"]
    agent["NetworkSettings"]["Ports"]["8081/tcp"] = [
        {"HostIp": "0.0.0.0", "HostPort": "8081"},
        {"HostIp": "::", "HostPort": "8081"},
    ]
    host["containers"]["viworks-redis"]["value"].setdefault("HostConfig", {})["PortBindings"] = {
        "6379/tcp": [{"HostIp": "", "HostPort": "6379"}]
    }


def _identity_from_client(host, _):
    _set_header(host, "/ws/", "X-Client-CN", "$http_x_client_cn")


def _config_port(host, _):
    host["agent_config"]["value"]["ws_port"] = 9001


def _config_database(host, _):
    host["agent_config"]["value"]["database"]["host"] = "db.example.com"
    host["agent_config"]["value"]["database"]["redacted"] = "postgresql://viworks:***@db.example.com:5432/viworks_agent"


def _config_unparsable(host, _):
    host["agent_config"] = {
        "problem": (
            f"{host['host']}: viworks-backend-agent-new: /app/config/backend-agent.toml: expected valid TOML; "
            "found not valid TOML: Expected '=' (at line 3, column 9)"
        )
    }


def _nginx_test_fails(host, _):
    problem = (
        f'{host["host"]}: viworks-nginx: expected nginx -t to pass; found: unknown directive "proxy_pas" '
        "in /etc/nginx/conf.d/viworks-agent.conf:31"
    )
    host["nginx"] = host["nginx_tls_files"] = {"problem": problem}


def _listen_without_ssl(host, _):
    for directive in _directives(_nginx(host), "listen"):
        if directive["args"] == ["443", "ssl"]:
            directive["args"] = ["443"]


def _connection_header(host, _):
    _set_header(host, "/ws/", "Connection", "keep-alive")


def _short_read_timeout(host, _):
    _first(host, "proxy_read_timeout", "/ws/")["args"] = ["30s"]


def _root_to_wrong_port(host, _):
    _first(host, "proxy_pass", "/")["args"] = ["http://viworks-backend-agent-new:9999"]


def _no_client_verification(host, _):
    _first(host, "ssl_verify_client")["args"] = ["off"]
    for location in _directives(_nginx(host), "location"):
        location["block"] = [d for d in location["block"] if d["name"] != "if"]


def _client_ca_not_a_ca(host, snapshot):
    host["nginx_tls_files"]["value"]["/etc/nginx/tls/client-ca.crt"]["content"] = _leaf_pem(snapshot)


def _server_key_missing(host, _):
    key = _first(host, "ssl_certificate_key")["args"][0]
    host["nginx_tls_files"]["value"][key] = {
        "path": key,
        "kind": "missing",
        "mode": None,
        "size": None,
        "owner": None,
        "executable": False,
        "readable": False,
        "sha256": None,
        "content": None,
    }


def _clock(seconds: float):
    def apply(host, _):
        host["clock_skew"]["value"] = {"seconds": seconds, "uncertainty": 0.05}

    return apply


def _agent_listens(host, _):
    pid = host["process"]["value"]["pid"]
    host["listeners"]["value"].append(
        {"proto": "tcp", "address": "0.0.0.0", "port": 8443, "processes": [["python3", pid]]}
    )


_TOML_PATH = "/opt/viworks/agent/agent.toml"
_TOML_SECTIONS = {section: {} for section in ("agent", "security", "scripts", "monitoring", "containers")}


def _toml_placeholder_pin(host, _):
    # agent.toml's placeholder pin, and no .env pin to override it: the agent pins nothing real.
    host["agent_toml"] = {
        "value": {
            "path": _TOML_PATH,
            "present": True,
            "values": {**_TOML_SECTIONS, "outbound": {"backend_spki_pin": "sha256/" + "A" * 43 + "="}},
        }
    }
    del host["env"]["value"]["VIW_AGENT_BACKEND_SPKI_PIN"]


def _toml_section_missing(host, _):
    sections = {key: value for key, value in _TOML_SECTIONS.items() if key != "monitoring"}
    host["agent_toml"] = {"value": {"path": _TOML_PATH, "present": True, "values": {**sections, "outbound": {}}}}


def _undeclared_listener(host, _):
    host["listeners"]["value"].append(
        {"proto": "tcp", "address": "0.0.0.0", "port": 5555, "processes": [["vpnserver", 4242]]}
    )


def _never_connected(host, _):
    host["journal"]["value"] = {
        "connected": None,
        "quote": "2026-01-01T00:00:00+0000 connect to wss://agent.lab.test/ws/agent failed: certificate verify failed",
        "trouble": True,
        "lines": 3,
    }


def _certificate_read_later(host, _):
    host["gathered_at"] += 400 * 86400  # the same certificate, read 400 days on: expired


def _foreign_trust_bundle(host, snapshot):
    host["trust_bundle"]["value"] = [_leaf_pem(snapshot)]


def _nginx_trusts_another_ca(host, _):
    # A real CA, just not the one that issued the gateways' certificates.
    other = certs.new_ca("Some Other Internal CA").cert_pem().decode()
    host["nginx_tls_files"]["value"]["/etc/nginx/tls/client-ca.crt"]["content"] = other


def _other_key(host, snapshot):
    host["client_key_spki"]["value"] = _spki_of(_leaf_pem(snapshot))


def _drop_in(host, _):
    host["unit"]["value"]["DropInPaths"] = "/etc/systemd/system/viworks-gateway-agent.service.d/override.conf"


def _redis_on_bridge(host, _):
    host["containers"]["viworks-redis"]["value"]["NetworkSettings"]["Networks"]["bridge"] = {
        "IPAddress": "172.17.0.5",
        "Aliases": None,
    }


def _nginx_publishes_more(host, _):
    nginx = host["containers"]["viworks-nginx"]["value"]
    nginx["NetworkSettings"]["Ports"]["8443/tcp"] = [{"HostIp": "0.0.0.0", "HostPort": "8443"}]


def _client_certificate_sha1(host, _):
    # The same subject and key, signed with SHA-1 by a CA of its own: refused by any strict server.
    ca = certs.new_ca("Old Internal CA")
    leaf = certs.load_pem_certificates(host["client_certificate"]["value"].encode())[0]
    reissued = legacy_signed(certs.issue(ca, certs.common_name(leaf), server=False), ca, hashes.SHA1())
    host["client_certificate"]["value"] = reissued.cert_pem().decode()
    host["trust_bundle"]["value"] = [ca.cert_pem().decode()]
    host["client_key_spki"]["value"] = _spki_of(reissued.cert_pem().decode())


def _another_program(host, _):
    # The unit's MainPID runs something else than its ExecStart (a wrapper left behind, a stale binary).
    host["process"]["value"].update(argv=["/usr/local/bin/old-agent", "--legacy"], exe="/usr/local/bin/old-agent")


def _script_owner(host, _):
    host["files"]["value"]["stats"]["/opt/viworks/scripts/add_user.sh"].update(uid=1000, user="ops")


CHANGES = {
    "config-unparsable": Change("backend", "test_backend_config_parses", "expected valid TOML", _config_unparsable),
    "config-port": Change(
        "backend", "test_backend_config_ports_match_contract", "[agent_management].port = 9001", _config_port
    ),
    "config-database": Change(
        "backend",
        "test_backend_config_points_at_expected_database_and_redis",
        "expected host viworks-postgres",
        _config_database,
    ),
    "binary-not-executable": Change(
        "backend", "test_backend_binary_is_present_and_executable", "not executable", _agent_files
    ),
    "redis-restarting": Change(
        "backend", "test_containers_are_not_restarting_repeatedly", "viworks-redis restarted 9 times", _restarting
    ),
    "agent-published-everywhere": Change(
        "backend",
        "test_backend_agent_postgres_and_redis_publish_no_port",
        "viworks-backend-agent-new publishes 8081/tcp on every address (0.0.0.0):8081",
        _published_everywhere,
    ),
    "identity-from-client": Change(
        "backend",
        "test_nginx_sets_the_identity_headers_on_every_location_to_the_backend_agent",
        "sets X-Client-CN from $http_x_client_cn (the client's own header)",
        _identity_from_client,
    ),
    "api-not-listening": Change(
        "backend", "test_backend_agent_listens_on_api_port", "found nothing listening on it", _drop_api_listener
    ),
    # A fact that could not be read fails the first check that needs it (pytest orders host-parametrized
    # checks by host): here the nginx check, or the cross-host CA check if it ran first.
    "nginx-test-fails": Change(
        "backend",
        "test_nginx_config_test_passes",
        "expected nginx -t to pass",
        _nginx_test_fails,
        also=("test_gateway_client_certificate_chains_to_the_cas_nginx_verifies_clients_with",),
    ),
    "listen-without-ssl": Change(
        "backend", "test_nginx_agent_server_listens_on_https", "expected listen 443 ssl", _listen_without_ssl
    ),
    "ws-no-upgrade": Change(
        "backend", "test_nginx_ws_location_upgrades_to_websocket", "Connection keep-alive", _connection_header
    ),
    "ws-read-timeout": Change(
        "backend", "test_nginx_ws_location_keeps_idle_websockets_open", "proxy_read_timeout 30s", _short_read_timeout
    ),
    "root-wrong-port": Change(
        "backend", "test_nginx_root_location_proxies_to_backend_agent_api_port", ":9999", _root_to_wrong_port
    ),
    "no-client-verification": Change(
        "backend",
        "test_nginx_ws_location_requires_a_verified_client_certificate",
        "expected client certificates verified",
        _no_client_verification,
    ),
    "client-ca-not-a-ca": Change(
        "backend",
        "test_nginx_client_ca_is_a_ca_certificate",
        "expected CA certificates",
        _client_ca_not_a_ca,
        also=("test_gateway_client_certificate_chains_to_the_cas_nginx_verifies_clients_with",),
    ),
    "server-key-missing": Change(
        "backend", "test_nginx_server_certificate_and_key_exist", "found missing", _server_key_missing
    ),
    "backend-clock": Change(
        "backend",
        "test_backend_clock_matches_the_runner",
        "120.0 s ahead of the runner",
        _clock(120.0),
        also=("test_gateway_and_backend_clocks_agree",),
    ),
    "agent-listens": Change(
        "gateway", "test_agent_listens_on_no_port", "8443/tcp on 0.0.0.0 by python3", _agent_listens
    ),
    "toml-placeholder-pin": Change(
        "gateway",
        "test_backend_pin_is_well_formed",
        "/opt/viworks/agent/agent.toml [outbound] backend_spki_pin: VIW_AGENT_BACKEND_SPKI_PIN",
        _toml_placeholder_pin,
        also=("test_gateway_pin_matches_the_served_certificate",),
    ),
    "toml-section-missing": Change(
        "gateway", "test_agent_toml_has_every_section", "sections monitoring missing", _toml_section_missing
    ),
    "undeclared-listener": Change(
        "gateway", "test_host_listens_only_where_declared", "5555/tcp on 0.0.0.0 by vpnserver", _undeclared_listener
    ),
    "never-connected": Change(
        "gateway",
        "test_agent_logged_a_connected_session_since_its_last_start",
        "certificate verify failed",
        _never_connected,
    ),
    "direct-ip-url": Change(
        "gateway",
        "test_backend_url_is_wss_to_the_agent_domain",
        "expected wss://agent.lab.test/ws/agent",
        _env("VIW_AGENT_BACKEND_URL", "ws://192.0.2.10:8081/ws/agent"),
    ),
    "placeholder-pin": Change(
        "gateway",
        "test_backend_pin_is_well_formed",
        "placeholder",
        _env("VIW_AGENT_BACKEND_SPKI_PIN", "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        also=("test_gateway_pin_matches_the_served_certificate",),
    ),
    "inbound-http-on": Change(
        "gateway",
        "test_inbound_http_is_as_expected",
        "VIW_AGENT_FEATURE_INBOUND_HTTP=true",
        _env("VIW_AGENT_FEATURE_INBOUND_HTTP", "true"),
    ),
    "exec-off": Change(
        "gateway",
        "test_exec_is_as_expected",
        "VIW_AGENT_FEATURE_EXEC_ENABLE=false",
        _env("VIW_AGENT_FEATURE_EXEC_ENABLE", "false"),
    ),
    "env-world-writable": Change(
        "gateway", "test_no_required_file_is_world_writable", "mode 0666", _mode("/opt/viworks/agent/.env", 0o666)
    ),
    "script-owned-by-ops": Change(
        "gateway", "test_scripts_are_root_owned_and_not_group_or_world_writable", "owned by ops(1000)", _script_owner
    ),
    "key-readable": Change(
        "gateway",
        "test_client_key_is_readable_by_its_owner_only",
        "mode 0644",
        _mode("/opt/viworks/agent/certs/client.key", 0o644),
    ),
    "client-certificate-expired": Change(
        "gateway", "test_client_certificate_is_not_near_expiry", "client certificate expired", _certificate_read_later
    ),
    "foreign-trust-bundle": Change(
        "gateway", "test_client_certificate_chains_to_the_ca", "is not signed by the CA", _foreign_trust_bundle
    ),
    "nginx-trusts-another-ca": Change(
        "backend",
        "test_gateway_client_certificate_chains_to_the_cas_nginx_verifies_clients_with",
        "expected the gateway's certificate to chain to one of them",
        _nginx_trusts_another_ca,
    ),
    "key-of-another-certificate": Change(
        "gateway", "test_client_certificate_matches_the_key", "expected the certificate's own key", _other_key
    ),
    "agent-id-not-cn": Change(
        "gateway",
        "test_client_certificate_cn_is_the_agent_id",
        "VIW_AGENT_ID=gw-other-99",
        _env("VIW_AGENT_ID", "gw-other-99"),
    ),
    "another-program": Change(
        "gateway", "test_agent_process_runs_the_unit_program", "runs /usr/local/bin/old-agent", _another_program
    ),
    "unit-drop-in": Change(
        "gateway",
        "test_unit_has_no_undeclared_drop_ins",
        "changed by /etc/systemd/system/viworks-gateway-agent.service.d/override.conf",
        _drop_in,
    ),
    "redis-on-bridge": Change(
        "backend",
        "test_nginx_postgres_and_redis_are_on_no_unexpected_network",
        "viworks-redis on [bridge, viworks-internal]",
        _redis_on_bridge,
    ),
    "nginx-publishes-8443": Change(
        "backend",
        "test_nginx_publishes_only_the_edge_ports",
        "also every address (0.0.0.0):8443->8443/tcp",
        _nginx_publishes_more,
    ),
    "client-certificate-sha1": Change(
        "gateway",
        "test_client_certificate_is_acceptable_to_a_strict_server",
        "SHA-1",
        _client_certificate_sha1,
        also=("test_gateway_client_certificate_chains_to_the_cas_nginx_verifies_clients_with",),
    ),
    "crash-looping": Change("gateway", "test_unit_is_not_crash_looping", "NRestarts=12", _unit("NRestarts", "12")),
    "no-restart": Change("gateway", "test_unit_restarts_the_agent_when_it_exits", "Restart=no", _unit("Restart", "no")),
    "no-environment-file": Change(
        "gateway",
        "test_unit_environment_file_exists",
        "expected an EnvironmentFile",
        _unit("EnvironmentFiles", ""),
        also=("test_unit_uses_the_expected_program_env_file_and_directory",),
    ),
    "other-working-directory": Change(
        "gateway",
        "test_unit_uses_the_expected_program_env_file_and_directory",
        "WorkingDirectory=/tmp",
        _unit("WorkingDirectory", "/tmp"),
    ),
    "gateway-clock": Change(
        "gateway",
        "test_gateway_clock_matches_the_runner",
        "95.0 s behind the runner",
        _clock(-95.0),
        also=("test_gateway_and_backend_clocks_agree",),
    ),
}
# Two hosts each within the limit of the runner, but not of each other: the pair's check fails.
CLOCK_APART = ("gw-clock-ahead", 28.0, "backend-clock-behind", -28.0)


@pytest.fixture(scope="module")
def changed_fleet(tmp_path_factory) -> Verdicts:
    """One snapshot: the healthy hosts, plus a copy of one of them per change, named for the change."""
    snapshot = healthy()
    originals = {kind: _host(snapshot, kind) for kind in ("backend", "gateway")}

    def copy_of(kind: str, name: str) -> dict[str, Any]:
        host = _renamed(copy.deepcopy(originals[kind]), name)
        snapshot["hosts"].append(host)
        return host

    for name, change in CHANGES.items():
        change.apply(copy_of(change.kind, name), snapshot)
    gateway, gateway_s, backend, backend_s = CLOCK_APART
    _clock(gateway_s)(copy_of("gateway", gateway), snapshot)
    _clock(backend_s)(copy_of("backend", backend), snapshot)
    return judge(snapshot, tmp_path_factory.mktemp("changed"))


def test_the_healthy_hosts_pass_beside_the_changed_ones(changed_fleet):
    for host in HEALTHY_HOSTS:
        assert not changed_fleet.failing_checks_of(host, HEALTHY_HOSTS), changed_fleet.output


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_one_changed_fact_fails_exactly_its_check(changed_fleet, name):
    change = CHANGES[name]
    scheme = "local" if change.kind == "backend" else "ssh"
    host = f"{scheme}://{name}"
    failing = changed_fleet.failing_checks_of(host, HEALTHY_HOSTS)
    assert change.check in failing or any(
        change.says in message for case, message in changed_fleet.failed.items() if host in case
    ), f"{name}: expected {change.check} to fail; failing: {failing}"
    assert set(failing) <= {change.check, *change.also}, (
        f"{name}: expected only {change.check} to fail; failing: {failing}"
    )
    if change.check in failing:
        assert change.says in failing[change.check], f"{name}: {failing[change.check]!r} does not say {change.says!r}"


def test_clocks_apart_fail_only_the_pair(changed_fleet):
    gateway, _, backend, _ = CLOCK_APART
    assert not changed_fleet.failing_checks_of(f"ssh://{gateway}", HEALTHY_HOSTS)
    assert not changed_fleet.failing_checks_of(f"local://{backend}", HEALTHY_HOSTS)
    pair = [case for case in changed_fleet.failed if f"ssh://{gateway}" in case and f"local://{backend}" in case]
    assert pair and "56.0 s ahead of local://" + backend in changed_fleet.failed[pair[0]], changed_fleet.failed


def test_an_edge_that_speaks_old_protocols_fails_the_floor(tmp_path):
    snapshot = healthy()
    _host(snapshot, "edge")["tls_floor"]["value"] = {"TLSv1.0": "negotiated TLSv1", "TLSv1.1": "negotiated TLSv1.1"}
    verdicts = judge(snapshot, tmp_path)
    failing = dict(verdicts.failed)
    assert set(failing) == {
        "test_protocols_below_tls_1_2_are_refused[https://agent.lab.test-TLSv1.0]",
        "test_protocols_below_tls_1_2_are_refused[https://agent.lab.test-TLSv1.1]",
    }, failing
    assert (
        "expected TLSv1.0 to be refused (floor TLS 1.2); found negotiated TLSv1"
        in failing["test_protocols_below_tls_1_2_are_refused[https://agent.lab.test-TLSv1.0]"]
    )


def _target_text() -> str:
    """The recorded target, its paths absolute (for a copy written elsewhere)."""
    return TARGET.read_text().replace('ca_bundle = "root.crt"', f'ca_bundle = "{SNAPSHOTS / "root.crt"}"')


def test_a_target_without_an_expected_release_fails_the_release_checks_naming_the_setting(tmp_path):
    """Production targets never pass by omission: no expectation is a failure that says what to fill."""
    text = _target_text()
    target = tmp_path / "no-release.toml"
    target.write_text(text[: text.index("[release]")])
    verdicts = judge(SNAPSHOTS / "healthy.json", tmp_path, "--target", str(target))
    expected = {
        "test_backend_binary_is_the_expected_release[local://backend-lab]": (
            "no expected build to compare with: set [release] sha256"
        ),
        "test_gateway_binary_is_the_expected_release[ssh://gw-lab-01]": "set [release.gateway] sha256",
        "test_scripts_are_the_released_ones[ssh://gw-lab-01]": "set [release.gateway] scripts",
        "test_unit_file_is_the_released_one[ssh://gw-lab-01]": "set [release.gateway] unit_sha256",
    }
    assert set(verdicts.failed) == set(expected), verdicts.failed
    for case, words in expected.items():
        assert words in verdicts.failed[case], verdicts.failed[case]


def test_a_target_without_the_connected_line_fails_the_session_check_naming_the_setting(tmp_path):
    target = tmp_path / "no-pattern.toml"
    target.write_text(_target_text().replace('connected_log_pattern = "session established"\n', ""))
    verdicts = judge(SNAPSHOTS / "healthy.json", tmp_path, "--target", str(target))
    case = "test_agent_logged_a_connected_session_since_its_last_start[ssh://gw-lab-01]"
    assert set(verdicts.failed) == {case}, verdicts.failed
    assert "set gateway.connected_log_pattern" in verdicts.failed[case]


def test_a_runner_that_cannot_offer_an_old_protocol_fails_the_floor_naming_its_limit(tmp_path):
    snapshot = healthy()
    limit = "untested: this runner's OpenSSL (OpenSSL 3.5.0) cannot offer TLSv1 (NO_PROTOCOLS_AVAILABLE)"
    _host(snapshot, "edge")["tls_floor"]["value"] = {"TLSv1.0": limit, "TLSv1.1": "refused"}
    verdicts = judge(snapshot, tmp_path)
    assert set(verdicts.failed) == {"test_protocols_below_tls_1_2_are_refused[https://agent.lab.test-TLSv1.0]"}, (
        verdicts.failed
    )
    message = verdicts.failed["test_protocols_below_tls_1_2_are_refused[https://agent.lab.test-TLSv1.0]"]
    assert (
        "could not test that TLSv1.0 is refused: this runner's OpenSSL (OpenSSL 3.5.0) cannot offer TLSv1" in message
    ), message


def test_an_unreachable_gateway_fails_once_and_its_other_checks_skip(tmp_path):
    snapshot = healthy()
    gateway = _host(snapshot, "gateway")
    for key in list(gateway):
        if isinstance(gateway[key], dict) and ("value" in gateway[key] or "problem" in gateway[key]):
            gateway[key] = {"problem": "not read"}
    gateway["connection"] = {
        "problem": "ssh://gw-lab-01 unreachable: ssh: connect to host 127.0.0.1 port 2222: Connection refused"
    }
    verdicts = judge(snapshot, tmp_path, "-rs")
    failing = verdicts.failing_checks_of("ssh://gw-lab-01", HEALTHY_HOSTS)
    assert len(failing) == 1 and "unreachable" in next(iter(failing.values())), failing
    skipped = re.search(r"SKIPPED \[(\d+)\] .*already reported: ssh://gw-lab-01 unreachable", verdicts.output)
    assert skipped and int(skipped[1]) >= 25, verdicts.output  # every other check of that gateway


@pytest.mark.parametrize(
    "content, says",
    [
        (None, "no such snapshot file"),
        ("{not json", "not a JSON snapshot"),
        ('{"format": "viworks-snapshot/0", "hosts": []}', "not a viworks-snapshot/1 snapshot"),
    ],
)
def test_a_bad_snapshot_file_is_a_usage_error(tmp_path, content, says):
    path = tmp_path / "given.json"
    if content is not None:
        path.write_text(content)
    done = run_suite("--target", str(TARGET), "--snapshot-in", str(path), "-q", *CHECK_PATHS, junit=tmp_path / "j.xml")
    assert done.returncode == 4, done.stdout + done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr
