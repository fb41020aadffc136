"""The gateway agent's host readings: pure parsers over /proc texts, and the live readers on this host."""

from __future__ import annotations

import asyncio
import os

import pytest

from viworks_lab.agents import host_readings as hr

MEMINFO = """MemTotal:       16303748 kB
MemFree:         1234567 kB
MemAvailable:   12227811 kB
Buffers:          204800 kB
Cached:          4096000 kB
HugePages_Total:       0
"""

STAT_BEFORE = """cpu  100 0 50 800 50 0 0 0 0 0
cpu0 50 0 25 400 25 0 0 0 0 0
intr 12345
btime 1700000000
processes 42
"""
STAT_AFTER = """cpu  160 0 90 850 50 0 0 0 0 0
btime 1700000000
"""

PID_STAT = (
    "4242 (python3 my agent) S 1 4242 4242 0 -1 4194560 1234 0 0 0 10 5 0 0 20 0 3 0 "
    "250000 123456789 4321 18446744073709551615 1 1 0 0 0 0 0 16781312 16386 0 0 0 17 2 0 0 0 0 0"
)

MOUNTS = r"""overlay / overlay rw,relatime,lowerdir=/a 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /dev tmpfs rw,nosuid,size=65536k,mode=755 0 0
sysfs /sys sysfs ro,nosuid,nodev,noexec,relatime 0 0
cgroup /sys/fs/cgroup/cpu cgroup ro 0 0
/dev/sda1 /srv/my\040data ext4 rw,relatime 0 0
/dev/sda1 /etc/hosts ext4 rw,relatime 0 0
mqueue /dev/mqueue mqueue rw 0 0
/dev/sda1 /srv/my\040data ext4 rw,relatime 0 0
"""


def test_meminfo_gives_total_and_used_from_available():
    info = hr.parse_meminfo(MEMINFO)
    assert info["MemTotal"] == 16303748
    assert info["HugePages_Total"] == 0
    total_mb, used_mb = hr.memory_mb(info)
    assert total_mb == pytest.approx(15921.6, abs=0.1)
    assert used_mb == pytest.approx((16303748 - 12227811) / 1024, abs=0.1)
    assert hr.memory_percent(info) == pytest.approx(100 * used_mb / total_mb, abs=0.1)


def test_meminfo_without_memavailable_falls_back_to_free_buffers_cached():
    info = hr.parse_meminfo(MEMINFO.replace("MemAvailable:   12227811 kB\n", ""))
    _, used_mb = hr.memory_mb(info)
    assert used_mb == pytest.approx((16303748 - 1234567 - 204800 - 4096000) / 1024, abs=0.1)


def test_cpu_percent_is_the_busy_share_between_two_samples():
    before = hr.parse_cpu_times(STAT_BEFORE)
    after = hr.parse_cpu_times(STAT_AFTER)
    assert before == hr.CpuTimes(idle=850, total=1000)
    # busy grew by 100 of 150 jiffies
    assert hr.cpu_percent(before, after) == pytest.approx(66.7, abs=0.1)
    assert hr.cpu_percent(after, after) == 0.0


def test_cpu_times_needs_the_aggregate_line():
    with pytest.raises(ValueError):
        hr.parse_cpu_times("cpu0 1 2 3 4\n")


def test_process_start_time_from_pid_stat_and_btime():
    assert hr.parse_boot_time(STAT_BEFORE) == 1700000000
    assert hr.parse_process_start_ticks(PID_STAT) == 250000
    assert hr.process_start_time(PID_STAT, STAT_BEFORE, 100) == pytest.approx(1700002500.0)


def test_loadavg_uptime_and_os_release():
    assert hr.parse_loadavg("0.52 0.58 0.59 2/1160 12345\n") == [0.52, 0.58, 0.59]
    assert hr.parse_uptime("350735.47 234388.90\n") == pytest.approx(350735.47)
    text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n# c\n'
    assert hr.os_pretty_name(text) == "Debian GNU/Linux 12 (bookworm)"
    assert hr.os_pretty_name("NAME=Alpine\nVERSION='3.19'\n") == "Alpine 3.19"


