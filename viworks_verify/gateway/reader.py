"""Read a gateway host into a ``GatewaySnapshot``: one round trip over its one SSH connection.

One sectioned ``sh`` script reads the clock, the unit's properties, the agent's .env, the
listeners, the unit's journal since its last start, the unit's main process, and what the .env
names: one ``stat`` of every required file, the client certificate and trust bundle, and the
public half of the client key (``openssl pkey -pubout`` on the host: the private key never crosses
the connection). The script finds the .env's paths with one awk; where Python's reading of the .env
(quoting, ``export``) names other paths, a second round trip reads those.

Sans-I/O where it matters: the scripts and the parsing of their sections are plain functions;
``read_gateway`` takes any ``run_script(script, *args)`` (``TargetHost.run_script``: the script goes to
``/bin/sh -s`` on standard input, as root where the host says so, so sudo never logs it).
"""

from __future__ import annotations

import base64
import dataclasses
import posixpath
import time
import tomllib
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization

from viworks_verify.core import clock
from viworks_verify.core.envfile import is_secret_name, parse_env
from viworks_verify.core.fact import Fact
from viworks_verify.core.file_facts import FileTable
from viworks_verify.core.redaction import REDACTOR
from viworks_verify.core.secret_hash import SecretHasher
from viworks_verify.gateway import journal, scripts_root, ss_listeners
from viworks_verify.gateway.artifacts import Artifacts, parse_sha256sum
from viworks_verify.gateway.config import AgentToml, effective
from viworks_verify.gateway.env import CERT_PATH, KEY_PATH, SCRIPTS_ROOT, TRUST_BUNDLE, required_paths
from viworks_verify.gateway.file_stat import FORMAT as STAT_FORMAT
from viworks_verify.gateway.file_stat import parse_stat
from viworks_verify.gateway.processes import ProcessFacts
from viworks_verify.gateway.snapshot import GatewaySnapshot
from viworks_verify.gateway.systemd_unit import PROPERTIES, UnitProperties
from viworks_verify.pki import certs, public_keys
from viworks_verify.pki.pem import PemCertificates, TrustAnchors
from viworks_verify.target.connections import HostUnreachable, connection_error
from viworks_verify.target.settings import Gateway

JOURNAL_LINES = 20
_NO_PATTERN = "^$"  # journal lines are never empty: matches nothing, when no connected-session line is configured

# The scripts root as it is, $root (every entry, links not followed), and its files by content.
_ROOT_PART = r"""
printf '@@ scripts-root\n'
if [ -z "$root" ]; then echo 'state=unset'
elif [ -d "$root" ]; then echo 'state=directory'; find "$root" -mindepth 1 -maxdepth 1 -printf 'LISTING_FORMAT' 2>&1
else echo 'state=missing'; fi
printf '@@ root-sha256\n'; [ -d "$root" ] && find "$root" -mindepth 1 -maxdepth 1 -type f -exec sha256sum -- {} + 2>&1
""".replace("LISTING_FORMAT", scripts_root.LISTING_FORMAT)

# The identity files' sections, shared by both scripts: $cert, $ca, $key set, the paths to stat in "$@".
_FILES_PART = r"""
printf '@@ stat\n'; [ $# -gt 0 ] && LC_ALL=C stat -L -c 'STAT_FORMAT' -- "$@" 2>&1
printf '@@ certificate\n'; [ -n "$cert" ] && cat -- "$cert" 2>&1; printf '@@ certificate-rc %s\n' "$?"
printf '@@ trust\n'; [ -n "$ca" ] && cat -- "$ca" 2>&1; printf '@@ trust-rc %s\n' "$?"
printf '@@ key\n'; [ -n "$key" ] && openssl pkey -in "$key" -pubout -passin pass: 2>&1; printf '@@ key-rc %s\n' "$?"
""".replace("STAT_FORMAT", STAT_FORMAT)

# The .env's values the script itself needs, one per line in a fixed order (empty when unset), read
# as Python's parse_env reads them for the common forms (export, spaces around "=", quotes); where
# it differs, read_gateway notices and asks again.
_ENV_PATHS_AWK = (
    r"""
{ sub(/^[ \t]+/, ""); sub(/^export[ \t]+/, ""); eq = index($0, "="); if (eq == 0 || /^#/) next
  name = substr($0, 1, eq - 1); sub(/[ \t]+$/, "", name)
  value = substr($0, eq + 1); sub(/^[ \t]+/, "", value); sub(/[ \t\r]+$/, "", value)
  if (value ~ /^".*"$/ || value ~ /^\047.*\047$/) value = substr(value, 2, length(value) - 2)
  v[name] = value }
END { print v["CERT_PATH"]; print v["TRUST_BUNDLE"]; print v["KEY_PATH"]; print v["SCRIPTS_ROOT"] }
""".replace("CERT_PATH", CERT_PATH)
    .replace("TRUST_BUNDLE", TRUST_BUNDLE)
    .replace("KEY_PATH", KEY_PATH)
    .replace("SCRIPTS_ROOT", SCRIPTS_ROOT)
)

