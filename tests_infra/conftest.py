"""Host facts several checks need, read once per host per run (session fixtures).

Each fact costs one Docker API call per run: an inspect per container, one exec in the backend
agent container for its listeners (/proc), one for its files (binary hash, configuration), one
``nginx -T`` in the nginx container and one for the TLS files nginx names. A fixture never fails
by itself: it returns a ``Reading`` whose ``require()`` fails the check that needs it with what went
wrong, so a missing container shows up as a check failure naming the host, not as fixture errors.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from typing import Generic, TypeVar

import docker
import pytest

from viworks_verify.backend_config import BackendConfig, BackendConfigError, parse_backend_config
from viworks_verify.container_files import FileFacts, file_facts_command, parse_file_facts
from viworks_verify.containers import ContainerFacts, parse_docker_time
from viworks_verify.listeners import SNAPSHOT_COMMAND, ListenerSnapshot, SnapshotError, parse_snapshot
from viworks_verify.nginx_config import NginxConfig, NginxConfigError, Server, parse_nginx_dump
from viworks_verify.polling import NotReady, poll_until
from viworks_verify.redaction import REDACTOR

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Reading(Generic[T]):
    """A fact read from a host, or why it could not be read (one line, host id first)."""

    value: T | None
    problem: str | None = None

    def require(self) -> T:
        if self.problem is not None:
            pytest.fail(self.problem, pytrace=False)
        return self.value  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def first_error(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return next((line for line in lines if "emerg" in line or "error" in line.lower()), lines[0] if lines else f"exit {self.exit_code}")[:300]


def exec_in(host, container: str, argv: list[str]) -> Reading[ExecResult]:
    """Run ``argv`` in ``container`` on ``host``'s engine (read-only commands only)."""
    api = host.docker.api
    try:
        exec_id = api.exec_create(container, argv, stdout=True, stderr=True)["Id"]
        stdout, stderr = api.exec_start(exec_id, demux=True)
        exit_code = api.exec_inspect(exec_id).get("ExitCode")
    except docker.errors.NotFound:
        return Reading(None, f"{host.id}: expected container {container}; found none by that name")
    except docker.errors.APIError as exc:
        return Reading(None, f"{host.id}: {container}: cannot exec {argv[0]}: {exc.explanation or exc}"[:400])
    result = ExecResult(exit_code if exit_code is not None else -1, (stdout or b"").decode(errors="replace"), (stderr or b"").decode(errors="replace"))
    return Reading(result)


# ----------------------------------------------------------------------------------- containers


class BackendContainers:
    """The backend host's containers by name, inspected lazily once each."""

    def __init__(self, host) -> None:
        self.host = host
        self._facts: dict[str, ContainerFacts | None] = {}
        self._clock_offset_s: float | None = None

    def inspect(self, name: str) -> ContainerFacts | None:
        """A fresh inspect (for waiting on a change); ``get`` is the cached one."""
        try:
            return ContainerFacts(name, self.host.docker.api.inspect_container(name))
        except docker.errors.NotFound:
            return None

    def get(self, name: str) -> ContainerFacts | None:
        if name not in self._facts:
            self._facts[name] = self.inspect(name)
        return self._facts[name]

    def require(self, name: str) -> ContainerFacts:
        facts = self.get(name)
        if facts is None:
            pytest.fail(f"{self.host.id}: expected container {name}; found none by that name", pytrace=False)
        return facts

    def engine_now(self) -> _dt.datetime:
        """Now by the engine's clock (container start times are the engine's; the suite may run elsewhere)."""
        if self._clock_offset_s is None:
            engine_time = parse_docker_time(self.host.docker.info().get("SystemTime"))
            self._clock_offset_s = (engine_time.timestamp() - time.time()) if engine_time else 0.0
        return _dt.datetime.fromtimestamp(time.time() + self._clock_offset_s, _dt.timezone.utc)

    def watch_settling(self, name: str, window_s: float) -> tuple[ContainerFacts | None, str | None]:
        """Re-inspect a recently restarted container until it has been up ``window_s``.

        Returns the last facts and, when it did not settle, what was seen: it restarted again,
        stopped, or is still short of the window at the deadline.
        """
        first = self.get(name)
        if first is None:
            return None, "missing"
        uptime = first.uptime_s(self.engine_now()) or 0.0
        start_count = first.restart_count

        def settled_or_worse(facts: ContainerFacts | None) -> bool:
            return facts is None or not facts.running or facts.restart_count != start_count or (facts.uptime_s(self.engine_now()) or 0.0) >= window_s

        try:
            facts = poll_until(lambda: self.inspect(name), settled_or_worse, what=f"{name} settling",
                               timeout_s=max(window_s - uptime, 0.0) + 5.0, interval_s=1.0, max_interval_s=5.0).value
        except NotReady as exc:
            last = exc.last if isinstance(exc.last, ContainerFacts) else None
            return last, f"still restarting: {exc.last if last is None else f'{last.restart_count} restarts'}"
        if facts is None:
            return None, "disappeared while watched"
        if facts.restart_count != start_count:
            return facts, f"restarted again while watched ({start_count} -> {facts.restart_count} restarts)"
        if not facts.running:
            return facts, f"went {facts.status} while watched"
        return facts, None


