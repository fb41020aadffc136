"""Whether an identity header the backend trusts can only come from the verified client certificate.

nginx forwards a client's request headers unless ``proxy_set_header`` sets them; a value built from
``$http_*`` (directly or through a ``map``) lets the client choose its identity.
"""

from __future__ import annotations

import re

from viworks_verify.backend.nginx_config import VARIABLE, Location, NginxConfig

# Variables nginx fills from the verified client certificate: the only source of an identity.
_CERTIFICATE_VARIABLES = "ssl_client_"


def identity_header_problem(location: Location, header: str) -> str | None:
    """Why a client could supply ``header`` to where this location proxies; None when nginx sets it itself.

    nginx forwards a client's request headers unless ``proxy_set_header`` (in force here, by
    nginx's inheritance) sets them; the value must come from the verified client certificate
    (``$ssl_client_*``, directly or through a ``map``) or be a constant ("" removes the header).
    """
    value = location.header(header)
    if value is None:
        return f"does not set {header} (a client's own {header} reaches the agent)"
    untrusted = _untrusted_variable(value, location.server.config, depth=0)
    if untrusted is None:
        return None
    own = " (the client's own header)" if untrusted.startswith("http_") else ""
    return f"sets {header} from ${untrusted}{own}, not from the verified client certificate"


def _untrusted_variable(value: str, config: NginxConfig, depth: int) -> str | None:
    """The first variable in ``value`` that is not derived from the client certificate, if any."""
    for name in VARIABLE.findall(value):
        if name.startswith(_CERTIFICATE_VARIABLES):
            continue
        mapping = config.map_of(name)
        if mapping is None or depth > 8:
            return name
        source = _untrusted_variable(mapping.args[0], config, depth + 1)
        if source is not None:
            return source
        # A map's values may use the captures of its own regexes (derived from its source) or other variables.
        captures = {c for d in mapping.block or [] for c in re.findall(r"\?P?<([A-Za-z_][A-Za-z0-9_]*)>", d.name)}
        for directive in mapping.block or []:
            for arg in directive.args:
                inner = [v for v in VARIABLE.findall(arg) if v not in captures and not v.isdigit()]
                for variable in inner:
                    untrusted = _untrusted_variable(f"${variable}", config, depth + 1)
                    if untrusted is not None:
                        return untrusted
    return None
