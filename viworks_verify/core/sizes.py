"""Sizes as an operator reads them."""

from __future__ import annotations


def human_size(size: int | None) -> str:
    """``7340032`` -> ``7.0 MB (7340032 bytes)``: what an operator compares at a glance."""
    if size is None:
        return "unknown size"
    if size >= 1_000_000:
        return f"{size / 1_048_576:.1f} MB ({size} bytes)"
    if size >= 1000:
        return f"{size / 1024:.1f} KB ({size} bytes)"
    return f"{size} bytes"
