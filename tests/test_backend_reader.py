"""The backend reader on a fake Docker engine: typed facts, no secret kept, and the same facts live as loaded.

The engine's execs run here, with sh: the agent container's /proc is this machine's, its files and
nginx's TLS files are files under ``tmp_path``; ``nginx -T`` answers a canned dump naming them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import types

import docker
import pytest

from viworks_verify.backend.listeners import ListenerSnapshot
from viworks_verify.backend.reader import read_backend
from viworks_verify.backend.snapshot import BackendSnapshot
from viworks_verify.core.clock import ClockSkew
from viworks_verify.core.secret_hash import SecretHasher
from viworks_verify.pki import certs
from viworks_verify.target.settings import Backend, Edge

PASSWORD = "pg-Secret-9"
CONFIG = f"""
[server]
port = 8080

[database]
url = "postgresql://viworks:{PASSWORD}@viworks-postgres:5432/viworks_agent"

[agent_management]
port = 8081
"""
CA = certs.new_ca("Test Internal CA")


def _inspect(name: str, networks: tuple[str, ...]) -> dict:
    return {
        "Name": f"/{name}",
        "Image": "sha256:0123",
        "Config": {"Image": f"{name}:1.0", "Env": [f"DATABASE_URL=postgresql://viworks:{PASSWORD}@db/x"]},
        "State": {"Status": "running", "Running": True, "StartedAt": "2026-01-01T00:00:00.123456789Z"},
        "RestartCount": 0,
        "NetworkSettings": {"Networks": {n: {"IPAddress": "172.18.0.2", "EndpointID": "x"} for n in networks}},
    }


class FakeEngine:
    """The Docker API calls the reader makes: inspects from a table, execs run here (``nginx -T``: canned)."""

    def __init__(self, containers: dict[str, dict], nginx_dump: str) -> None:
        self.containers, self.nginx_dump = containers, nginx_dump
        self.execs: dict[str, list[str]] = {}
        self.done: dict[str, subprocess.CompletedProcess] = {}

    def info(self) -> dict:
        return {"SystemTime": dt.datetime.now(dt.UTC).isoformat()}

    def inspect_container(self, name: str) -> dict:
        if name not in self.containers:
            raise docker.errors.NotFound(f"No such container: {name}")
        return self.containers[name]

    def exec_create(self, container: str, argv: list[str], **_: object) -> dict:
        exec_id = str(len(self.execs))
        self.execs[exec_id] = argv
        return {"Id": exec_id}

    def exec_start(self, exec_id: str, demux: bool) -> tuple[bytes, bytes]:
        argv = self.execs[exec_id]
        if argv == ["nginx", "-T"]:
            self.done[exec_id] = subprocess.CompletedProcess(argv, 0, self.nginx_dump.encode(), b"")
        else:
            self.done[exec_id] = subprocess.run(argv, capture_output=True, timeout=30)
        return self.done[exec_id].stdout, self.done[exec_id].stderr

    def exec_inspect(self, exec_id: str) -> dict:
        return {"ExitCode": self.done[exec_id].returncode}


@pytest.fixture
def read(tmp_path):
    """``read()``: the fake backend host read as the gather phase reads it, and the secrets it saw."""
    binary, config = tmp_path / "viworks-backend-agent", tmp_path / "backend-agent.toml"
    binary.write_bytes(b"#!/bin/sh\necho agent\n")
    binary.chmod(0o755)
    config.write_text(CONFIG)
    (tmp_path / "client-ca.crt").write_bytes(CA.cert_pem())
    (tmp_path / "server.crt").write_bytes(CA.cert_pem())
    (tmp_path / "server.key").write_text("not read")
    nginx_dump = (
        "# configuration file /etc/nginx/nginx.conf:\n"
        "events {}\nhttp {\n  server {\n    listen 443 ssl;\n    server_name agent.example.com;\n"
        f"    ssl_certificate {tmp_path}/server.crt;\n    ssl_certificate_key {tmp_path}/server.key;\n"
        f"    ssl_client_certificate {tmp_path}/client-ca.crt;\n"
        "    location /ws/ { proxy_pass http://viworks-backend-agent-new:8081; }\n  }\n}\n"
    )
    backend = Backend(binary_path=str(binary), config_path=str(config))
    engine = FakeEngine(
        {
            backend.agent_container: _inspect(backend.agent_container, backend.networks),
            backend.nginx_container: _inspect(backend.nginx_container, backend.edge_networks),
            backend.postgres_container: _inspect(backend.postgres_container, backend.internal_networks),
        },
        nginx_dump,
    )
    client = types.SimpleNamespace(api=engine)
    return lambda: read_backend(
        "local://backend-test",
        "backend-test",
        client,
        backend,
        Edge(domain="agent.example.com"),
        SecretHasher(b"k" * 32),
    )


def test_every_fact_is_read_into_its_typed_value(read, tmp_path):
    snapshot, secrets = read()
    binary = snapshot.agent_files.value[str(tmp_path / "viworks-backend-agent")]
    assert binary.sha256 == hashlib.sha256(b"#!/bin/sh\necho agent\n").hexdigest() and binary.executable
    assert snapshot.agent_files.value[str(tmp_path / "backend-agent.toml")].content is None  # parsed, not kept
    config = snapshot.agent_config.value
    assert (config.server_port, config.ws_port, config.database.host) == (8080, 8081, "viworks-postgres")
    assert str(config.database) == "postgresql://viworks:***@viworks-postgres:5432/viworks_agent"
    assert isinstance(snapshot.agent_listeners.value, ListenerSnapshot)
    assert snapshot.nginx.value.server_for("agent.example.com").client_ca_path == str(tmp_path / "client-ca.crt")
    tls = snapshot.nginx_tls_files.value
    assert tls[str(tmp_path / "client-ca.crt")].content == CA.cert_pem()
    assert tls[str(tmp_path / "server.key")].is_file and tls[str(tmp_path / "server.key")].content is None
    assert snapshot.containers["viworks-nginx"].value.networks == ["viworks-public"]
    assert snapshot.containers["viworks-redis"].problem == (
        "local://backend-test: expected container viworks-redis; found none by that name"
    )
    assert isinstance(snapshot.clock_skew.value, ClockSkew)
    assert snapshot.engine_offset_s == snapshot.clock_skew.value.seconds
    assert secrets == (PASSWORD,)


def test_no_secret_value_is_kept_only_its_keyed_hash(read):
    snapshot, _ = read()
    text = json.dumps(snapshot.to_json())
    assert PASSWORD not in text and "Env" not in text
    assert snapshot.agent_config.value.database.password.startswith("hmac-sha256:")


def test_a_loaded_snapshot_holds_the_same_facts_as_the_one_read(read):
    """What a check judges live is what it judges on the recording (and drift compares alike)."""
    snapshot, _ = read()
    loaded = BackendSnapshot.from_json(json.loads(json.dumps(snapshot.to_json())))
    assert loaded.to_json() == snapshot.to_json()
    for field in ("containers", "agent_files", "agent_config", "agent_listeners", "nginx_tls_files", "clock_skew"):
        assert getattr(loaded, field) == getattr(snapshot, field), field
    assert dict(loaded.canonical()) == dict(snapshot.canonical())
