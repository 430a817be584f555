"""Spectrum and departure from normality of a recurrent matrix; :func:`analyze` a checkpoint.

Per matrix ``A`` (DESIGN.md, Mathematics):

* eigenvalues ``λ_i`` and spectral radius ``ρ(A) = max |λ_i|``;
* ``‖A‖_2`` (largest singular value) and ``‖A‖_F``;
* Henrici's departure from normality ``dep_F(A) = ‖N‖_F`` where
  ``A = Q (D + N) Q*`` is a complex Schur form with ``D`` diagonal and ``N``
  strictly upper triangular (Henrici 1962; Trefethen & Embree 2005, §48).
  Mathematically ``dep_F(A)² = ‖A‖_F² − Σ|λ_i|²``, but that formula cancels
  catastrophically for nearly normal matrices (NUMERICS.md), so the value is
  read off the Schur factor instead;
* the eigenvector condition number ``κ(V) = ‖V‖₂‖V⁻¹‖₂`` with unit-norm
  eigenvector columns (infinite for a defective matrix).

Pseudospectral figures live in :mod:`spectra.pseudospectra` and
:mod:`spectra.crisscross`, Kreiss bounds in :mod:`spectra.kreiss`;
:func:`analyze` gathers them into one :class:`MatrixReport` per matrix.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg

from spectra._json import jsonable
from spectra._validate import (
    as_square_matrix,
    magnitude_problem,
    rho_one_tolerance,
    storage_rounding,
    unit_roundoff,
)
from spectra.checkpoint import Checkpoint, RecurrentMatrix
from spectra.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_EPSILONS",
    "SCHEMA_VERSION",
    "AnalysisReport",
    "MatrixReport",
    "SchurNonnormal",
    "analyze",
    "analyze_matrix",
    "henrici",
    "schur_nonnormal",
]

log = logging.getLogger(__name__)

#: Version of the JSON written by ``spectra analyze --json``.
SCHEMA_VERSION = 1

#: ε at which ``analyze`` reports the pseudospectral radius ρ_ε.
DEFAULT_EPSILONS: tuple[float, ...] = (1e-3, 1e-2, 1e-1)


@dataclass(frozen=True, eq=False)
class SchurNonnormal:
    """Complex Schur form ``A = Q T Q*`` split as ``T = D + N``.

    Attributes
    ----------
    Q : (n, n) complex ndarray
        Unitary Schur vectors.
    T : (n, n) complex ndarray
        Upper-triangular Schur factor.
    eigenvalues : (n,) complex ndarray
        ``diag(T)``, i.e. ``D``.
    N : (n, n) complex ndarray
        Strictly upper-triangular non-normal part. Depends on the Schur form
        chosen; ``‖N‖_F = dep_F(A)`` does not.
    """

    Q: np.ndarray
    T: np.ndarray
    eigenvalues: np.ndarray
    N: np.ndarray

    @property
    def fro(self) -> float:
        """``‖N‖_F``, Henrici's departure from normality."""
        return float(np.linalg.norm(self.N, "fro"))


def schur_nonnormal(A) -> SchurNonnormal:
    """Split the complex Schur form of `A` into its diagonal and non-normal part.

    ``A = Q (D + N) Q*`` with ``Q`` unitary, ``D`` diagonal (the eigenvalues)
    and ``N`` strictly upper triangular (Golub & Van Loan, §7.1.3).

    Parameters
    ----------
    A : (n, n) array_like
        Real or complex square matrix with finite entries.

    Returns
    -------
    SchurNonnormal
        ``Q``, ``T``, ``eigenvalues`` and ``N``.

    Raises
    ------
    NonSquareError
        If `A` is not square.
    NonFiniteError
        If `A` holds NaN or Inf.

    Examples
    --------
    >>> s = schur_nonnormal([[0.5, 2.0], [0.0, 0.5]])
    >>> round(s.fro, 12)
    2.0
    """
    a = as_square_matrix(A)
    if np.iscomplexobj(a):
        T, Q = scipy.linalg.schur(a, output="complex")
    else:
        # real Schur form then Givens rotations of its 2x2 bumps (both unitary):
        # the same complex Schur form as output="complex", about 2.5x faster
        T, Q = scipy.linalg.rsf2csf(*scipy.linalg.schur(a, output="real"))
    N = np.triu(T, 1)
    return SchurNonnormal(Q=Q, T=T, eigenvalues=np.diag(T).copy(), N=N)


