"""The target's hosts, from an Ansible INI inventory (groups ``backend`` and ``gateway``).

Parsing is Ansible's own (through testinfra's AnsibleRunner, which runs ``ansible-inventory``);
turning an inventory host into a testinfra host is done here so that every SSH host shares one
multiplexed connection per run (ControlMaster with a per-run ControlPath).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

if TYPE_CHECKING:
    from viworks_verify.target.settings import Settings

GROUPS = ("backend", "gateway")
_LOCAL_CONNECTIONS = ("local",)
_SSH_CONNECTIONS = ("ssh", "smart", "paramiko", "paramiko_ssh")


class InventoryError(Exception):
    """An inventory that cannot be used; the message names the file and what is wrong."""


@dataclasses.dataclass(frozen=True)
class InventoryHost:
    name: str
    group: str
    connection: str  # "local" or "ssh"
    address: str
    user: str | None
    port: int | None
    identity_file: str | None
    become: bool
    # ssh's own options for this host: the inventory's ansible_ssh_common_args and ansible_ssh_extra_args,
    # and the target's ssh_proxy_jump unless those name a jump host of their own.
    ssh_args: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """How checks name the host: ``ssh://gw-lab-01``, ``local://backend-lab``."""
        return f"{self.connection}://{self.name}"

    @property
    def jump_host(self) -> str | None:
        """The ``[user@]host[:port]`` this host is reached through (``-J`` or ``-o ProxyJump=``), None: directly."""
        declared = declared_jump(self.ssh_args)
        return None if declared is None or declared.lower() == "none" else declared


def declared_jump(ssh_args: tuple[str, ...]) -> str | None:
    """The ProxyJump that ssh options name (``none`` included: reached directly), None when they name none."""
    for index, arg in enumerate(ssh_args):
        following = ssh_args[index + 1] if index + 1 < len(ssh_args) else ""
        if arg == "-J" and following:
            return following
        if arg.startswith("-J") and len(arg) > 2:
            return arg[2:]
        key, _, value = (following if arg == "-o" else arg.removeprefix("-o")).partition("=")
        if key.strip().lower() == "proxyjump":
            return value.strip()
    return None


