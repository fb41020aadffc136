"""The agent session's two ends as state machines, without sockets: each end's output is fed to the other."""

from __future__ import annotations

import json

import pytest

from viworks_verify.wire import protocol
from viworks_verify.wire.probe_agent import hello_payload
from viworks_verify.wire.session_protocol import (
    AgentProtocol,
    Answered,
    BackendProtocol,
    CommandReceived,
    ErrorReceived,
    HelloReceived,
    Malformed,
    Rejected,
    ResultReceived,
    State,
    TelemetryReceived,
    Unexpected,
    Welcomed,
)

TELEMETRY = {
    "agent_id": "gw-1",
    "site": "a",
    "ts": "2026-01-01T00:00:00Z",
    "uptime_s": 5,
    "cpu_pct": 1.5,
    "mem": {"total_mb": 512, "used_mb": 100},
    "loadavg": [0.1, 0.2, 0.3],
    "disk": [{"mount": "/", "used_pct": 10}],
    "services": [],
    "containers": [],
    "version": "1",
}


def deliver(sender, receiver) -> list:
    """Everything ``sender`` queued, received by ``receiver``; the events it produced."""
    for data in sender.data_to_send():
        receiver.receive(data)
    return receiver.events_received()


def sent_frames(end) -> list[protocol.Frame]:
    return [protocol.Frame.parse(data) for data in end.data_to_send()]


def welcomed_pair(agent_id: str = "gw-1") -> tuple[AgentProtocol, BackendProtocol]:
    agent, backend = AgentProtocol(), BackendProtocol()
    agent.send_hello(hello_payload(agent_id), correlation_id="h-1")
    [hello] = deliver(agent, backend)
    assert isinstance(hello, HelloReceived) and hello.agent_id == agent_id and hello.correlation_id == "h-1"
    backend.accept("s-1")
    [welcomed] = deliver(backend, agent)
    assert isinstance(welcomed, Welcomed) and welcomed.session_id == "s-1"
    assert welcomed.frame.correlation_id == "h-1"  # the welcome answers the hello
    assert agent.state is backend.state is State.OPEN
    return agent, backend


def test_hello_welcome_opens_both_ends():
    welcomed_pair()


def test_a_refused_hello_reaches_the_agent_as_rejected_and_closes_both_ends():
    agent, backend = AgentProtocol(), BackendProtocol()
    agent.send_hello(hello_payload("gw-1"))
    deliver(agent, backend)
    backend.reject("AGENT_ID_MISMATCH", "hello agent_id 'gw-1' does not match the client certificate CN 'gw-2'")
    [rejected] = deliver(backend, agent)
    assert isinstance(rejected, Rejected) and rejected.code == "AGENT_ID_MISMATCH" and "gw-2" in rejected.message
    assert agent.state is backend.state is State.CLOSED
    assert agent.session_id is None


@pytest.mark.parametrize(
    "first, problem",
    [
        ("not json", "not JSON"),
        (protocol.make_frame(protocol.TELEMETRY, TELEMETRY).to_json(), "first frame must be hello, got 'telemetry'"),
        (protocol.make_frame(protocol.HELLO, {"agent_id": "gw-1"}).to_json(), "hello is missing site"),
    ],
)
def test_the_backend_refuses_anything_but_a_valid_hello_first(first, problem):
    backend = BackendProtocol()
    backend.receive(first)
    [rejected] = backend.events_received()
    assert isinstance(rejected, Rejected) and rejected.code == "INVALID_HELLO" and problem in rejected.message
    [answer] = sent_frames(backend)
    assert answer.is_type(protocol.ERROR) and answer.payload["code"] == "INVALID_HELLO"
    assert backend.state is State.CLOSED
    with pytest.raises(protocol.ProtocolError, match="closed"):
        backend.accept("s-1")


def test_the_agent_ignores_frames_before_welcome_and_says_why():
    agent = AgentProtocol()
    agent.send_hello(hello_payload("gw-1"))
    agent.data_to_send()
    agent.receive(protocol.make_frame(protocol.COMMAND, "jwt").to_json())
    agent.receive("{broken")
    unexpected, malformed = agent.events_received()
    assert isinstance(unexpected, Unexpected) and unexpected.reason == "COMMAND frame received before welcome"
    assert isinstance(malformed, Malformed) and "not JSON" in malformed.problem
    assert agent.state is State.HELLO_SENT


