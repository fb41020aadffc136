"""Root conftest: the suite's plugin (options, target settings, host fixtures, figures, redaction)."""

from viworks_verify.plugin import PLUGIN_MODULES

pytest_plugins = PLUGIN_MODULES
