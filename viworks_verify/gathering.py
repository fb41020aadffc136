"""The gather phase: every host read at once, each over its own connection, into snapshots.

``Gathering.start_hosts`` submits one reader per host to a thread pool at session start (and
``start_edge`` the edge's, once it answers); a check's
fixture waits only for its own host's snapshot. A host that does not answer costs its own connect
timeout and nothing else. ``Replay`` serves a recorded ``RunSnapshot`` the same way, so every
check can be judged on a snapshot with no host at all.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from typing import Iterable, Protocol

from viworks_verify.backend_reader import read_backend
from viworks_verify.edge import EdgeEndpoint
from viworks_verify.edge_reader import read_edge
from viworks_verify.gateway_reader import read_gateway
from viworks_verify.settings import Settings
from viworks_verify.snapshot import BackendSnapshot, Fact, GatewaySnapshot, RunSnapshot, SecretHasher, Snapshot
from viworks_verify.targets import HostUnreachable, TargetHost


class SnapshotSource(Protocol):
    def snapshot(self, host_id: str) -> Snapshot: ...

    def run_snapshot(self) -> RunSnapshot: ...


class Gathering:
    """Snapshots of a live target, read concurrently."""

    def __init__(self, settings: Settings, hasher: SecretHasher) -> None:
        self.settings = settings
        self.hasher = hasher
        self.started = time.time()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="viworks-gather")
        self._futures: dict[str, concurrent.futures.Future] = {}
        # testinfra logs every command with its output at DEBUG; the .env crosses the connection.
        logging.getLogger("testinfra").disabled = True

    def start_hosts(self, hosts: Iterable[TargetHost]) -> None:
        for host in hosts:
            if host.id not in self._futures:
                reader = self._read_backend if host.inventory_host.group == "backend" else self._read_gateway
                self._futures[host.id] = self._pool.submit(reader, host)

    def start_edge(self) -> None:
        host_id = f"https://{self.settings.edge.domain}"
        if host_id not in self._futures:
            endpoint = EdgeEndpoint(self.settings.edge, timeout_s=self.settings.timing.connect_timeout_s)
            self._futures[host_id] = self._pool.submit(read_edge, endpoint)

    def snapshot(self, host_id: str) -> Snapshot:
        return self._futures[host_id].result()

    def run_snapshot(self) -> RunSnapshot:
        hosts = [future.result() for future in self._futures.values()]
        return RunSnapshot(self.settings.name, self.started, hosts)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _read_gateway(self, host: TargetHost) -> GatewaySnapshot:
        def read_secret_file(path: str) -> bytes | None:
            result = host.testinfra.run("cat -- %s", path)
            return result.stdout_bytes if result.rc == 0 else None

        return read_gateway(host.id, host.name, host.testinfra.run, self.settings.gateway, self.hasher, read_secret_file)

    def _read_backend(self, host: TargetHost) -> BackendSnapshot:
        try:
            client = host.docker
        except HostUnreachable as exc:
            return BackendSnapshot(host=host.id, name=host.name, gathered_at=time.time(), connection=Fact.failed(str(exc)))
        return read_backend(host.id, host.name, client, self.settings.backend, self.settings.edge, self.hasher)


class Replay:
    """A recorded run's snapshots, judged as if just gathered."""

    def __init__(self, recorded: RunSnapshot) -> None:
        self.recorded = recorded

    def snapshot(self, host_id: str) -> Snapshot:
        found = self.recorded.by_host(host_id)
        if found is None:
            raise KeyError(f"the recorded snapshot has no host {host_id}")
        return found

    def run_snapshot(self) -> RunSnapshot:
        return self.recorded

    def close(self) -> None:
        pass