def ssh_control_dir() -> Path:
    """Where ssh keeps its shared connections: stable, so a run reuses the last run's (ControlPersist), as
    Ansible does."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "viworks-verify" / "ssh"
    try:
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)
        return root
    except OSError:
        return Path(tempfile.mkdtemp(prefix="viworks-ssh-"))


class Inventory:
    @classmethod
    def of_target(cls, settings: Settings) -> Inventory:
        """The target's inventory, its hosts reached with the target's ssh config and connect timeout."""
        return cls(
            settings.inventory,
            settings.ssh_config,
            ssh_control_dir(),
            int(settings.timing.connect_timeout_s),
            settings.ssh_proxy_jump,
        )

    def __init__(
        self,
        path: Path,
        ssh_config: Path | None = None,
        control_dir: Path | None = None,
        timeout_s: int = 5,
        proxy_jump: str | None = None,
    ):
        if not path.is_file():
            raise InventoryError(f"inventory {path} does not exist")
        self.path = path
        self.ssh_config = ssh_config
        self.control_dir = control_dir
        self.timeout_s = timeout_s
        self.proxy_jump = proxy_jump
        _put_ansible_on_path()
        self._runner = AnsibleRunner(str(path))
        cached = _read_cache(path)
        if cached is not None:  # ansible-inventory takes about a second to start: reuse its answer for the same input
            self._runner.__dict__["inventory"] = cached

    @functools.cached_property
    def hosts(self) -> list[InventoryHost]:
        try:
            names = {group: self._runner.get_hosts(group) for group in GROUPS}
        except (RuntimeError, subprocess.CalledProcessError, ValueError) as exc:
            raise InventoryError(f"inventory {self.path} cannot be parsed: {exc}") from None
        _write_cache(self.path, self._runner.inventory)
        found = []
        for group, members in names.items():
            for name in members:
                found.append(self._host(name, group, self._runner.get_variables(name)))
        if not found:
            raise InventoryError(f"inventory {self.path} has no host in groups {', '.join(GROUPS)}")
        return found

    def group(self, group: str) -> list[InventoryHost]:
        return [host for host in self.hosts if host.group == group]

    def _host(self, name: str, group: str, variables: dict[str, Any]) -> InventoryHost:
        connection = str(variables.get("ansible_connection", "ssh"))
        if connection in _SSH_CONNECTIONS:
            connection = "ssh"
        elif connection not in _LOCAL_CONNECTIONS:
            raise InventoryError(
                f"inventory {self.path}: host {name} has ansible_connection={connection}; the suite speaks ssh or local"
            )
        port = variables.get("ansible_port")
        ssh_args = tuple(
            arg
            for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args")
            for arg in shlex.split(str(variables.get(key) or ""))
        )
        host = InventoryHost(
            name=name,
            group=group,
            connection=connection,
            address=str(variables.get("ansible_host", name)),
            user=variables.get("ansible_user"),
            port=int(port) if port else None,
            identity_file=variables.get("ansible_ssh_private_key_file") or variables.get("ansible_private_key_file"),
            become=str(variables.get("ansible_become", "false")).lower() in ("1", "true", "yes"),
            ssh_args=ssh_args,
        )
        if connection == "ssh" and self.proxy_jump and declared_jump(ssh_args) is None:
            host = dataclasses.replace(host, ssh_args=(*ssh_args, "-o", f"ProxyJump={self.proxy_jump}"))
        return host

    def ssh_forward_command(self, host: InventoryHost, local_socket: Path, remote_socket: str) -> list[str]:
        """Add to the host's shared SSH connection (the one testinfra opened) a forwarding of
        ``remote_socket`` on the host to ``local_socket`` here: ssh's own options, as testinfra's."""
        command = ["ssh"]
        if self.ssh_config:
            command += ["-F", str(self.ssh_config)]
        if host.user:
            command += ["-o", f"User={host.user}"]
        if host.port:
            command += ["-o", f"Port={host.port}"]
        if host.identity_file:
            command += ["-i", str(host.identity_file)]
        command += [
            "-o",
            f"ConnectTimeout={self.timeout_s}",
            "-o",
            "StreamLocalBindUnlink=yes",
            "-o",
            "ExitOnForwardFailure=yes",
        ]
        if self.control_dir:
            command += ["-o", f"ControlPath={self.control_dir / '%C'}"]
        command += host.ssh_args
        return [
            *command,
            "-O",
            "forward",
            "-L",
            f"{local_socket}:{remote_socket}",
            host.address if host.address else host.name,
        ]

    @staticmethod
    def needs_sudo(host: InventoryHost) -> bool:
        """Whether commands on ``host`` go through sudo: it says ``become``, and we are not root there already."""
        return host.become and (host.connection != "local" or os.geteuid() != 0)

    def testinfra_host(self, host: InventoryHost, sudo: bool | None = None) -> testinfra.host.Host:
        """The testinfra host for an inventory host (cached by testinfra: one per run and sudo setting);
        ``sudo`` None: as the inventory says."""
        sudo = self.needs_sudo(host) if sudo is None else sudo
        if host.connection == "local":
            return testinfra.get_host("local://", sudo=sudo)
        spec = "ssh://" + (f"{host.user}@" if host.user else "") + host.address + (f":{host.port}" if host.port else "")
        options: dict[str, Any] = {"sudo": sudo, "timeout": self.timeout_s, "controlpersist": 60}
        if self.ssh_config:
            options["ssh_config"] = str(self.ssh_config)
        if host.identity_file:
            options["ssh_identity_file"] = host.identity_file
        if host.ssh_args:
            options["ssh_extra_args"] = shlex.join(host.ssh_args)
        if self.control_dir:
            # testinfra %-formats its ssh command line: ssh's own %C token needs escaping.
            options["controlpath"] = str(self.control_dir / "%%C")
        return testinfra.get_host(spec, **options)


# ---- a cache of ansible-inventory's answer, for a static inventory file ---------------------------
# Keyed by everything Ansible reads to answer: the file, the group_vars/host_vars beside it, the
# ANSIBLE_* environment and Ansible's version. An executable (dynamic) inventory is never cached.


def _cache_key(path: Path) -> str | None:
    if not path.is_file() or os.access(path, os.X_OK):
        return None
    sha = hashlib.sha256()
    try:
        sha.update(metadata.version("ansible-core").encode())
    except metadata.PackageNotFoundError:
        return None
    sha.update(str(path.resolve()).encode() + b"\0" + path.read_bytes())
    for folder in ("group_vars", "host_vars"):
        for file in sorted((path.parent / folder).rglob("*")) if (path.parent / folder).is_dir() else []:
            if file.is_file():
                sha.update(str(file).encode() + b"\0" + file.read_bytes())
    for name in sorted(os.environ):
        if name.startswith("ANSIBLE_"):
            sha.update(f"{name}={os.environ[name]}".encode())
    return sha.hexdigest()


def _cache_file(key: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "viworks-verify" / "inventory" / f"{key}.json"


def _read_cache(path: Path) -> dict[str, Any] | None:
    key = _cache_key(path)
    if key is None:
        return None
    try:
        return json.loads(_cache_file(key).read_text())
    except (OSError, ValueError):
        return None


def _write_cache(path: Path, inventory: dict[str, Any]) -> None:
    key = _cache_key(path)
    if key is None:
        return
    try:
        file = _cache_file(key)
        file.parent.mkdir(parents=True, exist_ok=True)
        scratch = file.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(inventory))
        scratch.replace(file)
    except OSError:
        pass  # a cache that cannot be written only costs the next run a second


def _put_ansible_on_path() -> None:
    """``ansible-inventory`` is installed beside this interpreter; find it without an activated venv."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
