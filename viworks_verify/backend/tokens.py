"""API bearer tokens: HS256 JWTs with ``sub``, ``iat``, ``exp`` and ``role`` (viewer < operator < admin)."""

from __future__ import annotations

import time

import jwt

ROLES = ("viewer", "operator", "admin")


def mint_token(secret: str, *, subject: str, role: str, ttl_s: int = 600, now: float | None = None) -> str:
    """A short-lived token, for targets where the suite holds the JWT secret (the lab) rather than a token."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    issued = int(time.time() if now is None else now)
    return jwt.encode({"sub": subject, "iat": issued, "exp": issued + ttl_s, "role": role}, secret, algorithm="HS256")


def token_role(token: str) -> str | None:
    """The role a token claims (read without verifying: only the target can verify it)."""
    try:
        return jwt.decode(token, options={"verify_signature": False}).get("role")
    except jwt.PyJWTError:
        return None
