"""Helpers of the ViWorkS deploy verification suite.

Importable without pytest and without the lab: this package is what runs against production.
Submodules are imported explicitly (``from viworks_verify import protocol``); this file imports
nothing so that the lab's agents can ship the few pure modules they share with the suite.
"""

__version__ = "0.1.0"
