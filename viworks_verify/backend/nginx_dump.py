"""The output of ``nginx -T`` parsed into an ``NginxConfig`` (no I/O on the target).

``nginx -T`` tests the configuration and dumps every file it read, each after a
``# configuration file <path>:`` line. ``parse_nginx_dump`` splits the dump into files, parses each
with crossplane (no grep: comments, quoting and blocks are nginx's), and expands ``include``
against the dumped files (not this machine's; crossplane reads files, so each dumped file passes
through a private scratch directory). ``nginx_test_failure`` says why a failed test failed.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
import re
import tempfile
from pathlib import Path

import crossplane

from viworks_verify.backend.nginx_config import Directive, NginxConfig, NginxConfigError

_LOG_PREFIX = re.compile(r"^nginx: |^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?=\[)|(?<=\] )\d+#\d+: ")
_FILE_HEADER = re.compile(r"^# configuration file (?P<path>.+):\s*$")


def split_dump(text: str) -> dict[str, str]:
    """The files of an ``nginx -T`` dump: {path: text}, in the order nginx read them."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines(keepends=True):
        match = _FILE_HEADER.match(line)
        if match:
            current = files.setdefault(match["path"], [])
            continue
        if current is not None:
            current.append(line)
    return {path: "".join(lines) for path, lines in files.items()}


def parse_nginx_dump(text: str) -> NginxConfig:
    files = split_dump(text)
    if not files:
        raise NginxConfigError("no '# configuration file <path>:' section: not the output of nginx -T")
    parsed: dict[str, list[Directive]] = {}
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="viworks-nginx-") as scratch:
        for index, (path, body) in enumerate(files.items()):
            # crossplane reads files: give it each dumped file alone (single=True: no include
            # following on this machine) and without context checks (an included file's context
            # is its includer's, restored below).
            scratch_file = Path(scratch) / f"{index}.conf"
            scratch_file.write_text(body)
            payload = crossplane.parse(str(scratch_file), single=True, check_ctx=False, comments=False)
            for error in payload["errors"]:
                errors.append(f"{path}:{error.get('line')}: {error['error'].replace(str(scratch_file), path)}")
            parsed[path] = (
                [_directive(stmt, path) for stmt in payload["config"][0]["parsed"]] if payload["config"] else []
            )
    main_file = next(iter(files))
    tree = _expand_includes(parsed[main_file], parsed, posixpath.dirname(main_file), errors, (main_file,))
    return NginxConfig(files=tuple(files), main_file=main_file, tree=tree, errors=errors)


def _directive(stmt: dict, path: str) -> Directive:
    block = stmt.get("block")
    return Directive(
        name=stmt["directive"],
        args=tuple(stmt.get("args", ())),
        file=path,
        line=int(stmt.get("line", 0)),
        block=[_directive(s, path) for s in block] if block is not None else None,
    )


def _expand_includes(
    directives: list[Directive],
    parsed: dict[str, list[Directive]],
    prefix: str,
    errors: list[str],
    stack: tuple[str, ...],
) -> list[Directive]:
    expanded: list[Directive] = []
    for directive in directives:
        if directive.name == "include" and directive.args:
            pattern = directive.args[0]
            if not pattern.startswith("/"):
                pattern = posixpath.join(prefix, pattern)
            matches = sorted(path for path in parsed if _glob_match(path, pattern))
            if not matches and not any(ch in pattern for ch in "*?["):
                errors.append(f"{directive.where}: include {pattern}: not in the dump")
            for path in matches:
                if path in stack:
                    errors.append(f"{directive.where}: include loop through {path}")
                    continue
                expanded.extend(_expand_includes(parsed[path], parsed, prefix, errors, (*stack, path)))
            continue
        if directive.block is not None:
            directive = dataclasses.replace(
                directive, block=_expand_includes(directive.block, parsed, prefix, errors, stack)
            )
        expanded.append(directive)
    return expanded


def _glob_match(path: str, pattern: str) -> bool:
    """glob(3) semantics: wildcards do not cross a ``/``."""
    path_parts, pattern_parts = path.split("/"), pattern.split("/")
    return len(path_parts) == len(pattern_parts) and all(
        fnmatch.fnmatchcase(p, q) for p, q in zip(path_parts, pattern_parts)
    )


def nginx_test_failure(stderr: str) -> str | None:
    """The line of ``nginx -t``/``-T`` stderr that says why the test failed, without timestamp and pid."""
    lines = [_LOG_PREFIX.sub("", line.strip()) for line in stderr.splitlines() if line.strip()]
    return next(
        (line for line in lines if line.startswith(("[emerg]", "[alert]"))),
        lines[0] if lines else None,
    )
