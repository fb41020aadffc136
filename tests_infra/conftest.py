"""Host facts several checks need, read once per host per run (session fixtures).

Each fact costs one Docker API call per run: an inspect per container, one exec in the backend
agent container for its listeners (/proc), one for its files (binary hash, configuration), one
``nginx -T`` in the nginx container and one for the TLS files nginx names. A fixture never fails
by itself: it returns a ``Reading`` whose ``require()`` fails the first check that needs it with what
went wrong and skips the others with the same reason: one root cause, one failure (whatever subset
of checks runs), and a missing container shows up as a check failure naming the host.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from typing import TypeVar

import docker
import pytest

from viworks_verify.backend_config import BackendConfig, BackendConfigError, parse_backend_config
from viworks_verify.container_files import FileFacts, file_facts_command, parse_file_facts
from viworks_verify.containers import ContainerFacts, parse_docker_time, watch_settling
from viworks_verify.listeners import SNAPSHOT_COMMAND, ListenerSnapshot, SnapshotError, parse_snapshot
from viworks_verify.nginx_config import NginxConfig, NginxConfigError, Server, parse_nginx_dump, nginx_test_failure
from viworks_verify.envfile import is_secret_name, parse_env
from viworks_verify.pytest_plugin import Reading
from viworks_verify.redaction import REDACTOR

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def first_error(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return (lines[0] if lines else f"exit {self.exit_code}")[:300]


# ----------------------------------------------------------------------------------- containers


class BackendContainers:
    """The backend host's containers by name, inspected lazily once each."""

    def __init__(self, host) -> None:
        self.host = host
        self._facts: dict[str, ContainerFacts | None] = {}
        self._running: dict[str, Reading[ContainerFacts]] = {}
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

    def running(self, name: str) -> Reading[ContainerFacts]:
        """One Reading per container for every look inside it: missing or stopped is reported once."""
        if name not in self._running:
            facts = self.get(name)
            if facts is None:
                self._running[name] = Reading(None, f"{self.host.id}: expected container {name} to look inside; found none by that name")
            elif not facts.running:
                self._running[name] = Reading(None, f"{self.host.id}: expected container {name} running to look inside; found it {facts.status}")
            else:
                self._running[name] = Reading(facts)
        return self._running[name]

    def exec(self, name: str, argv: list[str]) -> Reading[ExecResult]:
        """Run ``argv`` in container ``name`` (read-only commands only): one Docker exec."""
        return self.running(name).then(lambda _: self._exec(name, argv))

    def _exec(self, name: str, argv: list[str]) -> Reading[ExecResult]:
        api = self.host.docker.api
        try:
            exec_id = api.exec_create(name, argv, stdout=True, stderr=True)["Id"]
            stdout, stderr = api.exec_start(exec_id, demux=True)
            exit_code = api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.APIError as exc:
            return Reading(None, f"{self.host.id}: {name}: cannot exec {argv[0]} in it: {exc.explanation or exc}"[:400])
        decode = lambda data: (data or b"").decode(errors="replace")  # noqa: E731
        return Reading(ExecResult(exit_code if exit_code is not None else -1, decode(stdout), decode(stderr)))

    def engine_now(self) -> _dt.datetime:
        """Now by the engine's clock (container start times are the engine's; the suite may run elsewhere)."""
        if self._clock_offset_s is None:
            engine_time = parse_docker_time(self.host.docker.info().get("SystemTime"))
            self._clock_offset_s = (engine_time.timestamp() - time.time()) if engine_time else 0.0
        return _dt.datetime.fromtimestamp(time.time() + self._clock_offset_s, _dt.timezone.utc)

    def watch_settling(self, name: str, window_s: float) -> str | None:
        """None once a recently restarted container has stayed up ``window_s``; else what was seen."""
        first = self.get(name)
        if first is None:
            return f"{name} missing"
        return watch_settling(first, lambda: self.inspect(name), self.engine_now, window_s)


@pytest.fixture(scope="session")
def backend_containers(backend_host) -> BackendContainers:
    return BackendContainers(backend_host)


# ---------------------------------------------------------------------- inside the agent container


@pytest.fixture(scope="session")
def backend_listeners(backend_host, backend_containers, settings) -> Reading[ListenerSnapshot]:
    """TCP listeners of the backend agent container and the processes holding them (one exec)."""
    container = settings.backend.agent_container

    def parse(done: ExecResult) -> Reading[ListenerSnapshot]:
        try:
            return Reading(parse_snapshot(done.stdout))
        except SnapshotError as exc:
            return Reading(None, f"{backend_host.id}: {container}: expected /proc readable by sh for listeners; found {exc} (exec: {done.first_error})")

    return backend_containers.exec(container, SNAPSHOT_COMMAND).then(parse)


@pytest.fixture(scope="session")
def backend_agent_files(backend_host, backend_containers, settings) -> Reading[dict[str, FileFacts]]:
    """The agent binary (with its sha256) and configuration (with its content), in one exec."""
    backend = settings.backend

    def parse(done: ExecResult) -> Reading[dict[str, FileFacts]]:
        facts = parse_file_facts(done.stdout)
        if backend.binary_path not in facts or backend.config_path not in facts:
            return Reading(None, f"{backend_host.id}: {backend.agent_container}: expected sh and stat to report files; found {done.first_error}")
        return Reading(facts)

    command = file_facts_command(hash=[backend.binary_path], content=[backend.config_path])
    return backend_containers.exec(backend.agent_container, command).then(parse)