def test_in_session_the_agent_gets_commands_and_errors_and_ignores_a_second_welcome():
    agent, backend = welcomed_pair()
    backend.send(protocol.make_frame(protocol.COMMAND, "header.claims.signature", correlation_id="c-1"))
    backend.send(protocol.error_frame("UNKNOWN_CORRELATION_ID", "no command c-9", "c-9"))
    backend.send(protocol.make_frame(protocol.WELCOME, {"session_id": "s-2"}))
    command, error, duplicate = deliver(backend, agent)
    assert isinstance(command, CommandReceived) and command.frame.correlation_id == "c-1"
    assert isinstance(error, ErrorReceived) and (error.code, error.correlation_id) == ("UNKNOWN_CORRELATION_ID", "c-9")
    assert isinstance(duplicate, Unexpected) and duplicate.reason == "duplicate welcome"
    assert agent.session_id == "s-1"


def test_nothing_but_hello_may_be_sent_before_welcome():
    agent = AgentProtocol()
    with pytest.raises(protocol.ProtocolError, match="no hello yet"):
        agent.send(protocol.make_frame(protocol.TELEMETRY, TELEMETRY))
    agent.send_hello(hello_payload("gw-1"))
    with pytest.raises(protocol.ProtocolError, match="hello already sent"):
        agent.send_hello(hello_payload("gw-1"))


def test_the_backend_takes_telemetry_and_answers_what_breaks_the_contract():
    agent, backend = welcomed_pair()
    agent.send(protocol.make_frame(protocol.TELEMETRY, TELEMETRY))
    agent.send(protocol.make_frame(protocol.TELEMETRY, TELEMETRY | {"uptime_s": 0}))
    agent.send(protocol.make_frame(protocol.TELEMETRY, TELEMETRY | {"agent_id": "gw-2"}))
    good, answered_poor, poor, answered_other = deliver(agent, backend)
    assert isinstance(good, TelemetryReceived) and good.problems == ()
    assert isinstance(poor, TelemetryReceived) and poor.problems == ("uptime_s 0 is not a positive number",)
    assert isinstance(answered_poor, Answered) and answered_poor.code == "INVALID_TELEMETRY"
    assert isinstance(answered_other, Answered) and answered_other.code == "AGENT_ID_MISMATCH"
    codes = [frame.payload["code"] for frame in sent_frames(backend)]
    assert codes == ["INVALID_TELEMETRY", "AGENT_ID_MISMATCH"]


def test_the_backend_takes_a_result_of_its_agent_only():
    agent, backend = welcomed_pair()
    result = protocol.result_payload(
        corr_id="c-1", agent_id="gw-1", verb="get_system_health", status="SUCCESS", rc=0, duration_ms=3
    )
    agent.send(protocol.make_frame(protocol.RESULT, result, correlation_id="c-1"))
    agent.send(protocol.make_frame(protocol.RESULT, result | {"agent_id": "gw-2"}, correlation_id="c-1"))
    agent.send(protocol.make_frame(protocol.RESULT, result, correlation_id="c-2"))
    agent.send(protocol.make_frame(protocol.RESULT, {"corr_id": "c-1"}, correlation_id="c-1"))
    events = deliver(agent, backend)
    assert isinstance(events[0], ResultReceived) and events[0].corr_id == "c-1"
    assert [(e.code, e.message.split(":")[0]) for e in events[1:]] == [
        ("AGENT_ID_MISMATCH", "RESULT agent_id 'gw-2' is not this session's 'gw-1'"),
        ("INVALID_RESULT", "frame correlation_id differs from the payload's corr_id"),
        (
            "INVALID_RESULT",
            "missing agent_id; missing verb; missing status; missing rc; missing duration_ms; missing stdout; "
            "missing stderr_hash; missing error_code; missing ts",
        ),
    ]


@pytest.mark.parametrize(
    "frame_type, code",
    [
        (protocol.HELLO, "UNEXPECTED_FRAME"),
        (protocol.WELCOME, "UNEXPECTED_FRAME"),
        (protocol.COMMAND, "UNEXPECTED_FRAME"),
        ("gossip", "UNKNOWN_TYPE"),
    ],
)
def test_the_backend_answers_frames_that_have_no_place_in_a_session(frame_type, code):
    agent, backend = welcomed_pair()
    backend.receive(protocol.make_frame(frame_type, {}, correlation_id="x-1").to_json())
    [answered] = backend.events_received()
    assert isinstance(answered, Answered) and answered.code == code
    [answer] = sent_frames(backend)
    assert answer.payload["code"] == code and answer.correlation_id == "x-1"
    assert backend.state is State.OPEN  # a bad frame does not end the session


def test_a_malformed_frame_in_session_is_answered_not_fatal():
    _, backend = welcomed_pair()
    backend.receive(b"\xff")
    [answered] = backend.events_received()
    assert answered == Answered("MALFORMED_FRAME", "frame is not UTF-8 text")
    assert json.loads(backend.data_to_send()[0])["payload"]["code"] == "MALFORMED_FRAME"
    assert backend.state is State.OPEN
