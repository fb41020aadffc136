"""Host facts several checks need (backend containers, nginx config), read once per host per run."""

from __future__ import annotations

import docker
import pytest

from viworks_verify.containers import ContainerFacts


class BackendContainers:
    """The backend host's containers by name, inspected lazily once each."""

    def __init__(self, host) -> None:
        self.host = host
        self._facts: dict[str, ContainerFacts | None] = {}

    def get(self, name: str) -> ContainerFacts | None:
        if name not in self._facts:
            try:
                self._facts[name] = ContainerFacts(name, self.host.docker.api.inspect_container(name))
            except docker.errors.NotFound:
                self._facts[name] = None
        return self._facts[name]

    def require(self, name: str) -> ContainerFacts:
        facts = self.get(name)
        if facts is None:
            pytest.fail(f"{self.host.id}: expected container {name}; found none by that name", pytrace=False)
        return facts


@pytest.fixture(scope="session")
def backend_containers(backend_host) -> BackendContainers:
    return BackendContainers(backend_host)
