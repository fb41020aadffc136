"""The fixtures of live interaction: settings, secrets, the recorder, the edge, the API with and
without the suite's token, the synthetic agent's identity, the round trips sent at session start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from viworks_verify.edge.endpoint import EdgeEndpoint
from viworks_verify.edge.snapshot import edge_host_id
from viworks_verify.plugin.state import Run
from viworks_verify.report.recorder import Recorder
from viworks_verify.target.secrets import MissingSecret, Secrets
from viworks_verify.target.settings import Settings

if TYPE_CHECKING:
    from viworks_verify.backend.api import BackendApi


@pytest.fixture(scope="session")
def started_round_trips(pytestconfig: pytest.Config) -> dict:
    """The round trips sent at session start (agent id -> RoundTrip); empty when none were started."""
    future = Run.of(pytestconfig).round_trips
    if future is None:
        return {}
    try:
        return dict(future.result())
    except Exception:
        return {}


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    return Run.of(pytestconfig).settings


@pytest.fixture(scope="session")
def secrets(settings: Settings) -> Secrets:
    return Secrets.load(settings.secrets_file)


@pytest.fixture(scope="session")
def recorder(pytestconfig: pytest.Config) -> Recorder:
    return Run.of(pytestconfig).recorder


@pytest.fixture(scope="session")
def edge(settings: Settings) -> EdgeEndpoint:
    return EdgeEndpoint(settings.edge, timeout_s=settings.timing.connect_timeout_s)


@pytest.fixture(scope="session")
def probe_identity(settings: Settings, secrets: Secrets) -> tuple[Path, Path]:
    """The synthetic agent's client certificate and key (CN = settings.probe.agent_id)."""
    if settings.probe.client_cert is None or not settings.probe.client_cert.is_file():
        pytest.fail(
            f"probe.client_cert in {settings.source} must name the synthetic agent's certificate; "
            f"found {settings.probe.client_cert}",
            pytrace=False,
        )
    try:
        return settings.probe.client_cert, secrets.agent_key_file()
    except MissingSecret as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def api_token(secrets: Secrets) -> str:
    try:
        return secrets.api_token(role="admin")
    except MissingSecret as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def verified_edge(edge: EdgeEndpoint) -> EdgeEndpoint:
    """The edge, once a verified TLS session to it works.

    Checks that go through the edge depend on this: when its certificate does not verify they are
    skipped with the reason, and only the TLS checks (which use ``edge``) fail: one root cause, one
    failure, not thirty.
    """
    problem = edge.tls_problem()
    if problem:
        pytest.skip(f"{edge_host_id(edge.edge.domain)}: {problem} (see the tls checks)")
    return edge


@pytest.fixture(scope="session")
def api_with_token(verified_edge: EdgeEndpoint, api_token: str) -> Iterator[BackendApi]:
    """The API with the suite's token, whether or not the target accepts it (for the check that it does)."""
    from viworks_verify.backend.api import BackendApi

    with BackendApi(verified_edge, api_token) as client:
        yield client


@pytest.fixture(scope="session")
def api(api_with_token: BackendApi) -> BackendApi:
    """The API, once it accepts the suite's token; checks that need it are skipped with the reason otherwise."""
    status = api_with_token.agents().status
    if status != 200:
        pytest.skip(
            f"https://{api_with_token.endpoint.edge.domain}/api/v1 answers HTTP {status} to the suite's token "
            "(see test_api_accepts_the_suite_token)"
        )
    return api_with_token


@pytest.fixture(scope="session")
def anonymous_api(verified_edge: EdgeEndpoint) -> Iterator[BackendApi]:
    from viworks_verify.backend.api import BackendApi

    with BackendApi(verified_edge) as client:
        yield client
