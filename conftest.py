"""Root conftest: the suite's plugin (options, target settings, host fixtures, figures, redaction)."""

pytest_plugins = ["viworks_verify.plugin"]