def henrici(A) -> float:
    """Henrici's departure from normality ``dep_F(A) = ‖N‖_F``.

    ``dep_F(A)² = ‖A‖_F² − Σ_i |λ_i|²`` (Henrici 1962); computed as the
    Frobenius norm of the strictly upper part ``N`` of a complex Schur form,
    which does not suffer the cancellation of the eigenvalue formula for
    nearly normal matrices. Zero exactly for normal matrices.

    Parameters
    ----------
    A : (n, n) array_like
        Square matrix with finite entries.

    Returns
    -------
    float
        ``dep_F(A) ≥ 0``. Divide by ``‖A‖_F`` for the relative form in [0, 1].

    Raises
    ------
    NonSquareError
        If `A` is not square.
    NonFiniteError
        If `A` holds NaN or Inf.

    Examples
    --------
    >>> round(henrici([[1.0, 3.0], [0.0, 2.0]]), 12)
    3.0
    >>> henrici([[0.0, -1.0], [1.0, 0.0]]) < 1e-15
    True
    """
    return schur_nonnormal(A).fro


def is_defective(a: np.ndarray, lam: np.ndarray) -> bool:
    """True when an eigenvalue of `lam` repeated to working precision lacks a full eigenspace.

    `lam` holds all eigenvalues of `a` or a subset of them (e.g. the unimodular ones).

    Eigenvalues within ``8 n u ‖A‖_F`` of each other form a cluster of size
    ``m``; the cluster is defective when ``A − λI`` has fewer than ``m``
    singular values below ``16 n u ‖A‖_2`` (geometric < algebraic multiplicity).
    """
    n = a.shape[0]
    u = np.finfo(float).eps
    scale = max(float(np.linalg.norm(a, "fro")), np.finfo(float).tiny)
    tol = 8 * n * u * scale
    used = np.zeros(len(lam), dtype=bool)
    for i in range(len(lam)):
        if used[i]:
            continue
        members = np.flatnonzero(~used & (np.abs(lam - lam[i]) <= tol))
        used[members] = True
        if members.size < 2:
            continue
        mu = lam[members].mean()
        s = np.linalg.svd(a - mu * np.eye(n), compute_uv=False)
        if np.count_nonzero(s <= 16 * n * u * max(s[0], scale)) < members.size:
            return True
    return False


def _triangular_eigvecs(T: np.ndarray) -> np.ndarray:
    """Eigenvectors of an upper-triangular ``T`` (columns), by back substitution.

    ``T V = V D`` with ``V`` unit upper triangular gives, row by row from the
    bottom, ``(t_ii − t_jj) V_ij = −Σ_{k>i} T_ik V_kj`` for every ``j > i`` at
    once (the recurrence of LAPACK ``xTREVC``; tiny denominators are raised to
    ``u·max(|t_jj|, tiny)`` as there). ``A = Q T Q*`` has eigenvectors ``Q V``
    and, ``Q`` being unitary, the same ``κ``.
    """
    n = T.shape[0]
    d = np.diag(T)
    V = np.eye(n, dtype=np.complex128)
    u = np.finfo(float).eps
    smin = u * np.maximum(np.abs(d), np.finfo(float).tiny / u)
    for i in range(n - 2, -1, -1):
        den = d[i] - d[i + 1 :]
        den = np.where(np.abs(den) < smin[i + 1 :], smin[i + 1 :], den)
        V[i, i + 1 :] = -(T[i, i + 1 :] @ V[i + 1 :, i + 1 :]) / den
    return V


