"""Helpers of the ViWorkS deploy verification suite.

Importable without pytest and without the lab: this package is what runs against production.
Grouped by what they are about (``target``, ``gather``, ``backend``, ``gateway``, ``edge``, ``pki``,
``wire``, ``report``, and the pytest ``plugin``); modules are imported explicitly
(``from viworks_verify.wire import protocol``). The package files import nothing, so that the lab's
agents can ship the few pure modules they share with the suite.
"""

__version__ = "0.1.0"
