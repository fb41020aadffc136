"""Waivers: a known failure accepted until a date, so the gate still judges everything else.

``waivers.toml`` beside the target's settings file (or the file its ``waivers`` key names)::

    [[waiver]]
    check = "test_backend_agent_is_on_exactly_the_expected_networks"
    host = "backend-1"            # optional: a host name or id; every host when left out
    target = "production"         # optional: every target of this directory when left out
    justification = "INC-4711: the second network lands with the March deploy"
    expires = 2027-03-31          # required: no waiver is permanent

A waived check still runs. Its failure is shown as waived and does not fail the gate; after the
expiry date it fails as usual, saying the waiver expired; a waiver whose check passed is stale.
Pure: the pytest plugin feeds it outcomes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from viworks_verify.target.settings import read_toml

APPLIED, EXPIRED, STALE, UNMATCHED = "applied", "expired", "stale", "unmatched"


class WaiverError(ValueError):
    """A waivers file that cannot be used: one line naming the file and the waiver."""


@dataclasses.dataclass(frozen=True)
class Waiver:
    check: str
    justification: str
    expires: dt.date
    host: str | None = None
    target: str | None = None

    def covers(self, check: str, host_id: str) -> bool:
        if check != self.check:
            return False
        return self.host is None or host_id == self.host or host_id.split("://", 1)[-1] == self.host

    def expired(self, today: dt.date) -> bool:
        """Valid through its expiry day."""
        return today > self.expires

    def describe(self) -> str:
        where = f" on {self.host}" if self.host else ""
        return f"{self.check}{where} (until {self.expires.isoformat()}: {self.justification})"


def load_waivers(path: Path, target: str) -> list[Waiver]:
    """The waivers of ``path`` that apply to ``target``; a malformed one is a ``WaiverError``."""
    data = read_toml(path, "waivers file", WaiverError)
    unknown = set(data) - {"waiver"}
    if unknown:
        raise WaiverError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}: waivers are [[waiver]] entries")
    entries = data.get("waiver", [])
    if not isinstance(entries, list):
        raise WaiverError(f"{path}: waivers are [[waiver]] entries")
    waivers = [_waiver(path, index, entry) for index, entry in enumerate(entries, start=1)]
    return [w for w in waivers if w.target in (None, target)]


def _waiver(path: Path, index: int, entry: Any) -> Waiver:
    where = f"{path}: waiver {index}"
    if not isinstance(entry, dict):
        raise WaiverError(f"{where}: not a table")
    unknown = set(entry) - {"check", "host", "target", "justification", "expires"}
    if unknown:
        raise WaiverError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    check = entry.get("check")
    if not isinstance(check, str) or not check.strip():
        raise WaiverError(f'{where}: needs the check it waives (check = "test_...")')
    where = f"{where} ({check})"
    justification = entry.get("justification")
    if not isinstance(justification, str) or not justification.strip():
        raise WaiverError(f'{where}: needs a justification (justification = "why, and who decided")')
    expires = entry.get("expires")
    if isinstance(expires, str):
        try:
            expires = dt.date.fromisoformat(expires)
        except ValueError:
            raise WaiverError(f"{where}: expires {expires!r} is not a date (YYYY-MM-DD)") from None
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    if not isinstance(expires, dt.date):
        raise WaiverError(f"{where}: needs an expiry date (expires = YYYY-MM-DD): no waiver is permanent")
    for name in ("host", "target"):
        if entry.get(name) is not None and not isinstance(entry.get(name), str):
            raise WaiverError(f"{where}: {name} must be a string")
    return Waiver(check.strip(), justification.strip(), expires, entry.get("host"), entry.get("target"))


@dataclasses.dataclass
class WaiverLedger:
    """What each waiver did in a run: checks it waived, failures it could not waive (expired), passes it covered."""

    waivers: list[Waiver]
    today: dt.date
    applied: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    expired_failures: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    passed: dict[int, list[str]] = dataclasses.field(default_factory=dict)

    def for_failure(self, check: str, host_id: str) -> tuple[Waiver | None, bool]:
        """The waiver covering a failure, and whether it still holds (False: expired). Recorded."""
        for index, waiver in enumerate(self.waivers):
            if waiver.covers(check, host_id):
                holds = not waiver.expired(self.today)
                (self.applied if holds else self.expired_failures).setdefault(index, []).append(host_id)
                return waiver, holds
        return None, False

    def record_pass(self, check: str, host_id: str) -> None:
        for index, waiver in enumerate(self.waivers):
            if waiver.covers(check, host_id):
                self.passed.setdefault(index, []).append(host_id)

    def report(self) -> list[dict[str, Any]]:
        """One entry per waiver: what it did in this run, for the JSON summary and the report."""
        rows = []
        for index, waiver in enumerate(self.waivers):
            if index in self.applied:
                status, hosts = APPLIED, self.applied[index]
            elif index in self.expired_failures:
                status, hosts = EXPIRED, self.expired_failures[index]
            elif index in self.passed:
                status, hosts = STALE, self.passed[index]
            else:
                status, hosts = UNMATCHED, []
            rows.append(
                {
                    "check": waiver.check,
                    "host": waiver.host,
                    "expires": waiver.expires.isoformat(),
                    "justification": waiver.justification,
                    "status": status,
                    "hosts": hosts,
                    "line": _line(waiver, status, self.today),
                }
            )
        return rows


def _line(waiver: Waiver, status: str, today: dt.date) -> str:
    if status == APPLIED:
        return f"waived: {waiver.describe()}"
    if status == EXPIRED:
        return f"expired on {waiver.expires.isoformat()}, so the failure counts: {waiver.describe()}"
    if status == STALE:
        return f"stale: the check passes, remove the waiver: {waiver.describe()}"
    return f"stale: no check of this run matches it: {waiver.describe()}"
