"""The agent WebSocket protocol as data: frames, hello/welcome, telemetry and RESULT payloads.

Sans-I/O: nothing here opens a socket or reads a clock it was not given. Both the suite's
synthetic agent and the lab's reference agents use this module, so there is one truth for
both sides of the wire.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

HELLO = "hello"
WELCOME = "welcome"
ERROR = "error"
TELEMETRY = "telemetry"
COMMAND = "COMMAND"
RESULT = "RESULT"

RESULT_STATUSES = ("SUCCESS", "ERROR", "DENIED", "TIMEOUT")

HELLO_FIELDS = (
    "agent_id",
    "site",
    "agent_version",
    "os",
    "kernel",
    "container_engine",
    "supported_verbs",
    "start_time",
    "feature_flags",
)
TELEMETRY_FIELDS = (
    "agent_id",
    "site",
    "ts",
    "uptime_s",
    "cpu_pct",
    "mem",
    "loadavg",
    "disk",
    "services",
    "containers",
    "version",
)
RESULT_FIELDS = (
    "corr_id",
    "agent_id",
    "verb",
    "status",
    "rc",
    "duration_ms",
    "stdout",
    "stderr_hash",
    "error_code",
    "ts",
)


class ProtocolError(ValueError):
    """A frame or payload that does not follow the contract; ``code`` goes into an error frame."""

    def __init__(self, message: str, code: str = "MALFORMED_FRAME") -> None:
        super().__init__(message)
        self.code = code


def rfc3339(moment: _dt.datetime | float | None = None) -> str:
    """RFC 3339 UTC timestamp (``2026-11-22T10:00:00.123Z``) for a datetime or epoch seconds."""
    if moment is None:
        moment = _dt.datetime.now(_dt.UTC)
    elif isinstance(moment, (int, float)):
        moment = _dt.datetime.fromtimestamp(moment, _dt.UTC)
    return moment.astimezone(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> _dt.datetime:
    """Parse an RFC 3339 timestamp; raises ProtocolError when it is not one."""
    try:
        parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AttributeError, ValueError) as exc:
        raise ProtocolError(f"not an RFC 3339 timestamp: {text!r}") from exc
    if parsed.tzinfo is None:
        raise ProtocolError(f"timestamp without a UTC offset: {text!r}")
    return parsed


@dataclasses.dataclass(frozen=True)
class Frame:
    """One JSON text message: ``{"type", "payload", "timestamp", "correlation_id"}``."""

    type: str
    payload: Any
    timestamp: str
    correlation_id: str | None = None

    def is_type(self, expected: str) -> bool:
        """Receivers compare ``type`` case-insensitively."""
        return self.type.lower() == expected.lower()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def parse(cls, message: str | bytes) -> Frame:
        """Decode a received message; raises ProtocolError for anything but a well-formed frame."""
        if isinstance(message, bytes):
            try:
                message = message.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProtocolError("frame is not UTF-8 text") from exc
        try:
            data = json.loads(message)
        except ValueError as exc:
            raise ProtocolError(f"frame is not JSON: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise ProtocolError("frame is not a JSON object")
        frame_type = data.get("type")
        if not isinstance(frame_type, str) or not frame_type:
            raise ProtocolError("frame has no string 'type'")
        if "payload" not in data:
            raise ProtocolError(f"{frame_type} frame has no 'payload'")
        timestamp = data.get("timestamp")
        if not isinstance(timestamp, str):
            raise ProtocolError(f"{frame_type} frame has no string 'timestamp'")
        parse_rfc3339(timestamp)
        correlation_id = data.get("correlation_id")
        if correlation_id is not None and not isinstance(correlation_id, str):
            raise ProtocolError(f"{frame_type} frame has a non-string 'correlation_id'")
        return cls(frame_type, data["payload"], timestamp, correlation_id)


def make_frame(
    frame_type: str,
    payload: Any,
    correlation_id: str | None = None,
    now: _dt.datetime | float | None = None,
) -> Frame:
    return Frame(frame_type, payload, rfc3339(now), correlation_id)


def error_frame(code: str, message: str, correlation_id: str | None = None) -> Frame:
    return make_frame(ERROR, {"code": code, "message": message}, correlation_id)


def missing_fields(payload: Any, fields: tuple[str, ...]) -> list[str]:
    """The contract's fields absent from a payload (all of them when it is not an object)."""
    if not isinstance(payload, Mapping):
        return list(fields)
    return [name for name in fields if name not in payload]


