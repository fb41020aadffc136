"""Read the TLS edge into an ``EdgeSnapshot``: the served chain, whether Python verifies it, the protocol floor.

A handful of TLS handshakes to the edge (each with the connect timeout): one without trusting
anything (what is served), one verified against the target's CA bundle (or the system store),
and one per protocol below TLS 1.2, offered alone to see it refused.
"""

from __future__ import annotations

import ssl
import time
import warnings

from cryptography.hazmat.primitives import serialization

from viworks_verify.core.fact import Fact
from viworks_verify.edge.endpoint import EdgeEndpoint
from viworks_verify.edge.snapshot import EdgeSnapshot, Verification, edge_host_id
from viworks_verify.pki.pem import PemBundle, PemCertificates
from viworks_verify.pki.pins import load_certificate

OLD_PROTOCOLS = (("TLSv1.0", ssl.TLSVersion.TLSv1), ("TLSv1.1", ssl.TLSVersion.TLSv1_1))


def read_edge(endpoint: EdgeEndpoint) -> EdgeSnapshot:
    started = time.time()
    domain = endpoint.edge.domain
    snap = EdgeSnapshot(host=edge_host_id(domain), domain=domain, gathered_at=started)
    try:
        served = [
            load_certificate(der).public_bytes(serialization.Encoding.PEM).decode() for der in endpoint.served_chain()
        ]
    except (OSError, ssl.SSLError, ValueError) as exc:
        snap.connection = Fact.failed(
            f"{domain}: cannot read the certificate {endpoint.address}:{endpoint.edge.https_port} serves: "
            f"{type(exc).__name__}: {exc}"
        )
        snap.gather_ms = round((time.time() - started) * 1000, 1)
        return snap
    snap.served_leaf = Fact(PemCertificates(served[0]))
    snap.served_chain = Fact(PemBundle(tuple(served[1:])))
    trust = str(endpoint.edge.ca_bundle) if endpoint.edge.ca_bundle else "the system trust store"
    try:
        with endpoint.open_tcp() as raw, endpoint.tls_context().wrap_socket(raw, server_hostname=domain):
            snap.verification = Fact(Verification(verified=True, trust=trust))
    except ssl.SSLCertVerificationError as exc:
        snap.verification = Fact(Verification(verified=False, trust=trust, problem=exc.verify_message))
    except (OSError, ssl.SSLError) as exc:
        snap.verification = Fact.failed(f"{domain}: verified TLS session failed: {type(exc).__name__}: {exc}")
    snap.tls_floor = Fact({name: _offer_only(endpoint, version) for name, version in OLD_PROTOCOLS})
    snap.gather_ms = round((time.time() - started) * 1000, 1)
    return snap


# The ClientHello's legacy version field for each old protocol offered alone.
_HELLO_VERSION = {ssl.TLSVersion.TLSv1: b"\x03\x01", ssl.TLSVersion.TLSv1_1: b"\x03\x02"}


def _offer_only(endpoint: EdgeEndpoint, version: ssl.TLSVersion) -> str:
    """``refused`` when the edge will not speak ``version`` offered alone, ``negotiated <version>`` when
    it does, ``untested: <why>`` when this runner cannot offer it (never counted as refused)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated is the point: we offer it to see it refused
        context = endpoint.tls_context(minimum=version, maximum=version)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 offers TLS 1.0/1.1 only at security level 0
    except ssl.SSLError:
        pass
    untested = _cannot_offer(context, version, endpoint.edge.domain)
    if untested:
        return f"untested: {untested}"
    try:
        with endpoint.open_tcp() as raw, context.wrap_socket(raw, server_hostname=endpoint.edge.domain) as tls:
            return f"negotiated {tls.version()}"
    except (ssl.SSLError, ConnectionError):
        return "refused"  # the runner offered it (proved above): the edge would not have it


def _cannot_offer(context: ssl.SSLContext, version: ssl.TLSVersion, domain: str) -> str | None:
    """Why this runner's TLS library cannot send a ClientHello for ``version`` alone; None when it can.

    Proved offline: the handshake's first flight is written to memory and its version field read.
    """
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname=domain)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        hello = outgoing.read()
        offered = hello[9:11] if len(hello) > 11 and hello[0] == 22 and hello[5] == 1 else b""
        if offered == _HELLO_VERSION[version]:
            return None
        return f"this runner's ClientHello offers version {offered.hex() or 'none'}, not {version.name}"
    except ssl.SSLError as exc:
        return f"this runner's OpenSSL ({ssl.OPENSSL_VERSION}) cannot offer {version.name} ({exc.reason or exc})"
    return f"this runner's OpenSSL ({ssl.OPENSSL_VERSION}) completed a handshake with nobody"