@pytest.fixture(scope="session")
def backend_binary(backend_host, settings, backend_agent_files) -> Reading[FileFacts]:
    """The agent binary's facts (size, mode, sha256), when it is there as a regular file."""
    backend = settings.backend
    where = f"{backend_host.id}: {backend.agent_container}: {backend.binary_path}"

    def check(files: dict[str, FileFacts]) -> Reading[FileFacts]:
        binary = files[backend.binary_path]
        if not binary.exists:
            return Reading(None, f"{where}: expected the backend agent binary; found no such file")
        if not binary.is_file:
            return Reading(None, f"{where}: expected the backend agent binary, a regular file; found a {binary.kind}")
        return Reading(binary)

    return backend_agent_files.then(check)


@pytest.fixture(scope="session")
def backend_config(backend_host, settings, backend_agent_files) -> Reading[BackendConfig]:
    """The agent's TOML configuration, parsed; its secrets are registered with the redactor first."""
    backend = settings.backend
    where = f"{backend_host.id}: {backend.agent_container}: {backend.config_path}"

    def parse(files: dict[str, FileFacts]) -> Reading[BackendConfig]:
        file = files[backend.config_path]
        if not file.exists:
            return Reading(None, f"{where}: expected the backend agent's TOML configuration; found no such file")
        if file.content is None:
            return Reading(None, f"{where}: expected a readable TOML file; found a {file.kind}, mode {file.mode_text}, owner {file.owner}, unreadable")
        try:
            config = parse_backend_config(file.content.decode(errors="replace"))
        except BackendConfigError as exc:
            return Reading(None, f"{where}: expected valid TOML; found {exc}")
        REDACTOR.register(*config.secrets)
        return Reading(config)

    return backend_agent_files.then(parse)


# ----------------------------------------------------------------------------------------- nginx


@pytest.fixture(scope="session")
def nginx_config(backend_host, backend_containers, settings) -> Reading[NginxConfig]:
    """``nginx -T`` in the nginx container (one exec): the configuration test's verdict, then every file it read, parsed."""
    container = settings.backend.nginx_container

    def parse(done: ExecResult) -> Reading[NginxConfig]:
        if done.exit_code != 0:
            return Reading(None, f"{backend_host.id}: {container}: expected nginx -t to pass; found: {(nginx_test_failure(done.stderr) or done.first_error)[:300]}")
        try:
            return Reading(parse_nginx_dump(done.stdout))
        except NginxConfigError as exc:
            return Reading(None, f"{backend_host.id}: {container}: expected nginx -T to dump the configuration; found {exc}")

    return backend_containers.exec(container, ["nginx", "-T"]).then(parse)


@pytest.fixture(scope="session")
def agent_server(backend_host, settings, nginx_config) -> Reading[Server]:
    """The server block nginx uses for the agent domain on its HTTPS port."""
    domain, port = settings.edge.domain, settings.edge.https_port

    def find(config: NginxConfig) -> Reading[Server]:
        server = config.server_for(domain, port)
        if server is None:
            servers = ", ".join(f"{' '.join(s.server_names) or '_'} on {'/'.join(str(l.port) for l in s.listens)}" for s in config.servers)
            return Reading(None, f"{backend_host.id}: {settings.backend.nginx_container}: expected a server block for {domain} on port {port}; found {servers or 'no server blocks'}")
        return Reading(server)

    return nginx_config.then(find)


@pytest.fixture(scope="session")
def nginx_tls_files(backend_host, backend_containers, settings, agent_server) -> Reading[dict[str, FileFacts]]:
    """The agent server's certificate, key and client CA files as nginx sees them (keys: stat only, never read)."""

    def read(server: Server) -> Reading[dict[str, FileFacts]]:
        readable = [*server.certificate_paths, *([server.client_ca_path] if server.client_ca_path else [])]
        command = file_facts_command(stat=server.key_paths, content=readable)
        return backend_containers.exec(settings.backend.nginx_container, command).then(lambda done: Reading(parse_file_facts(done.stdout)))

    return agent_server.then(read)


# ------------------------------------------------------------------------------ gateway .env
# Here rather than in gateway/: the cross-host checks need it too, and it is read once per host.


@pytest.fixture(scope="session")
def gateway_env_text(gateway_host, settings) -> str | None:
    """The agent's .env as text (None when it cannot be read); secret values registered for redaction."""
    text = gateway_host.read_file(settings.gateway.env_file)
    if text is not None:
        REDACTOR.register(*(value for key, value in parse_env(text).items() if is_secret_name(key)))
    return text


@pytest.fixture(scope="session")
def gateway_env_reading(gateway_host, settings, gateway_env_text) -> Reading[dict[str, str]]:
    if gateway_env_text is None:
        return Reading(problem=f"{gateway_host.id}: {settings.gateway.env_file} cannot be read (missing?); expected the agent's environment file")
    return Reading(parse_env(gateway_env_text))


@pytest.fixture
def gateway_env(gateway_env_reading) -> dict[str, str]:
    """The agent's .env as a dict (a check that needs it fails, or skips once reported, when it cannot be read)."""
    return gateway_env_reading.require()