def _kappa_eigvec(T: np.ndarray, a: np.ndarray, lam: np.ndarray) -> float:
    """``κ(V)`` with unit eigenvector columns; ``inf`` for a defective matrix."""
    n = T.shape[0]
    if n == 1:
        return 1.0
    if is_defective(a, lam):
        return math.inf
    V = _triangular_eigvecs(T)
    # a repeated eigenvalue (to rounding; not defective, checked above) has an eigenspace, not
    # one eigenvector per copy, and back substitution divides by the rounding-level gaps between
    # its copies: take an orthonormal basis of the eigenspace instead (a normal matrix then
    # gets kappa = 1 whatever its multiplicities)
    d = np.diag(T)
    tol = 8 * n * np.finfo(float).eps * max(float(np.linalg.norm(a, "fro")), np.finfo(float).tiny)
    used = np.zeros(n, dtype=bool)
    for i in range(n):
        if used[i]:
            continue
        members = np.flatnonzero(~used & (np.abs(d - d[i]) <= tol))
        used[members] = True
        if members.size > 1:
            _, _, vh = np.linalg.svd(T - d[members].mean() * np.eye(n))
            V[:, members] = vh[-members.size :].conj().T
    norms = np.linalg.norm(V, axis=0)
    if np.any(norms == 0) or not np.all(np.isfinite(V)):
        return math.inf
    s = np.linalg.svd(V / norms, compute_uv=False)
    if s[-1] <= n * np.finfo(float).eps * s[0]:
        return math.inf  # singular eigenvector matrix to working precision
    return float(s[0] / s[-1])


