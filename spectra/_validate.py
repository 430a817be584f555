"""Argument checks shared by the analysis modules (no file or CLI knowledge)."""

from __future__ import annotations

import numpy as np

from spectra.errors import NonFiniteError, NonSquareError

__all__ = ["as_square_matrix", "rho_one_tolerance"]


def as_square_matrix(A, name: str = "A", *, allow_nonfinite: bool = False) -> np.ndarray:
    """Return `A` as a float64 or complex128 ``(n, n)`` array.

    Parameters
    ----------
    A : (n, n) array_like
        The matrix. Any real dtype (float16, bfloat16 via numpy, ints) becomes
        float64; complex input becomes complex128.
    name : str
        Name used in error messages.
    allow_nonfinite : bool
        If false (default), NaN or Inf raise :class:`NonFiniteError`.

    Raises
    ------
    NonSquareError
        If `A` is not two-dimensional and square, or is empty.
    NonFiniteError
        If `A` holds NaN or Inf and `allow_nonfinite` is false.
    """
    a = np.asarray(A)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise NonSquareError(f"{name} must be a non-empty square (n, n) matrix, got shape {a.shape}")
    a = a.astype(np.complex128 if np.iscomplexobj(a) else np.float64, copy=False)
    if not allow_nonfinite and not np.all(np.isfinite(a)):
        raise NonFiniteError(f"{name} holds NaN or Inf entries; nothing can be computed from it")
    return a


def rho_one_tolerance(n: int, norm2: float) -> float:
    """How far from 1 a computed spectral radius may lie and still be 1 to rounding.

    ``64 n u max(1, ||A||_2)``: a backward-stable eigensolver moves eigenvalues by
    about ``u ||A||``, with a safety factor growing with the order ``n``.
    """
    return 64 * n * float(np.finfo(float).eps) * max(1.0, norm2)
