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
