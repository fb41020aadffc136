"""The gathering child's stream, with stand-in programs: what it delivers, and why it did not."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator

from viworks_verify.gather.child import RUN_KEY_ENV, GatherChild


@contextlib.contextmanager
def child(code: str) -> Iterator[GatherChild]:
    """A GatherChild whose program is ``python -c code``, stopped on the way out."""
    streamed = GatherChild([], program=(sys.executable, "-c", code))
    try:
        yield streamed
    finally:
        streamed.close()


def test_each_host_is_delivered_as_its_line_arrives_and_noise_is_ignored():
    lines = [
        "not json",
        json.dumps({"host": "ssh://gw-1", "kind": "gateway"}),
        json.dumps([1]),
        json.dumps({"host": "local://backend", "kind": "backend"}),
    ]
    with child(f"print({chr(10).join(lines)!r}, flush=True)") as streamed:
        assert streamed.snapshot_json("ssh://gw-1", timeout_s=30) == {"host": "ssh://gw-1", "kind": "gateway"}
        assert streamed.snapshot_json("local://backend", timeout_s=30)["kind"] == "backend"


def test_a_host_the_child_ended_without_is_none_and_the_reason_names_the_exit_and_its_last_words():
    with child(
        "import sys; print('starting', file=sys.stderr); print('inventory gone', file=sys.stderr); sys.exit(4)"
    ) as streamed:
        assert streamed.snapshot_json("ssh://gw-1", timeout_s=30) is None
        assert (
            streamed.missing("ssh://gw-1")
            == "ssh://gw-1: the gathering child process ended (exit 4) without it: inventory gone"
        )


def test_a_child_over_its_budget_is_not_waited_for_and_is_stopped_at_close():
    with child("import signal; signal.pause()") as streamed:  # a child that never answers
        assert streamed.snapshot_json("ssh://gw-1", timeout_s=0.2) is None
        assert streamed.missing("ssh://gw-1") == "ssh://gw-1: the gathering child process had not delivered it in time"
    assert "exit" in streamed.missing("ssh://gw-1")  # stopped, not left behind


def test_the_child_hashes_secrets_with_the_run_key_the_pytest_process_holds():
    with child(f"import json, os; print(json.dumps({{'host': 'h', 'key': os.environ[{RUN_KEY_ENV!r}]}}))") as streamed:
        assert streamed.snapshot_json("h", timeout_s=30)["key"] == streamed.run_key
