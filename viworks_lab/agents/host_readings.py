"""Real readings of the gateway host, from /proc, statvfs, systemctl and the container engine.

The parsers are pure functions over the texts of the files they read (``/proc/meminfo``,
``/proc/stat``, ``/proc/loadavg``, ``/proc/uptime``, ``/proc/self/mounts``, ``/etc/os-release``,
``/etc/passwd``, ``/proc/net/dev``, the engine's ``ps`` output) so that they are unit-tested without
the host. The ``read_*`` functions are the thin I/O around them; the two ``async`` helpers run a
short-lived command (``systemctl is-active``, ``<engine> ps``) under a timeout and tolerate its absence.

Runs on the gateway host's Python 3.11 with the standard library only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import platform
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

PROC = Path("/proc")

# Filesystem types that hold no user data: never reported as a disk.
PSEUDO_FILESYSTEMS = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "fuse.lxcfs",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "proc",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tmpfs",
        "tracefs",
        "shm",
    }
)


# ---------------------------------------------------------------------------------------------
# pure parsers
# ---------------------------------------------------------------------------------------------


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as {field: kB}."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if name and fields and fields[0].isdigit():
            values[name.strip()] = int(fields[0])
    return values


def memory_mb(meminfo: dict[str, int]) -> tuple[float, float]:
    """(total_mb, used_mb); used = total - available, as ``free`` computes it."""
    total = meminfo.get("MemTotal", 0)
    if "MemAvailable" in meminfo:
        available = meminfo["MemAvailable"]
    else:  # kernels before 3.14
        available = meminfo.get("MemFree", 0) + meminfo.get("Buffers", 0) + meminfo.get("Cached", 0)
    used = max(total - available, 0)
    return round(total / 1024, 1), round(used / 1024, 1)


def memory_percent(meminfo: dict[str, int]) -> float:
    total, used = memory_mb(meminfo)
    return round(100.0 * used / total, 1) if total else 0.0


@dataclasses.dataclass(frozen=True)
class CpuTimes:
    """Aggregate CPU jiffies from the ``cpu`` line of ``/proc/stat``."""

    idle: int  # idle + iowait
    total: int  # user..steal (guest time is already inside user/nice)


def parse_cpu_times(stat_text: str) -> CpuTimes:
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            numbers = [int(v) for v in fields[1:9]]
            numbers += [0] * (8 - len(numbers))
            user, nice, system, idle, iowait, irq, softirq, steal = numbers
            return CpuTimes(idle=idle + iowait, total=user + nice + system + idle + iowait + irq + softirq + steal)
    raise ValueError("no aggregate 'cpu' line in /proc/stat")


def cpu_percent(before: CpuTimes, after: CpuTimes) -> float:
    """Busy share of the CPU time between two samples, in percent (0.0 when no time passed)."""
    total = after.total - before.total
    if total <= 0:
        return 0.0
    idle = after.idle - before.idle
    return round(min(max(100.0 * (total - idle) / total, 0.0), 100.0), 1)


def parse_boot_time(stat_text: str) -> int:
    """``btime`` of ``/proc/stat``: boot time in epoch seconds."""
    for line in stat_text.splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise ValueError("no btime line in /proc/stat")


def parse_process_start_ticks(pid_stat_text: str) -> int:
    """Field 22 (starttime, clock ticks after boot) of ``/proc/<pid>/stat``; comm may hold spaces."""
    after_comm = pid_stat_text[pid_stat_text.rindex(")") + 2 :].split()
    # after_comm[0] is field 3 (state): field 22 is at index 19.
    return int(after_comm[19])


def process_start_time(pid_stat_text: str, stat_text: str, clock_ticks: int) -> float:
    """Epoch seconds at which a process started."""
    return parse_boot_time(stat_text) + parse_process_start_ticks(pid_stat_text) / clock_ticks


def parse_loadavg(text: str) -> list[float]:
    fields = text.split()
    if len(fields) < 3:
        raise ValueError(f"/proc/loadavg has {len(fields)} fields")
    return [float(v) for v in fields[:3]]


def parse_uptime(text: str) -> float:
    return float(text.split()[0])


def parse_os_release(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def os_pretty_name(text: str) -> str:
    fields = parse_os_release(text)
    return fields.get("PRETTY_NAME") or " ".join(v for v in (fields.get("NAME"), fields.get("VERSION")) if v) or "Linux"


@dataclasses.dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape_mount_field(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[Mount]:
    """``/proc/self/mounts`` (fstab format; spaces in paths are written as ``\\040``)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append(Mount(_unescape_mount_field(fields[0]), _unescape_mount_field(fields[1]), fields[2]))
    return mounts


