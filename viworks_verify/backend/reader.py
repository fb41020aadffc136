"""Read the backend host into a ``BackendSnapshot`` through its Docker engine (local, or over SSH).

Docker API calls, each one round trip: ``info`` (the engine's clock, which is the host's), one
inspect per expected container, one exec in the agent container (its listeners from /proc, the
binary's hash and the configuration, in one ``sh``), ``nginx -T`` in the nginx container and one
exec for the TLS files its agent server names. The production image is bare (no ss, ps, curl):
everything is read with sh and coreutils.

A container restarted recently but within bounds is watched until it has been up a restart
window (polled against a deadline): a fresh deploy is not a crash loop, and the watching happens
here, so the checks stay pure judgements of what was read.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as _dt
import time
from typing import TYPE_CHECKING, Any

from viworks_verify.backend.config import BackendConfigError, RecordedConfig, parse_backend_config
from viworks_verify.backend.container_files import AgentFiles, TlsFiles, file_facts_command, parse_file_facts
from viworks_verify.backend.containers import ContainerFacts, parse_docker_time, restart_problem, watch_settling
from viworks_verify.backend.listeners import SNAPSHOT_SCRIPT, ListenerSnapshot, SnapshotError, parse_snapshot
from viworks_verify.backend.nginx_config import NginxConfigError
from viworks_verify.backend.nginx_dump import nginx_test_failure, parse_nginx_dump
from viworks_verify.backend.snapshot import BackendSnapshot
from viworks_verify.core.clock import ClockSkew
from viworks_verify.core.fact import Fact
from viworks_verify.core.file_facts import FileFacts
from viworks_verify.core.redaction import REDACTOR
from viworks_verify.core.secret_hash import SecretHasher
from viworks_verify.target.settings import Backend, Edge

if TYPE_CHECKING:
    import docker

_FILES_MARK = "@@@@ viworks files"


def expected_containers(backend: Backend) -> tuple[str, ...]:
    return (backend.agent_container, backend.nginx_container, backend.postgres_container, backend.redis_container)


class _Exec:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    @property
    def first_error(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return (lines[0] if lines else f"exit {self.exit_code}")[:300]


def read_backend(
    host_id: str, name: str, client: docker.DockerClient, backend: Backend, edge: Edge, hasher: SecretHasher
) -> tuple[BackendSnapshot, tuple[str, ...]]:
    """Every fact the backend checks need, and the secret values the reading saw (for the run to redact)."""
    import docker  # here, not at the top: the SDK takes a while to import, and this runs on a gather thread

    started = time.time()
    snap = BackendSnapshot(host=host_id, name=name, gathered_at=started)
    api = client.api
    try:
        before = time.time()
        info = api.info()
        after = time.time()
    except Exception as exc:
        snap.connection = Fact.failed(f"{host_id} unreachable: Docker engine: {' '.join(str(exc).split())[:300]}")
        return snap, ()
    engine_time = parse_docker_time(info.get("SystemTime"))
    if engine_time is not None:
        skew = ClockSkew.measured(engine_time.timestamp(), before, after)
        snap.engine_offset_s = skew.seconds
        snap.clock_skew = Fact(skew)
    else:
        snap.clock_skew = Fact.failed(f"{host_id}: the Docker engine reports no SystemTime; cannot read its clock")

    def engine_now() -> _dt.datetime:
        return _dt.datetime.fromtimestamp(time.time() + snap.engine_offset_s, _dt.UTC)

    def inspect(container: str) -> ContainerFacts | None:
        try:
            return ContainerFacts(container, api.inspect_container(container))
        except docker.errors.NotFound:
            return None

    for container in expected_containers(backend):
        facts = inspect(container)
        if (
            facts is not None
            and facts.running
            and facts.restart_count <= backend.max_restarts
            and restart_problem(facts, engine_now(), backend.max_restarts, backend.restart_window_s)
        ):
            if watch_settling(facts, lambda c=container: inspect(c), engine_now, backend.restart_window_s) is None:
                facts = inspect(container)
        snap.containers[container] = (
            Fact(facts.kept())
            if facts is not None
            else Fact.failed(f"{host_id}: expected container {container}; found none by that name")
        )

    # The two containers' reads are independent: the engine runs both execs at once.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        reads = [
            pool.submit(_read_agent_container, snap, api, backend, hasher),
            pool.submit(_read_nginx, snap, api, backend, edge),
        ]
    secrets = reads[0].result()
    reads[1].result()
    snap.gather_ms = round((time.time() - started) * 1000, 1)
    return snap, secrets


def _running_problem(snap: BackendSnapshot, container: str) -> str | None:
    fact = snap.containers.get(container)
    if fact is None or not fact.ok:
        return f"{snap.host}: expected container {container} to look inside; found none by that name"
    facts = fact.value
    if not facts.running:
        return f"{snap.host}: expected container {container} running to look inside; found it {facts.status}"
    return None


def _api_error() -> type[Exception]:
    import docker

    return docker.errors.APIError


def _exec(api: Any, container: str, argv: list[str]) -> _Exec:
    exec_id = api.exec_create(container, argv, stdout=True, stderr=True)["Id"]
    stdout, stderr = api.exec_start(exec_id, demux=True)
    exit_code = api.exec_inspect(exec_id).get("ExitCode")
    decode = lambda data: (data or b"").decode(errors="replace")  # noqa: E731
    return _Exec(exit_code if exit_code is not None else -1, decode(stdout), decode(stderr))


def _read_agent_container(snap: BackendSnapshot, api: Any, backend: Backend, hasher: SecretHasher) -> tuple[str, ...]:
    """Fills the agent container's facts; returns the secret values of its configuration."""
    container = backend.agent_container
    problem = _running_problem(snap, container)
    if problem:
        snap.agent_listeners = snap.agent_files = snap.agent_config = Fact.failed(problem)
        return ()
    files_argv = file_facts_command(hash=[backend.binary_path], content=[backend.config_path])
    # One exec: the listener script, a mark, then the file-facts script with its arguments.
    script = SNAPSHOT_SCRIPT + f"\nprintf '%s\\n' '{_FILES_MARK}'\n" + files_argv[2]
    try:
        done = _exec(api, container, ["sh", "-c", script, *files_argv[3:]])
    except _api_error() as exc:
        problem = f"{snap.host}: {container}: cannot exec sh in it: {exc.explanation or exc}"[:400]
        snap.agent_listeners = snap.agent_files = snap.agent_config = Fact.failed(problem)
        return ()
    listeners_text, _, files_text = done.stdout.partition(_FILES_MARK)
    files = parse_file_facts(files_text)

    # The configuration first: its secrets redact anything else kept from this container.
    secrets: tuple[str, ...] = ()
    config_file = files.get(backend.config_path)
    where = f"{snap.host}: {container}: {backend.config_path}"
    if config_file is None or backend.binary_path not in files:
        snap.agent_files = snap.agent_config = Fact.failed(
            f"{snap.host}: {container}: expected sh and stat to report files; found {done.first_error}"
        )
    else:
        snap.agent_config, secrets = _config(where, config_file, hasher)
        snap.agent_files = Fact(AgentFiles.kept({path: _without_content(f) for path, f in files.items()}))
    redact = REDACTOR.with_secrets(*secrets).redact
    try:
        listeners = parse_snapshot(listeners_text)
    except SnapshotError as exc:
        snap.agent_listeners = Fact.failed(
            f"{snap.host}: {container}: expected /proc readable by sh for listeners; "
            f"found {exc} (exec: {done.first_error})"
        )
    else:
        # What a snapshot keeps of a process: its first four arguments (what it runs), redacted.
        processes = tuple(
            dataclasses.replace(p, argv=tuple(redact(arg) for arg in p.argv[:4])) for p in listeners.processes
        )
        snap.agent_listeners = Fact(ListenerSnapshot(listeners.sockets, processes))
    return secrets


