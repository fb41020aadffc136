"""File facts read by one sh exec, release matching, and container restart judgement."""

import datetime as dt
import hashlib
import subprocess

from viworks_verify.backend.container_files import file_facts_command, parse_file_facts
from viworks_verify.backend.containers import ContainerFacts, parse_docker_time, restart_problem, watch_settling
from viworks_verify.core.sizes import human_size
from viworks_verify.target.release import names_a_build, release_mismatch
from viworks_verify.target.settings import Release


def run_locally(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout


def test_one_exec_reports_stat_hash_and_content(tmp_path):
    binary = tmp_path / "agent"
    binary.write_bytes(b"#!/bin/sh\necho hi\n")
    binary.chmod(0o755)
    config = tmp_path / "config.toml"
    config.write_text("[server]\nport = 8080\n")
    key = tmp_path / "my key.pem"  # a space in the name: arguments are passed, not formatted in
    key.write_text("secret")
    key.chmod(0o600)
    facts = parse_file_facts(
        run_locally(
            file_facts_command(
                stat=[str(key), str(tmp_path / "missing")],
                hash=[str(binary)],
                content=[str(config), str(tmp_path)],
            )
        )
    )
    assert facts[str(binary)].is_file and facts[str(binary)].executable and facts[str(binary)].mode == 0o755
    assert facts[str(binary)].sha256 == hashlib.sha256(binary.read_bytes()).hexdigest()
    assert facts[str(binary)].size == binary.stat().st_size and facts[str(binary)].content is None
    assert facts[str(config)].content == config.read_bytes() and not facts[str(config)].executable
    assert facts[str(key)].octal == "0600" and facts[str(key)].content is None and facts[str(key)].sha256 is None
    assert not facts[str(tmp_path / "missing")].exists
    assert facts[str(tmp_path)].kind == "directory" and facts[str(tmp_path)].content is None


def test_human_sizes():
    assert human_size(7340032) == "7.0 MB (7340032 bytes)"
    assert human_size(26490) == "25.9 KB (26490 bytes)"
    assert human_size(None) == "unknown size"


def test_release_is_matched_by_sha256_first_then_by_size():
    sha = "08d53d6dc690f4d9293a4f13869c6e11e3209392107f6253d61e8f674694ed01"
    assert not names_a_build(Release(version="1.4.2"))
    assert release_mismatch(26490, sha, Release(sha256=sha.upper())) is None
    wrong = release_mismatch(7340032, "ffee" + sha[4:], Release(version="1.4.2", sha256=sha, size=5347737))
    assert wrong == (
        "found 7.0 MB (7340032 bytes), sha256 ffee3d6dc690…; "
        "expected release 1.4.2, sha256 08d53d6dc690…, 5.1 MB (5347737 bytes)"
    )
    assert release_mismatch(5_300_000, None, Release(size_min=5_000_000, size_max=5_500_000)) is None
    assert "size 4.8 MB (5000000 bytes) .. 5.2 MB (5500000 bytes)" in release_mismatch(
        7_340_032, None, Release(size_min=5_000_000, size_max=5_500_000)
    )
    assert release_mismatch(100, None, Release(size=101)) is not None


def _container(restarts: int, started: str, running: bool = True) -> ContainerFacts:
    return ContainerFacts(
        "c", {"RestartCount": restarts, "State": {"Running": running, "Status": "running", "StartedAt": started}}
    )


def test_docker_times_with_nanoseconds_and_the_zero_time():
    assert parse_docker_time("2026-11-22T23:12:33.14947234Z") == dt.datetime(
        2026, 11, 22, 23, 12, 33, 149472, tzinfo=dt.UTC
    )
    assert parse_docker_time("2026-11-22T23:12:33Z").second == 33
    assert parse_docker_time("0001-01-01T00:00:00Z") is None and parse_docker_time("") is None


def test_restarts_judged_by_count_and_by_how_recently():
    now = dt.datetime(2026, 11, 22, 23, 13, 0, tzinfo=dt.UTC)
    assert restart_problem(_container(0, "2026-11-22T23:12:58Z"), now, 3, 30) is None  # a fresh deploy
    assert restart_problem(_container(2, "2026-11-22T22:00:00Z"), now, 3, 30) is None  # old restarts, settled since
    assert "restarted 2 times, last 5 s ago" in restart_problem(_container(2, "2026-11-22T23:12:55Z"), now, 3, 30)
    assert "restarted 4 times (max 3)" in restart_problem(_container(4, "2026-11-22T22:00:00Z"), now, 3, 30)


class FakeEngine:
    """A container seen through successive inspects, on a fake clock that advances as the poller waits."""

    def __init__(self, timeline):
        self.t = 0.0
        self.timeline = timeline  # [(from_t, facts)]: the facts an inspect returns from that time on

    def now(self):
        return dt.datetime(2026, 11, 22, 23, 13, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=self.t)

    def inspect(self):
        return [facts for start, facts in self.timeline if start <= self.t][-1]

    def wait(self, seconds):
        self.t += seconds

    def clock(self):
        return self.t


def test_a_recently_restarted_container_that_stays_up_settles_without_a_fixed_sleep():
    restarted = _container(1, "2026-11-22T23:12:50Z")  # up 10 s of a 30 s window
    engine = FakeEngine([(0, restarted)])
    problem = watch_settling(restarted, engine.inspect, engine.now, 30, clock=engine.clock, wait=engine.wait)
    assert problem is None and 20 <= engine.t < 25  # waited for the rest of the window, polling


def test_a_container_restarting_again_while_watched_is_reported():
    restarted = _container(1, "2026-11-22T23:12:50Z")
    engine = FakeEngine([(0, restarted), (4, _container(2, "2026-11-22T23:13:04Z"))])
    problem = watch_settling(restarted, engine.inspect, engine.now, 30, clock=engine.clock, wait=engine.wait)
    assert problem == "c restarted again while watched (1 -> 2 restarts)" and engine.t < 10
    engine = FakeEngine([(0, restarted), (3, _container(1, "2026-11-22T23:12:50Z", running=False))])
    assert "went" in watch_settling(restarted, engine.inspect, engine.now, 30, clock=engine.clock, wait=engine.wait)
