"""Spectral normalisation of recurrent matrices: :func:`stabilize`.

Four ways to pull a recurrent matrix ``A`` back towards the unit disk, chosen by
name from a registry (:data:`METHODS`, :func:`get_method`):

``power``
    The second paper's Algorithm 1 ("Spectrum Stabilization"): a few power
    iterations estimate the dominant eigenvalue by the Rayleigh quotient
    ``lambda = (v* A v) / (v* v)``, then ``A <- A * target / |lambda|``
    (Golub & Van Loan, *Matrix Computations*, sec. 7.3.1). The paper fixes the
    iteration count at 1. We scale **only when** ``|lambda| > target``: the
    aim is to put the spectrum *onto* the unit disk, and dividing by a tiny
    one-step estimate (0.02 on a fresh LSTM gate) would blow the matrix up 50x.
``exact``
    Divide by the spectral radius ``rho(A)`` (from the computed eigenvalues)
    when it exceeds `target`; afterwards ``rho = target`` to the accuracy of
    those eigenvalues: to rounding for well-conditioned ones, but an
    ill-conditioned spectrum (strongly non-normal ``A``) can be computed far
    off (a 40 x 40 triangular matrix with off-diagonal entries of size 3,
    rotated: computed ``rho = 1.25`` against a true 0.56).
``svd-clip``
    The first paper's "stable training": singular values clipped to at most
    `target`, ``A <- U diag(min(s, target)) V^T`` (its code clips at 0.99).
``spectral-norm``
    What ``torch.nn.utils.spectral_norm`` does: ``A <- A * target / sigma_max(A)``
    **always** (torch divides whether or not ``sigma_max`` exceeds 1; so do we,
    so the result always has ``||A||_2 = target``).

Whole checkpoints are handled by :func:`stabilize_checkpoint` (compute here,
write through :mod:`spectra.writeback`, which knows nothing of the methods)
and :func:`stabilize_matrices` (compute only, used by :mod:`spectra.compare`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from spectra._validate import as_square_matrix, unusable
from spectra.errors import InvalidArgumentError, SpectraError

if TYPE_CHECKING:
    from spectra.checkpoint import Checkpoint, RecurrentMatrix

__all__ = [
    "CONVERGENCE_RTOL",
    "METHODS",
    "PAIR_RATIO",
    "StabilizeChange",
    "StabilizeResult",
    "StabilizeWarning",
    "UnknownMethodError",
    "get_method",
    "power_estimate",
    "stabilize",
    "stabilize_checkpoint",
    "stabilize_matrices",
]

Method = Literal["power", "exact", "svd-clip", "spectral-norm"]

#: The power method is reported as unconverged when the Rayleigh quotient
#: moved by more than this relative amount in the last iteration.
CONVERGENCE_RTOL = 1e-2
#: ... or when the two largest eigenvalue moduli satisfy ``|l2|/|l1| > PAIR_RATIO``
#: (a complex-conjugate dominant pair of a real matrix has ratio exactly 1,
#: and the plain power method oscillates forever).
PAIR_RATIO = 1.0 - 1e-3


class StabilizeWarning(UserWarning):
    """The power-method estimate cannot be trusted (no or slow convergence)."""


class UnknownMethodError(SpectraError, ValueError):
    """A stabilisation method name that is not in the registry."""


@dataclass(frozen=True, eq=False)
class StabilizeResult:
    """What :func:`stabilize` did to one matrix.

    Attributes
    ----------
    matrix : (n, n) ndarray
        The new matrix, float64 (complex128 for complex input). A copy of the
        input when nothing changed.
    scale : float
        Factor applied, 1.0 when unchanged. For ``svd-clip`` the factor applied
        to the largest singular value, ``target / sigma_max`` (smaller singular
        values are reduced less or not at all).
    estimate : float
        The method's own estimate: ``|lambda|`` of the Rayleigh quotient
        (``power``), ``rho(A)`` (``exact``), ``sigma_max(A)`` (``svd-clip``,
        ``spectral-norm``).
    changed : bool
        Whether the matrix was modified.
    spectral_radius_before, spectral_radius_after : float
        True spectral radii ``max |lambda_i|`` from the eigenvalues.
    method : str
        The method name.
    warnings : tuple of str
        Convergence problems found (also emitted as :class:`StabilizeWarning`).
    """

    matrix: np.ndarray
    scale: float
    estimate: float
    changed: bool
    spectral_radius_before: float
    spectral_radius_after: float
    method: str
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------- methods
# Each method takes (A, iterations, target, seed, eigenvalues of A) and returns
# (new matrix or None when unchanged, scale, estimate, warnings).
_MethodFn = Callable[
    [np.ndarray, int, float, int, np.ndarray], tuple[np.ndarray | None, float, float, list[str]]
]


def _spectral_radius(A: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(A))))


def power_estimate(A: np.ndarray, iterations: int = 1, seed: int = 0) -> tuple[complex, float]:
    """Estimate the dominant eigenvalue of `A` by power iteration and a Rayleigh quotient.

    ``v_0 = g / ||g||`` with ``g = default_rng(seed).standard_normal(n)``;
    ``v_k = A v_{k-1} / ||A v_{k-1}||`` for ``k = 1..iterations``; the estimate
    is ``lambda = (v_k* A v_k) / (v_k* v_k)`` (Golub & Van Loan, sec. 7.3.1;
    the second paper's Algorithm 1).

    Parameters
    ----------
    A : (n, n) array_like
        The matrix.
    iterations : int
        Number of power steps (>= 1).
    seed : int
        Seed of the start vector.

    Returns
    -------
    estimate : complex
        The Rayleigh quotient after `iterations` steps (0 when ``A v`` vanishes).
    last_change : float
        Relative change ``|lambda_k - lambda_{k-1}| / |lambda_k|`` of the
        Rayleigh quotient in the last step (``lambda_0`` is that of the start
        vector); 0 when both vanish, inf when only the last one does.

    Raises
    ------
    NonSquareError, NonFiniteError
        Bad `A`.
    ValueError
        If `iterations` < 1.
    """
    a = as_square_matrix(A)
    _check_iterations(iterations)
    n = a.shape[0]
    v = np.random.default_rng(seed).standard_normal(n).astype(a.dtype)
    v /= np.linalg.norm(v)
    prev = np.vdot(v, a @ v) / np.vdot(v, v)
    lam = prev
    for _ in range(iterations):
        w = a @ v
        nw = np.linalg.norm(w)
        if nw == 0.0:  # A v = 0: the Rayleigh quotient of the zero vector is taken as 0
            lam = 0.0
            break
        v = w / nw
        prev, lam = lam, np.vdot(v, a @ v) / np.vdot(v, v)
    if abs(lam) == 0.0:
        change = 0.0 if abs(prev) == 0.0 else float("inf")
    else:
        change = float(abs(lam - prev) / abs(lam))
    return complex(lam), change


def _check_iterations(iterations: int) -> None:
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise InvalidArgumentError(f"iterations must be a positive integer, got {iterations!r}")


def _dominant_pair_warning(A: np.ndarray, lam: np.ndarray, change: float) -> str | None:
    if lam.size < 2:
        return None
    mod = np.sort(np.abs(lam))[::-1]
    if mod[0] == 0.0:
        return None
    if mod[1] / mod[0] > PAIR_RATIO:
        top = lam[np.argmax(np.abs(lam))]
        kind = (
            "a complex-conjugate dominant pair"
            if np.isrealobj(A) and abs(top.imag) > 1e-12 * mod[0]
            else "two dominant eigenvalues of (nearly) equal modulus"
        )
        moved = (
            f" (it changed by {change:.3g}, relative, in the last step)" if change > CONVERGENCE_RTOL else ""
        )
        return (
            f"power method cannot converge: {kind} (|l2|/|l1| = {mod[1] / mod[0]:.6f} > {PAIR_RATIO}); "
            f"the Rayleigh-quotient estimate is unreliable{moved} and more iterations do not help "
            "(the exact method divides by the spectral radius itself)"
        )
    return None


def _method_power(A, iterations, target, seed, lam):
    rq, change = power_estimate(A, iterations, seed)
    est = abs(rq)
    notes: list[str] = []
    pair = _dominant_pair_warning(A, lam, change)
    if pair is not None:
        # no "not converged" note beside it: the CLI would suggest more iterations, which cannot help
        notes.append(pair)
    elif change > CONVERGENCE_RTOL:
        notes.append(
            f"power method not converged after {iterations} iteration(s): the estimate changed by "
            f"{change:.3g} (relative) in the last step (> {CONVERGENCE_RTOL}); |lambda| = {est:.6g}"
        )
    if est > target:
        s = target / est
        return A * s, s, est, notes
    return None, 1.0, est, notes


def _method_exact(A, iterations, target, seed, lam):
    rho = float(np.max(np.abs(lam)))
    if rho > target:
        s = target / rho
        return A * s, s, rho, []
    return None, 1.0, rho, []


def _method_svd_clip(A, iterations, target, seed, lam):
    U, s, Vh = np.linalg.svd(A)
    smax = float(s[0])
    if smax > target:
        new = (U * np.minimum(s, target)) @ Vh
        return new, target / smax, smax, []
    return None, 1.0, smax, []


def _method_spectral_norm(A, iterations, target, seed, lam):
    smax = float(np.linalg.norm(A, 2))
    if smax == 0.0:
        return None, 1.0, 0.0, ["sigma_max = 0: the zero matrix cannot be normalised; left unchanged"]
    s = target / smax
    if s == 1.0:
        return None, 1.0, smax, []
    return A * s, s, smax, []


#: method name -> implementation (see :func:`get_method`)
METHODS: dict[str, _MethodFn] = {
    "power": _method_power,
    "exact": _method_exact,
    "svd-clip": _method_svd_clip,
    "spectral-norm": _method_spectral_norm,
}


def get_method(name: str) -> _MethodFn:
    """Return the implementation registered under `name`.

    Raises
    ------
    UnknownMethodError
        If `name` is not registered; the message lists the valid names.
    """
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise UnknownMethodError(
            f"method must be one of {', '.join(repr(k) for k in METHODS)}; got {name!r}"
        ) from None


def stabilize(
    A,
    method: Method = "power",
    iterations: int = 1,
    target: float = 1.0,
    seed: int = 0,
    *,
    warn: bool = True,
) -> StabilizeResult:
    """Spectrally normalise a recurrent matrix.

    ``power`` (second paper, Algorithm 1): ``A <- A * target / |lambda|`` when
    ``|lambda| > target``, with ``lambda`` the Rayleigh quotient after
    `iterations` power steps from a seeded random start. ``exact``:
    ``A <- A * target / rho(A)`` when ``rho(A) > target``. ``svd-clip`` (first
    paper's stable training): ``A <- U diag(min(s, target)) V^T``.
    ``spectral-norm`` (torch's ``spectral_norm``): ``A <- A * target / sigma_max(A)``,
    always. See the module docstring for the reasoning behind each choice.

    Parameters
    ----------
    A : (n, n) array_like
        The matrix, in any real or complex dtype (computed in float64/complex128).
    method : {"power", "exact", "svd-clip", "spectral-norm"}
        Which normalisation.
    iterations : int
        Power steps (``power`` only; the paper uses 1).
    target : float
        Radius to normalise to (> 0); 1 is the unit disk.
    seed : int
        Seed of the power method's start vector.
    warn : bool
        Emit :class:`StabilizeWarning` for convergence problems (they are
        always listed in ``result.warnings``).

    Returns
    -------
    StabilizeResult
        ``.matrix``, ``.scale``, ``.estimate``, ``.changed``,
        ``.spectral_radius_before``, ``.spectral_radius_after``, ``.method``,
        ``.warnings``.

    Raises
    ------
    UnknownMethodError
        Unknown `method` (a ``ValueError``; lists the valid ones).
    ValueError
        `target` not a positive finite number, `iterations` < 1.
    NonSquareError, NonFiniteError
        `A` not square, or holding NaN/Inf.

    Warns
    -----
    StabilizeWarning
        ``power`` only: the dominant eigenvalues of `A` are a complex-conjugate
        pair or nearly equal in modulus (``|l2|/|l1| > 1 - 1e-3``), or the
        Rayleigh quotient still moved by more than 1% in the last step.

    Examples
    --------
    >>> import numpy as np
    >>> r = stabilize(np.diag([2.0, 0.5]), method="exact")
    >>> r.scale, r.spectral_radius_after
    (0.5, 1.0)
    """
    fn = get_method(method)
    a = as_square_matrix(A)
    _check_iterations(iterations)
    if not (isinstance(target, (int, float, np.floating, np.integer)) and np.isfinite(target) and target > 0):
        raise InvalidArgumentError(f"target must be a positive finite number, got {target!r}")
    target = float(target)
    lam = np.linalg.eigvals(a)
    rho_before = float(np.max(np.abs(lam)))
    new, scale, estimate, notes = fn(a, iterations, target, seed, lam)
    changed = new is not None
    if new is None:
        new = a.copy()
        rho_after = rho_before
    else:
        rho_after = _spectral_radius(new)
    if warn:
        for note in notes:
            warnings.warn(note, StabilizeWarning, stacklevel=2)
    return StabilizeResult(
        matrix=new,
        scale=float(scale),
        estimate=float(estimate),
        changed=bool(changed),
        spectral_radius_before=rho_before,
        spectral_radius_after=rho_after,
        method=method,
        warnings=tuple(notes),
    )


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True, eq=False)
class StabilizeChange:
    """What stabilisation did (or would do) to one matrix of a checkpoint.

    Attributes
    ----------
    id : str
        The matrix id (:attr:`spectra.checkpoint.RecurrentMatrix.id`).
    source : str
        The stored tensor / dataset it lives in.
    method : str
        The method name.
    estimate : float
        The method's estimate for this matrix (see :class:`StabilizeResult`).
    scale : float
        Factor applied (1.0 when unchanged); in stacked mode the common factor.
    changed : bool
        Whether the matrix changes.
    spectral_radius_before, spectral_radius_after : float
        True spectral radii.
    warnings : tuple of str
        Convergence problems and skips.
    before, after : (n, n) ndarray
        The matrix before and after (float64).
    """

    id: str
    source: str
    method: str
    estimate: float
    scale: float
    changed: bool
    spectral_radius_before: float
    spectral_radius_after: float
    warnings: tuple[str, ...]
    before: np.ndarray
    after: np.ndarray


_ORTHOGONAL = (
    "is stored under torch's orthogonal parametrization (the tensors original and base, not the "
    "weight): a rescaled matrix written there would not give the weight intended"
)
_QUANTIZED = (
    "is stored quantized: a rescaled weight would need a new scale and zero point, which this tool "
    "does not choose for you"
)
_PRUNED = (
    "is stored pruned by torch.nn.utils.prune (weight_orig * weight_mask): a matrix written into "
    "weight_orig would be masked again"
)
_PRUNED_CLIP = (
    "is stored pruned by torch.nn.utils.prune (weight_orig * weight_mask), and svd-clip's clipped "
    "matrix is nonzero where the mask is 0, which no weight_orig gives (exact, power and "
    "spectral-norm scale by one factor c and are written as c * weight_orig)"
)
_HOW = {
    _ORTHOGONAL: "save the model without the parametrization",
    _QUANTIZED: "dequantize the model",
    _PRUNED: "make the pruning permanent (torch.nn.utils.prune.remove)",
    _PRUNED_CLIP: (
        "use --method exact, power or spectral-norm, or make the pruning permanent "
        "(torch.nn.utils.prune.remove)"
    ),
}


def _not_written_back(m: RecurrentMatrix, method: str) -> str | None:
    """Why a matrix that is read cannot be written back (orthogonal, quantized, pruned), or None.

    A pruned weight (``m.mask``: ``A = mask * W``) scaled by ``c`` is written as ``c * W``
    (``mask * (c W) = c A``); svd-clip's matrix is no such product.
    """
    if any(note.startswith("orthogonal") for note in m.notes):
        return _ORTHOGONAL
    if any(note.startswith("stored quantized") for note in m.notes):
        return _QUANTIZED
    if m.mask is not None:
        return _PRUNED_CLIP if method == "svd-clip" else None
    if any(note.startswith("pruned") for note in m.notes):  # no mask to write through (projection)
        return _PRUNED
    return None


def _nothing_writable(selected: list[RecurrentMatrix], why: dict[str, str | None], path: str) -> str:
    """The error when every matrix of the default selection is one that is not written back."""
    by_reason: dict[str, list[str]] = {}
    for m in selected:
        by_reason.setdefault(why[m.id] or "", []).append(m.id)
    parts = []
    for reason, ids in by_reason.items():
        who, them = (f"{', '.join(ids)}: each", "them") if len(ids) > 1 else (ids[0], "it")
        parts.append(f"{who} {reason}. To write {them}, {_HOW[reason]} first")
    return (
        f"{path}: 0 of {len(selected)} recurrent matrices can be written back, so no file was "
        f"written: {'; '.join(parts)}"
    )


def _check_writable(m: RecurrentMatrix, path: str, method: str) -> None:
    if m.spectral_norm:
        raise SpectraError(
            f"{path}: {m.id} is stored under torch's spectral_norm wrapper; scaling the stored "
            "weight_orig does not change the effective weight (it is re-normalised at every forward "
            "pass). Select other matrices with --matrix, or remove the wrapper first."
        )
    if any(note.startswith("weight_norm") for note in m.notes):
        raise SpectraError(
            f"{path}: {m.id} is stored under torch's weight_norm (A = g v/||v||): scaling the stored "
            "direction v does not change the effective weight. Select other matrices with --matrix, "
            "or remove the wrapper first."
        )
    why = _not_written_back(m, method)
    if why:
        raise SpectraError(
            f"{path}: {m.id} {why}. Select other matrices with --matrix, or {_HOW[why]} first."
        )
    if any("projection" in note.lower() for note in m.notes):
        raise SpectraError(
            f"{path}: {m.id} belongs to an LSTM with a projection (proj_size > 0): the effective "
            "recurrent matrix is weight_hh @ weight_hr, and scaling it does not scale that product's "
            "spectrum as reported. Select other matrices with --matrix."
        )


def stabilize_matrices(
    ckpt: Checkpoint,
    *,
    method: Method = "power",
    iterations: int = 1,
    target: float = 1.0,
    seed: int = 0,
    matrices: Sequence[str] | None = None,
    stacked: bool = False,
    check_writable: bool = False,
    warn: bool = True,
) -> list[StabilizeChange]:
    """Stabilise the recurrent matrices of a loaded checkpoint, without writing anything.

    Per gate (default) each matrix goes through :func:`stabilize` with the
    same `seed`. With ``stacked=True`` the gates of one stored tensor share one
    factor: for ``power`` and ``exact``, ``s = target / max_g estimate_g``
    applied to every gate when that maximum exceeds `target`; for
    ``spectral-norm``, ``s = target / sigma_max`` of the stacked
    ``(gates*n, n)`` matrix (what torch's ``spectral_norm`` on ``weight_hh``
    computes); for ``svd-clip``, the singular values of the stacked matrix are
    clipped and the result split back into gates.

    Parameters
    ----------
    ckpt : Checkpoint
        From :func:`spectra.load`.
    method, iterations, target, seed
        As in :func:`stabilize`.
    matrices : sequence of str, optional
        Ids (or source prefixes) to stabilise; all when None or empty.
    stacked : bool
        One factor per stored tensor instead of per gate.
    check_writable : bool
        Raise for matrices that cannot be written back meaningfully.
    warn : bool
        Emit :class:`StabilizeWarning` s.

    Returns
    -------
    list of StabilizeChange
        One per selected matrix, in checkpoint order. Non-finite matrices are
        left unchanged with a note in ``warnings``.

    Raises
    ------
    MatrixNotFoundError
        An id in `matrices` is not in the checkpoint.
    SpectraError
        With `check_writable`: a selected matrix is under torch's spectral_norm
        or weight_norm wrapper, belongs to an LSTM with projection, or is one
        that is not written back (orthogonal parametrization, quantized, pruned
        with ``svd-clip``), named in `matrices` or, without `matrices`, every
        matrix of the checkpoint is such a one.
    """
    get_method(method)
    selected = ckpt.select(list(matrices) if matrices else None)
    if check_writable:
        if not matrices:
            # read-only matrices (orthogonal, quantized) are left out of "all", as they were before
            # they could be read; named with --matrix they are refused, and so are they when
            # nothing else is left to write ("0 of 0 matrices changed" looked like success)
            left_out = {m.id: _not_written_back(m, method) for m in selected}
            if all(left_out.values()):
                raise SpectraError(_nothing_writable(selected, left_out, ckpt.path))
            for m in selected:
                if left_out[m.id] and warn:
                    warnings.warn(f"{m.id} {left_out[m.id]}: left unchanged", StabilizeWarning, stacklevel=2)
            selected = [m for m in selected if not left_out[m.id]]
        for m in selected:
            _check_writable(m, ckpt.path, method)
    changes: list[StabilizeChange] = []
    if not stacked:
        for m in selected:
            changes.append(_one(m, method, iterations, target, seed, warn))
        return changes
    groups: dict[str, list[RecurrentMatrix]] = {}
    for m in selected:
        groups.setdefault(m.source or m.id, []).append(m)
    by_id: dict[str, StabilizeChange] = {}
    for group in groups.values():
        for ch in _stacked(group, method, iterations, target, seed, warn):
            by_id[ch.id] = ch
    return [by_id[m.id] for m in selected]


def _nonfinite_change(m: RecurrentMatrix, method: str, why: str = "holds NaN or Inf") -> StabilizeChange:
    a = np.array(m.matrix)
    return StabilizeChange(
        id=m.id,
        source=m.source,
        method=method,
        estimate=float("nan"),
        scale=1.0,
        changed=False,
        spectral_radius_before=float("nan"),
        spectral_radius_after=float("nan"),
        warnings=(f"{why}: left unchanged",),
        before=a,
        after=a.copy(),
    )


def _one(m, method, iterations, target, seed, warn) -> StabilizeChange:
    a = np.asarray(m.matrix)
    why = unusable(a, m.finite)
    if why:
        ch = _nonfinite_change(m, method, why)
        if warn:
            for note in ch.warnings:
                warnings.warn(f"{m.id}: {note}", StabilizeWarning, stacklevel=3)
        return ch
    a = as_square_matrix(a, m.id)
    r = stabilize(a, method, iterations, target, seed, warn=False)
    if warn:
        for note in r.warnings:
            warnings.warn(f"{m.id}: {note}", StabilizeWarning, stacklevel=3)
    return StabilizeChange(
        id=m.id,
        source=m.source,
        method=method,
        estimate=r.estimate,
        scale=r.scale,
        changed=r.changed,
        spectral_radius_before=r.spectral_radius_before,
        spectral_radius_after=r.spectral_radius_after,
        warnings=r.warnings,
        before=a,
        after=r.matrix,
    )


def _stacked(group, method, iterations, target, seed, warn) -> list[StabilizeChange]:
    mats = [np.asarray(m.matrix) for m in group]
    whys = [unusable(a, m.finite) for m, a in zip(group, mats)]
    if any(whys):
        why = next(w for w in whys if w)
        return [_nonfinite_change(m, method, why) for m in group]
    mats = [as_square_matrix(a, m.id) for m, a in zip(group, mats)]
    rhos = [_spectral_radius(a) for a in mats]
    notes: list[list[str]] = [[] for _ in group]
    if method in ("power", "exact"):
        ests = []
        for i, a in enumerate(mats):
            r = stabilize(a, method, iterations, target, seed, warn=False)
            ests.append(r.estimate)
            notes[i].extend(r.warnings)
        top = max(ests)
        scale = target / top if top > target else 1.0
        afters = [a * scale if scale != 1.0 else a.copy() for a in mats]
        estimates = ests
    else:
        S = np.vstack(mats)
        U, s, Vh = np.linalg.svd(S, full_matrices=False)
        smax = float(s[0])
        estimates = [smax] * len(mats)
        if method == "spectral-norm":
            scale = target / smax if smax > 0 else 1.0
            new = S * scale if scale != 1.0 else S.copy()
        else:  # svd-clip
            scale = target / smax if smax > target else 1.0
            new = (U * np.minimum(s, target)) @ Vh if smax > target else S.copy()
        afters = np.split(new, len(mats), axis=0)
    changed = scale != 1.0
    out = []
    for m, a, b, rho, est, nt in zip(group, mats, afters, rhos, estimates, notes):
        if warn:
            for note in nt:
                warnings.warn(f"{m.id}: {note}", StabilizeWarning, stacklevel=4)
        out.append(
            StabilizeChange(
                id=m.id,
                source=m.source,
                method=method,
                estimate=float(est),
                scale=float(scale),
                changed=bool(changed),
                spectral_radius_before=rho,
                spectral_radius_after=_spectral_radius(b) if changed else rho,
                warnings=tuple(nt),
                before=a,
                after=np.ascontiguousarray(b),
            )
        )
    return out


def stabilize_checkpoint(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    method: Method = "power",
    iterations: int = 1,
    target: float = 1.0,
    seed: int = 0,
    matrices: Sequence[str] | None = None,
    stacked: bool = False,
    force: bool = False,
    trust: bool = False,
    warn: bool = True,
) -> list[StabilizeChange]:
    """Stabilise every recurrent matrix of a checkpoint and write a new file in the same format.

    Loads `path` with :func:`spectra.load`, computes the changes with
    :func:`stabilize_matrices`, and writes them with
    :func:`spectra.writeback.write_matrices`: only the recurrent weights
    change (cast back to their stored dtype); everything else in the file (other
    tensors, optimizer state, metadata, Keras config) is kept. The input file
    is never modified; `out` is written atomically. ``spectral_radius_after``
    is that of each matrix as the file holds it (rounded to its stored dtype:
    float32 rounding moves rho by ~1e-8, often just above the target); for
    ``exact`` the scale is then lowered by a few ulps so the stored rho does
    not exceed `target`. Complex arrays stay complex; integer ``.npy``/``.npz``
    arrays are written as float64 (with a warning).

    Parameters
    ----------
    path : path-like
        The checkpoint to read.
    out : path-like
        The file to write.
    method, iterations, target, seed, matrices, stacked
        As in :func:`stabilize_matrices`.
    force : bool
        Overwrite `out` if it exists.
    trust : bool
        Allow full pickle loading (PyTorch files that need more than
        ``weights_only=True``, TorchScript).
    warn : bool
        Emit :class:`StabilizeWarning` s.

    Returns
    -------
    list of StabilizeChange
        One per selected matrix.

    Raises
    ------
    WriteError
        `out` exists and `force` is false, or `out` is the input file, or the
        write failed.
    SpectraError
        A selected matrix cannot be written back meaningfully (torch
        spectral_norm or weight_norm wrapper, LSTM projection, orthogonal
        parametrization, quantized, pruned with ``svd-clip``; without
        `matrices`, such matrices are left out with a warning unless all are),
        or a loader error. Nothing is written then.

    Notes
    -----
    A weight pruned by ``torch.nn.utils.prune`` is analysed as ``A = mask * W``
    (``W = <name>_orig``); a factor ``c`` is written as ``c * W`` with the mask
    kept, since ``mask * (c W) = c A``: torch's weight is then the matrix reported.
    """
    from spectra.load import load
    from spectra.writeback import check_output, write_matrices

    check_output(path, out, force=force)
    ckpt = load(path, trust=trust)
    changes = stabilize_matrices(
        ckpt,
        method=method,
        iterations=iterations,
        target=target,
        seed=seed,
        matrices=matrices,
        stacked=stacked,
        check_writable=True,
        warn=warn,
    )
    changes = as_written(changes, ckpt, method, target, stacked)
    for c in changes:
        if warn and c.changed and not np.any(c.after) and np.any(c.before):
            warnings.warn(
                f"{c.id}: scaled by {c.scale:.3g}, every weight underflows to 0 in "
                f"{ckpt[c.id].dtype}: the file holds a zero matrix",
                StabilizeWarning,
                stacklevel=2,
            )
    updates = {c.id: c.after for c in changes if c.changed}
    # a pruned weight's matrix is mask * weight_orig: its pruned entries take the same factor
    scales = {c.id: c.scale for c in changes if c.changed and ckpt[c.id].mask is not None}
    write_matrices(ckpt, path, out, updates, scales=scales, force=force, trust=trust)
    return changes


def _round_to(A: np.ndarray, dtype: str) -> np.ndarray:
    """`A` rounded to a stored floating dtype (``float16/32/64``, ``bfloat16``), as float64/complex128."""
    if dtype == "bfloat16":
        from spectra.writeback import bfloat16_bits

        return (bfloat16_bits(A).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return A
    if dt.kind not in "fc" or dt.itemsize >= np.dtype(A.dtype).itemsize:
        return A
    with np.errstate(over="ignore"):  # beyond the stored range: inf, as the file would hold
        return A.astype(dt).astype(A.dtype)


def as_written(changes, ckpt, method: str, target: float, stacked: bool) -> list[StabilizeChange]:
    """The changes as the file will hold them: rounded to each matrix's stored dtype.

    What each method promises stays true of the rounded weights: ``rho <= target``
    (``exact``), ``||A||_2 <= target`` (``spectral-norm``, ``svd-clip``; of the stacked tensor
    with `stacked`); the factor is lowered by a few units in the dtype's last place where
    rounding lifted them above (bfloat16 ``svd-clip`` left ``||A||_2 = 1.0026``). Stacked
    ``exact`` keeps one factor per stored tensor.
    """
    bound = {"exact": "rho", "spectral-norm": "norm", "svd-clip": "norm"}.get(method)
    per_gate = None if (stacked and bound == "norm") else bound
    stored = [_as_stored(c, ckpt[c.id].dtype, per_gate, target) if c.changed else c for c in changes]
    if stacked and method == "exact":
        stored = _one_factor_per_tensor(changes, stored, ckpt, target)
    if stacked and bound == "norm":
        stored = _stacked_norm_at_most(changes, stored, ckpt, target)
    return stored


def _by_tensor(changes) -> list[list[int]]:
    """Indices of the changed matrices, grouped by the stored tensor they live in."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(changes):
        if c.changed:
            groups.setdefault(c.source, []).append(i)
    return list(groups.values())


def _one_factor_per_tensor(changes, stored, ckpt, target: float) -> list[StabilizeChange]:
    """Stacked ``exact``: the gates of one stored tensor get the lowest factor any of them needed.

    :func:`_as_stored` lowers the factor of each gate whose rounded ``rho`` came out above
    `target`; in stacked mode one tensor has one factor, so the others are lowered with it
    (lowering a factor never raises ``rho`` above `target` beyond rounding; checked again).
    """
    out = list(stored)
    for idx in _by_tensor(changes):
        for _ in range(4):
            low = min(out[i].scale for i in idx)
            if all(out[i].scale == low for i in idx):
                break
            for i in idx:
                c = changes[i]
                out[i] = _as_stored(c, ckpt[c.id].dtype, "rho", target, mult=low / c.scale)
    return out


def _stacked_norm_at_most(changes, stored, ckpt, target: float) -> list[StabilizeChange]:
    """Stacked ``spectral-norm``/``svd-clip``: the stored tensor's ``||.||_2`` lowered to `target`.

    Rounding the gates to their dtype can lift the stacked matrix's largest singular value
    above `target` (bfloat16: by about 0.3%); all gates of the tensor are then scaled by one
    factor a little below 1 (a few times at most).
    """
    out = list(stored)
    for idx in _by_tensor(changes):
        dtype = ckpt[changes[idx[0]].id].dtype
        u = _UNIT.get(dtype, 2.0**-23)
        mult = 1.0
        for _ in range(4):
            top = float(np.linalg.norm(np.vstack([out[i].after for i in idx]), 2))
            if top <= target:
                break
            mult *= (target / top) * (1 - 2 * u)
            for i in idx:
                out[i] = _as_stored(changes[i], dtype, None, target, mult=mult)
    return out


#: machine epsilons of the stored dtypes below float64 (float32 otherwise)
_UNIT = {"float16": 2.0**-10, "bfloat16": 2.0**-7}


def _as_stored(
    c: StabilizeChange, dtype: str, bound: str | None, target: float, mult: float | None = None
) -> StabilizeChange:
    """The change as the file will hold it: rounded to its stored dtype, rho measured there.

    Rounding a float32 (or float16, bfloat16) matrix scaled to ``rho = target`` moves rho by
    about the unit roundoff times the eigenvalues' condition: often just above `target`.
    With `bound` ``"rho"`` (``exact``) or ``"norm"`` (``spectral-norm``, ``svd-clip``) the
    scale is then lowered a little (a few times at most) so that the stored ``rho`` or
    ``||A||_2`` does not exceed `target`; `mult` starts from a given factor (the common factor
    of a stacked tensor).
    """
    from dataclasses import replace

    A = np.asarray(c.after)
    stored = _round_to(A * mult if mult is not None else A, dtype)
    if stored is A:
        return c
    rho = _spectral_radius(stored)
    mult = 1.0 if mult is None else mult
    if bound is not None:
        u = _UNIT.get(dtype, 2.0**-23)
        measure = _spectral_radius if bound == "rho" else (lambda X: float(np.linalg.norm(X, 2)))
        m = rho if bound == "rho" else measure(stored)
        for _ in range(4):
            if m <= target:
                break
            mult *= (target / m) * (1 - 2 * u)
            stored = _round_to(A * mult, dtype)
            m = measure(stored)
        rho = _spectral_radius(stored)
    scale = c.scale * mult
    return replace(c, after=stored, spectral_radius_after=rho, scale=scale)
