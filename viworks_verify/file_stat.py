"""Owner, mode and type of many files on a host, read with ONE GNU ``stat`` command.

Sans-I/O: ``FORMAT`` is what the gateway reader's script asks ``stat -L -c`` for, and
``FileTable.parse`` reads what it printed. Symlinks are followed (``-L``): what matters
is the file a program opens, and a symlink's own mode is always 0777.
"""

from __future__ import annotations

import dataclasses
import re

SEPARATOR = "|"
# %n (the name as given) last, so a path holding the separator still parses.
FORMAT = SEPARATOR.join(("%a", "%u", "%U", "%g", "%G", "%F", "%n"))
_ERROR = re.compile(r"""^stat: cannot (?:stat|statx) (?P<quoted>'(?:[^']|'\\'')*'|"[^"]*"|\S+): (?P<reason>.+)$""")


@dataclasses.dataclass(frozen=True)
class FileStat:
    path: str
    mode: int  # permission bits, set-id and sticky included
    uid: int
    user: str
    gid: int
    group: str
    kind: str  # "regular file", "directory", ...

    @property
    def octal(self) -> str:
        return format(self.mode, "04o")

    @property
    def is_file(self) -> bool:
        return self.kind in ("regular file", "regular empty file")

    @property
    def executable(self) -> bool:
        return self.is_file and bool(self.mode & 0o111)

    @property
    def group_writable(self) -> bool:
        return bool(self.mode & 0o020)

    @property
    def world_writable(self) -> bool:
        return bool(self.mode & 0o002)

    @property
    def owner(self) -> str:
        return f"{self.user}({self.uid})"


@dataclasses.dataclass(frozen=True)
class FileTable:
    """What one ``stat`` run found: each path's facts, or why it could not be read."""

    stats: dict[str, FileStat]
    errors: dict[str, str]

    @classmethod
    def parse(cls, stdout: str, stderr: str = "") -> "FileTable":
        stats = {}
        for line in stdout.splitlines():
            fields = line.split(SEPARATOR, 6)
            if len(fields) != 7 or not fields[1].isdigit() or not fields[3].isdigit():
                continue
            mode, uid, user, gid, group, kind, path = fields
            try:
                stats[path] = FileStat(path, int(mode, 8), int(uid), user, int(gid), group, kind)
            except ValueError:
                continue
        errors = {}
        for line in stderr.splitlines():
            match = _ERROR.match(line.strip())
            if match:
                errors[_unquote(match["quoted"])] = match["reason"].strip()
        return cls(stats, errors)

    def get(self, path: str) -> FileStat | None:
        return self.stats.get(path)

    def absence(self, path: str) -> str:
        """Why ``path`` has no facts: ``does not exist`` or the error stat gave."""
        reason = self.errors.get(path, "No such file or directory")
        return "does not exist" if reason == "No such file or directory" else f"cannot be read ({reason})"


def _unquote(text: str) -> str:
    """Undo the shell quoting GNU tools use for names in messages ('it'\\''s' -> it's)."""
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("'\\''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text