@dataclass(eq=False)
class MatrixReport:
    """The figures of one recurrent matrix.

    Attributes
    ----------
    id, layer, direction, gate, native_gate, cell : str or None
        Identity of the matrix, as in :class:`~spectra.checkpoint.RecurrentMatrix`.
    shape : tuple of int
        ``(n, n)``.
    finite : bool
        False when the weights hold NaN/Inf; every figure is then None.
    spectral_radius : float
        ``ρ(A) = max |λ_i|``.
    norm_2, norm_fro : float
        ``‖A‖₂`` and ``‖A‖_F``.
    henrici, henrici_relative : float
        ``dep_F(A)`` and ``dep_F(A)/‖A‖_F`` (0 for ``A = 0``).
    schur_nonnormal_fro : float
        ``‖N‖_F`` of the complex Schur form (equal to ``henrici``).
    kappa_eigvec : float
        Eigenvector condition number (``inf`` when defective).
    eigenvalues : (n,) complex ndarray
    stable : bool
        ``ρ(A) < 1``: the linearised recurrence ``h ← A h`` decays.
    spectral_radius_error, henrici_error : float
        How far rounding may have moved the computed ``ρ`` and ``dep_F``
        (:func:`_rounding_errors`): Bauer-Fike's ``κ(V) n u ‖A‖₂`` for ``ρ`` (0 for
        ``dep_F``) where that settles the digits printed; else, for ill-conditioned or
        defective eigenvalues, ten times the largest change of either under two random
        perturbations of the size of the Schur form's backward error.
    marginal : bool
        ``ρ(A) = 1`` to rounding (within ``64 n u max(1, ‖A‖₂)``, plus
        ``u_s ‖A‖_F`` (at most ``1e-6 max(1, ‖A‖₂)``) for weights stored in a
        lower precision with unit roundoff ``u_s``: the tolerance
        :func:`spectra.kreiss_constant` uses): whether ``ρ`` came out
        just below or just above 1 is decided by rounding (a rotation, the
        identity, weights divided by their spectral radius), so neither
        ``stable`` nor its negation means much; the powers neither decay nor
        grow geometrically.
    rho_within_storage_rounding : bool
        Not ``marginal``, but ``|ρ(A) − 1| <= u_s ‖A‖_F`` (``u_s max |a_ii|`` when triangular)
        for weights stored in a low precision (bfloat16, float16, float8): a ρ that rounding
        the weights to their dtype could have carried from 1 (an orthogonal matrix stored in
        bfloat16 has ``ρ = 1 ± 3e-4``). ``stable`` still describes the stored matrix.
    extra : dict
        Figures added by later stages (pseudospectral radius, distance to
        instability, Kreiss bounds, ...), keyed by their JSON names.
    """

    id: str
    shape: tuple[int, int]
    layer: str = ""
    direction: str = "forward"
    gate: str | None = None
    native_gate: str | None = None
    cell: str = "array"
    source: str = ""
    dtype: str = "float64"
    finite: bool = True
    notes: tuple[str, ...] = ()
    spectral_radius: float | None = None
    norm_2: float | None = None
    norm_fro: float | None = None
    henrici: float | None = None
    henrici_relative: float | None = None
    schur_nonnormal_fro: float | None = None
    kappa_eigvec: float | None = None
    spectral_radius_error: float | None = None
    henrici_error: float | None = None
    eigenvalues: np.ndarray | None = None
    stable: bool | None = None
    marginal: bool | None = None
    rho_within_storage_rounding: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: the eigenvalues are exact (an upper triangular matrix: its diagonal), however ill-conditioned
    eigenvalues_exact: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (complex eigenvalues as ``[re, im]`` pairs, inf as the string "inf")."""
        d: dict[str, Any] = {
            "id": self.id,
            "layer": self.layer,
            "direction": self.direction,
            "gate": self.gate,
            "native_gate": self.native_gate,
            "cell": self.cell,
            "source": self.source,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "finite": self.finite,
            "notes": list(self.notes),
            "spectral_radius": self.spectral_radius,
            "norm_2": self.norm_2,
            "norm_fro": self.norm_fro,
            "henrici": self.henrici,
            "henrici_relative": self.henrici_relative,
            "schur_nonnormal_fro": self.schur_nonnormal_fro,
            "kappa_eigvec": self.kappa_eigvec,
            "spectral_radius_error": self.spectral_radius_error,
            "henrici_error": self.henrici_error,
            "stable": self.stable,
            "marginal": self.marginal,
            "rho_within_storage_rounding": self.rho_within_storage_rounding,
            "eigenvalues": None
            if self.eigenvalues is None
            else [[float(z.real), float(z.imag)] for z in self.eigenvalues],
        }
        d.update(self.extra)
        return jsonable(d)


def analyze_matrix(A, *, id: str = "A", stored_dtype: str | None = None) -> MatrixReport:
    """Spectrum, norms and departure from normality of one matrix.

    Parameters
    ----------
    A : (n, n) array_like
        Square matrix with finite entries.
    id : str
        Label carried into the report.
    stored_dtype : str, optional
        The dtype the checkpoint stores the weights in (``"float32"``, ``"bfloat16"``...):
        ``marginal`` then allows for their rounding to it (:func:`spectra._validate.storage_rounding`).

    Returns
    -------
    MatrixReport
        With ``spectral_radius``, ``norm_2``, ``norm_fro``, ``henrici``,
        ``henrici_relative``, ``schur_nonnormal_fro``, ``kappa_eigvec``,
        ``eigenvalues`` and ``stable`` filled in.

    Raises
    ------
    NonSquareError
        If `A` is not square.
    NonFiniteError
        If `A` holds NaN or Inf.

    Examples
    --------
    >>> r = analyze_matrix([[0.5, 1.0], [0.0, 0.5]])
    >>> r.spectral_radius, r.henrici, r.stable
    (0.5, 1.0, True)
    """
    a = as_square_matrix(A)
    s = schur_nonnormal(a)
    lam = s.eigenvalues
    fro = float(np.linalg.norm(a, "fro"))
    dep = s.fro
    rho = float(np.max(np.abs(lam)))
    norm2 = float(scipy.linalg.svdvals(a, check_finite=False)[0])
    kappa = _kappa_eigvec(s.T, a, lam)
    exact = bool(np.array_equal(np.triu(a), a))
    if exact:
        # the eigenvalues of an upper triangular matrix are its diagonal and dep_F its strictly
        # upper part, exactly, however ill-conditioned (a nilpotent shift of order 30: rho = 0
        # was "not resolved (rho within rounding of 1)")
        lam = np.diag(a).astype(np.complex128)
        rho = float(np.max(np.abs(lam)))
        dep = float(np.linalg.norm(np.triu(a, 1)))
        err_rho, err_dep = 0.0, 0.0
        window = max(storage_rounding(stored_dtype, a, norm2), 2 * float(np.finfo(float).eps))
    else:
        err_rho, err_dep = _rounding_errors(a, kappa, rho, dep, norm2, fro)
        window = rho_one_tolerance(a.shape[0], norm2, storage_rounding(stored_dtype, a, norm2))
    return MatrixReport(
        id=id,
        shape=(a.shape[0], a.shape[1]),
        spectral_radius=rho,
        norm_2=norm2,
        norm_fro=fro,
        henrici=dep,
        henrici_relative=dep / fro if fro > 0 else 0.0,
        schur_nonnormal_fro=dep,
        kappa_eigvec=kappa,
        spectral_radius_error=err_rho,
        henrici_error=err_dep,
        eigenvalues=lam,
        stable=rho < 1.0,
        marginal=abs(rho - 1.0) <= window,
        rho_within_storage_rounding=_within_low_precision(stored_dtype, a, norm2, rho, window),
        eigenvalues_exact=exact,
    )


def _within_low_precision(stored_dtype, a: np.ndarray, norm2: float, rho: float, window: float) -> bool:
    """Past the "= 1" window, but within the uncapped rounding of bfloat16/float16/float8 weights.

    float32 and float64 are left out: their rounding is within the window already (capped at
    ``1e-6 max(1, ||A||)``, which float32 reaches only past n ~ 10^4).
    """
    if unit_roundoff(stored_dtype) < 2.0**-11:
        return False  # float32 (u_s = 6e-8), float64, integer or unknown dtypes
    return window < abs(rho - 1.0) <= storage_rounding(stored_dtype, a, norm2, capped=False)


def _rounding_errors(
    a: np.ndarray, kappa: float, rho: float, dep: float, norm2: float, fro: float, seed: int = 0
) -> tuple[float, float]:
    """How far rounding may have moved the computed ``rho`` and ``dep_F`` (absolute).

    Well-conditioned eigenvalues: Bauer-Fike's ``kappa(V) n u ||A||_2`` for ``rho`` (tiny) and 0
    for ``dep_F`` (backward stable from the Schur form). Where that bound reaches the fifth digit
    of ``rho`` (or, near 1, the digits that tell it from 1) it says little (first order, with a
    ``kappa(V)`` that is itself inaccurate, or infinite), so the sensitivity is measured: ``A``
    plus two random perturbations (drawn from `seed`) of the size of the Schur form's backward
    error ``n u ||A||_F``, and ten times the largest change of ``rho`` or ``dep_F``.
    An estimate, not a bound: a nearly defective 12x12 gave rho 0.559933 for 0.559968, which
    Bauer-Fike bounded by 0.3 and the probes by 4e-4.
    """
    n = a.shape[0]
    u = 2.0**-53
    bound = kappa * n * u * norm2 if math.isfinite(kappa) else math.inf
    # no probe where the bound already settles what is printed: four digits, and near 1 the
    # digits that tell rho from 1 (two extra Schur forms cost 0.6 s at n = 512)
    settled = bound <= 5e-6 * max(rho, 1e-300) and not (abs(rho - 1) < 5e-4 and bound >= 0.05 * abs(rho - 1))
    if settled or fro == 0:
        return float(bound), 0.0
    rng = np.random.default_rng(seed)
    d_rho = d_dep = 0.0
    for _ in range(2):
        G = rng.standard_normal(a.shape) + (1j * rng.standard_normal(a.shape) if np.iscomplexobj(a) else 0)
        E = G * (n * u * fro / np.linalg.norm(G))
        sp = schur_nonnormal(a + E)
        d_rho = max(d_rho, abs(float(np.max(np.abs(sp.eigenvalues))) - rho))
        d_dep = max(d_dep, abs(sp.fro - dep))
    return float(min(bound, 10 * d_rho)), float(10 * d_dep)


@dataclass(eq=False)
class AnalysisReport:
    """Figures for every recurrent matrix of one checkpoint.

    Attributes
    ----------
    source : str
        The file analysed.
    format : str
        Its format as detected by :func:`spectra.load`.
    matrices : list of MatrixReport
        One per recurrent matrix, in checkpoint order.
    warnings : list of str
        Plain-language warnings (non-finite weights, figures not computed...).
    skipped : list of dict
        What the loader ignored, with reasons.
    """

    source: str
    format: str
    matrices: list[MatrixReport]
    warnings: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``spectra analyze --json`` document."""
        return {
            "schema_version": SCHEMA_VERSION,
            "source": self.source,
            "format": self.format,
            "warnings": list(self.warnings),
            "matrices": [m.to_dict() for m in self.matrices],
        }


