"""A systemd unit's properties, from ``systemctl show`` (read once per unit per run)."""

from __future__ import annotations

import dataclasses
import re

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
    unit: str
    values: dict[str, str]

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
