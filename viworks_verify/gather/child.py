"""The gather phase's head start: a child process that reads the hosts while pytest starts.

Python runs one thread at a time, so hosts read in the pytest process compete with pytest's own
start-up (imports, collection) for one core. Read by a child process (``python -m
viworks_verify.gather.child_main``), started before pytest loads the suite, they are read on another
core, and each snapshot comes back as one JSON line as soon as its host is read.

The child is a head start, never a dependency: a host it does not deliver (it failed, or took
longer than its budget) is read in the pytest process as before, and ``missing()`` says why.
Standard library only: this module is imported before pytest has loaded the suite.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

PROGRAM = (sys.executable, "-m", "viworks_verify.gather.child_main")
# A key for the secret-value hashes of this run, shared by the child and the pytest process, so
# that hosts read by either compare (the target's own key, when it has one, takes precedence).
RUN_KEY_ENV = "VIWORKS_RUN_SNAPSHOT_KEY"


class GatherChild:
    """``python -m viworks_verify.gather.child_main ARGV``, its snapshot lines collected as they arrive."""

    def __init__(self, argv: list[str], program: tuple[str, ...] = PROGRAM) -> None:
        self.run_key = secrets.token_hex(32)
        self._stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty child cannot block on it
        self._process = subprocess.Popen(
            [*program, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, RUN_KEY_ENV: self.run_key},
        )
        self._delivered: dict[str, dict[str, Any]] = {}
        self._ended = False
        self._last_words = ""
        self._changed = threading.Condition()
        self._collector = threading.Thread(target=self._collect, name="viworks-gather-child", daemon=True)
        self._collector.start()

    def _collect(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and isinstance(data.get("host"), str):
                with self._changed:
                    self._delivered[data["host"]] = data
                    self._changed.notify_all()
        self._process.wait()
        self._stderr.seek(0)
        words = [line.strip() for line in self._stderr.read().splitlines() if line.strip()]
        with self._changed:
            self._last_words = words[-1][:300] if words else ""
            self._ended = True
            self._changed.notify_all()

    def snapshot_json(self, host_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The child's snapshot of ``host_id`` as JSON; None if it ended without one or took over ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while host_id not in self._delivered and not self._ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return self._delivered.get(host_id)

    def missing(self, host_id: str) -> str:
        """Why ``host_id``'s snapshot did not come from the child, in one line."""
        with self._changed:
            if not self._ended:
                return f"{host_id}: the gathering child process had not delivered it in time"
            said = f": {self._last_words}" if self._last_words else ""
            return f"{host_id}: the gathering child process ended (exit {self._process.returncode}) without it{said}"

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._collector.join(timeout=2)
        if not self._collector.is_alive():
            self._stderr.close()
