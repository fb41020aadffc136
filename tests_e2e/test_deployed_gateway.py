"""The deployed gateway agent, seen from the backend: registered, Online, reporting, executing."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from viworks_verify.core.polling import NotReady
from viworks_verify.core.verdict import fail
from viworks_verify.wire.protocol import parse_rfc3339, telemetry_problems

# A gateway whose unit is not loaded, whose program is missing or whose unit is not running is
# reported once by its host's unit checks; these skip naming that cause (gateway.blockers).
pytestmark = [pytest.mark.e2e, pytest.mark.gateway, pytest.mark.area("session"), pytest.mark.needs_agent("running")]

HEALTH_READINGS = ("cpu_usage_percent", "memory_usage_percent", "disk_usage_percent", "load_average", "uptime_seconds")


@pytest.mark.smoke
def test_deployed_gateway_is_online(gateway_readiness, settings, deployed_agent_id, gateway_snapshot_of):
    """The real outages: a gateway not deployed, or "active" and never connected."""
    if isinstance(gateway_readiness, NotReady):
        snapshot = gateway_snapshot_of(deployed_agent_id)
        if snapshot is not None:
            snapshot.connection.require()  # an unreachable host is one failure, reported once
        last = (
            gateway_readiness.last if isinstance(gateway_readiness.last, dict) else {"status": gateway_readiness.last}
        )
        found = f"{last.get('status')}, last_seen {last.get('last_seen') or 'never'}"
        if gateway_readiness.proof:  # the wait ended early: the host's facts prove it will not come
            fail(
                f"agent://{deployed_agent_id}",
                expected="Online in the backend registry",
                found=found,
                evidence=f"not waited for: {gateway_readiness.proof}",
            )
        fail(
            f"agent://{deployed_agent_id}",
            expected=f"Online in the backend registry within {settings.timing.ready_timeout_s:.0f} s",
            found=found,
        )


@pytest.mark.smoke
def test_deployed_gateway_telemetry_is_recent_and_real(latest_telemetry, settings, online_gateway):
    deployed_agent_id = online_gateway
    timed = latest_telemetry[deployed_agent_id]
    if timed.status != 200:
        fail(f"agent://{deployed_agent_id}", expected="its latest telemetry", found=f"HTTP {timed.status}")
    telemetry = timed.json()
    problems = telemetry_problems(telemetry)
    if problems:
        fail(
            f"agent://{deployed_agent_id}",
            "telemetry",
            expected="real readings",
            found=f"not real readings: {'; '.join(problems)}",
        )
    age = (dt.datetime.now(dt.UTC) - parse_rfc3339(telemetry["ts"])).total_seconds()
    limit = settings.gateway.telemetry_max_age_s
    if not age <= limit:
        fail(f"agent://{deployed_agent_id}", expected=f"telemetry younger than {limit:.0f} s", found=f"{age:.0f} s old")


@pytest.mark.smoke
@pytest.mark.area("round-trip")
def test_system_health_command_round_trips_to_the_gateway(
    system_health_round_trips, settings, online_gateway, recorder
):
    """The real outage: commands accepted (201) and never delivered."""
    deployed_agent_id = online_gateway
    sent = system_health_round_trips.get(deployed_agent_id)
    if sent is None:
        fail(
            f"agent://{deployed_agent_id}",
            expected="get_system_health sent to it",
            found="none sent: it was not Online when the round trips were sent",
        )
    submitted = sent.submitted
    if submitted.status != 201:
        fail(
            f"agent://{deployed_agent_id}",
            expected="201 for get_system_health",
            found=f"{submitted.status} {submitted.response.text[:120]!r}",
        )
    correlation_id = submitted.json()["correlation_id"]
    timeout = settings.timing.ready_timeout_s
    if isinstance(sent.settled, NotReady):
        status = sent.settled.last.get("status") if isinstance(sent.settled.last, dict) else sent.settled.last
        fail(
            f"agent://{deployed_agent_id}",
            f"get_system_health {correlation_id}",
            expected=f"done within {timeout:.0f} s",
            found=f"last status {status}",
        )
    done = sent.settled
    recorder.figure(
        "command round-trip (gateway)",
        (done.elapsed_s + submitted.elapsed_ms / 1000) * 1000,
        " ms",
        host=deployed_agent_id,
    )
    command = done.value
    result = command.get("result") or {}
    if not (command["status"] == "Completed" and result.get("status") == "SUCCESS"):
        fail(
            f"agent://{deployed_agent_id}",
            expected="get_system_health Completed/SUCCESS",
            found=f"{command['status']}/{result.get('status')} error_code {result.get('error_code')}",
        )
    readings = json.loads(result["stdout"])
    missing = [name for name in HEALTH_READINGS if name not in readings]
    if missing:
        fail(
            f"agent://{deployed_agent_id}",
            "get_system_health result",
            expected=f"readings {', '.join(HEALTH_READINGS)}",
            found=f"missing {missing}",
        )
    zero = [name for name in ("memory_usage_percent", "disk_usage_percent", "uptime_seconds") if not readings[name] > 0]
    if zero:
        fail(f"agent://{deployed_agent_id}", expected="real, non-zero readings", found=f"zero {zero} in {readings}")


def test_unknown_verb_is_refused(api, settings, online_gateway):
    """Refused at the API (400), or delivered and DENIED by the agent with UNKNOWN_VERB."""
    deployed_agent_id = online_gateway
    submitted = api.submit_command("format_disk", {}, [deployed_agent_id])
    if submitted.status == 400:
        return
    if submitted.status != 201:
        fail(
            f"agent://{deployed_agent_id}",
            expected="400 for the unknown verb format_disk",
            found=f"HTTP {submitted.status}",
        )
    correlation_id = submitted.json()["correlation_id"]
    try:
        command = api.wait_for_command(correlation_id, settings.timing.ready_timeout_s)
    except NotReady:
        fail(
            f"agent://{deployed_agent_id}",
            "unknown verb format_disk",
            expected="a refusal (400, or DENIED with UNKNOWN_VERB)",
            found="accepted (201) and never refused",
        )
    result = command.get("result") or {}
    if (result.get("status"), result.get("error_code")) != ("DENIED", "UNKNOWN_VERB"):
        fail(
            f"agent://{deployed_agent_id}",
            expected="unknown verb format_disk DENIED with UNKNOWN_VERB",
            found=f"{result.get('status')} {result.get('error_code')}",
        )
