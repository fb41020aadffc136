"""The agent session as two state machines, one per end of the wire, with no I/O.

In the style of websockets' ``ClientProtocol``: the caller feeds each received message in
(``receive``), then takes out what happened (``events_received``) and what to send
(``data_to_send``, JSON texts in order). Sockets, timeouts, logging and storage stay with the
caller. One truth for the hello/welcome/error exchange and for which frame is acceptable when:

- ``AgentProtocol``: the agent's end (the suite's probe agent, the lab gateway agent). It sends
  hello, waits for welcome or an error, then receives COMMAND and error frames.
- ``BackendProtocol``: the backend's end (the lab backend agent). It waits for a valid hello,
  lets the caller accept it (welcome) or refuse it (an error frame, then close), then validates
  telemetry and RESULT frames against the session's agent_id, answering each bad frame with the
  contract's error frame.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from viworks_verify.wire.protocol import (
    COMMAND,
    ERROR,
    HELLO,
    RESULT,
    TELEMETRY,
    WELCOME,
    Frame,
    ProtocolError,
    error_frame,
    make_frame,
    result_problems,
    telemetry_problems,
    validate_hello,
)


class State(enum.Enum):
    CONNECTED = "connected, no hello yet"
    HELLO_SENT = "hello sent, awaiting welcome"
    HELLO_RECEIVED = "hello received, awaiting accept or reject"
    OPEN = "welcomed"
    CLOSED = "closed"


# -- events ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Welcomed:
    """The backend welcomed our hello (agent end)."""

    session_id: str
    frame: Frame


@dataclasses.dataclass(frozen=True)
class Rejected:
    """The hello was refused: by the backend's error frame (agent end) or by us (backend end)."""

    code: str
    message: str
    frame: Frame | None = None


@dataclasses.dataclass(frozen=True)
class HelloReceived:
    """A hello that follows the contract; the caller decides: ``accept()`` or ``reject()`` (backend end)."""

    agent_id: str
    hello: dict[str, Any]
    correlation_id: str | None


@dataclasses.dataclass(frozen=True)
class CommandReceived:
    """A COMMAND frame in an open session (agent end); its payload is still to be admitted."""

    frame: Frame


@dataclasses.dataclass(frozen=True)
class ErrorReceived:
    """An error frame the other end sent in an open session; the session goes on."""

    code: str
    message: str
    correlation_id: str | None
    frame: Frame | None = None


@dataclasses.dataclass(frozen=True)
class TelemetryReceived:
    """A telemetry payload of this session's agent (backend end); ``problems``: where it breaks the
    contract (already answered with INVALID_TELEMETRY; it is still the agent's latest reading)."""

    payload: Mapping[str, Any]
    problems: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ResultReceived:
    """A RESULT that follows the contract and belongs to this session's agent (backend end)."""

    corr_id: str
    payload: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Unexpected:
    """A well-formed frame that has no place here (before welcome, a duplicate welcome, an unknown type)."""

    frame: Frame
    reason: str


@dataclasses.dataclass(frozen=True)
class Answered:
    """We answered a frame of the other end with an error frame (the session goes on)."""

    code: str
    message: str


@dataclasses.dataclass(frozen=True)
class Malformed:
    """A message that is not a frame of the contract; ``problem`` says why."""

    problem: str


Event = (
    Welcomed
    | Rejected
    | HelloReceived
    | CommandReceived
    | ErrorReceived
    | TelemetryReceived
    | ResultReceived
    | Unexpected
    | Answered
    | Malformed
)


# -- the two ends ---------------------------------------------------------------------------------


class _Protocol:
    def __init__(self, state: State) -> None:
        self.state = state
        self._events: list[Event] = []
        self._outgoing: list[str] = []

    def events_received(self) -> list[Event]:
        """What the messages fed in so far meant, oldest first; each event is returned once."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str]:
        """The JSON texts to send, in order; each is returned once."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def send(self, frame: Frame) -> None:
        """Queue an application frame (telemetry, RESULT, COMMAND) in the open session."""
        if self.state is not State.OPEN:
            raise ProtocolError(f"cannot send {frame.type}: the session is {self.state.value}")
        self._outgoing.append(frame.to_json())

    def _parse(self, message: str | bytes) -> Frame | None:
        try:
            return Frame.parse(message)
        except ProtocolError as exc:
            self._events.append(Malformed(str(exc)))
            return None


def _error_fields(frame: Frame) -> tuple[str, str]:
    payload = frame.payload if isinstance(frame.payload, Mapping) else {}
    return str(payload.get("code", "?")), str(payload.get("message", ""))


class AgentProtocol(_Protocol):
    """The agent's end: hello, then welcome or an error, then COMMANDs."""

    def __init__(self) -> None:
        super().__init__(State.CONNECTED)
        self.session_id: str | None = None

    def send_hello(self, payload: Mapping[str, Any], correlation_id: str | None = None) -> None:
        """Queue the hello (sent as given: the suite's probes also send hellos the backend must refuse)."""
        if self.state is not State.CONNECTED:
            raise ProtocolError(f"hello already sent: the session is {self.state.value}")
        self._outgoing.append(make_frame(HELLO, dict(payload), correlation_id).to_json())
        self.state = State.HELLO_SENT

    def receive(self, message: str | bytes) -> None:
        frame = self._parse(message)
        if frame is None:
            return
        if self.state is State.HELLO_SENT:
            if frame.is_type(WELCOME):
                payload = frame.payload if isinstance(frame.payload, Mapping) else {}
                self.session_id = str(payload.get("session_id") or "")
                self.state = State.OPEN
                self._events.append(Welcomed(self.session_id, frame))
            elif frame.is_type(ERROR):
                self.state = State.CLOSED
                self._events.append(Rejected(*_error_fields(frame), frame=frame))
            else:
                self._events.append(Unexpected(frame, f"{frame.type} frame received before welcome"))
        elif self.state is State.OPEN:
            if frame.is_type(COMMAND):
                self._events.append(CommandReceived(frame))
            elif frame.is_type(ERROR):
                self._events.append(ErrorReceived(*_error_fields(frame), frame.correlation_id, frame))
            elif frame.is_type(WELCOME):
                self._events.append(Unexpected(frame, "duplicate welcome"))
            else:
                self._events.append(Unexpected(frame, f"{frame.type} frames are not sent to agents"))
        else:
            self._events.append(Unexpected(frame, f"{frame.type} frame received while {self.state.value}"))


