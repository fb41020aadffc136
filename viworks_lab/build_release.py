"""``viworks-lab build-release DIR``: the reference agents as a release candidate, in the form ``up --release`` takes.

What a team's build would hand to its deploy: the two binaries, the backend's config and the
gateway's ``agent.env``, written for a production that is not the lab (``example.com`` hosts,
``CHANGE-ME`` secrets). Rehearsed with ``viworks-lab up --release DIR --lab-secrets``, the lab puts
its own hosts, credentials and identities where those values are.
"""

from __future__ import annotations

from pathlib import Path

from viworks_lab.candidate import FILES
from viworks_lab.layout import BACKEND_VERSION, FIXTURES, render
from viworks_lab.release import build_agent

PRODUCTION_VALUES = {
    "VERSION": BACKEND_VERSION,
    "POSTGRES_PASSWORD": "CHANGE-ME",
    "REDIS_PASSWORD": "CHANGE-ME",
    "JWT_SECRET": "CHANGE-ME",
    "WS_SERVER_ENABLED": "true",
    "DISPATCH_ENABLED": "true",
    "WS_PATH": "/ws/agent",
    "LAB_FAULTS": "",
    "AGENT_DOMAIN": "agent.example.com",
    "AGENT_ID": "gw-site-01",
    "SITE": "site-01",
    "SPKI_PINS": "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
}


def build_release(directory: Path) -> list[str]:
    """Write the candidate's files into ``directory``; one line per file (name, size, sha256)."""
    directory.mkdir(parents=True, exist_ok=True)
    backend, gateway = build_agent("backend"), build_agent("gateway")
    config = render((FIXTURES / "backend" / "backend-agent.toml.template").read_text(), PRODUCTION_VALUES)
    config = config.replace(
        "# /app/config/backend-agent.toml of the lab's backend agent (filled by the lab; holds secrets).",
        f"# /app/config/backend-agent.toml of the ViWorkS backend agent {BACKEND_VERSION} (secrets: CHANGE-ME).",
    )
    config = config.replace("@viworks-postgres:", "@db.example.com:").replace("@viworks-redis:", "@redis.example.com:")
    files = {
        FILES["backend_binary"]: (backend.data, 0o755),
        FILES["backend_config"]: (config.rstrip() + "\n", 0o600),
        FILES["gateway_binary"]: (gateway.data, 0o755),
        FILES["gateway_env"]: (
            render((FIXTURES / "gateway" / "agent.env.template").read_text(), PRODUCTION_VALUES),
            0o600,
        ),
    }
    lines = []
    for name, (content, mode) in files.items():
        path = directory / name
        data = content if isinstance(content, bytes) else content.encode()
        path.write_bytes(data)
        path.chmod(mode)
        lines.append(f"{path}: {len(data)} bytes")
    return lines
