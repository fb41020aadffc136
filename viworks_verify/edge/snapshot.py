"""The TLS edge as a client sees it, declared once (filled by ``edge.reader``, judged by
``tests_e2e/test_tls_edge.py``)."""

from __future__ import annotations

import dataclasses

from viworks_verify.core.canonical import Canonical, Observed
from viworks_verify.core.fact import Fact
from viworks_verify.core.host_snapshot import HostSnapshot, Record, fact
from viworks_verify.pki.pem import PemBundle, PemCertificates


def edge_host_id(domain: str) -> str:
    """The edge's host id, as test ids, snapshots and the report name it: ``https://agent.example.com``."""
    return f"https://{domain}"


@dataclasses.dataclass(frozen=True)
class Verification(Record):
    """Whether Python's TLS verified the served chain for the domain, against what, and why not."""

    verified: bool
    trust: str  # the target's CA bundle, or "the system trust store"
    problem: str | None = None  # OpenSSL's verify message when not verified

    def canonical(self, path: str) -> Canonical:
        yield f"{path}.verified", Observed(self.verified)
        yield f"{path}.problem", Observed(self.problem)


@dataclasses.dataclass
class EdgeSnapshot(HostSnapshot):
    """The TLS edge: the served certificate and chain, whether it verifies, the protocol floor."""

    KIND = "edge"
    domain: str = ""
    served_leaf: Fact[PemCertificates] = fact("the leaf certificate served for the domain", path="certificate")
    served_chain: Fact[PemBundle] = fact("the certificates served after the leaf (intermediates), in the order sent")
    verification: Fact[Verification] = fact("whether the served chain verifies for the domain")
    tls_floor: Fact[dict[str, str]] = fact(
        "each protocol below TLS 1.2 offered alone: refused, negotiated <version>, or untested: <why>"
    )
