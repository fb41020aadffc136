"""Reaching a target's hosts: one connection per host per run (testinfra's ssh, or the Docker engine).

A host that does not answer is found out once, by its reader in the gather phase; its snapshot then
carries the reason as its ``connection`` problem, so a dead host costs one connect timeout, not fifty.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from testinfra.backend.base import CommandResult
from testinfra.host import Host as TestinfraHost

from viworks_verify.target.inventory import Inventory, InventoryHost
from viworks_verify.target.shards import WHOLE, Shard

if TYPE_CHECKING:
    import docker

    from viworks_verify.target.settings import Settings


class HostUnreachable(Exception):
    pass


@dataclasses.dataclass
class TargetHost:
    inventory_host: InventoryHost
    inventory: Inventory
    docker_url: str | None = None
    docker_socket: str = "/var/run/docker.sock"
    _failure: str | None = None
    _checked: bool = False

    @property
    def id(self) -> str:
        return self.inventory_host.id

    @property
    def name(self) -> str:
        return self.inventory_host.name

    @functools.cached_property
    def testinfra(self) -> TestinfraHost:
        return self.inventory.testinfra_host(self.inventory_host)

    @functools.cached_property
    def _without_sudo(self) -> TestinfraHost:
        """The same host with testinfra's sudo off: ``run_script`` says sudo itself."""
        return self.inventory.testinfra_host(self.inventory_host, sudo=False)

    def run_script(self, script: str, *args: str) -> CommandResult:
        """Run a shell script with arguments, as root where the host is ``become``. The script goes to
        ``sudo -n /bin/sh -s`` on standard input: sudo logs its command line to the host's journal on
        every run, and that line is then ``/bin/sh -s -- ARGS``, not the gathering script."""
        shell = "sudo -n /bin/sh -s --" if self.inventory.needs_sudo(self.inventory_host) else "/bin/sh -s --"
        try:
            return self._without_sudo.run("printf '%%s' %s | " + shell + " %s" * len(args), script, *args)
        except Exception as exc:
            raise HostUnreachable(self.unreachable(connection_error(exc))) from None

    def unreachable(self, said: str) -> str:
        """Why the host cannot be reached, from what ssh ``said``. Through a jump host that does not answer, the
        jump host's problem, not this host's: every host behind it has the same one, reported once."""
        jump = self.inventory_host.jump_host
        if jump and _through_the_jump_host_failed(said, jump):
            why = _jump_host_refusal(jump, self.inventory.timeout_s)
            if why is not None:
                return f"jump host {jump} unreachable (every host behind it): {why}"
        return f"{self.id} unreachable: {said}"

    def ensure_reachable(self) -> None:
        """Connect once; remember a failure so later checks on this host do not retry it."""
        if not self._checked:
            self._checked = True
            try:
                result = self.testinfra.run("true")
                if result.rc != 0:
                    self._failure = (
                        f"{self.id} unreachable: "
                        f"{(result.stderr or result.stdout).strip()[:200] or f'exit {result.rc}'}"
                    )
            except Exception as exc:
                self._failure = self.unreachable(connection_error(exc))
        if self._failure:
            raise HostUnreachable(self._failure)

    @functools.cached_property
    def docker(self) -> docker.DockerClient:
        """The Docker engine on this host: local for a local host, over SSH otherwise."""
        import docker  # only runs that read a backend host need the SDK

        self.ensure_reachable()
        host = self.inventory_host
        url = self.docker_url
        if url is None and host.connection == "ssh":
            url = f"unix://{self._forward_docker_socket()}"
        if url is None:
            return docker.from_env(timeout=10)
        return docker.DockerClient(base_url=url, use_ssh_client=url.startswith("ssh://"), timeout=10)

    def _forward_docker_socket(self) -> Path:
        """The host's Docker socket, forwarded here over its shared SSH connection (the one every
        other read of this host uses: the inventory's user, port, key and ssh config apply)."""
        inventory, host = self.inventory, self.inventory_host
        directory = inventory.control_dir or Path(tempfile.gettempdir())
        local = directory / f"docker-{hashlib.sha256(self.id.encode()).hexdigest()[:12]}.sock"
        if _answers(local):  # forwarded by an earlier run over the same shared connection
            return local
        # A socket left by a connection that is gone: cancel its forwarding (if the master still has
        # it) and forward afresh over this run's connection.
        forward = inventory.ssh_forward_command(host, local, self.docker_socket)
        subprocess.run(
            [*forward[:-4], "-O", "cancel", *forward[-3:]], capture_output=True, timeout=inventory.timeout_s + 5
        )
        local.unlink(missing_ok=True)
        done = subprocess.run(forward, capture_output=True, text=True, timeout=inventory.timeout_s + 5)
        if done.returncode != 0 or not _answers(local):
            said = " ".join((done.stderr or done.stdout).split())[:300]
            raise HostUnreachable(
                f"{self.id}: its Docker engine ({self.docker_socket}) cannot be reached over ssh: "
                f"{said or f'exit {done.returncode}, and nothing answers at the forwarded socket'}"
            )
        return local


def _answers(path: Path) -> bool:
    """Whether something accepts connections at a Unix socket."""
    if not path.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def target_hosts(settings: Settings, inventory: Inventory, shard: Shard = WHOLE) -> dict[str, TargetHost]:
    """Every host of the inventory (name -> host), of its gateways those of ``shard``; a backend host's Docker
    engine as the settings say."""
    ours = shard.part(host.name for host in inventory.group("gateway"))
    return {
        host.name: TargetHost(
            host,
            inventory,
            docker_url=settings.backend.docker_url if host.group == "backend" else None,
            docker_socket=settings.backend.docker_socket,
        )
        for host in inventory.hosts
        if host.group != "gateway" or host.name in ours
    }


def _jump_address(jump: str) -> tuple[str, int]:
    """``[user@]host[:port]`` -> (host, port); 22 when it names none."""
    where = jump.rpartition("@")[2]
    host, _, port = where.rpartition(":") if where.count(":") == 1 else (where, "", "")
    return host.strip("[]"), int(port) if port.isdigit() else 22


def _through_the_jump_host_failed(said: str, jump: str) -> bool:
    """Whether ssh's words say the way through the jump host broke before the host behind it answered: its
    stdio proxy closed ("UNKNOWN port 65535"), with no word from the jump host that it tried the host."""
    name = _jump_address(jump)[0]
    tried_the_host = "open failed" in said or "stdio forwarding failed" in said
    return not tried_the_host and (
        "UNKNOWN port 65535" in said or f"connect to host {name} port" in said or f"hostname {name}:" in said
    )


@functools.lru_cache(maxsize=32)
def _jump_host_refusal(jump: str, timeout_s: float) -> str | None:
    """Why the jump host does not take a TCP connection (asked once per run), None when it does: then the
    trouble is past it."""
    host, port = _jump_address(jump)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"connect to {host} port {port}: {exc.strerror or exc}"


def connection_error(exc: Exception) -> str:
    """What ssh said, from testinfra's exception (it carries the failed CommandResult), in one line."""
    result = exc.args[0] if exc.args else None
    stderr = getattr(result, "stderr", None)
    if isinstance(stderr, str) and stderr.strip():
        return " ".join(stderr.split())[:300]
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
