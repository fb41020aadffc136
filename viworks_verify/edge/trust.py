"""The trust anchors the edge's chain is judged against, as the runner's clients would load them.

The target's ``edge.ca_bundle`` when it names one (the internal CA); else the system store
OpenSSL would use (``ssl.get_default_verify_paths``: its CA file, and the certificates of its CA
directory), so a public certificate is judged against the roots a browser on this runner trusts.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from viworks_verify.pki import certs


def trust_anchors(ca_bundle: Path | None) -> list[x509.Certificate]:
    if ca_bundle is not None:
        return certs.load_pem_certificates(Path(ca_bundle).read_bytes())
    paths = ssl.get_default_verify_paths()
    files = [Path(paths.cafile)] if paths.cafile and Path(paths.cafile).is_file() else []
    if paths.capath and Path(paths.capath).is_dir():
        files += sorted(p for p in Path(paths.capath).iterdir() if p.is_file() and p.suffix in (".pem", ".crt", ".0"))
    anchors: dict[bytes, x509.Certificate] = {}  # by DER: the CA file and the directory hold the same roots
    for file in files:
        try:
            for certificate in certs.load_pem_certificates(file.read_bytes()):
                anchors.setdefault(certificate.public_bytes(serialization.Encoding.DER), certificate)
        except (OSError, ValueError):
            continue  # not a certificate file
    return list(anchors.values())


def describe_trust(ca_bundle: Path | None) -> str:
    return str(ca_bundle) if ca_bundle is not None else "the system trust store"