# $1 unit, $2 env file, $3 the connected-session pattern (awk ERE), $4 the agent binary, then the
# script names. Each section starts "@@ name"; a section's exit status follows as "@@ name-rc N".
# Every process started costs the host (and, on a fleet sharing cores, the run): what the shell can
# do itself (picking properties, building the path list) it does without one.
HOST_SCRIPT = (
    r"""
unit=$1 envf=$2 pattern=$3 binary=$4; shift 4
printf '@@ clock\n'; date -u +%s.%N
show=$(systemctl show "$unit" --no-pager --property=PROPERTIES 2>&1); rc=$?
printf '@@ unit\n%s\n@@ unit-rc %s\n' "$show" "$rc"
inv= pid= prog= wd= frag= drops= nl='
' paths=
while IFS= read -r line; do
  case $line in
    InvocationID=*) inv=${line#*=} ;;
    MainPID=*) pid=${line#*=} ;;
    ExecStart=*path=*) prog=${line#*path=}; prog=${prog%%[ ;]*} ;;
    EnvironmentFiles=/*) line=${line#*=}; paths=$paths${line%% (ignore_errors=*}$nl ;;
    WorkingDirectory=*) wd=${line#*=}; wd=${wd#[-!]} ;;
    FragmentPath=/*) frag=${line#*=} ;;
    DropInPaths=/*) drops=${line#*=} ;;
  esac
done <<EOF
$show
EOF
printf '@@ env\n'; cat -- "$envf" 2>/dev/null; printf '\n@@ env-rc %s\n' "$?"
printf '@@ agent-toml\n'; [ -n "$wd" ] && [ -e "${wd%/}/agent.toml" ] && cat -- "${wd%/}/agent.toml" 2>&1
printf '\n@@ agent-toml-rc %s\n' "$?"
{ IFS= read -r cert; IFS= read -r ca; IFS= read -r key; IFS= read -r root; } <<EOF
$(awk 'ENV_PATHS_AWK' "$envf" 2>/dev/null)
EOF
printf '@@ listeners\n'; ss -H -tulpn 2>&1; printf '@@ listeners-rc %s\n' "$?"
case "$inv" in
  *[!0-9a-f]*|'') ;;
  *)
    # One pass over this invocation's lines: the last one matching the pattern, and the last few.
    journalctl "_SYSTEMD_INVOCATION_ID=$inv" -o short-iso --no-pager -q | P="$pattern" N=JOURNAL_LINES awk '
      $0 ~ ENVIRON["P"] { matched = $0 }
      { last[NR % ENVIRON["N"]] = $0 }
      END {
        print "@@ journal-connected"; if (matched != "") print matched
        print "@@ journal-last"; for (i = NR - ENVIRON["N"] + 1; i <= NR; i++) if (i > 0) print last[i % ENVIRON["N"]]
      }'
    ;;
esac
printf '@@ process\n'
if [ -n "$prog" ]; then
  printf 'program=%s\n' "$(readlink -f -- "$prog")"
  if [ "${pid:-0}" -gt 0 ] 2>/dev/null && [ -d "/proc/$pid" ]; then
    printf 'exe=%s\n' "$(readlink -- "/proc/$pid/exe")"
    while IFS= read -r line; do
      case $line in State:*) line=${line#State:}; printf 'state=%s\n' "${line#"${line%%[! 	]*}"}"; break ;; esac
    done < "/proc/$pid/status"
    printf 'argv:\n'
    tr '\0' '\n' < "/proc/$pid/cmdline"
  fi
fi
printf '@@ paths\ncertificate=%s\ntrust=%s\nkey=%s\nroot=%s\n' "$cert" "$ca" "$key" "$root"
# The release artifacts by content: the program, the unit file and its drop-ins (then the scripts root).
printf '@@ sha256\n'
[ "$prog" = "$binary" ] && prog_hashed= || prog_hashed=$prog
sha256sum -- "$binary" $prog_hashed $frag $drops 2>&1
ROOT_PART
for p in "$binary" "$envf" "$prog" "$cert" "$key" "$ca"; do [ -n "$p" ] && paths=$paths$p$nl; done
if [ -n "$root" ]; then for s in "$@"; do paths=$paths${root%/}/$s$nl; done; fi
IFS=$nl; set -f; set -- $paths; unset IFS; set +f
FILES_PART
""".replace("PROPERTIES", ",".join(PROPERTIES))
    .replace("JOURNAL_LINES", str(JOURNAL_LINES))
    .replace("ENV_PATHS_AWK", _ENV_PATHS_AWK)
    .replace("FILES_PART", _FILES_PART)
    .replace("ROOT_PART", _ROOT_PART)
)

