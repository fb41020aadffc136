"""nginx's effective configuration as the checks query it: servers, locations, inheritance, maps.

Built from the output of ``nginx -T`` by ``nginx_dump.parse_nginx_dump`` (no I/O on the target);
it exposes the parts the checks need::

    config = parse_nginx_dump(text)
    server = config.server_for("agent.example.com", 443)
    ws = server.location_for("/ws/agent")
    ws.proxy_targets, ws.header("Upgrade"), ws.read_timeout_s, server.client_verification("/ws/agent")

Directive lookups follow nginx's inheritance: a directive not set in a location is taken from the
nearest enclosing block that sets it (server, then http); that is also how array directives such
as ``proxy_set_header`` inherit (only when the inner level sets none).

An ``NginxConfig`` is also the value of a backend snapshot's fact: saved as its tree of directives,
compared as structure (a directive's file and line, or the include it came through, are not part of
it; a block is keyed by what it is, ``server[agent.example.com:443]``, ``location[/ws/]``).
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Iterator
from typing import Any

from viworks_verify.core.canonical import Canonical, Observed, key

VARIABLE = re.compile(r"\$\{?([A-Za-z0-9_]+)\}?")  # $name or ${name}
_TIME_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|M|y)?")
_TIME_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}
_DEFAULT_READ_TIMEOUT_S = 60.0
DATA_BLOCKS = frozenset({"map", "geo", "types", "split_clients", "match"})  # nginx blocks whose lines are data


class NginxConfigError(ValueError):
    """A dump that cannot be read as nginx configuration."""


# ---------------------------------------------------------------------------------------- model


@dataclasses.dataclass(eq=False)
class Directive:
    name: str
    args: tuple[str, ...]
    file: str
    line: int
    block: list[Directive] | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def __str__(self) -> str:
        text = " ".join((self.name, *(_quote(a) for a in self.args)))
        return text + (" { ... }" if self.block is not None else ";")

    def to_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"name": self.name, "args": list(self.args), "file": self.file, "line": self.line}
        if self.block is not None:
            item["block"] = [child.to_json() for child in self.block]
        return item

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Directive:
        block = data.get("block")
        return cls(
            name=data["name"],
            args=tuple(data["args"]),
            file=data["file"],
            line=data["line"],
            block=[cls.from_json(child) for child in block] if block is not None else None,
        )


def _quote(arg: str) -> str:
    return f'"{arg}"' if (not arg or any(c.isspace() or c in ";{}\"'" for c in arg)) else arg


class Block:
    """A block (http, server, location) and its enclosing blocks, for inherited lookups."""

    def __init__(self, directive: Directive, parent: Block | None) -> None:
        self.directive = directive
        self.parent = parent

    @property
    def directives(self) -> list[Directive]:
        return self.directive.block or []

    def own(self, name: str) -> list[Directive]:
        """Directives ``name`` set in this block itself (not inherited)."""
        return [d for d in self.directives if d.name == name]

    def effective(self, name: str) -> list[Directive]:
        """Directives ``name`` in force here: this block's, or the nearest enclosing block's."""
        block: Block | None = self
        while block is not None:
            found = block.own(name)
            if found:
                return found
            block = block.parent
        return []

    def value(self, name: str) -> tuple[str, ...] | None:
        """Arguments of the last ``name`` in force here (nginx: the last one wins), or None."""
        found = self.effective(name)
        return found[-1].args if found else None

    @property
    def ifs(self) -> list[Directive]:
        return self.own("if")


class Location(Block):
    def __init__(self, directive: Directive, parent: Block, server: Server) -> None:
        super().__init__(directive, parent)
        self.server = server
        args = directive.args
        self.modifier = args[0] if len(args) == 2 else ""  # "", "=", "^~", "~", "~*"
        self.match = args[-1] if args else ""

    def __repr__(self) -> str:
        return f"Location({(self.modifier + ' ' if self.modifier else '')}{self.match} at {self.directive.where})"

    def text(self) -> str:
        """The block as nginx configuration (evidence for a report), with where it was found."""
        head = " ".join(("location", *(a for a in (self.modifier, self.match) if a)))
        body = "\n".join(f"    {directive}" for directive in self.directives)
        return f"# {self.directive.where}\n{head} {{\n{body}\n}}"

    @property
    def proxy_pass(self) -> str | None:
        """``proxy_pass`` as written (not inherited: nginx does not inherit it)."""
        found = self.own("proxy_pass")
        return found[-1].args[0] if found and found[-1].args else None

    @property
    def proxy_targets(self) -> list[str]:
        """Where ``proxy_pass`` sends requests: ``scheme://host:port[/uri]``, an upstream's servers expanded."""
        target = self.proxy_pass
        if target is None:
            return []
        scheme, sep, rest = target.partition("://")
        if not sep:
            return [target]
        host, slash, uri = rest.partition("/")
        servers = self.server.config.upstream(host)
        if servers is None:
            return [target]
        suffix = slash + uri
        return [f"{scheme}://{server}{suffix}" for server in servers]

    @property
    def proxy_http_version(self) -> str:
        found = self.value("proxy_http_version")
        return found[0] if found else "1.0"  # nginx's default

    @property
    def headers(self) -> dict[str, str]:
        """``proxy_set_header`` in force here, names lower-cased (nginx's inheritance rule applies)."""
        return {
            d.args[0].lower(): d.args[1] if len(d.args) > 1 else ""
            for d in self.effective("proxy_set_header")
            if d.args
        }

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def read_timeout_s(self) -> float:
        found = self.value("proxy_read_timeout")
        return parse_time(found[0]) if found else _DEFAULT_READ_TIMEOUT_S

    @property
    def read_timeout_text(self) -> str:
        found = self.value("proxy_read_timeout")
        return found[0] if found else "60s (nginx default)"

    @property
    def locations(self) -> list[Location]:
        return [Location(d, self, self.server) for d in self.own("location")]


