"""The API's pure parts: bearer tokens and roles, command requests, and the JSON views of agents and commands."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jwt

from viworks_verify.wire import commands, protocol

if TYPE_CHECKING:
    from viworks_lab.agents.backend.sessions import AgentSession

log = logging.getLogger("viworks.backend")

ROLE_RANK = {"viewer": 1, "operator": 2, "admin": 3}
ACTIVE_STATUSES = ("Pending", "Executing")
TERMINAL_STATUSES = ("Completed", "Failed", "Timeout")
MAX_TARGETS = 256


# --------------------------------------------------------------------------- pure API helpers


class ApiError(Exception):
    """An HTTP error answered as ``{"error", "message"}`` JSON."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def decode_bearer(authorization: str | None, secret: str, *, now: float | None = None) -> dict[str, Any]:
    """The claims of an ``Authorization: Bearer <JWT>`` header (HS256; sub, iat, exp, role required).

    Raises ApiError(401) for a missing, malformed, badly signed or expired token.
    """
    if not secret:
        raise ApiError(401, "unauthorized", "the server has no jwt_secret configured")
    if not authorization:
        raise ApiError(401, "unauthorized", "missing Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "Authorization header is not 'Bearer <token>'")
    options: dict[str, Any] = {"require": ["exp", "iat", "sub"]}
    if now is not None:  # tests: judge exp against a given clock
        options["verify_exp"] = False
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options=options)
    except jwt.ExpiredSignatureError as exc:
        raise ApiError(401, "unauthorized", "token has expired") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise ApiError(401, "unauthorized", f"token lacks the {exc.claim!r} claim") from exc
    except jwt.InvalidSignatureError as exc:
        raise ApiError(401, "unauthorized", "token signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise ApiError(401, "unauthorized", f"invalid token: {exc}") from exc
    if now is not None:
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= now:
            raise ApiError(401, "unauthorized", "token has expired")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise ApiError(401, "unauthorized", "token sub is not a non-empty string")
    if not isinstance(claims.get("role"), str) or not claims["role"]:
        raise ApiError(401, "unauthorized", "token lacks a 'role' claim")
    return claims


def require_role(claims: Mapping[str, Any], needed: str) -> None:
    """ApiError(403) unless the token's role is at least ``needed`` (viewer < operator < admin)."""
    role = claims.get("role")
    if ROLE_RANK.get(role, 0) < ROLE_RANK[needed]:  # type: ignore[arg-type]
        raise ApiError(403, "forbidden", f"role {role!r} may not do this; {needed} or higher required")


@dataclasses.dataclass(frozen=True)
class CommandRequest:
    verb: str
    args: dict[str, Any]
    agent_targets: list[str]
    timeout: int


def parse_command_request(body: Any, *, default_timeout: int, max_timeout: int) -> CommandRequest:
    """A ``POST /api/v1/commands`` body checked against the contract; ApiError(400) naming the fault."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "invalid_request", "body must be a JSON object with verb, args, agent_targets")
    verb = body.get("verb")
    if not isinstance(verb, str) or verb not in commands.VERB_ARGS:
        raise ApiError(
            400, "unknown_verb", f"verb {verb!r} is not allowlisted; allowed: {', '.join(sorted(commands.VERB_ARGS))}"
        )
    if "args" not in body:
        raise ApiError(400, "invalid_args", "args is required (an object; {} for a verb without arguments)")
    args = body["args"]
    problem = commands.args_problem(verb, args)
    if problem:
        raise ApiError(400, "invalid_args", problem)
    targets = body.get("agent_targets")
    if not isinstance(targets, list) or not targets:
        raise ApiError(400, "invalid_targets", "agent_targets must be a non-empty list of agent ids")
    if len(targets) > MAX_TARGETS:
        raise ApiError(400, "invalid_targets", f"agent_targets lists more than {MAX_TARGETS} agents")
    if not all(isinstance(t, str) and t.strip() and len(t) <= 256 for t in targets):
        raise ApiError(400, "invalid_targets", "every agent_targets entry must be a non-empty agent id string")
    if len(set(targets)) != len(targets):
        raise ApiError(400, "invalid_targets", "agent_targets lists an agent more than once")
    timeout = body.get("timeout")
    if timeout is None:
        timeout = default_timeout
    elif isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= max_timeout:
        raise ApiError(400, "invalid_timeout", f"timeout must be an integer number of seconds from 1 to {max_timeout}")
    return CommandRequest(verb, dict(args), list(targets), timeout)


def aggregate_status(agent_targets: list[str], results: Mapping[str, Any]) -> str | None:
    """Completed/Failed once every target's RESULT is in (Failed if any is not SUCCESS), else None."""
    if not agent_targets or any(target not in results for target in agent_targets):
        return None
    ok = all(isinstance(results[t], Mapping) and results[t].get("status") == "SUCCESS" for t in agent_targets)
    return "Completed" if ok else "Failed"


def _ts(value: Any) -> Any:
    return protocol.rfc3339(value) if isinstance(value, _dt.datetime) else value


def command_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``GET /api/v1/commands/{id}`` document for a commands row."""
    targets = list(row["agent_targets"] or [])
    results = dict(row["results"] or {})
    first = results.get(targets[0]) if targets else None
    return {
        "correlation_id": row["correlation_id"],
        "verb": row["verb"],
        "args": row["args"],
        "agent_targets": targets,
        "status": row["status"],
        "created_at": _ts(row["created_at"]),
        "updated_at": _ts(row["updated_at"]),
        "timeout": row["timeout_s"],
        "result": first,
        "results": results,
        "actor": row["actor"],
        "dispatched_to": list(row["dispatched_to"] or []),
    }


def agent_view(row: Mapping[str, Any] | None, session: AgentSession | None) -> dict[str, Any]:
    """AgentInfo. A live in-memory session is the truth for status and connection_info."""
    if row is None and session is None:
        raise ValueError("agent_view needs a row or a session")
    if session is not None:
        hello = session.hello
        info = {
            "agent_id": session.agent_id,
            "site": as_text(hello.get("site")),
            "status": "Online",
            "version": as_text(hello.get("agent_version")),
            "capabilities": list(hello.get("supported_verbs") or []),
            "last_seen": protocol.rfc3339(session.last_seen),
            "connection_info": session.connection_info(),
            "feature_flags": dict(hello.get("feature_flags") or {}),
        }
        return info
    assert row is not None
    return {
        "agent_id": row["agent_id"],
        "site": row["site"],
        "status": "Offline",
        "version": row["version"],
        "capabilities": list(row["capabilities"] or []),
        "last_seen": _ts(row["last_seen"]),
        "connection_info": None,
        "feature_flags": dict(row["feature_flags"] or {}),
    }


def as_text(value: Any) -> str:
    """A database value as text: strings as they are, anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)
