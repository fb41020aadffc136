"""Framing and payload rules of the agent protocol, without sockets."""

import hashlib
import json

import pytest

from viworks_verify.wire import protocol


def test_frame_round_trips_through_json():
    frame = protocol.make_frame(protocol.HELLO, {"agent_id": "gw-1"}, correlation_id="c-1")
    parsed = protocol.Frame.parse(frame.to_json())
    assert parsed == frame
    assert set(json.loads(frame.to_json())) == {"type", "payload", "timestamp", "correlation_id"}


def test_type_is_compared_case_insensitively():
    frame = protocol.Frame.parse('{"type": "Command", "payload": "x", "timestamp": "2026-01-01T00:00:00Z"}')
    assert frame.is_type(protocol.COMMAND)


@pytest.mark.parametrize(
    "message, reason",
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"payload": {}, "timestamp": "2026-01-01T00:00:00Z"}', "no string 'type'"),
        ('{"type": "hello", "timestamp": "2026-01-01T00:00:00Z"}', "no 'payload'"),
        ('{"type": "hello", "payload": {}}', "no string 'timestamp'"),
        ('{"type": "hello", "payload": {}, "timestamp": "yesterday"}', "RFC 3339"),
        ('{"type": "hello", "payload": {}, "timestamp": "2026-01-01T00:00:00"}', "UTC offset"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_malformed_frames_are_refused_with_a_reason(message, reason):
    with pytest.raises(protocol.ProtocolError, match=reason):
        protocol.Frame.parse(message)


def _hello(**overrides):
    payload = {
        "agent_id": "gw-1",
        "site": "s",
        "agent_version": "1",
        "os": "Debian",
        "kernel": "6",
        "container_engine": "none",
        "supported_verbs": ["get_system_health"],
        "start_time": "2026-01-01T00:00:00Z",
        "feature_flags": {"exec_enable": True, "inbound_http": False},
    }
    payload.update(overrides)
    return payload


def test_hello_validation_returns_the_agent_id():
    assert protocol.validate_hello(_hello()) == "gw-1"


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"agent_id": "x"}, "missing site"),
        (_hello(agent_id=""), "agent_id"),
        (_hello(supported_verbs="all"), "supported_verbs"),
        (_hello(feature_flags={"exec_enable": "yes", "inbound_http": False}), "feature_flags"),
    ],
)
def test_invalid_hellos_name_the_problem(payload, reason):
    with pytest.raises(protocol.ProtocolError, match=reason) as caught:
        protocol.validate_hello(payload)
    assert caught.value.code == "INVALID_HELLO"


def test_real_telemetry_has_no_problems_and_placeholders_do():
    real = {
        "agent_id": "gw-1",
        "site": "s",
        "ts": "2026-01-01T00:00:00Z",
        "uptime_s": 120.5,
        "cpu_pct": 3.2,
        "mem": {"total_mb": 2048, "used_mb": 512},
        "loadavg": [0.1, 0.2, 0.3],
        "disk": [{"mount": "/", "used_pct": 41.0}],
        "services": {},
        "containers": [],
        "version": "1",
    }
    assert protocol.telemetry_problems(real) == []
    placeholder = dict(real, uptime_s=0, mem={"total_mb": 0, "used_mb": 0}, disk=[])
    problems = protocol.telemetry_problems(placeholder)
    assert (
        any("uptime_s" in p for p in problems)
        and any("mem" in p for p in problems)
        and any("disk" in p for p in problems)
    )


def test_result_payload_hashes_stderr_and_validates():
    payload = protocol.result_payload(
        corr_id="c",
        agent_id="gw-1",
        verb="get_system_health",
        status="SUCCESS",
        rc=0,
        duration_ms=5,
        stdout="{}",
        stderr="oops",
    )
    assert payload["stderr_hash"] == hashlib.sha256(b"oops").hexdigest()
    assert protocol.result_problems(payload) == []
    assert protocol.result_problems(dict(payload, status="OK")) == [
        "status 'OK' not one of SUCCESS, ERROR, DENIED, TIMEOUT"
    ]
    assert "missing rc" in protocol.result_problems({k: v for k, v in payload.items() if k != "rc"})


def test_websocket_accept_matches_rfc_6455_example():
    assert protocol.websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
