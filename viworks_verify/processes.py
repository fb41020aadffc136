"""Whether a PID is alive and runs a given program, from /proc (read on the host by one small script).

Sans-I/O: ``process_command`` is what to run, ``ProcessFacts.parse`` reads its output. A program
can be a binary (``/proc/PID/exe`` is the program) or a script with a ``#!`` line (``exe`` is the
interpreter and the program is ``argv[1]``, as the kernel starts it).
"""

from __future__ import annotations

import dataclasses

_SCRIPT = r"""
printf 'program=%s\n' "$(readlink -f -- "$1")"
if [ "$2" -gt 0 ] 2>/dev/null && [ -d "/proc/$2" ]; then
  printf 'exe=%s\n' "$(readlink -- "/proc/$2/exe")"
  printf 'state=%s\n' "$(sed -n 's/^State:[[:space:]]*//p' "/proc/$2/status")"
  printf 'argv:\n'
  tr '\0' '\n' < "/proc/$2/cmdline"
fi
"""


def process_command(program: str, pid: int) -> tuple[str, tuple[str, ...]]:
    """A testinfra template and arguments that report ``pid``'s executable, state and argv, and ``program`` resolved."""
    return "sh -c %s sh %s %s", (_SCRIPT, program, str(pid))


@dataclasses.dataclass(frozen=True)
class ProcessFacts:
    pid: int
    program: str  # the program path as configured
    program_resolved: str  # symlinks resolved on the host
    exe: str | None  # None: no such process
    state: str
    argv: tuple[str, ...]

    @classmethod
    def parse(cls, pid: int, program: str, text: str) -> "ProcessFacts":
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
        return cls(pid, program, values.get("program") or program, values.get("exe"), values.get("state", ""), tuple(a for a in argv if a))

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
        candidates = {self.program, self.program_resolved}
        return self.exe_path in candidates or any(arg in candidates for arg in self.argv[:2])

    def describe(self) -> str:
        if self.exe is None:
            return f"{self.pid} is not running"
        command = " ".join(self.argv[:3]) + (" ..." if len(self.argv) > 3 else "")
        return f"{self.pid} runs {self.exe} (argv {command or '<none>'}; state {self.state or '?'})"
