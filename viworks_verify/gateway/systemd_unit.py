"""A systemd unit's properties, from ``systemctl show`` (read once per unit per run)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from viworks_verify.core.canonical import Canonical, Observed
from viworks_verify.target.settings import Gateway

PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "NRestarts",
    "Restart",
    "RestartUSec",
    "Type",
    "ExecStart",
    "EnvironmentFiles",
    "WorkingDirectory",
    "MainPID",
    "ActiveEnterTimestamp",
    "FragmentPath",
    "InvocationID",
    "DropInPaths",
)


@dataclasses.dataclass(frozen=True)
class UnitProperties:
    """``systemctl show`` of one unit: its properties by name (saved as that map; the unit's name is the
    target's ``gateway.unit``, so a loaded snapshot's is empty until a fixture names it)."""

    unit: str
    values: dict[str, str]

    def to_json(self) -> dict[str, str]:
        return dict(self.values)

    @classmethod
    def from_json(cls, data: Any) -> UnitProperties:
        return cls("", dict(data or {}))

    def canonical(self, path: str) -> Canonical:
        """Each property, ExecStart as its command line; those that change with every start are volatile, and
        so is a restart count below the threshold that fails a check."""
        threshold = Gateway().max_restarts
        for name, value in sorted(self.values.items()):
            if name == "ExecStart":
                yield f"{path}.ExecStart", Observed(_exec_command(value))
            elif name == "NRestarts":
                count = int(value) if str(value).isdigit() else value
                yield f"{path}.NRestarts", Observed(count, volatile=isinstance(count, int) and count < threshold)
            else:
                yield f"{path}.{name}", Observed(value, volatile=name in VOLATILE_PROPERTIES)

    @classmethod
    def parse(cls, unit: str, text: str) -> UnitProperties:
        """Properties by name; a repeated key (one ``EnvironmentFiles=`` line per file) keeps every value."""
        values: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key] = f"{values[key]}\n{value}" if key in values else value
        return cls(unit, values)

    def get(self, key: str) -> str:
        return self.values.get(key, "")

    @property
    def n_restarts(self) -> int:
        value = self.get("NRestarts")
        return int(value) if value.isdigit() else 0

    @property
    def exec_start_path(self) -> str | None:
        """The program of ExecStart (``{ path=/opt/x ; argv[]=/opt/x ... }``)."""
        match = re.search(r"path=([^ ;]+)", self.get("ExecStart"))
        return match.group(1) if match else None

    @property
    def drop_in_paths(self) -> list[str]:
        """The drop-ins that change the unit (``DropInPaths``: space-separated paths)."""
        return self.get("DropInPaths").split()

    @property
    def environment_files(self) -> list[str]:
        """EnvironmentFile paths (``/opt/a/.env (ignore_errors=no)``)."""
        return re.findall(r"(/[^ ]+) \(ignore_errors=", self.get("EnvironmentFiles"))


# Properties that change with every start, not with the deployment.
VOLATILE_PROPERTIES = frozenset(
    {
        "MainPID",
        "ExecMainPID",
        "ControlPID",
        "InvocationID",
        "ActiveEnterTimestamp",
        "ActiveExitTimestamp",
        "InactiveEnterTimestamp",
        "InactiveExitTimestamp",
        "StateChangeTimestamp",
        "ExecMainStartTimestamp",
        "ExecMainExitTimestamp",
        "ConditionTimestamp",
        "AssertTimestamp",
        "MemoryCurrent",
        "CPUUsageNSec",
        "TasksCurrent",
    }
)


def _exec_command(text: str) -> str:
    """``{ path=... ; argv[]=/opt/agent --flag ; ... pid=0 ; start_time=... }`` as its command line."""
    found = re.search(r"argv\[\]=(.*?) ;", text)
    return found.group(1).strip() if found else text
