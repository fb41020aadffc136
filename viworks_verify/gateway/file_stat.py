"""Owner, mode, size and type of many files on a host, read with ONE GNU ``stat`` command.

Sans-I/O: ``FORMAT`` is what the gateway reader's script asks ``stat -L -c`` for, and
``parse_stat`` reads what it printed into ``FileFacts``. Symlinks are followed (``-L``): what matters
is the file a program opens, and a symlink's own mode is always 0777.
"""

from __future__ import annotations

import re

from viworks_verify.core.file_facts import FileFacts, FileTable

SEPARATOR = "|"
# %n (the name as given) last, so a path holding the separator still parses.
FORMAT = SEPARATOR.join(("%a", "%u", "%U", "%g", "%G", "%s", "%F", "%n"))
_ERROR = re.compile(r"""^stat: cannot (?:stat|statx) (?P<quoted>'(?:[^']|'\\'')*'|"[^"]*"|\S+): (?P<reason>.+)$""")


def parse_stat(output: str) -> FileTable:
    """What one ``stat -L -c FORMAT`` run printed (its output and errors, in any order): each path's facts, or why
    it could not be read."""
    stats = {}
    errors = {}
    for line in output.splitlines():
        match = _ERROR.match(line.strip())
        if match:
            errors[_unquote(match["quoted"])] = match["reason"].strip()
            continue
        fields = line.split(SEPARATOR, 7)
        if len(fields) != 8 or not fields[1].isdigit() or not fields[3].isdigit() or not fields[5].isdigit():
            continue
        mode, uid, user, gid, group, size, kind, path = fields
        try:
            stats[path] = FileFacts(path, kind, int(mode, 8), user, group, int(uid), int(gid), int(size))
        except ValueError:
            continue
    return FileTable(stats, errors)


def _unquote(text: str) -> str:
    """Undo the shell quoting GNU tools use for names in messages ('it'\\''s' -> it's)."""
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("'\\''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text
