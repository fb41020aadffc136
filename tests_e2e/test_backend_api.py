"""The backend agent's health and API, through the edge."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.backend, pytest.mark.area("containers")]


@pytest.mark.smoke
def test_health_reports_every_service_healthy(anonymous_api, recorder):
    host = anonymous_api.endpoint.edge.domain
    timed = anonymous_api.health()
    recorder.figure("GET /health latency", timed.elapsed_ms, " ms", host=host)
    assert timed.status == 200, f"{host}/health: expected HTTP 200; found {timed.status} {timed.response.text[:200]!r}"
    body = timed.json()
    recorder.fact("backend version (observed)", body.get("version"))
    recorder.attach("GET /health", body)
    assert body.get("status") == "healthy", f"{host}/health: expected status healthy; found {body.get('status')!r}"
    unhealthy = {name: service.get("status") for name, service in body.get("services", {}).items() if service.get("status") != "healthy"}
    assert not unhealthy, f"{host}/health: expected every service healthy; found {unhealthy}"
    missing = {"database", "redis", "agent_registry"} - set(body.get("services", {}))
    assert not missing, f"{host}/health: expected services database, redis, agent_registry; missing {sorted(missing)}"


@pytest.mark.smoke
@pytest.mark.area("round-trip")
def test_health_answers_within_the_slo(anonymous_api, recorder):
    host = anonymous_api.endpoint.edge.domain
    slo = anonymous_api.endpoint.edge.health_slo_ms
    samples = sorted(anonymous_api.health().elapsed_ms for _ in range(10))
    for sample in samples:
        recorder.figure("GET /health latency", sample, " ms", host=host)
    median = samples[len(samples) // 2]
    assert median < slo, f"{host}/health: expected median latency under {slo:.0f} ms; found {median:.1f} ms over 10 requests"


@pytest.mark.smoke
@pytest.mark.area("files")
def test_health_reports_the_expected_release(anonymous_api, settings):
    host = anonymous_api.endpoint.edge.domain
    expected = settings.release.version
    if expected is None:
        pytest.fail(f"{anonymous_api.endpoint.edge.domain}/health: no expected release version to compare with: "
                    f"set [release] version or release_manifest in {settings.source}", pytrace=False)
    found = anonymous_api.health().json().get("version")
    assert found == expected, f"{host}/health: expected version {expected}; found {found!r}"


@pytest.mark.smoke
@pytest.mark.area("identity")
def test_api_refuses_a_request_without_a_token(anonymous_api):
    host = anonymous_api.endpoint.edge.domain
    status = anonymous_api.agents(auth=False).status
    assert status == 401, f"{host}/api/v1/agents without a token: expected HTTP 401; found {status}"


@pytest.mark.smoke
@pytest.mark.area("identity")
def test_api_accepts_the_suite_token(api_with_token):
    """The real outage: every call answered 401, whatever the token."""
    host = api_with_token.endpoint.edge.domain
    timed = api_with_token.agents()
    assert timed.status == 200, f"{host}/api/v1/agents with the suite's token: expected HTTP 200; found {timed.status} {timed.response.text[:120]!r}"
    body = timed.json()
    assert isinstance(body.get("agents"), list) and body.get("total") == len(body["agents"]), (
        f"{host}/api/v1/agents: expected {{agents: [...], total: n}}; found keys {sorted(body)}"
    )
