"""Errors specific to the training module (both derive from :class:`spectra.errors.SpectraError`).

::

    SpectraError
    ├── TrainConfigError (SpectraError, ValueError)      an option or combination that is not valid
    └── DataUnavailableError (SpectraError, OSError)     a data set cannot be read, fetched or verified
"""

from __future__ import annotations

from spectra.errors import SpectraError

__all__ = ["DataUnavailableError", "TrainConfigError"]


class TrainConfigError(SpectraError, ValueError):
    """A training option (task, cell, regime, hyperparameter) is not valid."""


class DataUnavailableError(SpectraError, OSError):
    """A data set cannot be read, downloaded or verified (offline, wrong checksum, bad layout)."""