def validate_hello(payload: Any) -> str:
    """Return the hello's agent_id; raises ProtocolError naming what is wrong."""
    missing = missing_fields(payload, HELLO_FIELDS)
    if missing:
        raise ProtocolError(f"hello is missing {', '.join(missing)}", code="INVALID_HELLO")
    agent_id = payload["agent_id"]
    if not isinstance(agent_id, str) or not agent_id:
        raise ProtocolError("hello agent_id is not a non-empty string", code="INVALID_HELLO")
    if not isinstance(payload["supported_verbs"], list):
        raise ProtocolError("hello supported_verbs is not a list", code="INVALID_HELLO")
    flags = payload["feature_flags"]
    if not isinstance(flags, Mapping) or not all(
        isinstance(flags.get(name), bool) for name in ("exec_enable", "inbound_http")
    ):
        raise ProtocolError("hello feature_flags needs boolean exec_enable and inbound_http", code="INVALID_HELLO")
    return agent_id


def telemetry_problems(payload: Any) -> list[str]:
    """Why a telemetry payload is not real readings (empty when it is)."""
    problems = [f"missing {name}" for name in missing_fields(payload, TELEMETRY_FIELDS)]
    if problems:
        return problems
    if not _positive_number(payload["uptime_s"]):
        problems.append(f"uptime_s {payload['uptime_s']!r} is not a positive number")
    mem = payload["mem"]
    if (
        not isinstance(mem, Mapping)
        or not _positive_number(mem.get("total_mb"))
        or not _positive_number(mem.get("used_mb"))
    ):
        problems.append(f"mem {mem!r} lacks positive total_mb and used_mb")
    loadavg = payload["loadavg"]
    if not (isinstance(loadavg, list) and len(loadavg) == 3 and all(isinstance(v, (int, float)) for v in loadavg)):
        problems.append(f"loadavg {loadavg!r} is not 3 numbers")
    disk = payload["disk"]
    if not (
        isinstance(disk, list)
        and disk
        and all(isinstance(d, Mapping) and "mount" in d and "used_pct" in d for d in disk)
    ):
        problems.append(f"disk {disk!r} is not a list of mount/used_pct")
    if not isinstance(payload["cpu_pct"], (int, float)):
        problems.append(f"cpu_pct {payload['cpu_pct']!r} is not a number")
    return problems


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def stderr_hash(stderr: str | bytes) -> str:
    if isinstance(stderr, str):
        stderr = stderr.encode("utf-8", "replace")
    return hashlib.sha256(stderr).hexdigest()


def result_payload(
    *,
    corr_id: str,
    agent_id: str,
    verb: str,
    status: str,
    rc: int,
    duration_ms: int,
    stdout: str = "",
    stderr: str | bytes = b"",
    error_code: str = "NONE",
    now: _dt.datetime | float | None = None,
) -> dict[str, Any]:
    if status not in RESULT_STATUSES:
        raise ValueError(f"unknown RESULT status {status!r}")
    return {
        "corr_id": corr_id,
        "agent_id": agent_id,
        "verb": verb,
        "status": status,
        "rc": rc,
        "duration_ms": duration_ms,
        "stdout": stdout,
        "stderr_hash": stderr_hash(stderr),
        "error_code": error_code,
        "ts": rfc3339(now),
    }


def result_problems(payload: Any) -> list[str]:
    """Why a RESULT payload breaks the contract (empty when it does not)."""
    problems = [f"missing {name}" for name in missing_fields(payload, RESULT_FIELDS)]
    if problems:
        return problems
    if payload["status"] not in RESULT_STATUSES:
        problems.append(f"status {payload['status']!r} not one of {', '.join(RESULT_STATUSES)}")
    if not isinstance(payload["rc"], int):
        problems.append(f"rc {payload['rc']!r} is not an integer")
    if not isinstance(payload["stdout"], str):
        problems.append("stdout is not a string")
    digest = payload["stderr_hash"]
    if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        problems.append(f"stderr_hash {digest!r} is not sha256 hex")
    return problems


WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def websocket_accept(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer to ``Sec-WebSocket-Key`` (RFC 6455)."""
    return base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
