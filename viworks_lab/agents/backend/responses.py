"""What the backend's handlers share: the clock, the client's address, a JSON error response."""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping
from typing import Any

try:  # Runtime-only dependencies: the lab image has them; the suite's venv (pure unit tests) need not.
    from aiohttp import web
except ImportError:  # pragma: no cover - only the pure helpers are usable without them
    web = None  # type: ignore[assignment]


log = logging.getLogger("viworks.backend")


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def client_address(request: Any) -> str:
    """The agent's address: nginx's X-Real-IP / X-Forwarded-For, else the peer."""
    real = request.headers.get("X-Real-IP", "").strip()
    if real:
        return real
    forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
    if forwarded:
        return forwarded
    return request.remote or ""


def json_error(status: int, error: str, message: str, headers: Mapping[str, str] | None = None) -> Any:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)
