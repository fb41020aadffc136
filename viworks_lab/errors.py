"""The lab's one error type (no imports: the base-image prebuild runs before the venv exists)."""


class LabError(Exception):
    """A lab operation that cannot go on; the message says what and what to do."""