def test_data_mounts_drop_pseudo_filesystems_and_duplicates_root_first():
    mounts = hr.data_mounts(hr.parse_mounts(MOUNTS))
    assert [m.mountpoint for m in mounts] == ["/", "/srv/my data", "/etc/hosts"]


def test_disk_used_pct_matches_df():
    stats = os.statvfs_result((4096, 4096, 1000, 400, 350, 0, 0, 0, 0, 255))
    # used 600, usable 600 + 350
    assert hr.disk_used_pct(stats) == pytest.approx(63.2, abs=0.1)
    empty = os.statvfs_result((4096, 4096, 0, 0, 0, 0, 0, 0, 0, 255))
    assert hr.disk_used_pct(empty) is None


def test_disk_usage_skips_files_and_pseudo_mounts(tmp_path):
    text = f"overlay / overlay rw 0 0\n/dev/x {tmp_path} ext4 rw 0 0\n/dev/x /etc/hostname ext4 rw 0 0\n"
    fake = os.statvfs_result((4096, 4096, 100, 50, 50, 0, 0, 0, 0, 255))
    disks = hr.read_disk_usage(text, statvfs=lambda path: fake)
    assert disks == [{"mount": "/", "used_pct": 50.0}, {"mount": str(tmp_path), "used_pct": 50.0}]


def test_net_dev_and_passwd_users():
    net = (
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast"
        "|bytes    packets errs drop fifo colls carrier compressed\n"
        "    lo:    1000      10    0    0    0     0          0         0"
        "     1000      10    0    0    0     0       0          0\n"
        "  eth0: 123456     100    0    0    0     0          0         0 "
        "   65432      90    0    0    0     0       0          0\n"
    )
    assert hr.parse_net_dev(net)["eth0"] == {"rx_bytes": 123456, "tx_bytes": 65432}
    passwd = (
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n"
        "nobody:x:65534:65534::/:/usr/sbin/nologin\n"
    )
    assert hr.parse_passwd_users(passwd) == [
        {"username": "alice", "uid": 1000, "home": "/home/alice", "shell": "/bin/bash"}
    ]


def test_service_state_and_container_lists():
    assert hr.service_state("active\n") == "active"
    assert hr.service_state("") == "unknown"
    assert hr.service_state("System has not been booted with systemd") == "unknown"
    lines = '{"ID":"0123456789abcdef","Names":"web","Image":"nginx","State":"running","Status":"Up 2 hours"}\n'
    assert hr.parse_container_list(lines) == [
        {"id": "0123456789ab", "name": "web", "image": "nginx", "state": "running", "status": "Up 2 hours"}
    ]
    array = '[{"Id":"abc","Names":["a","b"],"Image":"img","State":"exited","Status":"Exited (0)"}]'
    assert hr.parse_container_list(array)[0]["name"] == "a,b"
    assert hr.parse_container_list("  \n") == []


def test_live_readings_on_this_host_are_real():
    total_mb, used_mb = hr.memory_mb(hr.read_meminfo())
    assert total_mb > 0 and used_mb > 0
    assert hr.read_uptime() > 0
    assert len(hr.read_loadavg()) == 3
    disks = hr.read_disk_usage()
    assert disks and disks[0]["mount"] == "/" and 0 < disks[0]["used_pct"] <= 100
    assert hr.read_process_start_time() <= __import__("time").time() + 1
    assert 0.0 <= asyncio.run(hr.sample_cpu_percent(0.05)) <= 100.0


def test_absent_commands_are_tolerated():
    assert asyncio.run(hr.service_states(["sshd"], timeout_s=2))["sshd"]
    assert asyncio.run(hr.list_engine_containers("none")) == (False, [])
    assert asyncio.run(hr.list_engine_containers("no-such-engine")) == (False, [])
