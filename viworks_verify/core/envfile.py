"""Environment files (``KEY=value`` lines), as systemd's EnvironmentFile reads them."""

from __future__ import annotations

import shlex

SECRET_MARKERS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "KEY", "PIN_SEED")
_NOT_SECRET = ("_KEY_PATH", "_KEY_FILE")  # paths to keys are not the keys


def parse_env(text: str) -> dict[str, str]:
    """Keys and values of an environment file; comments and blank lines skipped, quotes removed."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        value = value.strip()
        if value[:1] in ("'", '"'):
            try:
                value = shlex.split(value)[0] if value.strip("'\"") else ""
            except ValueError:
                value = value.strip("'\"")
        values[key] = value
    return values


def is_secret_name(key: str) -> bool:
    """Whether a variable's value must never be shown (by its name)."""
    upper = "_" + key.upper()  # "key_path" (agent.toml) as "VIW_AGENT_KEY_PATH" (.env)
    if upper.endswith(_NOT_SECRET):
        return False
    return any(marker in upper for marker in SECRET_MARKERS)
