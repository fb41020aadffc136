"""Signed commands: the verb allowlist, the COMMAND JWS (EdDSA, Ed25519) and the agent's checks.

Sans-I/O: clocks and nonce memory are passed in. The backend signs with ``sign_command``; an agent
(the lab's gateway, or the suite's synthetic agent) runs ``CommandGate.admit`` which applies the
contract's checks in the contract's order and raises ``CommandRejected`` with the error code.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# verb -> the exact argument names its schema allows (all required, no others).
VERB_ARGS: dict[str, tuple[str, ...]] = {
    "create_panel_user": ("username", "password"),
    "create_openvpn_user": ("username", "userpass", "source_ip", "key", "hmac_key", "timeout"),
    "delete_user": ("username",),
    "list_users": (),
    "terminate_session": ("session_id",),
    "get_session_status": ("username",),
    "spawn_container": ("username", "session_id"),
    "stop_container": ("container_id",),
    "list_containers": (),
    "get_system_health": (),
    "get_service_status": (),
    "generate_bootstrap": ("username", "session_id", "ttl_seconds"),
    "revoke_bootstrap": ("bootstrap_token",),
    "get_monitoring_data": (),
}
# Verbs that change nothing on the target: the only ones a smoke check may send.
READ_ONLY_VERBS = frozenset(
    {
        "list_users",
        "get_session_status",
        "list_containers",
        "get_system_health",
        "get_service_status",
        "get_monitoring_data",
    }
)

CLAIMS = ("corr_id", "verb", "args", "actor", "policy_id", "nonce", "iat", "exp", "agent_targets")
ALGORITHM = "EdDSA"
CLOCK_SKEW_S = 60
REPLAY_WINDOW_S = 120


class CommandRejected(Exception):
    """A COMMAND an agent must answer with ``DENIED`` (or ``ERROR``) and ``error_code``."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message


def args_problem(verb: str, args: Any) -> str | None:
    """Why ``args`` does not match the verb's schema exactly (None when it does)."""
    if verb not in VERB_ARGS:
        return f"unknown verb {verb!r}"
    if not isinstance(args, Mapping):
        return f"args for {verb} is not an object"
    expected = set(VERB_ARGS[verb])
    missing = sorted(expected - set(args))
    extra = sorted(set(args) - expected)
    if missing or extra:
        return f"args for {verb}: missing {missing or 'none'}, unexpected {extra or 'none'}"
    return None


def command_claims(
    verb: str,
    args: Mapping[str, Any],
    agent_targets: list[str],
    *,
    actor_id: str,
    actor_role: str,
    ttl_s: int = 60,
    policy_id: str = "default",
    corr_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    issued = int(time.time() if now is None else now)
    return {
        "corr_id": corr_id or str(uuid.uuid4()),
        "verb": verb,
        "args": dict(args),
        "actor": {"id": actor_id, "role": actor_role},
        "policy_id": policy_id,
        "nonce": uuid.uuid4().hex,
        "iat": issued,
        "exp": issued + ttl_s,
        "agent_targets": list(agent_targets),
    }


def sign_command(claims: Mapping[str, Any], key: Ed25519PrivateKey) -> str:
    """The compact JWS carried as a COMMAND frame's payload."""
    return jwt.encode(dict(claims), key, algorithm=ALGORITHM)


def read_claims(token: str) -> dict[str, Any]:
    """The claims of a command JWS, before any check (CommandRejected when it is not one)."""
    if not isinstance(token, str):
        raise CommandRejected("VALIDATION_FAILED", "COMMAND payload is not a JWS string")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise CommandRejected("VALIDATION_FAILED", f"not a compact JWS: {exc}") from exc
    if header.get("alg") != ALGORITHM:
        raise CommandRejected("SIGNATURE_INVALID", f"alg {header.get('alg')!r}, expected {ALGORITHM}")
    missing = [name for name in CLAIMS if name not in claims]
    if missing:
        raise CommandRejected("VALIDATION_FAILED", f"claims missing {', '.join(missing)}")
    return claims


def verify_signature(token: str, key: Ed25519PublicKey) -> None:
    try:
        jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
        )
    except jwt.PyJWTError as exc:
        raise CommandRejected("SIGNATURE_INVALID", f"signature does not verify: {exc}") from exc


class NonceMemory:
    """Nonces seen in the last ``window_s`` seconds."""

    def __init__(self, window_s: float = REPLAY_WINDOW_S) -> None:
        self.window_s = window_s
        self._seen: dict[str, float] = {}

    def seen_recently(self, nonce: str, now: float) -> bool:
        self._seen = {n: t for n, t in self._seen.items() if now - t < self.window_s}
        if nonce in self._seen:
            return True
        self._seen[nonce] = now
        return False


class CommandGate:
    """An agent's admission checks for a COMMAND, in the contract's order."""

    def __init__(
        self,
        agent_id: str,
        *,
        exec_enabled: bool,
        signing_key: Ed25519PublicKey | None,
        clock: Callable[[], float] = time.time,
        nonces: NonceMemory | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.exec_enabled = exec_enabled
        self.signing_key = signing_key
        self.clock = clock
        self.nonces = nonces or NonceMemory()

    def admit(self, token: str) -> dict[str, Any]:
        """Return the command's claims, or raise CommandRejected with the first failed check."""
        claims = read_claims(token)
        now = self.clock()
        if not self.exec_enabled:
            raise CommandRejected("EXEC_DISABLED", "exec is disabled on this agent")
        if self.agent_id not in (claims.get("agent_targets") or []):
            raise CommandRejected("NOT_TARGETED", f"{self.agent_id} not in agent_targets")
        verb = claims["verb"]
        if verb not in VERB_ARGS:
            raise CommandRejected("UNKNOWN_VERB", f"verb {verb!r} is not allowlisted")
        if not isinstance(claims["exp"], (int, float)) or claims["exp"] <= now:
            raise CommandRejected("EXPIRED", f"exp {claims['exp']} is not after now {int(now)}")
        if not isinstance(claims["iat"], (int, float)) or abs(now - claims["iat"]) > CLOCK_SKEW_S:
            raise CommandRejected("EXPIRED", f"iat {claims['iat']} is more than {CLOCK_SKEW_S}s from now {int(now)}")
        if self.nonces.seen_recently(str(claims["nonce"]), now):
            raise CommandRejected(
                "REPLAY_DETECTED", f"nonce {claims['nonce']} seen in the last {self.nonces.window_s:.0f}s"
            )
        if self.signing_key is not None:
            verify_signature(token, self.signing_key)
        problem = args_problem(verb, claims["args"])
        if problem:
            raise CommandRejected("VALIDATION_FAILED", problem)
        return claims