def data_mounts(mounts: Iterable[Mount]) -> list[Mount]:
    """Mounts that hold data: pseudo filesystems dropped, each mount point once, ``/`` first."""
    seen: set[str] = set()
    kept: list[Mount] = []
    for mount in mounts:
        if mount.fstype in PSEUDO_FILESYSTEMS or mount.mountpoint in seen:
            continue
        if mount.mountpoint.startswith(("/proc", "/sys", "/dev")) and mount.mountpoint != "/":
            continue
        seen.add(mount.mountpoint)
        kept.append(mount)
    kept.sort(key=lambda m: (m.mountpoint != "/",))
    return kept


def disk_used_pct(stats: os.statvfs_result) -> float | None:
    """Used share of a filesystem as ``df`` shows it (None for one without blocks)."""
    if stats.f_blocks == 0:
        return None
    used = stats.f_blocks - stats.f_bfree
    usable = used + stats.f_bavail
    if usable <= 0:
        return None
    return round(100.0 * used / usable, 1)


def parse_net_dev(text: str) -> dict[str, dict[str, int]]:
    """``/proc/net/dev`` as {interface: {rx_bytes, tx_bytes}}."""
    interfaces: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if sep and len(fields) >= 9:
            interfaces[name.strip()] = {"rx_bytes": int(fields[0]), "tx_bytes": int(fields[8])}
    return interfaces


def parse_passwd_users(text: str, min_uid: int = 1000) -> list[dict[str, Any]]:
    """Login users of ``/etc/passwd`` (uid >= min_uid, not ``nobody``)."""
    users = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 7 or not fields[2].isdigit():
            continue
        uid = int(fields[2])
        if uid < min_uid or uid == 65534:
            continue
        users.append({"username": fields[0], "uid": uid, "home": fields[5], "shell": fields[6]})
    return users


def service_state(stdout: str) -> str:
    """The state ``systemctl is-active`` printed ("unknown" when it printed none)."""
    lines = stdout.strip().splitlines()
    state = lines[0].strip() if lines else ""
    return state if re.fullmatch(r"[a-z-]+", state) else "unknown"


