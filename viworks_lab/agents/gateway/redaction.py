"""Pure helpers of the command pipeline: the reconnect backoff, the RESULT cache, redaction of secret arguments."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from viworks_lab.agents.gateway.config import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    REDACTED,
    RESULT_CACHE_MAX,
    RESULT_CACHE_TTL_S,
    SECRET_ARG_NAMES,
)

log = logging.getLogger("viworks-gateway-agent")


class Backoff:
    """Exponential backoff with jitter: 1 s doubling up to 30 s, each delay drawn in [0.8, 1.0] of it."""

    def __init__(
        self, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_CAP_S, rng: Callable[[], float] = random.random
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def ceiling(self) -> float:
        return min(self.cap_s, self.base_s * (2 ** min(self.failures, 30)))

    def next_delay(self) -> float:
        ceiling = self.ceiling()
        self.failures += 1
        return ceiling * (0.8 + 0.2 * self.rng())


class ResultCache:
    """Results (or in-flight futures) by corr_id, kept ``ttl_s`` seconds, at most ``max_entries``."""

    def __init__(
        self,
        ttl_s: float = RESULT_CACHE_TTL_S,
        max_entries: int = RESULT_CACHE_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, tuple[float, Any]] = {}

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, (t, _) in self._entries.items() if now - t >= self.ttl_s]:
            del self._entries[key]
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]

    def get(self, corr_id: str) -> Any:
        self._expire()
        entry = self._entries.get(corr_id)
        return entry[1] if entry else None

    def put(self, corr_id: str, value: Any) -> None:
        self._entries.pop(corr_id, None)
        self._entries[corr_id] = (self.clock(), value)
        self._expire()

    def discard(self, corr_id: str) -> None:
        self._entries.pop(corr_id, None)

    def __len__(self) -> int:
        return len(self._entries)


def secret_values(args: Mapping[str, Any]) -> list[str]:
    """The values of secret-named arguments, longest first (so overlaps redact fully)."""
    values = {str(v) for k, v in args.items() if k in SECRET_ARG_NAMES and v is not None and str(v) != ""}
    return sorted(values, key=len, reverse=True)


def redact_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, list):
        return [_redact_value(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: (REDACTED if k in SECRET_ARG_NAMES else _redact_value(v, secrets)) for k, v in value.items()}
    return value


def result_stdout(raw: str, args: Mapping[str, Any]) -> str:
    """A script's stdout as the RESULT's JSON string, with secret argument values redacted."""
    secrets = secret_values(args)
    try:
        document = json.loads(raw) if raw.strip() else None
    except ValueError:
        document = None
    if document is None:
        document = {"output": raw}
    return json.dumps(_redact_value(document, secrets), separators=(",", ":"))