# The second round trip, only when the script's reading of the .env missed paths Python's names:
# $1 certificate, $2 trust bundle, $3 key, $4 scripts root ('' when not set), then "--", then the paths to stat.
FILES_SCRIPT = r"""
cert=$1 ca=$2 key=$3 root=$4; shift 5
ROOT_PART
FILES_PART
""".replace("FILES_PART", _FILES_PART).replace("ROOT_PART", _ROOT_PART)


def sections(text: str) -> dict[str, str]:
    """``@@ name`` sections of a script's output; ``@@ name-rc N`` lines become ``{"name-rc": "N"}``."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if line.startswith("@@ "):
            header = line[3:].strip()
            name, _, rest = header.partition(" ")
            if name.endswith("-rc"):
                found[name] = [rest]
                current = None
            else:
                current = found.setdefault(name, [])
            continue
        if current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip("\n") for name, lines in found.items()}


class _Unreachable(Exception):
    pass


def read_gateway(
    host_id: str,
    name: str,
    run_script: Callable[..., Any],
    settings: Gateway,
    hasher: SecretHasher,
    read_secret_file: Callable[[str], bytes | None] | None = None,
) -> tuple[GatewaySnapshot, tuple[str, ...]]:
    """Every fact the gateway checks need, and the secret values the reading saw (for the run to redact).
    ``run_script(script, *args)`` runs a shell script with those arguments."""
    started = time.time()
    snap = GatewaySnapshot(host=host_id, name=name, gathered_at=started)
    try:
        before = time.time()
        first = _run(
            host_id,
            run_script,
            HOST_SCRIPT,
            settings.unit,
            settings.env_file,
            settings.connected_log_pattern or _NO_PATTERN,
            settings.binary_path,
            *settings.scripts,
        )
        after = time.time()
    except _Unreachable as exc:
        snap.connection = Fact.failed(str(exc))
        snap.gather_ms = round((time.time() - started) * 1000, 1)
        return snap, ()
    parts = sections(first.stdout)
    snap.clock_skew = _clock(host_id, parts.get("clock", ""), before, after)
    snap.unit = _unit(host_id, settings.unit, parts, first)
    snap.env, secrets = _env(host_id, settings.env_file, parts, hasher)
    redact = REDACTOR.with_secrets(*secrets).redact
    snap.listeners = _listeners(host_id, parts)
    snap.journal = _journal(
        host_id, settings.unit, parts, redact, looked_for=settings.connected_log_pattern is not None
    )
    unit = snap.unit.value if snap.unit.ok and snap.unit.value else UnitProperties(settings.unit, {})
    snap.process = _process(unit, parts.get("process", ""), redact)
    toml_path = posixpath.join(unit.get("WorkingDirectory").lstrip("-!") or settings.working_directory, "agent.toml")
    snap.agent_toml = _agent_toml(host_id, toml_path, parts, hasher)

    # The files the agent will open are named by its effective configuration (.env over agent.toml).
    toml_values = snap.agent_toml.value.values if snap.agent_toml.ok and snap.agent_toml.value else None
    env_values = effective(
        parse_env(parts.get("env", "")) if snap.env.ok else {}, settings.env_file, toml_values, toml_path
    ).values
    cert, ca, key, root = (env_values.get(k, "").strip() for k in (CERT_PATH, TRUST_BUNDLE, KEY_PATH, SCRIPTS_ROOT))
    table = parse_stat(parts.get("stat", ""))
    read_by_script = dict(line.split("=", 1) for line in parts.get("paths", "").splitlines() if "=" in line)
    missed = [p for p in _required_files(settings, unit, env_values) if p not in table.stats and p not in table.errors]
    read_as = tuple(read_by_script.get(name) for name in ("certificate", "trust", "key", "root"))
    if missed or read_as != (cert, ca, key, root):
        # The script read the .env otherwise than Python does (quoting): one more round trip, for those paths.
        try:
            second = _run(
                host_id,
                run_script,
                FILES_SCRIPT,
                cert,
                ca,
                key,
                root,
                "--",
                *missed,
            )
        except _Unreachable as exc:
            snap.files = snap.client_certificate = snap.trust_bundle = snap.client_key_spki = Fact.failed(str(exc))
            snap.scripts_root = snap.artifacts = Fact.failed(str(exc))
            snap.gather_ms = round((time.time() - started) * 1000, 1)
            return snap, secrets
        again = sections(second.stdout)
        more = parse_stat(again.get("stat", ""))
        table = FileTable({**table.stats, **more.stats}, {**table.errors, **more.errors})
        parts.update({k: v for k, v in again.items() if k != "stat"})
    snap.files = Fact(table)
    snap.scripts_root = _scripts_root(host_id, root, parts)
    digests, errors = parse_sha256sum(parts.get("sha256", "") + "\n" + parts.get("root-sha256", ""))
    snap.artifacts = Fact(Artifacts(digests, errors))
    snap.client_certificate = _pem_section(
        host_id, settings.env_file, CERT_PATH, cert, parts, "certificate", bundle=False
    )
    snap.trust_bundle = _pem_section(host_id, settings.env_file, TRUST_BUNDLE, ca, parts, "trust", bundle=True)
    snap.client_key_spki = _key(host_id, settings.env_file, key, parts, read_secret_file)
    snap.gather_ms = round((time.time() - started) * 1000, 1)
    return snap, secrets


def _run(host_id: str, run_script: Callable[..., Any], script: str, *args: str):
    try:
        return run_script(script, *args)
    except HostUnreachable as exc:
        raise _Unreachable(str(exc)) from None
    except Exception as exc:
        raise _Unreachable(f"{host_id} unreachable: {connection_error(exc)}") from None


def _clock(host_id: str, text: str, before: float, after: float) -> Fact:
    try:
        return Fact(clock.ClockSkew.measured(clock.parse_epoch(text), before, after))
    except ValueError as exc:
        return Fact.failed(f"{host_id}: cannot read its clock ({clock.COMMAND}: {exc})")


def _unit(host_id: str, unit: str, parts: dict[str, str], result: Any) -> Fact:
    if parts.get("unit-rc", "1") != "0":
        return Fact.failed(
            f"{host_id}: systemctl show {unit} failed: {(result.stderr or parts.get('unit', '')).strip()[:200]}"
        )
    return Fact(UnitProperties.parse(unit, parts.get("unit", "")))


def _agent_toml(host_id: str, path: str, parts: dict[str, str], hasher: SecretHasher) -> Fact:
    """agent.toml as parsed (secret-named values as their keyed hash); absent is a fact, not a problem."""
    if parts.get("agent-toml-rc", "1") != "0":
        return Fact(AgentToml(path, present=False))
    try:
        values = tomllib.loads(parts.get("agent-toml", ""))
    except tomllib.TOMLDecodeError as exc:
        return Fact.failed(f"{host_id}: {path}: expected valid TOML; found: {exc}")

    def masked(table: dict[str, Any]) -> dict[str, Any]:
        return {
            key: masked(value) if isinstance(value, dict) else hasher(str(value)) if is_secret_name(key) else value
            for key, value in table.items()
        }

    return Fact(AgentToml(path, present=True, values=masked(values)))


def _env(host_id: str, env_file: str, parts: dict[str, str], hasher: SecretHasher) -> tuple[Fact, tuple[str, ...]]:
    """The .env with secret values as their keyed hash, and those values."""
    if parts.get("env-rc", "1") != "0":
        return Fact.failed(
            f"{host_id}: {env_file} cannot be read (missing?); expected the agent's environment file"
        ), ()
    values = parse_env(parts.get("env", ""))
    secrets = tuple(value for key, value in values.items() if is_secret_name(key))
    return Fact({key: hasher(value) if is_secret_name(key) else value for key, value in values.items()}), secrets


def _listeners(host_id: str, parts: dict[str, str]) -> Fact:
    if parts.get("listeners-rc", "1") != "0":
        return Fact.failed(
            f"{host_id}: {ss_listeners.COMMAND} failed (exit {parts.get('listeners-rc', '?')}): "
            f"{parts.get('listeners', '').strip()[:200]}"
        )
    return Fact(ss_listeners.HostListeners(tuple(ss_listeners.parse(parts.get("listeners", "")))))


def _journal(
    host_id: str, unit: str, parts: dict[str, str], redact: Callable[[str], str], looked_for: bool = True
) -> Fact:
    if "journal-connected" not in parts:
        return Fact(journal.UnitJournal(looked_for=looked_for))
    connected = journal.parse_lines(parts["journal-connected"])
    last = journal.parse_lines(parts.get("journal-last", ""))
    quoted = journal.line_to_quote(last)
    return Fact(
        journal.UnitJournal(
            connected=redact(str(connected[-1])) if connected else None,
            quote=redact(str(quoted)) if quoted else None,
            lines=len(last),
            looked_for=looked_for,  # False: no connected-session line was configured to look for
            trouble=bool(quoted and journal.reports_trouble(quoted)),
        )
    )


def _process(unit: UnitProperties, text: str, redact: Callable[[str], str]) -> Fact:
    main_pid = unit.get("MainPID")
    pid = int(main_pid) if main_pid.isdigit() else 0
    program = unit.exec_start_path
    if program is None:
        return Fact(ProcessFacts(pid, program="", program_resolved="", exe=None, state="", argv=()))
    facts = ProcessFacts.parse(pid, program, text)
    return Fact(dataclasses.replace(facts, argv=tuple(redact(a) for a in facts.argv[:3])))


def _scripts_root(host_id: str, root: str, parts: dict[str, str]) -> Fact:
    """Every entry of the scripts root; an unset or missing root is a fact (the checks on the .env and
    the scripts say so), not a problem."""
    lines = parts.get("scripts-root", "").splitlines()
    state = lines[0].removeprefix("state=") if lines and lines[0].startswith("state=") else ""
    if state not in ("directory", "missing", "unset"):
        return Fact.failed(
            f"{host_id}: cannot list the scripts root {root or '(unset)'}: {' '.join(lines)[:200] or 'no answer'}"
        )
    entries = scripts_root.parse_listing("\n".join(lines[1:]))
    return Fact(scripts_root.ScriptsRoot(root, state, tuple(entries)))


def _required_files(settings: Gateway, unit: UnitProperties, env: dict[str, str]) -> list[str]:
    paths = [settings.binary_path, settings.env_file, *filter(None, [unit.exec_start_path]), *unit.environment_files]
    paths += list(required_paths(env, settings.scripts).values())
    return list(dict.fromkeys(paths))


def _pem_section(
    host_id: str, env_file: str, key: str, path: str, parts: dict[str, str], name: str, bundle: bool
) -> Fact:
    """A certificate file's PEM text (its leaf, then any chain it carries), or a bundle's certificates."""
    if not path:
        return Fact.failed(f"{host_id}: {env_file}: {key} not set; expected the path of the agent's {key}")
    text = parts.get(name, "")
    if parts.get(f"{name}-rc", "1") != "0":
        return Fact.failed(f"{host_id}: {path} cannot be read (missing?); expected a PEM certificate")
    try:
        found = certs.load_pem_certificates(text.encode())
    except ValueError:
        found = []
    if not found:
        return Fact.failed(f"{host_id}: {path} holds no PEM certificate; expected one")
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in found]
    return Fact(TrustAnchors(tuple(pems)) if bundle else PemCertificates("".join(pems)))


def _key(
    host_id: str,
    env_file: str,
    path: str,
    parts: dict[str, str],
    read_secret_file: Callable[[str], bytes | None] | None,
) -> Fact:
    if not path:
        return Fact.failed(f"{host_id}: {env_file}: {KEY_PATH} not set; expected the path of the agent's {KEY_PATH}")
    rc = parts.get("key-rc", "1")
    if rc == "0":
        try:
            return Fact(base64.b64encode(public_keys.spki_from_public_pem(parts.get("key", ""))).decode())
        except ValueError as exc:
            return Fact.failed(f"{host_id}: {path}: {exc}")
    if rc != str(public_keys.COMMAND_NOT_FOUND) or read_secret_file is None:
        message = next((line.strip() for line in parts.get("key", "").splitlines() if line.strip()), "no message")[:160]
        return Fact.failed(f"{host_id}: {path} unusable as a private key (openssl: {message})")
    # No openssl on the host: read the key once, keep its public half, drop the rest.
    data = read_secret_file(path)
    if data is None:
        return Fact.failed(f"{host_id}: {path} cannot be read (missing?); expected the agent's private key")
    try:
        return Fact(base64.b64encode(public_keys.spki_from_private_pem(data)).decode())
    except ValueError as exc:
        return Fact.failed(f"{host_id}: {path}: {exc}")
    finally:
        data = None
