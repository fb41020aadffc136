"""Listeners and their owning processes from /proc text (no ss/netstat/ps needed)."""

import ipaddress
import subprocess

import pytest

from viworks_verify.backend.listeners import SNAPSHOT_COMMAND, SnapshotError, parse_proc_net_tcp, parse_snapshot

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
TCP = HEADER + (
    "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000"
    " 00:00000000 00000000     0        0 136340 1 0000000005597f95 100 0 0 10 0\n"
    "   1: 0100007F:1F91 00000000:0000 0A 00000000:00000000"
    " 00:00000000 00000000     0        0 136341 1 00000000a3388f05 100 0 0 10 0\n"
    "   2: 0B00007F:A5BF 00000000:0000 0A 00000000:00000000"
    " 00:00000000 00000000     0        0 135045 1 00000000b991ddf0 100 0 0 10 0\n"
    "   3: 020017AC:1F90 030017AC:AA1C 06 00000000:00000000 03:000004B5 00000000     0        0 0 3 00000000c5a10b19\n"
    "   4: 020017AC:1F91 030017AC:CEAC 01 00000000:00000000"
    " 02:000ABC19 00000000     0        0 138691 2 00000000e3654f38 20 4 30 26 -1\n"
)
TCP6 = (
    "  sl  local_address                         remote_address                        "
    "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000"
    " 0A 00000000:00000000 00:00000000 00000000     0        0 200001 1 0000000000000000 100 0 0 10 0\n"
    "   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000"
    " 0A 00000000:00000000 00:00000000 00000000     0        0 200002 1 0000000000000000 100 0 0 10 0\n"
    "   2: 0000000000000000FFFF00000100007F:0051 00000000000000000000000000000000:0000"
    " 0A 00000000:00000000 00:00000000 00000000     0        0 200003 1 0000000000000000 100 0 0 10 0\n"
)
SEP = "\x1f"


def snapshot_text(*processes: str, tcp: str = TCP, tcp6: str = TCP6) -> str:
    return f"@@ tcp\n{tcp}@@ tcp6\n{tcp6}" + "".join(processes)


def process(pid: int, argv: list[str], inodes: list[int] = (), listed: bool = True) -> str:
    lines = [f"@@ pid {pid}", "cmdline " + SEP.join(argv) + SEP]
    lines += [f"fd socket:[{inode}]" for inode in inodes]
    lines += [] if listed else ["fds unlisted"]
    return "\n".join(lines) + "\n"


AGENT = ["/usr/bin/python3", "/app/viworks-backend-agent", "--config", "/app/config/backend-agent.toml"]


def test_ipv4_table_decodes_little_endian_addresses_ports_states_and_inodes():
    sockets = parse_proc_net_tcp(TCP, "tcp")
    assert [(str(s.address), s.port, s.listening, s.inode) for s in sockets[:3]] == [
        ("0.0.0.0", 8080, True, 136340),
        ("127.0.0.1", 8081, True, 136341),
        ("127.0.0.11", 42431, True, 135045),
    ]
    assert str(sockets[3].address) == "172.23.0.2" and not sockets[3].listening
    assert sockets[0].reachable_from_outside and not sockets[1].reachable_from_outside


def test_ipv6_table_decodes_each_word_and_treats_mapped_loopback_as_loopback():
    sockets = parse_proc_net_tcp(TCP6, "tcp6")
    assert [s.address for s in sockets] == [
        ipaddress.ip_address("::"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("::ffff:127.0.0.1"),
    ]
    assert [s.endpoint for s in sockets[:2]] == ["[::]:8081", "[::1]:80"]
    assert [s.reachable_from_outside for s in sockets] == [True, False, False]


def test_listeners_are_mapped_to_owning_processes_through_socket_inodes():
    snapshot = parse_snapshot(
        snapshot_text(process(1, AGENT, [136340, 136341, 200001, 138691]), process(7, ["sh", "-c", "x"]))
    )
    api = snapshot.listening_on(8080)
    assert len(api) == 1 and [p.pid for p in api[0].owners] == [1]
    assert api[0].owners[0].runs("/app/viworks-backend-agent")
    ws = snapshot.listening_on(8081)  # 127.0.0.1 (tcp) and :: (tcp6)
    assert {s.socket.endpoint for s in ws} == {"127.0.0.1:8081", "[::]:8081"}
    assert snapshot.listening_on(9999) == []
    assert snapshot.listening_ports == [80, 81, 8080, 8081, 42431]
    assert snapshot.listening_on(42431)[0].owners == ()  # Docker's DNS: no process of the container


def test_a_port_held_by_another_program_is_not_the_agents():
    snapshot = parse_snapshot(
        snapshot_text(process(1, AGENT, []), process(23, ["python3", "-m", "http.server", "8080"], [136340]))
    )
    owner = snapshot.listening_on(8080)[0].owners[0]
    assert owner.pid == 23 and not owner.runs("/app/viworks-backend-agent")
    assert owner.describe() == "pid 23 (python3 -m http.server 8080)"


def test_the_binary_is_recognised_run_directly_or_by_an_interpreter_but_not_mentioned_later():
    snapshot = parse_snapshot(
        snapshot_text(
            process(1, ["/app/viworks-backend-agent", "--config", "x"]),
            process(2, ["./viworks-backend-agent"]),
            process(3, ["cat", "/app/viworks-backend-agent"]),
            process(4, ["sha256sum", "x", "/app/viworks-backend-agent"]),
        )
    )
    assert [p.runs("/app/viworks-backend-agent") for p in snapshot.processes] == [True, True, True, False]
    # "cat <binary>" counts: the program's first argument is where an interpreter names its script.
    # Only a process holding the port is ever judged, so the cost of that leniency is nil.


def test_processes_whose_fds_could_not_be_listed_are_reported():
    snapshot = parse_snapshot(snapshot_text(process(1, AGENT, listed=False), process(9, ["sh"])))
    assert snapshot.listening_on(8080)[0].owners == ()
    assert snapshot.unlisted_pids == [1]


def test_output_without_a_tcp_table_is_an_error_not_an_empty_result():
    with pytest.raises(SnapshotError):
        parse_snapshot("sh: 1: cannot open /proc/net/tcp: No such file\n")
    with pytest.raises(SnapshotError):
        parse_proc_net_tcp(HEADER + "   0: garbage\n")


def test_the_snapshot_command_reads_this_machines_proc_with_sh_only():
    done = subprocess.run(SNAPSHOT_COMMAND, capture_output=True, text=True, timeout=30)
    snapshot = parse_snapshot(done.stdout)
    assert snapshot.processes and snapshot.sockets is not None
    assert any("sh" in p.argv[0] for p in snapshot.processes if p.argv)
