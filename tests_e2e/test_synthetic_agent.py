"""Registration and a command round-trip, as a gateway would see them, with the suite's own agent identity."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from viworks_verify.core.polling import NotReady, poll_until
from viworks_verify.core.verdict import fail
from viworks_verify.wire import protocol
from viworks_verify.wire.commands import CommandGate, CommandRejected, read_claims
from viworks_verify.wire.probe_agent import start_probe

pytestmark = [pytest.mark.e2e, pytest.mark.area("session")]


@pytest.mark.smoke
def test_synthetic_agent_is_welcomed_and_listed_online(probe_sessions, api, settings, recorder):
    agent_id = settings.probe.agent_id
    with probe_sessions() as probe:
        if not (probe.welcome.payload.get("agent_id") == agent_id and probe.welcome.payload.get("session_id")):
            fail(
                f"agent://{agent_id}",
                expected=f"welcome with agent_id {agent_id} and a session_id",
                found=f"{probe.welcome.payload}",
            )
        try:
            ready = poll_until(
                lambda: api.agent_info(agent_id)["status"],
                lambda s: s == "Online",
                what=f"{agent_id} Online",
                timeout_s=settings.timing.ready_timeout_s,
            )
        except NotReady as exc:
            fail(
                f"agent://{agent_id}",
                expected="Online in /api/v1/agents while its session is open",
                found=f"{exc.last}",
            )
        recorder.figure("synthetic agent Online readiness", ready.elapsed_s * 1000, " ms", host=agent_id)
        listed = {a["agent_id"]: a["status"] for a in api.agents().json()["agents"]}
        if listed.get(agent_id) != "Online":
            fail(f"agent://{agent_id}", expected="Online in the agent list", found=f"{listed.get(agent_id)}")


@pytest.mark.smoke
def test_synthetic_agent_goes_offline_when_its_session_closes(probe_sessions, api, settings):
    agent_id = settings.probe.agent_id
    with probe_sessions():
        pass  # leaving the block closes the session and waits, against the deadline, for Offline
    status = api.agent_info(agent_id)["status"]
    if status != "Offline":
        fail(f"agent://{agent_id}", expected="Offline once its session closed", found=f"{status}")


@pytest.mark.smoke
def test_a_second_session_with_the_same_agent_id_is_rejected(
    probe_sessions, verified_edge, settings, probe_identity, recorder
):
    agent_id = settings.probe.agent_id
    cert, key = probe_identity
    with probe_sessions():
        connection, answer, _ = start_probe(verified_edge, agent_id, client_cert=cert, client_key=key)
        connection.close()
    recorder.attach("frame received for the second hello", {"type": answer.type, "payload": answer.payload})
    if not answer.is_type(protocol.ERROR):
        fail(
            f"agent://{agent_id}",
            expected="an error for a second live session",
            found=f"{answer.type} {answer.payload}",
        )


@pytest.mark.smoke
@pytest.mark.area("identity")
def test_a_hello_that_differs_from_the_certificate_cn_is_rejected(
    probe_sessions, verified_edge, settings, probe_identity, api
):
    cert, key = probe_identity
    impostor = settings.probe.agent_id + "-impostor"
    connection, answer, _ = start_probe(
        verified_edge, settings.probe.agent_id, client_cert=cert, client_key=key, hello_agent_id=impostor
    )
    connection.close()
    if not answer.is_type(protocol.ERROR):
        # Welcomed: the backend registered the impostor. Leave nothing behind (it is Offline once closed).
        try:
            poll_until(
                lambda: api.forget_agent(impostor).status,
                lambda status: status in (204, 404),
                what=f"{impostor} removed",
                timeout_s=settings.timing.ready_timeout_s,
            )
        except NotReady:
            pass  # the verdict below is what matters; the record is Offline and harmless
    if not answer.is_type(protocol.ERROR):
        fail(
            f"agent://{impostor}",
            expected=f"an error for a hello whose agent_id is not the certificate CN {settings.probe.agent_id}",
            found=f"{answer.type} {answer.payload}",
        )


@pytest.mark.smoke
@pytest.mark.area("round-trip")
def test_a_command_reaches_the_synthetic_agent_signed_and_its_result_is_recorded(
    probe_sessions, api, settings, recorder
):
    agent_id = settings.probe.agent_id
    key_path = settings.probe.command_signing_key
    if key_path is None or not key_path.is_file():
        fail(
            f"agent://{agent_id}",
            f"probe.command_signing_key in {settings.source}",
            expected="the path of the file holding the backend's command-signing public key",
            found=f"{key_path}",
        )
    gate = CommandGate(agent_id, exec_enabled=True, signing_key=load_pem_public_key(key_path.read_bytes()))
    timeout = settings.timing.ready_timeout_s
    with probe_sessions() as probe:
        started = time.perf_counter()
        submitted = api.submit_command("get_system_health", {}, [agent_id], timeout_s=30)
        if submitted.status != 201:
            fail(f"agent://{agent_id}", expected="201 for get_system_health", found=f"{submitted.status}")
        correlation_id = submitted.json()["correlation_id"]
        try:
            frame = probe.next_frame(timeout, protocol.COMMAND)
        except TimeoutError:
            fail(
                f"agent://{agent_id}",
                f"command {correlation_id} accepted (201)",
                expected=f"a COMMAND frame within {timeout:.0f} s",
                found="no COMMAND frame",
            )
        recorder.attach(
            "COMMAND frame received",
            {
                "type": frame.type,
                "correlation_id": frame.correlation_id,
                "claims": read_claims(frame.payload) if isinstance(frame.payload, str) else frame.payload,
            },
        )
        try:
            claims = gate.admit(frame.payload)
        except CommandRejected as exc:
            fail(
                f"agent://{agent_id}",
                f"COMMAND {correlation_id}",
                expected="admitted by the contract's checks",
                found=f"refused: {exc}",
            )
        if not (claims["corr_id"] == correlation_id and claims["verb"] == "get_system_health"):
            fail(
                f"agent://{agent_id}",
                expected=f"COMMAND for {correlation_id} get_system_health",
                found=f"{claims['corr_id']} {claims['verb']}",
            )
        readings = json.dumps(
            {
                "cpu_usage_percent": 1.0,
                "memory_usage_percent": 1.0,
                "disk_usage_percent": 1.0,
                "load_average": [0.0, 0.0, 0.0],
                "uptime_seconds": 1.0,
                "synthetic": True,
            }
        )
        result = protocol.result_payload(
            corr_id=correlation_id,
            agent_id=agent_id,
            verb="get_system_health",
            status="SUCCESS",
            rc=0,
            duration_ms=1,
            stdout=readings,
        )
        probe.send(protocol.make_frame(protocol.RESULT, result, correlation_id=correlation_id))
        try:
            command = api.wait_for_command(correlation_id, timeout, interval_s=0.02, max_interval_s=0.2)
        except NotReady as exc:
            status = exc.last.get("status") if isinstance(exc.last, dict) else exc.last
            fail(
                f"agent://{agent_id}",
                f"command {correlation_id}",
                expected="done once its RESULT was sent",
                found=f"still {status}",
            )
        recorder.figure(
            "command round-trip (synthetic agent)", (time.perf_counter() - started) * 1000, " ms", host=agent_id
        )
    if command["status"] != "Completed":
        fail(f"agent://{agent_id}", expected="Completed after a SUCCESS RESULT", found=f"{command['status']}")
    recorded = command.get("result") or {}
    if not (recorded.get("stdout") == readings and recorded.get("corr_id") == correlation_id):
        fail(f"agent://{agent_id}", expected="the API to record the RESULT sent", found=f"{recorded}")
