"""Prove the gate: every injected fault is caught by the checks named for it, and a healthy lab passes.

For each fault: ``viworks-lab break``, the smoke gate as an operator runs it (a separate
``pytest -m smoke`` with JUnit), ``viworks-lab heal``. The run must fail; a check named for the
fault must fail with a message naming the cause; at most two other checks may fail (the ones a
real outage of that kind also takes down), none for a fault marked ``alone`` (one cause, one
failure). The healthy lab passes with zero failures three times before and three times after.
The matrix is written to reports/fault-matrix.{md,json}.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import REPO, run_lab
from tests.fault_matrix import MatrixRow, SmokeRun, run_smoke, write_matrix
from viworks_lab.faults import FAULTS

pytestmark = pytest.mark.lab

MAX_OTHER_FAILURES = 2


@dataclasses.dataclass(frozen=True)
class Expect:
    checks: frozenset[str]  # the checks that exist to catch this fault
    cause: tuple[str, ...]  # words (any of) the first named failure's message must contain
    alone: bool = False  # one cause, one failure: the run fails that one check and nothing else


def expect(*checks: str, cause: tuple[str, ...], alone: bool = False) -> Expect:
    return Expect(frozenset(checks), cause, alone)


# The checks of the gateway's client certificate: with the file gone, the first to read it reports that.
CLIENT_CERTIFICATE = (
    "test_client_certificate_is_not_near_expiry",
    "test_client_certificate_chains_to_the_ca",
    "test_client_certificate_matches_the_key",
    "test_client_certificate_cn_is_the_agent_id",
)
EXPECTED = {
    "ws-server-down": expect(
        "test_backend_agent_listens_on_ws_port", "test_agent_path_upgrades_with_a_client_certificate", cause=("8081",)
    ),
    "nginx-wrong-port": expect(
        "test_nginx_ws_location_proxies_to_backend_agent_ws_port",
        "test_agent_path_upgrades_with_a_client_certificate",
        "test_agent_path_is_not_a_plain_page",
        cause=("8080",),
    ),
    # One cause, one failure: the unit's checks report it, what needs the agent running skips naming it.
    "gateway-stopped": expect("test_unit_is_loaded_enabled_and_active", cause=("inactive",), alone=True),
    "gateway-unit-masked": expect("test_unit_is_loaded_enabled_and_active", cause=("masked",), alone=True),
    # The unit file was edited (it is not the release's): a finding of its own beside the missing program.
    "gateway-bad-execstart": expect(
        "test_unit_program_exists_and_is_executable",
        "test_unit_file_is_the_released_one",
        cause=("/opt/viworks/bin/viworks-gateway-agent",),
    ),
    "one-network": expect("test_backend_agent_is_on_exactly_the_expected_networks", cause=("viworks-public",)),
    "client-cert-missing": expect(
        "test_client_certificate_key_and_ca_are_present",
        *CLIENT_CERTIFICATE,
        "test_deployed_gateway_is_online",
        cause=("client.crt",),
    ),
    "script-missing": expect("test_scripts_are_present_and_executable", cause=("add_vpn_user.sh",)),
    "script-not-executable": expect("test_scripts_are_present_and_executable", cause=("add_vpn_user.sh",)),
    "pin-mismatch": expect(
        "test_served_key_matches_the_configured_pin",
        "test_gateway_pin_matches_the_served_certificate",
        "test_deployed_gateway_is_online",
        cause=("pin",),
    ),
    "cert-expired": expect(
        "test_served_chain_validates_for_the_agent_domain",
        "test_served_certificate_is_not_near_expiry",
        "test_deployed_gateway_is_online",
        cause=("expired",),
    ),
    "env-missing-key": expect("test_env_has_every_required_key", cause=("VIW_AGENT_SITE",)),
    "api-auth-broken": expect("test_api_accepts_the_suite_token", cause=("401",)),
    "dispatch-broken": expect(
        "test_system_health_command_round_trips_to_the_gateway",
        "test_a_command_reaches_the_synthetic_agent_signed_and_its_result_is_recorded",
        cause=("Pending", "no COMMAND"),
    ),
    "db-down": expect(
        "test_containers_are_running",
        "test_health_reports_every_service_healthy",
        cause=("viworks-postgres", "database"),
    ),
    "database-missing": expect(
        "test_health_reports_every_service_healthy", cause=("InvalidCatalogName", "does not exist")
    ),
    "binary-drift": expect("test_backend_binary_is_the_expected_release", cause=("sha256",)),
    "agent-ports-exposed": expect(
        "test_backend_agent_postgres_and_redis_publish_no_port",
        "test_backend_agent_ports_are_not_reachable_around_the_edge",
        cause=("8080/tcp", "8081/tcp"),
    ),
    "identity-header-passthrough": expect(
        "test_nginx_sets_the_identity_headers_on_every_location_to_the_backend_agent",
        "test_a_forged_identity_header_does_not_choose_the_agent_id",
        cause=("$http_x_client_cn", "welcomed"),
    ),
    "tls-floor-lowered": expect("test_protocols_below_tls_1_2_are_refused", cause=("negotiated TLSv1",)),
    "client-cert-not-checked": expect(
        "test_upgrade_without_a_client_certificate_is_refused",
        "test_upgrade_with_a_certificate_from_another_ca_is_refused",
        "test_nginx_ws_location_requires_a_verified_client_certificate",
        cause=("101", "optional_no_ca"),
    ),
    "registry-empty": expect(
        "test_synthetic_agent_is_welcomed_and_listed_online",
        "test_deployed_gateway_is_online",
        "test_synthetic_agent_goes_offline_when_its_session_closes",
        cause=("404", "not listed", "Online"),
    ),
    "api-open": expect("test_api_refuses_a_request_without_a_token", cause=("200",)),
    "hello-not-bound-to-cn": expect(
        "test_a_hello_that_differs_from_the_certificate_cn_is_rejected", cause=("welcome",)
    ),
    "duplicate-sessions": expect("test_a_second_session_with_the_same_agent_id_is_rejected", cause=("welcome",)),
    "health-slow": expect("test_health_answers_within_the_slo", cause=("ms",)),
    "version-mismatch": expect("test_health_reports_the_expected_release", cause=("1.4.1-lab",)),
    "http-serves-agent-path": expect(
        "test_plain_ws_on_port_80_does_not_reach_the_backend_agent",
        "test_nginx_sets_the_identity_headers_on_every_location_to_the_backend_agent",
        cause=("HTTP 200", "X-Client-CN"),
    ),
    "api-trusts-identity-headers": expect(
        "test_the_api_decides_nothing_on_a_forged_identity_header",
        "test_nginx_sets_the_identity_headers_on_every_location_to_the_backend_agent",
        cause=("HTTP 401", "$http_x_client_cn"),
    ),
    "telemetry-placeholder": expect("test_deployed_gateway_telemetry_is_recent_and_real", cause=("not real readings",)),
    # What should not be there, and artifacts known by content.
    "backend-extra-network": expect(
        "test_backend_agent_is_on_exactly_the_expected_networks", cause=("bridge",), alone=True
    ),
    "script-stray": expect("test_scripts_root_holds_only_the_declared_scripts", cause=("cleanup.sh",), alone=True),
    "script-tampered": expect("test_scripts_are_the_released_ones", cause=("add_user.sh",), alone=True),
    "env-unknown-key": expect(
        "test_env_has_no_key_the_agent_does_not_know", cause=("VIW_AGENT_CMD_TIMEOUT",), alone=True
    ),
    "gateway-binary-drift": expect("test_gateway_binary_is_the_expected_release", cause=("sha256",), alone=True),
    # Certificates judged as the strictest real client judges them.
    "edge-cert-cn-only": expect("test_served_chain_validates_for_the_agent_domain", cause=("subject CN",), alone=True),
    "edge-cert-unsupported-key": expect(
        "test_served_chain_validates_for_the_agent_domain", cause=("secp521r1",), alone=True
    ),
    # nginx refuses the certificate at the handshake: the agent never connects, so it logs no session and is not Online.
    "client-cert-wrong-usage": expect(
        "test_client_certificate_is_acceptable_to_a_strict_server",
        "test_deployed_gateway_is_online",
        "test_agent_logged_a_connected_session_since_its_last_start",
        cause=("clientAuth",),
    ),
}
ROWS: list[MatrixRow] = []
HEALTHY_RUNS: list[SmokeRun] = []


def test_every_fault_has_an_expectation():
    assert set(EXPECTED) == set(FAULTS)


@pytest.fixture(scope="module")
def matrix(lab):
    yield ROWS
    write_matrix(ROWS, HEALTHY_RUNS, REPO / "reports")


def _healthy_three_times(tmp_path):
    for attempt in range(3):
        run = run_smoke(tmp_path / f"healthy-{attempt}.xml")
        HEALTHY_RUNS.append(run)
        assert run.exit_code == 0 and not run.failures, (
            f"healthy lab, run {attempt + 1}: expected no failures; found "
            + "; ".join(f"{f.case}: {f.message[:160]}" for f in run.failures)
        )


def test_the_healthy_lab_passes_three_times_before(matrix, tmp_path):
    _healthy_three_times(tmp_path)


@pytest.mark.parametrize("fault", list(EXPECTED))
def test_the_fault_is_caught_by_its_checks(matrix, fault, tmp_path):
    broken = run_lab("break", fault)
    assert broken.returncode == 0, f"viworks-lab break {fault} failed:\n{broken.stderr[-2000:]}"
    try:
        run = run_smoke(tmp_path / "junit.xml")
    finally:
        healed = run_lab("heal")
    expected = EXPECTED[fault]
    named = [f for f in run.failures if f.check in expected.checks]
    others = sorted({f.case for f in run.failures if f.check not in expected.checks})
    ROWS.append(
        MatrixRow(
            fault,
            FAULTS[fault].description,
            run.exit_code,
            sorted({f.case for f in named}),
            named[0].message if named else "",
            others,
            run.seconds,
        )
    )
    assert healed.returncode == 0, f"viworks-lab heal after {fault} failed:\n{healed.stderr[-2000:]}"
    assert run.exit_code == 1, f"{fault}: expected the gate to fail (exit 1); it exited {run.exit_code}"
    assert named, f"{fault}: none of {sorted(expected.checks)} failed; failures: {[f.case for f in run.failures]}"
    messages = " ".join(f.message for f in named)
    assert any(word in messages for word in expected.cause), (
        f"{fault}: the failures do not name the cause (any of {expected.cause}): {[f.message[:200] for f in named]}"
    )
    assert len(others) <= MAX_OTHER_FAILURES, f"{fault}: {len(others)} unrelated checks failed: {others}"
    if expected.alone:
        assert len(run.failures) == 1, (
            f"{fault}: expected one failure (one cause); found {[f.case for f in run.failures]}"
        )


def test_the_healthy_lab_passes_three_times_after(matrix, tmp_path):
    _healthy_three_times(tmp_path)
