"""Argument checks shared by the analysis modules (no file or CLI knowledge)."""

from __future__ import annotations

import numpy as np

from spectra.errors import InvalidArgumentError, NonFiniteError, NonSquareError

__all__ = [
    "as_square_matrix",
    "is_triangular",
    "magnitude_problem",
    "rho_one_tolerance",
    "storage_rounding",
    "unit_roundoff",
    "unusable",
]


def as_square_matrix(
    A, name: str = "A", *, allow_nonfinite: bool = False, any_magnitude: bool = False
) -> np.ndarray:
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
    any_magnitude : bool
        Skip the range check (for callers that rescale by a power of two themselves).

    Raises
    ------
    NonSquareError
        If `A` is not two-dimensional and square, or is empty.
    NonFiniteError
        If `A` holds NaN or Inf, or its largest entry is beyond ``1e120`` or (nonzero) below
        ``1e-120`` in magnitude, and `allow_nonfinite` is false.
    InvalidArgumentError
        If `A` does not hold numbers.
    """
    a = np.asarray(_from_torch(A))
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise NonSquareError(f"{name} must be a non-empty square (n, n) matrix, got shape {a.shape}")
    if a.dtype == object and any(x is None for x in a.flat):  # astype(float) makes None a NaN
        raise InvalidArgumentError(f"{name} must hold numbers, got None entries")
    try:
        a = a.astype(np.complex128 if np.iscomplexobj(a) else np.float64, copy=False)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must hold numbers, got dtype {a.dtype}") from None
    if not allow_nonfinite and not np.all(np.isfinite(a)):
        raise NonFiniteError(f"{name} holds NaN or Inf entries; nothing can be computed from it")
    why = magnitude_problem(a)
    if why is not None and not allow_nonfinite and not any_magnitude:
        raise NonFiniteError(f"{name}: {why}")
    return a


def _from_torch(A):
    """A torch tensor as a numpy array; others unchanged.

    numpy has no bfloat16, float8 or complex32: ``np.asarray`` of such a tensor raises
    TypeError, so floating tensors go through float64 (complex128), which holds them exactly.
    Quantized tensors are dequantized; conjugate and negative views are resolved.
    """
    if type(A).__module__.split(".")[0] != "torch" or not hasattr(A, "detach"):
        return A
    if A.is_meta:
        raise InvalidArgumentError("a tensor on the 'meta' device has a shape but no values")
    t = A.detach().cpu()
    if getattr(t, "is_quantized", False):
        t = t.dequantize()
    if str(t.layout) != "torch.strided":  # sparse COO/CSR...: its dense matrix
        t = t.to_dense()
    t = t.resolve_conj().resolve_neg()
    if t.is_complex():
        return t.cdouble().numpy()
    if t.is_floating_point():
        return t.double().numpy()
    return t.numpy()


#: entries beyond these magnitudes overflow or underflow the norms, SVDs and eigenvalue problems
#: (squares of entries, LAPACK's balancing) and give wrong figures, not errors
MAX_MAGNITUDE = 1e120
MIN_MAGNITUDE = 1e-120


def magnitude_problem(a: np.ndarray) -> str | None:
    """Why a finite matrix is out of the range computed here (or None): its largest entry."""
    finite = np.abs(a[np.isfinite(a)])
    big = float(np.max(finite)) if finite.size else 0.0
    if big > MAX_MAGNITUDE or 0 < big < MIN_MAGNITUDE:
        return (
            f"largest entry {big:.3g} in magnitude is outside [{MIN_MAGNITUDE:g}, {MAX_MAGNITUDE:g}], where "
            "double-precision norms, SVDs and eigenvalues over- or underflow; rescale the matrix "
            "(every figure but the Kreiss and pseudospectral ones scales with it)"
        )
    return None


def rho_one_tolerance(n: int, norm2: float, storage: float = 0.0) -> float:
    """How far from 1 a computed spectral radius may lie and still be 1 to rounding.

    ``64 n u max(1, ||A||_2)``: a backward-stable eigensolver moves eigenvalues by
    about ``u ||A||``, with a safety factor growing with the order ``n``; plus
    `storage`, the rounding of the weights to their stored dtype
    (:func:`storage_rounding`).
    """
    return 64 * n * float(np.finfo(float).eps) * max(1.0, norm2) + storage


#: unit roundoff of the float dtypes checkpoints store weights in (numpy does not know the last three)
_UNIT_ROUNDOFF = {
    "float16": 2.0**-11,
    "float32": 2.0**-24,
    "bfloat16": 2.0**-8,
    "float8_e4m3fn": 2.0**-4,
    "float8_e5m2": 2.0**-3,
}


def unit_roundoff(dtype: str | None) -> float:
    """Unit roundoff of a stored float dtype (``"bfloat16"``, ``">f4"``...); 0 for float64 and others."""
    name = str(dtype)
    try:
        name = np.dtype(name).name if name not in _UNIT_ROUNDOFF else name
    except TypeError:
        pass
    return _UNIT_ROUNDOFF.get(name.replace("complex64", "float32"), 0.0)


def storage_rounding(dtype: str | None, a, norm2: float, *, capped: bool = True) -> float:
    """How far rounding the weights `a` to their stored `dtype` may move rho(A), for the "= 1" window.

    Triangular `a` (rounding keeps its zeros): its eigenvalues are its diagonal, moved by at most
    ``u_s max |a_ii|``. Otherwise ``u_s ||A||_F`` bounds ``||E||_2`` for the rounding ``|E_ij| <=
    u_s |A_ij|``, and the eigenvalues of a normal matrix (an orthogonal one) move by at most that;
    an orthogonal matrix rounded to float32 has ``rho = 1 +- 1e-7``. The window is capped at
    ``1e-6 max(1, ||A||_2)``: bfloat16 or float16 would make it ~0.06 at n = 256 (a stable
    non-normal matrix with rho = 0.97 "marginal", and the estimate inside the circle that the
    rho = 1 branch of :func:`spectra.kreiss_constant` makes far too low), while the shifts met in
    float32 are ~2 u_s. 0 for float64, unknown, integer and quantized dtypes (`dtype` as the
    loaders name it: ``"float32"``, ``"bfloat16"``...; numpy's own names such as ``">f4"`` too).
    `norm2` is ``||A||_2``, which every caller has already computed. ``capped=False``: the bound
    itself (what a report may say of a rho within it, without calling it 1).
    """
    u = unit_roundoff(dtype)
    if u == 0.0:
        return 0.0
    m = np.asarray(a)
    size = float(np.max(np.abs(np.diag(m)), initial=0.0)) if is_triangular(m) else float(np.linalg.norm(m))
    return min(u * size, 1e-6 * max(1.0, norm2)) if capped else u * size


def is_triangular(a: np.ndarray) -> bool:
    """Whether `a` is upper or lower triangular (its eigenvalues are then its diagonal, exactly)."""
    return bool(np.array_equal(np.triu(a), a) or np.array_equal(np.tril(a), a))


def unusable(a, finite: bool = True) -> str | None:
    """Why a stored matrix cannot be computed with (NaN/Inf, or beyond the float range here), or None."""
    arr = np.asarray(a)
    if not finite or not np.all(np.isfinite(arr)):
        return "holds NaN or Inf"
    return magnitude_problem(arr)