def eps_label(eps: float) -> str:
    """The JSON key of an ε: ``%g`` (``0.001``) when that gives ε back, else the shortest exact form.

    ``%g`` alone made 0.001 and 0.0010000001 one key, and labelled 1.23456789e-3 as 0.00123457.
    """
    short = f"{eps:g}"
    return short if float(short) == float(eps) else repr(float(eps))


def robustness_figures(
    a: np.ndarray,
    epsilons: Sequence[float],
    figures: set[str],
    stored_dtype: str | None = None,
    step: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Pseudospectral and Kreiss figures of one finite matrix, keyed by their JSON names.

    ``pseudospectra`` in `figures`: ``pseudospectral_radius`` (dict ε -> ρ_ε,
    criss-cross, Mengi & Overton 2005) and ``distance_to_instability``
    (``min_{|z|=1} σ_min(zI − A)``). ``kreiss``: ``kreiss`` (K(A)),
    ``kreiss_lower`` (a lower bound on K attained at a point),
    ``kreiss_upper`` (``e·n·K``, the top of the Kreiss matrix theorem's
    bracket on ``sup_k ‖A^k‖``), ``kreiss_certified_upper`` (a proved upper
    bound on K), ``kreiss_resolved`` (False when σ_min at the maximiser is
    below what double precision resolves: ``kreiss`` is then only a lower
    bound), ``transient_peak``/``transient_peak_k`` (``max_k ‖A^k‖₂`` and
    where; inf/None when K is infinite), ``transient_peak_is_lower_bound``
    (the powers were stopped before proving the peak is the supremum),
    ``numerical_radius`` (:func:`spectra.numerical_radius`: attained, a lower
    bound) and ``numerical_radius_upper`` (a proved upper bound on ``w(A)``).
    """
    out: dict[str, Any] = {}
    if "pseudospectra" in figures:
        try:
            from spectra.crisscross import distance_to_instability, pseudospectral_radius
        except ImportError:  # pragma: no cover - module not built yet
            pass
        else:
            res = {}
            for eps in epsilons:
                res[eps_label(eps)] = pseudospectral_radius(a, eps)
                if step is not None:
                    step()
            out["pseudospectral_radius"] = {k: float(r) for k, r in res.items()}
            # eps below 1e-9 ||A||_2 (or an iteration that did not converge): not to be trusted
            out["pseudospectral_radius_reliable"] = {
                k: bool(r.reliable and r.converged) for k, r in res.items()
            }
            d = distance_to_instability(a)
            out["distance_to_instability"] = float(d)
            if step is not None:
                step()
    if "kreiss" in figures:
        try:
            from spectra.kreiss import kreiss_constant, transient_growth
            from spectra.numerical_range import radius_bracket
        except ImportError:  # pragma: no cover - module not built yet
            pass
        else:
            tg = transient_growth(a)
            k = kreiss_constant(a, transient=tg, stored_dtype=stored_dtype)
            out["kreiss"] = float(k.value)
            out["kreiss_lower"] = float(k.lower)
            out["kreiss_upper"] = float(math.e * a.shape[0] * k.value)
            out["kreiss_certified_upper"] = float(k.upper)
            out["kreiss_resolved"] = bool(k.resolved)
            if math.isinf(k.value):
                # rho(A) >= 1 and not a contraction: ||A^k|| has no finite peak
                # (the value at the last k computed would only reflect where we stopped)
                out["transient_peak"] = math.inf
                out["transient_peak_k"] = None
                out["transient_peak_is_lower_bound"] = False
            else:
                out["transient_peak"] = float(tg.peak)
                out["transient_peak_k"] = int(tg.peak_k)
                out["transient_peak_is_lower_bound"] = not tg.sup_proved
                out["transient_peak_error"] = float(tg.peak_error)
                out["transient_peak_lower"] = float(tg.peak_lower)
            if step is not None:
                step()
            # numerical_radius's bracket: w = its lower end, attained; the upper end says how
            # many digits are right (within 1e-9, or about 1e-5 where W(A) is a disc about 0)
            w_lo, w_hi = radius_bracket(a)
            out["numerical_radius"] = float(w_lo)
            out["numerical_radius_upper"] = float(w_hi)
            if step is not None:
                step()
    return out


def _eigen_condition_note(r: MatrixReport) -> str | None:
    """A note when rounding alone can move the eigenvalues by more than the printed digits.

    Bauer-Fike: a backward error ``||E|| <= n u ||A||`` moves an eigenvalue of a diagonalisable
    ``A`` by at most ``kappa(V) ||E||``; a defective one (a Jordan block of order k) by about
    ``(u ||A||)^(1/k)``.
    """
    kap, rho, nrm, n = r.kappa_eigvec, r.spectral_radius, r.norm_2, r.shape[0]
    if not (nrm > 0) or n < 2 or r.eigenvalues_exact:
        return None
    if not math.isfinite(kap):
        return (
            "the eigenvector matrix is singular to working precision (kappa(V) = inf: defective, or "
            "nearly): rho, the eigenvalues and dep_F (computed from them) may be off by far more than "
            "rounding (a Jordan block of order k moves its eigenvalue by about (u ||A||)^(1/k))"
        )
    bound = kap * n * float(np.finfo(float).eps) / 2 * nrm
    if bound > 5e-5 * max(rho, bound * 1e-3):  # rounding reaches the 4th digit
        return (
            f"the eigenvalues are ill-conditioned (kappa(V) = {kap:.2g}): rho and the eigenvalues are "
            f"uncertain by up to about kappa(V) n u ||A|| = {bound:.1g}, and dep_F (computed from them) "
            "accordingly"
        )
    # rho printed to more digits near 1, but rounding reaches across the gap to 1. With
    # well-conditioned eigenvalues (an orthogonal matrix: kappa(V) = 1) that gap is rounding
    # itself, and the verdict "marginal (rho = 1)" says all there is to say
    if abs(rho - 1) < 5e-4 and bound >= 0.5 * abs(rho - 1) and kap >= 10:
        return (
            f"the eigenvalues are ill-conditioned (kappa(V) = {kap:.2g}): rho and the eigenvalues are "
            f"uncertain by up to about kappa(V) n u ||A|| = {bound:.1g}, which reaches across the gap "
            "to 1: whether rho is below 1 is not resolved"
        )
    return None


#: loader notes that say a reading rests on an assumption the file cannot settle (spectral_norm's
#: dim, a custom cell's variable order): repeated as warnings by :func:`analyze`
_DOUBT_MARKERS = ("assumed", "does not name them")

#: the JSON names each group of :func:`robustness_figures` adds (None for non-finite weights)
FIGURE_KEYS: dict[str, tuple[str, ...]] = {
    "pseudospectra": ("pseudospectral_radius", "pseudospectral_radius_reliable", "distance_to_instability"),
    "kreiss": (
        "kreiss",
        "kreiss_lower",
        "kreiss_upper",
        "kreiss_certified_upper",
        "kreiss_resolved",
        "transient_peak",
        "transient_peak_k",
        "transient_peak_is_lower_bound",
        "numerical_radius",
        "numerical_radius_upper",
    ),
}

#: groups of figures :func:`analyze` can compute
FIGURES: tuple[str, ...] = ("basic", "pseudospectra", "kreiss")


def analyze(
    source: str | os.PathLike | Checkpoint | np.ndarray,
    *,
    matrices: Iterable[str] | None = None,
    figures: Iterable[str] = FIGURES,
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    trust: bool = False,
    progress=None,
) -> AnalysisReport:
    """Analyse every recurrent matrix of a checkpoint (or one array).

    Parameters
    ----------
    source : path, Checkpoint or (n, n) array_like
        A checkpoint file (anything :func:`spectra.load` reads), an already
        loaded :class:`~spectra.checkpoint.Checkpoint`, or one square matrix.
    matrices : iterable of str, optional
        Ids (or tensor names, selecting all their gates) to analyse; all by default.
    figures : iterable of {"basic", "pseudospectra", "kreiss"}
        Which groups of figures to compute. ``basic`` (spectrum, norms,
        Henrici) is always computed; ``pseudospectra`` adds ρ_ε at
        `epsilons` and the distance to instability; ``kreiss`` adds the Kreiss
        constant, transient peak and numerical radius.
    epsilons : sequence of float
        ε values for the pseudospectral radius.
    trust : bool
        Passed to :func:`spectra.load` (allow arbitrary pickles).
    progress : callable, optional
        ``progress(done, total)`` called as the work goes on: ``total`` counts, for
        every matrix, its basic figures, each ρ_ε and the distance to instability
        (``pseudospectra``), and the Kreiss constant with the powers and the numerical
        radius (``kreiss``), so a bar moves within one large matrix too (all the
        figures of an n = 1024 matrix take about two minutes).

    Returns
    -------
    AnalysisReport
        One :class:`MatrixReport` per matrix. Matrices with non-finite
        weights are listed with ``finite=False``, not analysed, and a warning
        is added (and emitted with :func:`warnings.warn`).

    Raises
    ------
    SpectraError
        Whatever :func:`spectra.load` raises for the file; ``ValueError``
        (:class:`~spectra.errors.InvalidArgumentError`) for an unknown figure group.
    """
    from spectra.load import load

    figs = set(figures) | {"basic"}
    unknown = figs - set(FIGURES)
    if unknown:
        raise InvalidArgumentError(
            f"figures: unknown group(s) {sorted(unknown)}; valid: {', '.join(FIGURES)}"
        )
    if isinstance(source, Checkpoint):
        ckpt = source
    elif isinstance(source, str | os.PathLike):
        ckpt = load(source, trust=trust)
    else:
        a = as_square_matrix(source, allow_nonfinite=True)
        ckpt = Checkpoint(
            path="<array>",
            format="array",
            matrices=[RecurrentMatrix(id="A", matrix=a, layer="A", finite=bool(np.all(np.isfinite(a))))],
        )
    chosen = ckpt.select(list(matrices) if matrices is not None else None)
    reports: list[MatrixReport] = []
    notes: list[str] = []
    # what the reader had to assume (the file cannot settle it) is said here too, not only by ls
    doubts: dict[str, list[str]] = {}
    for m in chosen:
        for note in m.notes:
            if any(k in note for k in _DOUBT_MARKERS):
                doubts.setdefault(note, []).append(m.id)
    for note, ids in doubts.items():
        more = f" (and {len(ids) - 1} more)" if len(ids) > 1 else ""
        msg = f"{ids[0]}{more}: {note}"
        notes.append(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    # progress in stages: the basic figures, each rho_eps and d_inst, Kreiss with the powers, w(A)
    per_matrix = 1 + (len(epsilons) + 1 if "pseudospectra" in figs else 0) + (2 if "kreiss" in figs else 0)
    total, done = per_matrix * len(chosen), 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    for m in chosen:
        start = done
        out_of_range = magnitude_problem(m.matrix) if m.finite else None
        if not m.finite or not np.all(np.isfinite(m.matrix)) or out_of_range:
            msg = f"{m.id}: {out_of_range or 'weights hold NaN or Inf'}; not analysed"
            notes.append(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            r = MatrixReport(id=m.id, shape=(m.n, m.n), finite=False)
            # the same keys as a finite matrix's, every figure None (as documented)
            r.extra.update({k: None for g in figs for k in FIGURE_KEYS.get(g, ())})
        else:
            r = analyze_matrix(m.matrix, id=m.id, stored_dtype=m.dtype)
            step()
            cond = _eigen_condition_note(r)
            if cond:
                notes.append(f"{m.id}: {cond}")
            # the figures' own warnings (a transient peak stopped at the cap...) name the matrix
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                r.extra.update(
                    robustness_figures(as_square_matrix(m.matrix), epsilons, figs, m.dtype, step=step)
                )
            for w in caught:
                msg = f"{m.id}: {w.message}"
                notes.append(msg)
                warnings.warn(msg, w.category, stacklevel=2)
        r.layer, r.direction, r.gate, r.native_gate = m.layer, m.direction, m.gate, m.native_gate
        r.cell, r.source, r.dtype, r.notes = m.cell, m.source, m.dtype, m.notes
        reports.append(r)
        if done - start < per_matrix:  # not finite (or a figure group not built): its stages at once
            done = start + per_matrix
            if progress is not None:
                progress(done, total)
    skipped = [{"name": s.name, "shape": s.shape, "reason": s.reason} for s in ckpt.skipped]
    return AnalysisReport(
        source=ckpt.path, format=ckpt.format, matrices=reports, warnings=notes, skipped=skipped
    )
