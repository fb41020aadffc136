"""Certificates as a host or a server gave them: PEM text, kept as text in a snapshot, parsed when judged.

``PemCertificates`` is one PEM text (a certificate file, perhaps with its chain after the leaf);
``PemBundle`` is several (a trust bundle read file by file, the certificates a server sent after its
leaf). Both are the value of a snapshot's fact: they save themselves as the text, and say what they are
as canonical facts by who, by whom, until when and which key (``certs.describe``), not by their bytes.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from cryptography import x509

from viworks_verify.core.canonical import Canonical, Observed, flatten, key
from viworks_verify.pki import certs


@dataclasses.dataclass(frozen=True)
class PemCertificates:
    """One PEM text: a leaf, then any certificates of its chain."""

    pem: str

    @functools.cached_property
    def certificates(self) -> list[x509.Certificate]:
        return certs.load_pem_certificates(self.pem.encode())

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def after_leaf(self) -> list[x509.Certificate]:
        """The CA certificates carried after the leaf (sent with it in TLS)."""
        return self.certificates[1:]

    def to_json(self) -> str:
        return self.pem

    @classmethod
    def from_json(cls, data: Any) -> PemCertificates:
        return cls(str(data))

    def canonical(self, path: str) -> Canonical:
        """The leaf at ``path``, each certificate after it at ``path.chain[N]``."""
        try:
            found = self.certificates
        except ValueError as exc:
            yield path, Observed(f"unreadable: {exc}")
            return
        for index, certificate in enumerate(found):
            yield from flatten(
                path if index == 0 else f"{path}.{key('chain', str(index))}", certs.describe(certificate)
            )


@dataclasses.dataclass(frozen=True)
class PemBundle:
    """Several PEM texts, in the order found."""

    pems: tuple[str, ...]

    @functools.cached_property
    def certificates(self) -> list[x509.Certificate]:
        return [c for pem in self.pems for c in certs.load_pem_certificates(pem.encode())]

    def to_json(self) -> list[str]:
        return list(self.pems)

    @classmethod
    def from_json(cls, data: Any) -> PemBundle:
        return cls(tuple(str(pem) for pem in data or ()))

    def canonical(self, path: str) -> Canonical:
        """As one PEM text of them all (the first at ``path``, the others at ``path.chain[N]``); none: ``[]``."""
        if not self.pems:
            yield path, Observed([])
            return
        yield from PemCertificates("".join(self.pems)).canonical(path)


class TrustAnchors(PemBundle):
    """A trust bundle: which anchors it holds matters, not in what order or file."""

    def canonical(self, path: str) -> Canonical:
        """The certificates as one sorted list of ``subject (pin)``."""
        described = map(certs.describe, self.certificates)
        yield path, Observed(sorted(f"{d['subject']} ({d['spki_pin']})" for d in described))