@dataclasses.dataclass(frozen=True)
class Listen:
    address: str | None  # None: every address
    port: int
    ssl: bool
    raw: str


class Server(Block):
    def __init__(self, directive: Directive, parent: Block, config: NginxConfig) -> None:
        super().__init__(directive, parent)
        self.config = config

    def __repr__(self) -> str:
        return f"Server({' '.join(self.server_names) or '_'} at {self.directive.where})"

    @property
    def where(self) -> str:
        return self.directive.where

    @property
    def server_names(self) -> list[str]:
        return [name for d in self.own("server_name") for name in d.args]

    @property
    def listens(self) -> list[Listen]:
        found = self.own("listen")
        if not found:
            return [Listen(None, 80, False, "80 (nginx default)")]
        return [_parse_listen(d.args) for d in found if d.args]

    def listens_on(self, port: int) -> list[Listen]:
        return [listen for listen in self.listens if listen.port == port]

    def serves(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        for name in (n.lower() for n in self.server_names):
            if name == domain or (name.startswith("*.") and domain.endswith(name[1:])):
                return True
            if name.startswith(".") and (domain == name[1:] or domain.endswith(name)):
                return True
        return False

    @property
    def locations(self) -> list[Location]:
        return [Location(d, self, self) for d in self.own("location")]

    def _all_locations(self) -> Iterator[Location]:
        pending = list(self.locations)
        while pending:
            location = pending.pop(0)
            yield location
            pending.extend(location.locations)

    def locations_proxying_to(self, host: str) -> list[tuple[Location, str]]:
        """Every location (nested ones too) whose ``proxy_pass`` reaches ``host``, with the target it names."""
        found = []
        for location in self._all_locations():
            targets = [t for t in location.proxy_targets if t.partition("://")[2].split("/")[0].split(":")[0] == host]
            if targets:
                found.append((location, targets[0]))
        return found

    def location_for(self, uri: str) -> Location | None:
        """The location nginx picks for a request to ``uri`` (its own rules: an exact ``=`` match; else
        the longest prefix, kept if it is ``^~``; else the first regex that matches; else that prefix)."""
        candidates = list(self._all_locations())
        for location in candidates:
            if location.modifier == "=" and location.match == uri:
                return location
        prefixes = [loc for loc in candidates if loc.modifier in ("", "^~") and uri.startswith(loc.match)]
        longest = max(prefixes, key=lambda loc: len(loc.match), default=None)
        if longest is not None and longest.modifier == "^~":
            return longest
        for location in candidates:
            if location.modifier in ("~", "~*"):
                try:
                    if re.search(location.match, uri, re.IGNORECASE if location.modifier == "~*" else 0):
                        return location
                except re.error:
                    continue
        return longest

    def location(self, prefix: str) -> Location | None:
        """The prefix location (``location /ws/`` or ``location ^~ /ws/``) for exactly ``prefix``."""
        for location in self._all_locations():
            if location.modifier in ("", "^~") and location.match == prefix:
                return location
        return None

    def _path(self, value: str) -> str:
        # Relative paths are relative to nginx's configuration prefix: the main file's directory.
        return value if value.startswith("/") or "$" in value else posixpath.join(self.config.prefix, value)

    @property
    def client_ca_path(self) -> str | None:
        found = self.value("ssl_client_certificate")
        return self._path(found[0]) if found else None

    @property
    def certificate_paths(self) -> list[str]:
        return [self._path(d.args[0]) for d in self.effective("ssl_certificate") if d.args]

    @property
    def key_paths(self) -> list[str]:
        return [self._path(d.args[0]) for d in self.effective("ssl_certificate_key") if d.args]

    @property
    def verify_client(self) -> str:
        found = self.value("ssl_verify_client")
        return found[0] if found else "off"

    def client_verification(self, uri: str) -> ClientVerification:
        """Whether requests to ``uri`` are refused without a client certificate the CA verified.

        Enforced by ``ssl_verify_client on``, or by ``optional`` plus an
        ``if ($ssl_client_verify != SUCCESS) { return 4xx; }`` in the location nginx picks (or the server).
        """
        mode = self.verify_client
        if mode == "on":
            return ClientVerification(True, "ssl_verify_client on")
        if mode != "optional":
            reason = (
                "does not verify against the CA" if mode == "optional_no_ca" else "no client certificate is asked for"
            )
            return ClientVerification(False, f"ssl_verify_client {mode} ({reason})")
        location = self.location_for(uri)
        prefix = location.match if location is not None else uri
        for block, where in ((location, f"location {prefix}"), (self, "server")):
            if block is None:
                continue
            for directive in block.ifs:
                if _refuses_unverified(directive):
                    return ClientVerification(
                        True, f"ssl_verify_client optional + {_describe_if(directive)} in {where}"
                    )
        return ClientVerification(
            False,
            "ssl_verify_client optional without an if ($ssl_client_verify != SUCCESS) { return 403; } "
            f"in location {prefix}",
        )


@dataclasses.dataclass(frozen=True)
class ClientVerification:
    enforced: bool
    how: str


@dataclasses.dataclass
class NginxConfig:
    files: tuple[str, ...]  # the files nginx read, in dump order (their text is the tree)
    main_file: str
    tree: list[Directive]  # the main file with includes expanded
    errors: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "main_file": self.main_file,
            "files": list(self.files),
            "tree": [directive.to_json() for directive in self.tree],
            "errors": list(self.errors),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NginxConfig:
        return cls(
            files=tuple(data.get("files", [])),
            main_file=data.get("main_file", ""),
            tree=[Directive.from_json(d) for d in data.get("tree", [])],
            errors=list(data.get("errors", [])),
        )

    def canonical(self, path: str) -> Canonical:
        yield from _canonical_block(path, self.tree)
        if self.errors:
            yield f"{path}.errors", Observed(sorted(self.errors))

    @property
    def prefix(self) -> str:
        return posixpath.dirname(self.main_file)

    @property
    def http(self) -> Block | None:
        found = [d for d in self.tree if d.name == "http" and d.block is not None]
        return Block(found[0], None) if found else None

    @property
    def servers(self) -> list[Server]:
        http = self.http
        return [Server(d, http, self) for d in http.own("server")] if http else []

    def server_for(self, domain: str, port: int = 443) -> Server | None:
        """The server block nginx picks for ``domain`` on ``port`` (the first one naming it, as nginx does)."""
        for server in self.servers:
            if server.listens_on(port) and server.serves(domain):
                return server
        return None

    def map_of(self, variable: str) -> Directive | None:
        """The ``map SOURCE $variable { ... }`` that defines ``$variable`` (name without the $), if any."""
        http = self.http
        for directive in http.own("map") if http else []:
            if len(directive.args) == 2 and directive.args[1].lstrip("$") == variable:
                return directive
        return None

    def evaluate(self, value: str, request: dict[str, str], depth: int = 0) -> str:
        """``value`` as nginx computes it for a request: variables given in ``request`` (name -> value,
        e.g. ``{"http_upgrade": "websocket"}``) substituted, ``map``-defined ones evaluated, any other
        left as written."""

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in request:
                return request[name]
            mapping = self.map_of(name)
            if mapping is None or depth > 8:
                return match.group(0)
            return self._map_value(mapping, request, depth + 1)

        return VARIABLE.sub(substitute, value)

    def _map_value(self, mapping: Directive, request: dict[str, str], depth: int) -> str:
        """What a ``map`` yields: an exact key first, then its regexes in order, else its default."""
        source = self.evaluate(mapping.args[0], request, depth)
        default, regexes = "", []
        for entry in mapping.block or []:
            key, result = entry.name, entry.args[0] if entry.args else ""
            if key in ("hostnames", "volatile", "include"):
                continue
            if key == "default":
                default = result
            elif key.startswith("~"):
                regexes.append((key, result))
            elif key == source:
                return self.evaluate(result, request, depth)
        for key, result in regexes:
            insensitive = key.startswith("~*")
            pattern = re.sub(
                r"\(\?<(?=[A-Za-z_])", "(?P<", key[2:] if insensitive else key[1:]
            )  # PCRE's (?<name> is Python's (?P<name>
            try:
                found = re.search(pattern, source, re.IGNORECASE if insensitive else 0)
            except re.error:
                continue
            if found:
                captures = {
                    **{str(i): g or "" for i, g in enumerate(found.groups(), 1)},
                    **{k: v or "" for k, v in found.groupdict().items()},
                }
                return self.evaluate(result, {**request, **captures}, depth)
        return self.evaluate(default, request, depth)

    def upstream(self, name: str) -> list[str] | None:
        """``host:port`` of each server of upstream ``name``; None when there is no such upstream."""
        http = self.http
        if http is None:
            return None
        for directive in http.own("upstream"):
            if directive.args and directive.args[0] == name:
                return [d.args[0] for d in directive.block or [] if d.name == "server" and d.args]
        return None


def _canonical_block(path: str, directives: list[Directive]) -> Canonical:
    """A block as its directives' values by name, and each child block under its key."""
    values: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for directive in directives:
        if directive.block is None:
            values.setdefault(directive.name, []).append(" ".join(directive.args))
            continue
        if directive.name in DATA_BLOCKS:  # its lines are a table (key value), not directives
            table = {d.name: " ".join(d.args) for d in directive.block}
            yield f"{path}.{key(directive.name, ' '.join(directive.args))}", Observed(dict(sorted(table.items())))
            continue
        label = _block_label(directive)
        block_key = key(directive.name, label) if label else directive.name
        seen[block_key] = seen.get(block_key, 0) + 1
        if seen[block_key] > 1:  # the same block twice (two server blocks alike): numbered in order
            block_key = key(directive.name, f"{label}#{seen[block_key]}")
        yield from _canonical_block(f"{path}.{block_key}", directive.block)
    for name, args in sorted(values.items()):
        yield f"{path}.{name}", Observed(args[0] if len(args) == 1 else args)


def _block_label(directive: Directive) -> str:
    """What a block is: a server by its names and ports (``agent.example.com:443``), any other by its arguments."""
    if directive.name != "server":
        return " ".join(directive.args)
    names = [" ".join(d.args) for d in directive.block or [] if d.name == "server_name"]
    ports = sorted({_listen_port(d.args) for d in directive.block or [] if d.name == "listen"})
    return f"{' '.join(names) or '_'}:{'/'.join(ports) or '80'}"


def _listen_port(args: tuple[str, ...]) -> str:
    """The port of a ``listen`` as written (``[::]:443 ssl`` -> ``443``); a unix socket as its path."""
    first = args[0] if args else "80"
    return first.rsplit(":", 1)[-1] if not first.startswith("unix:") else first


def _parse_listen(args: tuple[str, ...]) -> Listen:
    target = args[0]
    ssl = "ssl" in args[1:]
    if target.startswith("unix:"):
        return Listen(target, -1, ssl, " ".join(args))
    if target.startswith("["):
        address, _, port = target[1:].partition("]")
        port = port.lstrip(":")
    elif ":" in target:
        address, _, port = target.rpartition(":")
    elif target.isdigit():
        address, port = None, target
    else:
        address, port = target, "80"
    return Listen(address, int(port) if port.isdigit() else 80, ssl, " ".join(args))


def parse_time(value: str) -> float:
    """nginx time (``3600``, ``3600s``, ``1h``, ``1h30m``, ``500ms``) in seconds; a bare number is seconds."""
    text = value.strip()
    if not text:
        raise NginxConfigError("empty time value")
    position, total = 0, 0.0
    for match in _TIME_PART.finditer(text):
        if match.start() != position:
            break
        total += int(match[1]) * _TIME_UNITS[match[2] or "s"]
        position = match.end()
    if position != len(text):
        raise NginxConfigError(f"invalid nginx time {value!r}")
    return total


def _refuses_unverified(directive: Directive) -> bool:
    """``if ($ssl_client_verify != SUCCESS) { return 4xx; }`` (or ``!~ SUCCESS``, or ``= NONE``).

    With ``ssl_verify_client optional`` nginx itself refuses a certificate that fails verification
    (495), so refusing the requests that present none (``NONE``) is the same guarantee.
    """
    args = directive.args
    if len(args) != 3 or args[0] != "$ssl_client_verify":
        return False
    operator, value = args[1], args[2].strip("^$")
    if not ((operator in ("!=", "!~") and value == "SUCCESS") or (operator in ("=", "~") and value == "NONE")):
        return False
    for inner in directive.block or []:
        if inner.name == "return" and inner.args and inner.args[0].isdigit() and 400 <= int(inner.args[0]) < 500:
            return True
    return False


def _describe_if(directive: Directive) -> str:
    inner = "; ".join(str(d) for d in directive.block or [])
    return f"if ({' '.join(directive.args)}) {{ {inner} }}"
