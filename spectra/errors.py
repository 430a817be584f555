"""The exception family of rnn-spectra.

Every error the library raises on purpose derives from :class:`SpectraError`;
each subclass also derives from the builtin it refines, so ``except ValueError``
keeps working for callers that do not know this package::

    SpectraError (Exception)
    ├── UnsupportedFormatError (SpectraError, ValueError)   file is not a checkpoint we read
    ├── CorruptFileError (SpectraError, ValueError)         truncated, random bytes, absurd sizes
    ├── UnsafeFileError (SpectraError, PermissionError)     needs arbitrary pickle execution
    ├── NoRecurrentWeightsError (SpectraError, LookupError) readable, but no recurrent matrix
    ├── MatrixNotFoundError (SpectraError, KeyError)        ``--matrix ID`` names no matrix
    ├── NonSquareError (SpectraError, ValueError)           an array that is not (n, n)
    ├── NonFiniteError (SpectraError, ValueError)           NaN/Inf, or entries beyond 1e120
    ├── InvalidArgumentError (SpectraError, ValueError)     a library argument out of range
    └── WriteError (SpectraError, OSError)                  refusing to overwrite, failed write

The CLI maps each class to an exit code (:data:`EXIT_CODES`) and prints the
message on one line, with no traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spectra.checkpoint import Checkpoint

__all__ = [
    "EXIT_CODES",
    "CorruptFileError",
    "InvalidArgumentError",
    "MatrixNotFoundError",
    "NoRecurrentWeightsError",
    "NonFiniteError",
    "NonSquareError",
    "SpectraError",
    "UnsafeFileError",
    "UnsupportedFormatError",
    "WriteError",
]


class SpectraError(Exception):
    """Base class of every error raised on purpose by rnn-spectra."""


class UnsupportedFormatError(SpectraError, ValueError):
    """The file is readable but is not a format rnn-spectra understands."""


class CorruptFileError(SpectraError, ValueError):
    """The file is truncated, garbled, or declares sizes it cannot hold."""


class UnsafeFileError(SpectraError, PermissionError):
    """Reading the file would execute arbitrary pickled code; needs ``trust=True``."""


class NoRecurrentWeightsError(SpectraError, LookupError):
    """The file was read but holds no recurrent weight matrix.

    Attributes
    ----------
    checkpoint : Checkpoint or None
        What the file holds, where the reader got that far: its ``format`` and every
        entry in ``skipped`` with the reason (``matrices`` is empty), so that the
        names can still be listed (``spectra ls``). None otherwise.
    """

    def __init__(self, *args: object, checkpoint: Checkpoint | None = None) -> None:
        super().__init__(*args)
        self.checkpoint = checkpoint


class MatrixNotFoundError(SpectraError, KeyError):
    """A requested matrix id does not exist in the checkpoint."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NonSquareError(SpectraError, ValueError):
    """An array given as a recurrent matrix is not square."""


class NonFiniteError(SpectraError, ValueError):
    """A matrix holds NaN or Inf where finite numbers are required."""


class InvalidArgumentError(SpectraError, ValueError):
    """A library argument has a value outside what is valid (the message lists what is)."""


class WriteError(SpectraError, OSError):
    """An output file could not be written (or would overwrite without ``force``)."""


#: Exit code of the ``spectra`` command for each error class (most specific first).
#: 0 success, 1 a finding (``compare``) or unexpected failure, 2 usage error (click).
EXIT_CODES: dict[type[SpectraError], int] = {
    UnsafeFileError: 4,
    CorruptFileError: 3,
    UnsupportedFormatError: 3,
    NoRecurrentWeightsError: 5,
    MatrixNotFoundError: 6,
    NonSquareError: 7,
    NonFiniteError: 7,
    WriteError: 8,
    SpectraError: 9,
}
