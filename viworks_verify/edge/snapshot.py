"""The TLS edge as a client sees it, as plain data that checks judge (filled by ``edge.reader``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from cryptography import x509

from viworks_verify.core.fact import Fact, facts_from_json, facts_to_json
from viworks_verify.pki import certs


@dataclasses.dataclass
class EdgeSnapshot:
    """The TLS edge as a client sees it: the served certificate, whether it verifies, the protocol floor."""

    host: str  # https://agent.example.com
    domain: str
    kind: str = "edge"
    gathered_at: float = 0.0
    gather_ms: float = 0.0
    connection: Fact = Fact()
    served_leaf: Fact = Fact()  # PEM of the leaf certificate served for the domain
    served_chain: Fact = Fact()  # [PEM]: the certificates served after the leaf (intermediates), in the order sent
    verification: Fact = Fact()  # {"verified": bool, "trust": what it was checked against, "problem": str|None}
    tls_floor: Fact = Fact()  # {"TLSv1": "refused" | "negotiated TLSv1" ..., "TLSv1_1": ...}

    def to_json(self) -> dict[str, Any]:
        return facts_to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EdgeSnapshot:
        return facts_from_json(cls, data)

    def leaf(self) -> x509.Certificate:
        return certs.load_pem_certificates(self.served_leaf.value.encode())[0]

    def intermediates(self) -> list[x509.Certificate]:
        return [c for pem in self.served_chain.value or [] for c in certs.load_pem_certificates(pem.encode())]
