"""Named errors shared by every stage.

Every error a user can trigger with bad input carries a stable, upper-case
``code`` (e.g. ``DICOM_NO_IMAGE``) so that the CLI can print one clear line and
batch jobs can record why a study failed, without a traceback and without PHI.
"""

from __future__ import annotations


class SpinemetError(Exception):
    """Base class of all user-facing errors.

    Parameters
    ----------
    code : str
        Stable machine-readable code, upper snake case.
    message : str
        One human-readable sentence; must not contain patient identifiers.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class InputError(SpinemetError):
    """The input (file, folder, clinical record) cannot be used as given."""


class ConfigError(SpinemetError):
    """A configuration file or model card is missing or invalid."""