def parse_container_list(text: str) -> list[dict[str, str]]:
    """``docker ps --format '{{json .}}'`` (JSON lines) or ``podman ps --format json`` (an array)."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    containers = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        names = row.get("Names", row.get("Name", ""))
        if isinstance(names, list):
            names = ",".join(str(n) for n in names)
        containers.append(
            {
                "id": str(row.get("ID") or row.get("Id") or "")[:12],
                "name": str(names),
                "image": str(row.get("Image", "")),
                "state": str(row.get("State", "")).lower(),
                "status": str(row.get("Status", "")),
            }
        )
    return containers


# ---------------------------------------------------------------------------------------------
# thin I/O
# ---------------------------------------------------------------------------------------------


def read_text(path: str | Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def read_meminfo() -> dict[str, int]:
    return parse_meminfo(read_text(PROC / "meminfo"))


def read_cpu_times() -> CpuTimes:
    return parse_cpu_times(read_text(PROC / "stat"))


def read_loadavg() -> list[float]:
    return parse_loadavg(read_text(PROC / "loadavg"))


def read_uptime() -> float:
    return parse_uptime(read_text(PROC / "uptime"))


def read_os_pretty_name() -> str:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            return os_pretty_name(read_text(path))
        except OSError:
            continue
    return "Linux"


def kernel_release() -> str:
    """``uname -r``."""
    return platform.release()


def read_process_start_time(pid: int | str = "self") -> float:
    return process_start_time(read_text(PROC / str(pid) / "stat"), read_text(PROC / "stat"), os.sysconf("SC_CLK_TCK"))


def read_disk_usage(
    mounts_text: str | None = None, statvfs: Callable[[str], os.statvfs_result] = os.statvfs
) -> list[dict[str, Any]]:
    """[{mount, used_pct}] for every data filesystem that is a directory and answers statvfs."""
    if mounts_text is None:
        try:
            mounts_text = read_text(PROC / "self" / "mounts")
        except OSError:
            mounts_text = "rootfs / rootfs rw 0 0\n"
    disks = []
    for mount in data_mounts(parse_mounts(mounts_text)):
        if not os.path.isdir(mount.mountpoint):
            continue  # bind-mounted files (a container's /etc/hosts)
        try:
            pct = disk_used_pct(statvfs(mount.mountpoint))
        except OSError:
            continue
        if pct is not None:
            disks.append({"mount": mount.mountpoint, "used_pct": pct})
    if not disks:
        pct = disk_used_pct(statvfs("/"))
        disks.append({"mount": "/", "used_pct": pct if pct is not None else 0.0})
    return disks


def root_disk_used_pct(statvfs: Callable[[str], os.statvfs_result] = os.statvfs) -> float:
    pct = disk_used_pct(statvfs("/"))
    return pct if pct is not None else 0.0


def read_net_dev() -> dict[str, dict[str, int]]:
    try:
        return parse_net_dev(read_text(PROC / "net" / "dev"))
    except OSError:
        return {}


def read_passwd_users(path: str = "/etc/passwd") -> list[dict[str, Any]]:
    return parse_passwd_users(read_text(path))


async def sample_cpu_percent(seconds: float = 0.25) -> float:
    """CPU busy percent over a short sample (awaits, never blocks the event loop)."""
    before = read_cpu_times()
    await asyncio.sleep(seconds)
    return cpu_percent(before, read_cpu_times())


class CpuMeter:
    """CPU percent since the previous reading (the first one takes a short sample)."""

    def __init__(self, sample_s: float = 0.25) -> None:
        self.sample_s = sample_s
        self._last: CpuTimes | None = None

    async def read(self) -> float:
        if self._last is None:
            self._last = read_cpu_times()
            await asyncio.sleep(self.sample_s)
        now = read_cpu_times()
        pct = cpu_percent(self._last, now)
        self._last = now
        return pct


async def _run(argv: list[str], timeout_s: float) -> tuple[int, str] | None:
    """(rc, stdout) of a short command; None when it is absent, fails to start or times out."""
    if shutil.which(argv[0], path=os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin") is None:
        return None
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        return None
    return proc.returncode or 0, out.decode("utf-8", "replace")


async def service_states(names: Iterable[str], timeout_s: float = 3.0) -> dict[str, str]:
    """{unit: state} from ``systemctl is-active``; "unknown" when systemctl is absent or hangs."""
    states = {}
    for name in names:
        ran = await _run(["systemctl", "is-active", name], timeout_s)
        states[name] = service_state(ran[1]) if ran else "unknown"
    return states


ENGINE_PS = {
    "docker": ["docker", "ps", "--all", "--no-trunc", "--format", "{{json .}}"],
    "nerdctl": ["nerdctl", "ps", "--all", "--format", "{{json .}}"],
    "podman": ["podman", "ps", "--all", "--format", "json"],
}


async def list_engine_containers(engine: str, timeout_s: float = 5.0) -> tuple[bool, list[dict[str, str]]]:
    """(engine available, containers); ([] when the engine is none, absent, down or slow)."""
    argv = ENGINE_PS.get(engine.strip().lower())
    if argv is None:
        return False, []
    ran = await _run(argv, timeout_s)
    if ran is None or ran[0] != 0:
        return False, []
    try:
        return True, parse_container_list(ran[1])
    except ValueError:
        return False, []
