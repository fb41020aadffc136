"""A release candidate rehearsed in the lab: the operator's own builds and configs instead of the reference agents.

``viworks-lab up --release DIR`` (or one flag per file) deploys a candidate exactly as production
does: the backend binary at ``/app/viworks-backend-agent`` started with ``--config
/app/config/backend-agent.toml``, the gateway binary at the unit's ExecStart with its ``.env`` and
``agent.toml`` in the WorkingDirectory. A release directory holds any of these files (what it
lacks stays the reference's):

    viworks-backend-agent   backend-agent.toml   viworks-gateway-agent   agent.toml   agent.env

Configs are taken as given. With ``--lab-secrets`` the lab fills the values it owns, and only
those the file has (a missing key stays missing, so it fails as it would in production): the
database and Redis URLs (the lab's credentials and hosts, the candidate's database name), the
JWT secret, and on a gateway the backend URL's host, the agent id, site, pin and the paths of the
lab's PKI. The candidate is copied into the lab's state, so ``up`` keeps rehearsing it until
``up --reference-agents`` or ``down``. Sans-I/O except the copying: texts in, texts out.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tomllib
from pathlib import Path
from urllib.parse import quote, urlsplit

from viworks_lab.engine import LabError
from viworks_verify.gateway.config import OUTBOUND_KEYS

FILES = {
    "backend_binary": "viworks-backend-agent",
    "backend_config": "backend-agent.toml",
    "gateway_binary": "viworks-gateway-agent",
    "gateway_config": "agent.toml",
    "gateway_env": "agent.env",
}


@dataclasses.dataclass(frozen=True)
class Candidate:
    source: str  # where the operator's files came from (for status and logs)
    files: dict[str, Path]  # role (FILES' keys) -> its copy in the lab's state
    lab_secrets: bool
    version: str | None = None  # the release's version as the operator gave it (when the binary prints none)

    def data(self, role: str) -> bytes | None:
        path = self.files.get(role)
        return path.read_bytes() if path is not None else None

    def text(self, role: str) -> str | None:
        data = self.data(role)
        return data.decode() if data is not None else None

    def describe(self) -> str:
        return f"{', '.join(FILES[role] for role in self.files)} from {self.source}" + (
            " (lab secrets filled)" if self.lab_secrets else ""
        )


def take_candidate(
    root: Path, release_dir: Path | None, given: dict[str, Path | None], lab_secrets: bool, version: str | None = None
) -> Candidate:
    """Validate the operator's files and copy them into ``root/candidate`` (replacing an earlier candidate)."""
    chosen: dict[str, Path] = {}
    if release_dir is not None:
        if not release_dir.is_dir():
            raise LabError(f"--release {release_dir}: not a directory")
        chosen = {role: release_dir / name for role, name in FILES.items() if (release_dir / name).is_file()}
        if not chosen:
            raise LabError(f"--release {release_dir}: none of {', '.join(FILES.values())} is in it")
    for role, path in given.items():
        if path is not None:
            chosen[role] = path
    for role, path in chosen.items():
        if not path.is_file() or path.stat().st_size == 0:
            raise LabError(f"the candidate's {FILES[role]} ({path}) is not a non-empty file")
    for role in ("backend_config", "gateway_config"):
        if role in chosen:
            try:
                tomllib.loads(chosen[role].read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise LabError(f"the candidate's {FILES[role]} ({chosen[role]}) is not TOML: {exc}") from None
    store = root / "candidate"
    if store.exists():
        shutil.rmtree(store)
    store.mkdir(parents=True)
    copies = {}
    for role, path in chosen.items():
        copies[role] = store / FILES[role]
        shutil.copyfile(path, copies[role])
    source = str(release_dir) if release_dir is not None else ", ".join(str(p) for p in given.values() if p is not None)
    candidate = Candidate(source, copies, lab_secrets, version)
    (root / "candidate.json").write_text(
        json.dumps({"source": source, "roles": sorted(copies), "lab_secrets": lab_secrets, "version": version}) + "\n"
    )
    return candidate


def load_candidate(root: Path) -> Candidate | None:
    path = root / "candidate.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return Candidate(
        data["source"],
        {role: root / "candidate" / FILES[role] for role in data["roles"]},
        bool(data["lab_secrets"]),
        data.get("version"),
    )


def forget_candidate(root: Path) -> bool:
    """Back to the reference agents; whether there was a candidate."""
    had = (root / "candidate.json").exists()
    (root / "candidate.json").unlink(missing_ok=True)
    shutil.rmtree(root / "candidate", ignore_errors=True)
    return had


# ------------------------------------------------------------------------ values the lab owns


@dataclasses.dataclass(frozen=True)
class BackendSecrets:
    postgres_password: str
    redis_password: str
    jwt_secret: str


