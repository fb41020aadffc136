"""The backend agent's health and API, through the edge."""

from __future__ import annotations

import pytest

from viworks_verify.core.verdict import fail

pytestmark = [pytest.mark.e2e, pytest.mark.backend, pytest.mark.area("containers")]


@pytest.mark.smoke
def test_health_reports_every_service_healthy(anonymous_api, recorder):
    host = anonymous_api.endpoint.edge.domain
    timed = anonymous_api.health()
    recorder.figure("GET /health latency", timed.elapsed_ms, " ms", host=host)
    if timed.status != 200:
        fail(f"{host}/health", expected="HTTP 200", found=f"{timed.status} {timed.response.text[:200]!r}")
    body = timed.json()
    recorder.fact("backend version (observed)", body.get("version"))
    recorder.attach("GET /health", body)
    if body.get("status") != "healthy":
        fail(f"{host}/health", expected="status healthy", found=f"{body.get('status')!r}")
    unhealthy = {
        name: service.get("status")
        for name, service in body.get("services", {}).items()
        if service.get("status") != "healthy"
    }
    if unhealthy:
        fail(f"{host}/health", expected="every service healthy", found=f"{unhealthy}")
    missing = {"database", "redis", "agent_registry"} - set(body.get("services", {}))
    if missing:
        fail(f"{host}/health", expected="services database, redis, agent_registry", found=f"missing {sorted(missing)}")


@pytest.mark.smoke
@pytest.mark.area("round-trip")
def test_health_answers_within_the_slo(anonymous_api, recorder):
    host = anonymous_api.endpoint.edge.domain
    slo = anonymous_api.endpoint.edge.health_slo_ms
    samples = sorted(anonymous_api.health().elapsed_ms for _ in range(10))
    for sample in samples:
        recorder.figure("GET /health latency", sample, " ms", host=host)
    median = samples[len(samples) // 2]
    if not median < slo:
        fail(f"{host}/health", expected=f"median latency under {slo:.0f} ms", found=f"{median:.1f} ms over 10 requests")


@pytest.mark.smoke
@pytest.mark.area("files")
def test_health_reports_the_expected_release(anonymous_api, settings):
    host = anonymous_api.endpoint.edge.domain
    expected = settings.release.version
    if expected is None:
        fail(
            f"{host}/health",
            expected="a release version set in the target settings",
            found="no expected release version to compare with",
            evidence=f"set [release] version or release_manifest in {settings.source}",
        )
    found = anonymous_api.health().json().get("version")
    if found != expected:
        fail(f"{host}/health", expected=f"version {expected}", found=f"{found!r}")


@pytest.mark.smoke
@pytest.mark.area("identity")
def test_api_refuses_a_request_without_a_token(anonymous_api):
    host = anonymous_api.endpoint.edge.domain
    status = anonymous_api.agents(auth=False).status
    if status != 401:
        fail(f"{host}/api/v1/agents", "without a token", expected="HTTP 401", found=f"{status}")


@pytest.mark.smoke
@pytest.mark.area("identity")
def test_api_accepts_the_suite_token(api_with_token):
    """The real outage: every call answered 401, whatever the token."""
    host = api_with_token.endpoint.edge.domain
    timed = api_with_token.agents()
    if timed.status != 200:
        fail(
            f"{host}/api/v1/agents",
            "with the suite's token",
            expected="HTTP 200",
            found=f"{timed.status} {timed.response.text[:120]!r}",
        )
    body = timed.json()
    if not (isinstance(body.get("agents"), list) and body.get("total") == len(body["agents"])):
        fail(f"{host}/api/v1/agents", expected="{agents: [...], total: n}", found=f"keys {sorted(body)}")
