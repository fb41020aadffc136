"""The gather phase: every host read at once, each over its own connection, into snapshots.

``Gathering.start_hosts`` submits one reader per host to a thread pool at session start (and
``start_edge`` the edge's, once it answers); a check's fixture waits only for its own host's
snapshot. A host that does not answer costs its own connect timeout and nothing else. Given the
head-start child (``gather.child``), a host's snapshot is the one the child read, and only a host
the child did not deliver is read here. ``Replay`` serves a recorded ``RunSnapshot`` the same way, so every
check can be judged on a snapshot with no host at all.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Protocol

from viworks_verify.backend.snapshot import BackendSnapshot
from viworks_verify.core.fact import Fact
from viworks_verify.core.redaction import REDACTOR, Redactor
from viworks_verify.core.secret_hash import SecretHasher
from viworks_verify.edge.endpoint import EdgeEndpoint
from viworks_verify.edge.reader import read_edge
from viworks_verify.edge.snapshot import edge_host_id
from viworks_verify.gateway.snapshot import GatewaySnapshot
from viworks_verify.gather.child import GatherChild
from viworks_verify.gather.snapshot import RunSnapshot, Snapshot, SnapshotFormatError, host_snapshot_from_json
from viworks_verify.target.connections import HostUnreachable, TargetHost
from viworks_verify.target.settings import Settings


class SnapshotSource(Protocol):
    secret_key_id: str  # names the key of the secret hashes in its snapshots

    def snapshot(self, host_id: str) -> Snapshot: ...

    def run_snapshot(self) -> RunSnapshot: ...


class Gathering:
    """Snapshots of a live target, read concurrently."""

    def __init__(
        self,
        settings: Settings,
        hasher: SecretHasher,
        child: GatherChild | None = None,
        redactor: Redactor = REDACTOR,
    ) -> None:
        self.settings = settings
        self.hasher = hasher
        self.redactor = redactor  # the secrets a reader returns are registered here, before any check sees its host
        self.child = child
        self.secret_key_id = hasher.key_id
        self.read_in_process: list[str] = []  # why hosts the child did not deliver were read in this process
        self.started = time.time()
        # One worker a host being read: at most max_connections hosts at once, the rest queue (in inventory order).
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.timing.max_connections, thread_name_prefix="viworks-gather"
        )
        self._edge_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="viworks-edge")
        self._futures: dict[str, concurrent.futures.Future] = {}
        # testinfra logs every command with its output at DEBUG; the .env crosses the connection.
        logging.getLogger("testinfra").disabled = True

    def start_hosts(self, hosts: Iterable[TargetHost]) -> None:
        for host in hosts:
            if host.id not in self._futures:
                self._futures[host.id] = self._pool.submit(self._read_host, host)

    def start_edge(self) -> None:
        host_id = edge_host_id(self.settings.edge.domain)
        if host_id not in self._futures:
            endpoint = EdgeEndpoint(self.settings.edge, timeout_s=self.settings.timing.connect_timeout_s)
            self._futures[host_id] = self._edge_pool.submit(read_edge, endpoint)  # not a host connection

    def snapshot(self, host_id: str) -> Snapshot:
        return self._futures[host_id].result()

    def run_snapshot(self) -> RunSnapshot:
        hosts = [future.result() for future in self._futures.values()]
        return RunSnapshot(self.settings.name, self.started, hosts, self.secret_key_id)

    def as_read(self) -> Iterator[Snapshot]:
        """Every snapshot started so far, each as soon as it is read."""
        for future in concurrent.futures.as_completed(list(self._futures.values())):
            yield future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._edge_pool.shutdown(wait=False, cancel_futures=True)

    def _read_host(self, host: TargetHost) -> Snapshot:
        if self.child is not None:
            # The child's budget: as long as a reader may take here (a restart being watched
            # settle, then connect timeouts), with room for its start-up.
            timing = self.settings.timing
            delivered = self.child.snapshot_json(
                host.id, timeout_s=timing.ready_timeout_s + 3 * timing.connect_timeout_s + 10
            )
            try:
                if delivered is not None:
                    return host_snapshot_from_json(delivered, "the gathering child process")
                self.read_in_process.append(self.child.missing(host.id))
            except (SnapshotFormatError, KeyError, TypeError, ValueError) as exc:
                self.read_in_process.append(
                    f"{host.id}: the gathering child process sent a snapshot that does not load: {exc}"
                )
        if host.inventory_host.group == "backend":
            return self._read_backend(host)
        return self._read_gateway(host)

    # The readers are imported where they are used: with the head-start child, this process rarely needs them.
    def _read_gateway(self, host: TargetHost) -> GatewaySnapshot:
        from viworks_verify.gateway.reader import read_gateway

        def read_secret_file(path: str) -> bytes | None:
            result = host.testinfra.run("cat -- %s", path)
            return result.stdout_bytes if result.rc == 0 else None

        snapshot, secrets = read_gateway(
            host.id, host.name, host.run_script, self.settings.gateway, self.hasher, read_secret_file
        )
        self.redactor.register(*secrets)
        return snapshot

    def _read_backend(self, host: TargetHost) -> BackendSnapshot:
        from viworks_verify.backend.reader import read_backend

        try:
            client = host.docker
        except HostUnreachable as exc:
            return BackendSnapshot(
                host=host.id, name=host.name, gathered_at=time.time(), connection=Fact.failed(str(exc))
            )
        except Exception as exc:
            problem = (
                f"{host.id}: its Docker engine does not answer: "
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            )
            return BackendSnapshot(
                host=host.id, name=host.name, gathered_at=time.time(), connection=Fact.failed(problem)
            )
        snapshot, secrets = read_backend(
            host.id, host.name, client, self.settings.backend, self.settings.edge, self.hasher
        )
        self.redactor.register(*secrets)
        return snapshot


class Replay:
    """A recorded run's snapshots, judged as if just gathered."""

    def __init__(self, recorded: RunSnapshot) -> None:
        self.recorded = recorded
        self.secret_key_id = recorded.secret_key_id

    def snapshot(self, host_id: str) -> Snapshot:
        found = self.recorded.by_host(host_id)
        if found is None:
            raise KeyError(f"the recorded snapshot has no host {host_id}")
        return found

    def run_snapshot(self) -> RunSnapshot:
        return self.recorded

    def close(self) -> None:
        pass