class BackendProtocol(_Protocol):
    """The backend's end: a valid hello first, then telemetry, RESULT and error frames of that agent."""

    def __init__(self) -> None:
        super().__init__(State.CONNECTED)
        self.agent_id: str | None = None
        self._hello_correlation_id: str | None = None

    def receive(self, message: str | bytes) -> None:
        if self.state is State.CONNECTED:
            self._receive_hello(message)
        elif self.state is State.OPEN:
            self._receive_in_session(message)
        else:
            raise ProtocolError(f"no message is expected while {self.state.value}")

    def accept(self, session_id: str) -> None:
        """Welcome the hello received (the welcome answers the hello's correlation_id)."""
        self._expect(State.HELLO_RECEIVED, "accept")
        welcome = {"agent_id": self.agent_id, "session_id": session_id}
        self._outgoing.append(make_frame(WELCOME, welcome, self._hello_correlation_id).to_json())
        self.state = State.OPEN

    def reject(self, code: str, message: str) -> None:
        """Refuse the hello (or its absence): an error frame, after which the caller closes (1008)."""
        if self.state not in (State.CONNECTED, State.HELLO_RECEIVED):
            raise ProtocolError(f"cannot reject: the session is {self.state.value}")
        self._outgoing.append(error_frame(code, message, self._hello_correlation_id).to_json())
        self.state = State.CLOSED

    def _expect(self, state: State, action: str) -> None:
        if self.state is not state:
            raise ProtocolError(f"cannot {action}: the session is {self.state.value}")

    def _refuse_hello(self, message: str) -> None:
        self.reject("INVALID_HELLO", message)
        self._events.append(Rejected("INVALID_HELLO", message))

    def _receive_hello(self, message: str | bytes) -> None:
        try:
            frame = Frame.parse(message)
        except ProtocolError as exc:
            self._refuse_hello(str(exc))
            return
        self._hello_correlation_id = frame.correlation_id
        if not frame.is_type(HELLO):
            self._refuse_hello(f"first frame must be hello, got {frame.type!r}")
            return
        try:
            self.agent_id = validate_hello(frame.payload)
        except ProtocolError as exc:
            self._refuse_hello(str(exc))
            return
        self.state = State.HELLO_RECEIVED
        self._events.append(HelloReceived(self.agent_id, dict(frame.payload), frame.correlation_id))

    def _answer(self, code: str, message: str, correlation_id: str | None = None) -> None:
        self._outgoing.append(error_frame(code, message, correlation_id).to_json())
        self._events.append(Answered(code, message))

    def _receive_in_session(self, message: str | bytes) -> None:
        try:
            frame = Frame.parse(message)
        except ProtocolError as exc:
            self._answer(exc.code, str(exc))
            return
        if frame.is_type(TELEMETRY):
            self._receive_telemetry(frame)
        elif frame.is_type(RESULT):
            self._receive_result(frame)
        elif frame.is_type(ERROR):
            self._events.append(ErrorReceived(*_error_fields(frame), frame.correlation_id, frame))
        elif frame.is_type(HELLO):
            self._answer("UNEXPECTED_FRAME", "hello was already received on this session", frame.correlation_id)
        elif frame.is_type(WELCOME) or frame.is_type(COMMAND):
            self._answer(
                "UNEXPECTED_FRAME", f"{frame.type} frames are sent by the backend, not to it", frame.correlation_id
            )
        else:
            self._answer("UNKNOWN_TYPE", f"unknown frame type {frame.type[:64]!r}", frame.correlation_id)

    def _receive_telemetry(self, frame: Frame) -> None:
        payload = frame.payload
        if not isinstance(payload, Mapping):
            self._answer("INVALID_PAYLOAD", "telemetry payload must be a JSON object")
            return
        if "agent_id" in payload and payload["agent_id"] != self.agent_id:
            self._answer(
                "AGENT_ID_MISMATCH",
                f"telemetry agent_id {payload['agent_id']!r} is not this session's {self.agent_id!r}",
            )
            return
        problems = tuple(telemetry_problems(payload))
        if problems:
            self._answer("INVALID_TELEMETRY", "; ".join(problems)[:1000])
        self._events.append(TelemetryReceived(payload, problems))

    def _receive_result(self, frame: Frame) -> None:
        payload = frame.payload
        problems = result_problems(payload)
        if not problems and not isinstance(payload["corr_id"], str):
            problems = ["corr_id is not a string"]
        if problems:
            self._answer("INVALID_RESULT", "; ".join(problems)[:1000], frame.correlation_id)
            return
        corr_id = payload["corr_id"]
        if frame.correlation_id is not None and frame.correlation_id != corr_id:
            self._answer("INVALID_RESULT", "frame correlation_id differs from the payload's corr_id", corr_id)
            return
        if payload["agent_id"] != self.agent_id:
            self._answer(
                "AGENT_ID_MISMATCH",
                f"RESULT agent_id {payload['agent_id']!r} is not this session's {self.agent_id!r}",
                corr_id,
            )
            return
        self._events.append(ResultReceived(corr_id, payload))
