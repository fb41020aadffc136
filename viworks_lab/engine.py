"""Make sure a Docker engine answers: use the running one, or install Debian's docker.io and start dockerd."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import docker

from viworks_lab.errors import LabError
from viworks_verify.core.polling import NotReady, poll_until

__all__ = ["LabError", "docker_client"]


def docker_client(timeout_s: int = 120) -> docker.DockerClient:
    """A client for the local engine, starting one first when none answers."""
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
        return client
    except docker.errors.DockerException:
        pass
    _start_dockerd()
    return docker.from_env(timeout=timeout_s)


def _start_dockerd() -> None:
    if os.geteuid() != 0:
        raise LabError("no Docker engine answers and the lab is not root, so it cannot start one: start dockerd")
    if shutil.which("dockerd") is None:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "docker.io"]):
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise LabError(
                    f"no Docker engine answers and `{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
                )
    log = Path("/var/log/viworks-lab-dockerd.log")
    with log.open("ab") as sink:
        subprocess.Popen(["dockerd"], stdout=sink, stderr=sink, start_new_session=True)

    def ping() -> bool:
        return docker.from_env(timeout=5).ping()

    try:
        poll_until(ping, bool, what="dockerd", timeout_s=60)
    except NotReady as exc:
        raise LabError(f"started dockerd but it does not answer after 60 s (see {log}): {exc.last}") from exc