def _without_content(facts: FileFacts) -> FileFacts:
    return dataclasses.replace(facts, content=None)


def _config(where: str, file: FileFacts, hasher: SecretHasher) -> tuple[Fact[RecordedConfig], tuple[str, ...]]:
    if not file.exists:
        return Fact.failed(f"{where}: expected the backend agent's TOML configuration; found no such file"), ()
    if file.content is None:
        return Fact.failed(
            f"{where}: expected a readable TOML file; "
            f"found a {file.kind}, mode {file.octal}, owner {file.owner}, unreadable"
        ), ()
    try:
        config = parse_backend_config(file.content.decode(errors="replace"))
    except BackendConfigError as exc:
        return Fact.failed(f"{where}: expected valid TOML; found {exc}"), ()
    return Fact(RecordedConfig.of(config, hasher)), tuple(config.secrets)


def _read_nginx(snap: BackendSnapshot, api: Any, backend: Backend, edge: Edge) -> None:
    container = backend.nginx_container
    problem = _running_problem(snap, container)
    if problem:
        snap.nginx = snap.nginx_tls_files = Fact.failed(problem)
        return
    try:
        done = _exec(api, container, ["nginx", "-T"])
    except _api_error() as exc:
        snap.nginx = snap.nginx_tls_files = Fact.failed(
            f"{snap.host}: {container}: cannot exec nginx in it: {exc.explanation or exc}"[:400]
        )
        return
    if done.exit_code != 0:
        snap.nginx = snap.nginx_tls_files = Fact.failed(
            f"{snap.host}: {container}: expected nginx -t to pass; "
            f"found: {(nginx_test_failure(done.stderr) or done.first_error)[:300]}"
        )
        return
    try:
        config = parse_nginx_dump(done.stdout)
    except NginxConfigError as exc:
        snap.nginx = snap.nginx_tls_files = Fact.failed(
            f"{snap.host}: {container}: expected nginx -T to dump the configuration; found {exc}"
        )
        return
    snap.nginx = Fact(config)
    server = config.server_for(edge.domain, edge.https_port)
    if server is None:
        snap.nginx_tls_files = Fact(TlsFiles({}))
        return
    readable = [*server.certificate_paths, *([server.client_ca_path] if server.client_ca_path else [])]
    try:
        files = _exec(api, container, file_facts_command(stat=server.key_paths, content=readable))
    except _api_error() as exc:
        snap.nginx_tls_files = Fact.failed(
            f"{snap.host}: {container}: cannot exec sh in it: {exc.explanation or exc}"[:400]
        )
        return
    snap.nginx_tls_files = Fact(TlsFiles.kept(parse_file_facts(files.stdout)))