@pytest.fixture(scope="session")
def backend_containers(backend_host) -> BackendContainers:
    return BackendContainers(backend_host)


# ---------------------------------------------------------------------- inside the agent container


@pytest.fixture(scope="session")
def backend_listeners(backend_host, settings) -> Reading[ListenerSnapshot]:
    """TCP listeners of the backend agent container and the processes holding them (one exec)."""
    container = settings.backend.agent_container
    done = exec_in(backend_host, container, SNAPSHOT_COMMAND)
    if done.problem:
        return Reading(None, done.problem)
    try:
        return Reading(parse_snapshot(done.value.stdout))
    except SnapshotError as exc:
        return Reading(None, f"{backend_host.id}: {container}: cannot read /proc for listeners: {exc}; exec said: {done.value.first_error}")


@pytest.fixture(scope="session")
def backend_agent_files(backend_host, settings) -> Reading[dict[str, FileFacts]]:
    """The agent binary (with its sha256) and configuration (with its content), in one exec."""
    backend = settings.backend
    done = exec_in(backend_host, backend.agent_container, file_facts_command(hash=[backend.binary_path], content=[backend.config_path]))
    if done.problem:
        return Reading(None, done.problem)
    facts = parse_file_facts(done.value.stdout)
    if backend.binary_path not in facts:
        return Reading(None, f"{backend_host.id}: {backend.agent_container}: cannot stat files (exec: {done.value.first_error})")
    return Reading(facts)


@pytest.fixture(scope="session")
def backend_config(backend_host, settings, backend_agent_files) -> Reading[BackendConfig]:
    """The agent's TOML configuration, parsed; its secrets are registered with the redactor first."""
    backend = settings.backend
    where = f"{backend_host.id}: {backend.agent_container}: {backend.config_path}"
    if backend_agent_files.problem:
        return Reading(None, backend_agent_files.problem)
    file = backend_agent_files.value[backend.config_path]
    if not file.exists:
        return Reading(None, f"{where} missing; expected the backend agent's TOML configuration")
    if file.content is None:
        return Reading(None, f"{where} is a {file.kind} the exec user cannot read (mode {file.mode_text}, owner {file.owner}); expected a readable TOML file")
    try:
        config = parse_backend_config(file.content.decode(errors="replace"))
    except BackendConfigError as exc:
        return Reading(None, f"{where}: {exc}; expected a valid TOML configuration")
    REDACTOR.register(*config.secrets)
    return Reading(config)


# ----------------------------------------------------------------------------------------- nginx


@pytest.fixture(scope="session")
def nginx_dump(backend_host, settings) -> Reading[ExecResult]:
    """``nginx -T`` in the nginx container: the configuration test's verdict and every file it read."""
    return exec_in(backend_host, settings.backend.nginx_container, ["nginx", "-T"])


@pytest.fixture(scope="session")
def nginx_config(backend_host, settings, nginx_dump) -> Reading[NginxConfig]:
    container = settings.backend.nginx_container
    if nginx_dump.problem:
        return Reading(None, nginx_dump.problem)
    done = nginx_dump.value
    if done.exit_code != 0:
        return Reading(None, f"{backend_host.id}: {container}: nginx -T failed, no configuration to check: {done.first_error}")
    try:
        return Reading(parse_nginx_dump(done.stdout))
    except NginxConfigError as exc:
        return Reading(None, f"{backend_host.id}: {container}: cannot parse the nginx -T output: {exc}")


@pytest.fixture(scope="session")
def agent_server(backend_host, settings, nginx_config) -> Reading[Server]:
    """The server block nginx uses for the agent domain on its HTTPS port."""
    if nginx_config.problem:
        return Reading(None, nginx_config.problem)
    domain, port = settings.edge.domain, settings.edge.https_port
    server = nginx_config.value.server_for(domain, port)
    if server is None:
        servers = ", ".join(
            f"{' '.join(s.server_names) or '_'} on {'/'.join(str(l.port) for l in s.listens)}" for s in nginx_config.value.servers
        )
        return Reading(None, f"{backend_host.id}: {settings.backend.nginx_container}: expected a server block for {domain} on port {port}; found {servers or 'no server blocks'}")
    return Reading(server)


@pytest.fixture(scope="session")
def nginx_tls_files(backend_host, settings, agent_server) -> Reading[dict[str, FileFacts]]:
    """The agent server's certificate, key and client CA files as nginx sees them (keys: stat only)."""
    if agent_server.problem:
        return Reading(None, agent_server.problem)
    server = agent_server.value
    readable = [*server.certificate_paths, *([server.client_ca_path] if server.client_ca_path else [])]
    done = exec_in(backend_host, settings.backend.nginx_container, file_facts_command(stat=server.key_paths, content=readable))
    if done.problem:
        return Reading(None, done.problem)
    return Reading(parse_file_facts(done.value.stdout))
