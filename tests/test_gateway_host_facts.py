"""Reading gateway host facts from command output, without a host: stat, ss, journalctl, /proc, date, keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from viworks_verify.core import clock
from viworks_verify.gateway import journal, ss_listeners
from viworks_verify.gateway.file_stat import parse_stat
from viworks_verify.gateway.processes import ProcessFacts, runs_program
from viworks_verify.pki import certs, public_keys
from viworks_verify.pki.pins import spki_pin

# ------------------------------------------------------------------------------------------ stat


def test_stat_output_and_errors_parse():
    stdout = (
        "600|0|root|0|root|100|regular file|/opt/viworks/agent/certs/client.key\n"
        "4755|0|root|0|root|100|regular file|/opt/viworks/viworks-gateway-agent\n"
        "777|1000|ops|1000|ops|100|regular empty file|/opt/x|with a bar\n"
        "755|0|root|0|root|100|directory|/opt/viworks/scripts\n"
    )
    stderr = (
        "stat: cannot statx '/opt/viworks/scripts/add_user.sh': No such file or directory\n"
        'stat: cannot statx "/tmp/it\'s": Permission denied\n'
        "stat: cannot statx 'it'\\''s': No such file or directory\n"
    )
    table = parse_stat(stdout + "\n" + stderr)
    key = table.get("/opt/viworks/agent/certs/client.key")
    assert (key.mode, key.octal, key.uid, key.is_file, key.executable) == (0o600, "0600", 0, True, False)
    binary = table.get("/opt/viworks/viworks-gateway-agent")
    assert binary.octal == "4755" and binary.executable and not binary.group_writable
    odd = table.get("/opt/x|with a bar")
    assert odd.world_writable and odd.group_writable and odd.owner == "ops(1000)" and odd.is_file
    assert not table.get("/opt/viworks/scripts").executable  # a directory is not a program
    assert table.get("/opt/viworks/scripts/add_user.sh") is None
    assert table.absence("/opt/viworks/scripts/add_user.sh") == "does not exist"
    assert table.absence("/tmp/it's") == "cannot be read (Permission denied)"
    assert table.absence("it's") == "does not exist"
    assert table.absence("/never/asked") == "does not exist"


# -------------------------------------------------------------------------------------------- ss

SS_OUTPUT = """\
udp UNCONN 0      0      127.0.0.11:59044 0.0.0.0:*
udp UNCONN 0      0      127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=301,fd=13))
tcp LISTEN 0      4096   127.0.0.11:33773 0.0.0.0:*
tcp LISTEN 0      128       0.0.0.0:22    0.0.0.0:* users:(("sshd",pid=37,fd=3))
tcp LISTEN 0      128          [::]:22       [::]:* users:(("sshd",pid=37,fd=4),("sshd",pid=90,fd=4))
tcp LISTEN 0      5         0.0.0.0:8099  0.0.0.0:* users:(("python3",pid=117,fd=6))
udp UNCONN 0      0               *:68          *:* users:(("dhclient",pid=55,fd=7))
"""


def test_ss_listeners_parse():
    listeners = ss_listeners.parse(SS_OUTPUT)
    assert [(listener.proto, listener.address, listener.port) for listener in listeners] == [
        ("udp", "127.0.0.11", 59044),
        ("udp", "127.0.0.53", 53),
        ("tcp", "127.0.0.11", 33773),
        ("tcp", "0.0.0.0", 22),
        ("tcp", "::", 22),
        ("tcp", "0.0.0.0", 8099),
        ("udp", "*", 68),
    ]
    assert listeners[4].processes == (("sshd", 37), ("sshd", 90)) and listeners[4].names == ("sshd",)
    assert listeners[0].processes == ()


def test_only_undeclared_listeners_are_reported_and_named():
    found = ss_listeners.undeclared(ss_listeners.parse(SS_OUTPUT), ("sshd:22/tcp",), ("127.0.0.11",))
    assert [listener.port for listener in found] == [53, 8099, 68]
    assert found[1].describe({117: "the agent"}) == "8099/tcp on 0.0.0.0 by python3 (pid 117, the agent)"
    # A stock host declares its services by process and port (and protocol, where it matters).
    stock = ("sshd:22/tcp", "systemd-resolve:53", "python3:8099/tcp", "dhclient")
    assert ss_listeners.undeclared(ss_listeners.parse(SS_OUTPUT), stock, ("127.0.0.11",)) == []
    assert [
        listener.port
        for listener in ss_listeners.undeclared(ss_listeners.parse(SS_OUTPUT), ("sshd:2222", *stock[1:]), ())
    ] == [
        59044,
        33773,
        22,
        22,
    ]
    # An engine address is ignored only when no host process owns the socket.
    owned = ss_listeners.parse('tcp LISTEN 0 5 127.0.0.11:8080 0.0.0.0:* users:(("python3",pid=9,fd=3))\n')
    assert ss_listeners.undeclared(owned, ("sshd",), ("127.0.0.11",)) == owned
    unowned = ss_listeners.parse("tcp LISTEN 0 5 10.0.0.5:2049 0.0.0.0:*\n")
    assert unowned[0].describe() == "2049/tcp on 10.0.0.5 by no process visible on the host"


def test_the_agents_own_listeners_are_found_by_its_pid():
    assert [listener.port for listener in ss_listeners.owned_by(ss_listeners.parse(SS_OUTPUT), {117})] == [8099]


@pytest.mark.parametrize("text", ["", ":22", "sshd:ssh", "sshd:22/sctp"])
def test_a_malformed_declared_listener_is_refused(text):
    with pytest.raises(ValueError, match="is not PROCESS"):
        ss_listeners.Declared.parse(text)


# --------------------------------------------------------------------------------------- journal


def test_journal_lines_parse_and_the_quoted_one_is_the_last_trouble():
    text = (
        "2026-11-22T23:21:58+0000 gw-lab-01 viworks-gateway-agent[117]: connecting to wss://a/ws/agent (attempt 1)\n"
        "2026-11-22T23:21:58+0000 gw-lab-01 viworks-gateway-agent[117]: connect to wss://a/ws/agent failed: "
        "Connection refused\n"
        "  a continuation line\n"
        "2026-11-22T23:21:59+0000 gw-lab-01 viworks-gateway-agent[117]: reconnecting in 1.6s (failures in a row: 2)\n"
    )
    lines = journal.parse_lines(text)
    assert len(lines) == 3 and lines[1].message.endswith("Connection refused a continuation line")
    assert lines[0].timestamp == "2026-11-22T23:21:58+0000" and lines[0].ident == "viworks-gateway-agent[117]"
    assert journal.line_to_quote(lines) is lines[1]
    assert journal.line_to_quote(lines[:1]) is lines[0]
    assert journal.line_to_quote([]) is None


# ----------------------------------------------------------------------------------------- /proc


def test_a_script_program_is_run_by_its_interpreter():
    text = (
        "program=/opt/viworks/viworks-gateway-agent\nexe=/usr/bin/python3.11\nstate=S (sleeping)\n"
        "argv:\n/usr/bin/python3\n/opt/viworks/viworks-gateway-agent\n"
    )
    facts = ProcessFacts.parse(117, "/opt/viworks/viworks-gateway-agent", text)
    assert facts.alive and facts.runs_program
    assert (
        facts.describe()
        == "117 runs /usr/bin/python3.11 (argv /usr/bin/python3 /opt/viworks/viworks-gateway-agent; state S (sleeping))"
    )


def test_a_binary_program_through_a_symlink():
    text = (
        "program=/opt/viworks/releases/1.4/agent\nexe=/opt/viworks/releases/1.4/agent\n"
        "state=S (sleeping)\nargv:\n/opt/viworks/current\n"
    )
    assert ProcessFacts.parse(5, "/opt/viworks/current", text).runs_program


def test_another_program_a_dead_pid_and_a_zombie_are_not_the_agent():
    text = (
        "program=/opt/viworks/bin/agent\nexe=/usr/bin/python3.11\nstate=S\n"
        "argv:\n/usr/bin/python3\n/opt/viworks/viworks-gateway-agent\n"
    )
    other = ProcessFacts.parse(117, "/opt/viworks/bin/agent", text)
    assert other.alive and not other.runs_program
    dead = ProcessFacts.parse(4242, "/opt/a", "program=/opt/a\n")
    assert not dead.alive and dead.describe() == "4242 is not running"
    zombie = ProcessFacts.parse(7, "/opt/a", "program=/opt/a\nexe=\nstate=Z (zombie)\nargv:\n")
    assert not zombie.alive
    replaced = ProcessFacts.parse(8, "/opt/a", "program=/opt/a\nexe=/opt/a (deleted)\nstate=S\nargv:\n/opt/a\n")
    assert replaced.runs_program and replaced.exe_deleted


# ----------------------------------------------------------------------------------------- clock


def test_clock_skew_against_the_midpoint_of_the_round_trip():
    skew = clock.Skew.measure(host_epoch=1000.0, runner_before=960.0, runner_after=961.0)
    assert skew.seconds == pytest.approx(39.5) and skew.uncertainty == pytest.approx(0.5)
    assert skew.describe() == "39.5 s ahead of the runner (±0.5 s)"
    assert skew.exceeds(30) and not skew.exceeds(39.2)
    behind = clock.Skew(-12.0, 0.1)
    assert behind.describe("ssh://gw") == "12.0 s behind ssh://gw (±0.1 s)"
    assert skew.against(behind).seconds == pytest.approx(51.5)


@pytest.mark.parametrize("text, epoch", [("1700000000.250000000\n", 1700000000.25), ("1700000000.N", 1700000000.0)])
def test_date_output_parses(text, epoch):
    assert clock.parse_epoch(text) == epoch


def test_unparseable_date_output_is_an_error():
    with pytest.raises(ValueError):
        clock.parse_epoch("date: invalid option")


# ------------------------------------------------------------------------------------------- keys


def test_public_halves_compare_without_the_private_key_leaving_anything_behind():
    ca = certs.new_ca("Test CA")
    leaf = certs.issue(ca, "gw-lab-01", server=False)
    public_pem = (
        leaf.key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    from_openssl = public_keys.spki_from_public_pem(public_pem)
    from_key = public_keys.spki_from_private_pem(leaf.key_pem())
    assert from_openssl == from_key == public_keys.certificate_spki(leaf.certificate)
    assert public_keys.spki_digest(from_key) == spki_pin(leaf.certificate)


def test_an_unusable_key_says_so_without_its_content():
    junk = b"-----BEGIN PRIVATE KEY-----\nTUlJQm5vdGFrZXk=\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValueError) as raised:
        public_keys.spki_from_private_pem(junk)
    assert "TUlJ" not in str(raised.value) and raised.value.__cause__ is None and raised.value.__suppress_context__
    with pytest.raises(ValueError):
        public_keys.spki_from_public_pem("not a key")


def test_one_rule_says_whether_a_process_runs_a_program():
    """The gateway's MainPID and the backend's port owners are judged by the same rule."""
    program = {"/opt/viworks/viworks-gateway-agent"}
    assert runs_program(
        ["/usr/bin/python3", "/opt/viworks/viworks-gateway-agent"], program
    )  # a script, via its interpreter
    assert runs_program(["viworks-gateway-agent", "--flag"], program)  # started through PATH
    assert runs_program(["bash"], program, exe="/opt/viworks/viworks-gateway-agent")  # renamed argv, same binary
    assert not runs_program(["/tmp/viworks-gateway-agent"], program)  # the same name elsewhere is another program
    assert not runs_program(["sha256sum", "-b", "/opt/viworks/viworks-gateway-agent"], program)  # mentioned, not run
