"""Whether a process runs a given program (the one rule), and a PID's facts from /proc (read on the
host by the gateway reader's script).

A program can be a binary (``/proc/PID/exe`` is the program) or a script with a ``#!`` line (``exe``
is the interpreter and the program is ``argv[1]``, as the kernel starts it). Sans-I/O:
``ProcessFacts.parse`` reads what the script printed (``program=``, ``exe=``, ``state=``, ``argv:``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Sequence
from typing import Any

from viworks_verify.core.canonical import Canonical, Observed


def runs_program(argv: Sequence[str], program_paths: Collection[str], exe: str | None = None) -> bool:
    """Whether a process is the program at one of ``program_paths``.

    It is when its executable (``exe``, when known) is one of them, or its program or first argument
    (where an interpreter names its script) is: by that path, or by the same file name given without
    a directory or relative to one (``viworks-agent``, ``./viworks-agent``: started from its directory or
    ``PATH``). Only those two arguments count, so a process that merely mentions the path further on
    (``sha256sum x /app/agent``) is not taken for it; an absolute path elsewhere is another program.
    """
    if exe is not None and exe in program_paths:
        return True
    names = {os.path.basename(path) for path in program_paths}
    for arg in argv[:2]:
        if arg in program_paths or (not arg.startswith(("/", "-")) and os.path.basename(arg) in names):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class ProcessFacts:
    pid: int
    program: str  # the program path as configured
    program_resolved: str  # symlinks resolved on the host
    exe: str | None  # None: no such process
    state: str
    argv: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "argv": list(self.argv)}

    @classmethod
    def from_json(cls, data: Any) -> ProcessFacts:
        return cls(**{**data, "argv": tuple(data.get("argv", ()))})

    def canonical(self, path: str) -> Canonical:
        yield f"{path}.program", Observed(self.program_resolved or self.program)
        yield f"{path}.argv", Observed(list(self.argv))
        yield f"{path}.exe", Observed(self.exe)
        yield f"{path}.pid", Observed(self.pid, volatile=True)
        yield f"{path}.state", Observed(self.state, volatile=True)

    @classmethod
    def parse(cls, pid: int, program: str, text: str) -> ProcessFacts:
        values: dict[str, str] = {}
        argv: list[str] = []
        in_argv = False
        for line in text.splitlines():
            if in_argv:
                argv.append(line)
            elif line == "argv:":
                in_argv = True
            else:
                key, _, value = line.partition("=")
                values[key] = value
        return cls(
            pid,
            program,
            values.get("program") or program,
            values.get("exe"),
            values.get("state", ""),
            tuple(a for a in argv if a),
        )

    @property
    def alive(self) -> bool:
        return self.pid > 0 and self.exe is not None and not self.state.startswith(("Z", "X"))

    @property
    def exe_path(self) -> str | None:
        return self.exe.removesuffix(" (deleted)") if self.exe else None

    @property
    def exe_deleted(self) -> bool:
        return bool(self.exe and self.exe.endswith(" (deleted)"))

    @property
    def runs_program(self) -> bool:
        """The process is the program: its binary, or the script its interpreter was started with."""
        return runs_program(self.argv, {self.program, self.program_resolved}, self.exe_path)

    def describe(self) -> str:
        if self.exe is None:
            return f"{self.pid} is not running"
        command = " ".join(self.argv[:3]) + (" ..." if len(self.argv) > 3 else "")
        return f"{self.pid} runs {self.exe} (argv {command or '<none>'}; state {self.state or '?'})"
