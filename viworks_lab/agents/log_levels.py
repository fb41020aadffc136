"""The log level words both reference agents accept (env_logger's, as the production agents use)."""

from __future__ import annotations

import logging

LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "off": logging.CRITICAL + 10,  # above every level: nothing is logged
}
