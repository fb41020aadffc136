"""Whether a deployed binary is the expected release build: by sha256, else by size bounds."""

from __future__ import annotations

from viworks_verify.core.sizes import human_size
from viworks_verify.target.settings import Release


def names_a_build(release: Release) -> bool:
    """True when the target says which build to expect (a sha256, an exact size or size bounds)."""
    return any(value is not None for value in (release.sha256, release.size, release.size_min, release.size_max))


def describe_expected(release: Release) -> str:
    parts = []
    if release.version:
        parts.append(f"release {release.version}")
    if release.sha256:
        parts.append(f"sha256 {release.sha256[:12]}…")
    if release.size is not None:
        parts.append(human_size(release.size))
    elif release.size_min is not None or release.size_max is not None:
        low = human_size(release.size_min) if release.size_min is not None else "any"
        high = human_size(release.size_max) if release.size_max is not None else "any"
        parts.append(f"size {low} .. {high}")
    return ", ".join(parts) or "no particular build"


def release_mismatch(size: int | None, sha256: str | None, release: Release) -> str | None:
    """Why a binary of ``size`` bytes with ``sha256`` is not the expected build; None when it is.

    The sha256, when given, decides; otherwise the exact size or the size bounds do.
    """
    found = f"{human_size(size)}, sha256 {sha256[:12] + '…' if sha256 else 'unknown'}"
    expected = describe_expected(release)
    if release.sha256:
        if sha256 is None or sha256.lower() != release.sha256.lower():
            return f"found {found}; expected {expected}"
        return None
    if size is None:
        return f"found a binary of unknown size; expected {expected}"
    if release.size is not None and size != release.size:
        return f"found {found}; expected {expected}"
    if (release.size_min is not None and size < release.size_min) or (
        release.size_max is not None and size > release.size_max
    ):
        return f"found {found}; expected {expected}"
    return None