def fill_backend_config(text: str, secrets: BackendSecrets) -> str:
    """The candidate's backend config with the lab's database and Redis URLs and JWT secret where it has those keys."""
    data = tomllib.loads(text)
    database = database_name(text) or "viworks_agent"
    values = {
        (
            "database",
            "url",
        ): f"postgresql://viworks:{quote(secrets.postgres_password, safe='')}@viworks-postgres:5432/{database}",
        ("redis", "url"): f"redis://:{quote(secrets.redis_password, safe='')}@viworks-redis:6379/{_redis_db(data)}",
        ("security", "jwt_secret"): secrets.jwt_secret,
    }
    return set_toml_values(text, values)


def database_name(text: str) -> str | None:
    """The database the backend config's ``[database] url`` names (None when it names none)."""
    url = tomllib.loads(text).get("database", {}).get("url")
    if not isinstance(url, str):
        return None
    name = urlsplit(url).path.strip("/")
    return name or None


def _redis_db(data: dict) -> str:
    url = data.get("redis", {}).get("url")
    path = urlsplit(url).path.strip("/") if isinstance(url, str) else ""
    return path if path.isdigit() else "0"


@dataclasses.dataclass(frozen=True)
class GatewayValues:
    """What a gateway host of the lab is: where its backend is, who it is, the lab's PKI."""

    domain: str
    agent_id: str
    site: str
    pins: str
    cert_path: str = "/opt/viworks/agent/certs/client.crt"
    key_path: str = "/opt/viworks/agent/certs/client.key"
    trust_bundle: str = "/opt/viworks/agent/certs/ca.crt"
    signing_pubkey: str = "/opt/viworks/agent/certs/backend-signing.pub"

    def by_env_key(self, current_url: str | None) -> dict[str, str]:
        return {
            "VIW_AGENT_BACKEND_URL": _lab_url(current_url, self.domain),
            "VIW_AGENT_ID": self.agent_id,
            "VIW_AGENT_SITE": self.site,
            "VIW_AGENT_BACKEND_SPKI_PIN": self.pins,
            "VIW_AGENT_CERT_PATH": self.cert_path,
            "VIW_AGENT_KEY_PATH": self.key_path,
            "VIW_AGENT_TRUST_BUNDLE": self.trust_bundle,
            "VIW_AGENT_SIGNING_PUBKEY": self.signing_pubkey,
        }


def _lab_url(url: str | None, domain: str) -> str:
    """The candidate's backend URL pointed at the lab's edge: its scheme and path kept (a wrong path stays wrong)."""
    parts = urlsplit(url or "")
    return f"{parts.scheme or 'wss'}://{domain}{parts.path or '/'}"


def fill_gateway_env(text: str, values: GatewayValues) -> str:
    """The candidate's .env with the lab's values for the keys it has; every other line as given."""
    current = dict(_env_pairs(text))
    owned = values.by_env_key(current.get("VIW_AGENT_BACKEND_URL"))
    lines = []
    for line in text.splitlines():
        name = (
            line.split("=", 1)[0].strip().removeprefix("export ").strip()
            if "=" in line and not line.lstrip().startswith("#")
            else None
        )
        lines.append(f"{name}={owned[name]}" if name in owned else line)
    return "\n".join(lines) + "\n"


def fill_gateway_toml(text: str, values: GatewayValues) -> str:
    """The candidate's agent.toml with the lab's values for the ``[outbound]`` keys it has."""
    outbound = tomllib.loads(text).get("outbound", {})
    owned = values.by_env_key(outbound.get("backend_url") if isinstance(outbound.get("backend_url"), str) else None)
    return set_toml_values(
        text, {("outbound", OUTBOUND_KEYS[env]): value for env, value in owned.items() if env in OUTBOUND_KEYS}
    )


def _env_pairs(text: str):
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, value = line.split("=", 1)
            yield name.strip().removeprefix("export ").strip(), value.strip().strip("'\"")


_SECTION = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_-]+)(\s*=\s*)")


def set_toml_values(text: str, values: dict[tuple[str, str], str]) -> str:
    """``text`` with the string values of ``(section, key)`` replaced where the key is there; nothing added.

    Line by line, so the file stays as its author wrote it (comments, order, layout); a value must
    be a one-line TOML value in the file for it to be replaced (multi-line values are left alone).
    """
    section = ""
    lines = []
    for line in text.splitlines():
        header = _SECTION.match(line)
        if header:
            section = header.group(1).strip()
        else:
            key = _KEY.match(line)
            if key and (section, key.group(2)) in values:
                line = f"{key.group(1)}{key.group(2)}{key.group(3)}{json.dumps(values[(section, key.group(2))])}"
        lines.append(line)
    return "\n".join(lines) + "\n"
