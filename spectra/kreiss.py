"""Kreiss constant and transient growth of the powers ``A^k`` (discrete time).

What lives here
---------------
* :func:`transient_growth` -- the exact 2-norms ``||A^k||_2``, ``k = 0..kmax``.
* :func:`kreiss_constant` -- ``K(A) = sup_{|z|>1} (|z| - 1) ||(zI - A)^{-1}||_2``
  with a lower bound attained at an explicit point and a certified upper bound.
* :func:`transient_lower_bound` -- the pseudospectral lower bound on
  ``max_{0<=k<=kmax} ||A^k||`` of Trefethen & Embree (2005), ch. 16.

Pseudospectral grids live in :mod:`spectra.pseudospectra`, the numerical range
in :mod:`spectra.numerical_range`, drawings in :mod:`spectra.plot.transient`.

Kreiss matrix theorem (Trefethen & Embree 2005, Thm 18.1; Spijker 1991 for the
constant ``e n``; LeVeque & Trefethen 1984)::

    K(A) <= sup_{k>=0} ||A^k||_2 <= e n K(A).

Everything is computed on the complex Schur form ``A = Q T Q*`` (Golub & Van
Loan, Thm 7.1.3): ``||A^k|| = ||T^k||`` and ``sigma_min(zI - A) =
sigma_min(zI - T)`` because ``Q`` is unitary.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg as sla
from scipy.optimize import minimize

from spectra._validate import as_square_matrix, is_triangular, rho_one_tolerance, storage_rounding
from spectra.crisscross import _smin_estimate
from spectra.errors import InvalidArgumentError

__all__ = [
    "KreissResult",
    "TransientBound",
    "TransientGrowth",
    "kreiss_constant",
    "transient_growth",
    "transient_lower_bound",
]

_EPS = np.finfo(float).eps
#: matrices up to this order get dense (batched) SVDs; larger ones inverse iteration
_DENSE_N = 40
#: ``certify="auto"`` runs the circle walk (where the cells gave up) up to this order (there a
#: walk costs about 1.2-2.3 pseudospectra grids; see benchmarks/kreiss.py)
_CERTIFY_N = 64
#: hard cap on the number of powers computed by :func:`transient_growth`
KMAX_CAP = 2000
#: default number of powers when ``rho(A) >= 1`` (no decay to wait for)
KMAX_UNSTABLE = 100
#: certificates are tried at no tighter a tolerance than this (see kreiss_constant's rtol)
RTOL_MIN = 1e-14


def _schur(A) -> tuple[np.ndarray, np.ndarray]:
    """Complex Schur form, computed as :func:`spectra.normality.schur_nonnormal` does.

    Real Schur then rsf2csf for real `A`: the same rounding, so ``spectral_radius`` agrees
    with ``analyze``'s even where the eigenvalues are ill-conditioned.
    """
    T, Q, _ = _schur_forms(A)
    return T, Q


def _schur_forms(A) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(T, Q, R)``: :func:`_schur`'s complex form and, for real `A`, the real Schur factor ``R``."""
    a = as_square_matrix(A)
    if np.iscomplexobj(a):
        T, Q = sla.schur(a, output="complex")
        return T, Q, None
    R, Z = sla.schur(a, output="real")
    T, Q = sla.rsf2csf(R, Z)
    return T, Q, R


# ----------------------------------------------------------------------------- transient growth


@dataclass(frozen=True)
class TransientGrowth:
    """Norms of the powers of a matrix.

    Attributes
    ----------
    norms : (kmax + 1,) ndarray
        ``||A^k||_2`` for ``k = 0..kmax`` (``norms[0] = 1``).
    spectral_bound : (kmax + 1,) ndarray
        ``rho(A)^k``, the asymptotic rate (``||A^k|| >= rho^k`` always).
    peak : float
        ``max_k norms[k]`` over the computed range.
    peak_k : int
        The first ``k`` at which the peak is attained, to within ``1e-12``
        relative (rounding: the norms of an orthogonal matrix peak at 0).
    kmax : int
        Last power computed.
    spectral_radius : float
        ``rho(A)``.
    n : int
        Order of the matrix.
    sup_proved : bool
        True when the norms computed prove ``peak = sup_{k>=0} ||A^k||``: some
        ``||A^m|| < 1`` past the peak (by more than its `norm_errors`), so every
        later power is at most ``||A^m|| peak`` (submultiplicativity). False:
        ``peak`` is only a lower bound on the supremum (the powers were stopped
        first).
    norm_errors : (kmax + 1,) ndarray or None
        How far rounding may have moved each computed norm (absolute; a
        first-order estimate, :func:`_power_norm_errors`). Negligible for
        most matrices; for strongly non-normal ones with ``||A||`` large
        (``||A||^k`` far above ``||A^k||``) the norms are ill-conditioned
        functions of the stored entries and only the digits these leave are
        meaningful.
    """

    norms: np.ndarray
    spectral_bound: np.ndarray
    peak: float
    peak_k: int
    kmax: int
    spectral_radius: float
    n: int
    sup_proved: bool = False
    norm_errors: np.ndarray | None = None

    @property
    def k(self) -> np.ndarray:
        """The powers ``0..kmax``."""
        return np.arange(self.kmax + 1)

    @property
    def peak_error(self) -> float:
        """How far rounding may have moved ``peak`` (absolute): ``max_k`` of the norms' error bands."""
        if self.norm_errors is None:
            return 0.0
        e = self.norm_errors
        with np.errstate(invalid="ignore"):
            top = float(np.max(self.norms + e))
        err = max(top - self.peak, float(e[self.peak_k]))
        return err if math.isfinite(err) else math.inf

    @property
    def peak_lower(self) -> float:
        """A lower bound on ``max_k ||A^k||`` over the computed range.

        ``max_k`` of the norms less their error bands, and at least ``||A^0|| = 1`` (exact).
        """
        if self.norm_errors is None:
            return float(self.peak)
        with np.errstate(invalid="ignore"):
            low = np.nan_to_num(self.norms - self.norm_errors, nan=-np.inf)
        return max(1.0, float(np.max(low)))

    def sup_bound(self) -> tuple[float, int | None]:
        """``sup_{k>=0} ||A^k||`` from above, and the power ``m`` that proves it; ``(inf, None)``.

        ``m`` is the first power below 1 with its error band; the bound is the norms before it,
        each raised by its band.
        """
        e = self.norm_errors if self.norm_errors is not None else np.zeros_like(self.norms)
        with np.errstate(invalid="ignore"):
            below = np.flatnonzero(self.norms[1:] + e[1:] <= 1)
        if not below.size:
            return math.inf, None
        m = int(below[0]) + 1
        with np.errstate(invalid="ignore"):
            up = float(np.max(self.norms[:m] + e[:m]))
        return (up, m) if math.isfinite(up) else (math.inf, None)


def _power_form(A) -> tuple[np.ndarray, float]:
    """Schur form for powering, and ``rho(A)``.

    Real `A`: the real Schur form (Golub & Van Loan, Thm 7.4.1; orthogonal
    ``Q``, quasi-triangular ``T`` with 2x2 blocks for complex pairs, whose
    eigenvalues have modulus ``sqrt(det)``), so powers stay in real
    arithmetic, about 4x cheaper. Complex `A`: the complex Schur form.
    """
    a = as_square_matrix(A)
    if np.iscomplexobj(a):
        T = sla.schur(a, output="complex")[0]
        return T, float(np.max(np.abs(np.diag(T))))
    T = sla.schur(a, output="real")[0]
    n = T.shape[0]
    mods = np.abs(np.diag(T)).astype(float)
    i = 0
    while i < n - 1:
        if T[i + 1, i] != 0:
            m = math.sqrt(abs(T[i, i] * T[i + 1, i + 1] - T[i, i + 1] * T[i + 1, i]))
            mods[i] = mods[i + 1] = m
            i += 2
        else:
            i += 1
    return T, float(np.max(mods))


#: from this order on, ``||T^k||_2`` by Lanczos (warm-started, checked against the SVD)
_LANCZOS_NORM_N = 96
#: powers whose norm is also computed by a dense SVD, as a check of the Lanczos values
_CHECK_EVERY = 32


def _top_singular(P: np.ndarray, v0: np.ndarray, tol: float = 1e-14, maxit: int = 40):
    """Largest singular value of `P` and its right vector, by Lanczos on ``P* P``.

    Full reorthogonalisation; stops when the top Ritz value's residual
    ``beta_j |y_j|`` is below ``tol`` of it (then the Ritz value is within
    ``residual^2/gap`` of an eigenvalue of ``P* P``). Returns ``(sigma, v)``, or
    ``(None, None)`` when it has not converged in `maxit` steps.
    """
    from scipy.linalg import eigh_tridiagonal

    n = P.shape[1]
    m = min(maxit, n)
    Q = np.empty((n, m), dtype=P.dtype)
    q = v0 / np.linalg.norm(v0)
    alpha: list[float] = []
    beta: list[float] = []
    for j in range(m):
        Q[:, j] = q
        w = P.conj().T @ (P @ q)
        alpha.append(float(np.real(np.vdot(q, w))))
        Qj = Q[:, : j + 1]
        for _ in range(2):  # reorthogonalise twice ("twice is enough")
            w -= Qj @ (Qj.conj().T @ w)
        b = float(np.linalg.norm(w))
        if j == 0:
            theta, Y = np.array(alpha), np.ones((1, 1))
        else:
            theta, Y = eigh_tridiagonal(np.array(alpha), np.array(beta))
        top = float(theta[-1])
        if top <= 0:
            return None, None
        if b * abs(Y[-1, -1]) <= tol * top or b <= tol * top or j + 1 == n:
            return math.sqrt(top), Qj @ Y[:, -1]
        beta.append(b)
        q = w / b
    return None, None


class _PowerNorms:
    """``||T^k||_2`` for ``k = 1, 2, ...`` of a (quasi-)triangular Schur factor ``T``.

    Keeps ``P = T^k/||T^k||`` (no overflow, no denormals) and the scalar
    ``||T^k||`` (a Python float: inf past the largest float). ``P T`` is a
    triangular product (BLAS ``trmm``, half a GEMM) plus the subdiagonal of the
    real Schur form's 2x2 blocks. The norm is the top singular value: by a dense
    SVD for ``n < 96``; above, by Lanczos on ``P* P`` started from the previous
    power's top right singular vector (a few O(n^2) steps instead of an O(n^3)
    SVD), with the first three powers and every 32nd one also computed by
    the SVD: a disagreement beyond 1e-11 (relative) sets :attr:`failed`, and the
    caller starts again with ``lanczos=False`` (dense SVDs throughout).
    """

    def __init__(self, T: np.ndarray, lanczos: bool = True) -> None:
        from scipy.linalg import blas

        self.T = np.asfortranarray(T)
        n = T.shape[0]
        self.n = n
        self.trmm = blas.ztrmm if np.iscomplexobj(T) else blas.dtrmm
        sub = np.diag(T, -1) if n > 1 else np.zeros(0)
        self.sub_idx = np.flatnonzero(sub != 0)
        self.sub = sub[self.sub_idx]
        self.P = np.eye(n, dtype=T.dtype)
        self.norm = 1.0
        self.k = 0
        self.lanczos = lanczos and n >= _LANCZOS_NORM_N
        self.failed = False
        self.v: np.ndarray | None = None
        self.rng = np.random.default_rng(0)

    def _times_T(self, P: np.ndarray) -> np.ndarray:
        out = self.trmm(1.0, self.T, P, side=1, lower=0)
        if self.sub_idx.size:
            # (P T)[:, i] gets P[:, i+1] T[i+1, i] from the 2x2 blocks of the real Schur form
            out[:, self.sub_idx] += P[:, self.sub_idx + 1] * self.sub
        return out

    def next(self) -> float:
        """Advance to the next power; return ``||T^k||_2``."""
        P = self._times_T(self.P)
        self.k += 1
        rel = None
        if self.lanczos and self.v is not None:
            noise = self.rng.standard_normal(self.n).astype(P.dtype) / math.sqrt(self.n)
            rel, v = _top_singular(P, self.v / np.linalg.norm(self.v) + 1e-3 * noise)
            if rel is not None:
                self.v = v
        if rel is None or self.k <= 3 or self.k % _CHECK_EVERY == 0:
            v = None
            if not np.any(P):
                rel_svd = 0.0
            elif self.lanczos:  # the vector starts the next Lanczos
                _, sv, vh = np.linalg.svd(P)
                rel_svd, v = float(sv[0]), vh[0].conj()
            else:
                rel_svd = float(sla.svdvals(P, check_finite=False)[0])
            if rel is not None and abs(rel - rel_svd) > 1e-11 * rel_svd:
                # the check failed: the Lanczos values since the last check are suspect
                self.lanczos, self.failed = False, True
            rel = rel_svd
            if v is not None:
                self.v = v
        if rel > 0:
            P /= rel
        self.P = P
        self.norm *= rel  # Python floats: inf on overflow, no exception
        return self.norm


#: norms whose error estimate sums exactly (O(kmax^2)); beyond, a running-maximum bound (O(kmax))
_CONVOLVE_MAX = 4000


def _power_norm_errors(norms: np.ndarray, n: int) -> np.ndarray:
    """How far rounding may have moved the computed ``||A^k||`` (absolute, per k; first order).

    A perturbation ``E`` of ``A`` (the Schur form's backward error) or of one product while
    ``T^k`` is formed (its rounding) moves ``A^k`` by ``sum_{j<k} A^j E A^(k-1-j)``, of norm at
    most ``||E|| S_k`` with ``S_k = sum_{j<k} ||A^j|| ||A^(k-1-j)||``; each such ``||E||`` is
    at most about ``n u ||A||``, and the estimate allows ``4 n u ||A||``. For a normal matrix
    this is ``4 n u k ||A||^k``-small; for ``||A|| = 400`` with ``||A^17|| = 1.8e11`` the norms
    really are moved by 0.3% (a review, against 250-digit arithmetic). Past
    :data:`_CONVOLVE_MAX` powers ``S_k <= k max_{j<k} ||A^j||^2`` is used instead.
    """
    N = np.asarray(norms, dtype=float)
    out = np.zeros_like(N)
    if N.size < 2:
        return out
    unit = 4 * n * _EPS * N[1]
    with np.errstate(over="ignore", invalid="ignore"):
        if N.size - 1 <= _CONVOLVE_MAX:
            S = np.convolve(N[:-1], N[:-1])[: N.size - 1]
        else:
            run = np.maximum.accumulate(N[:-1])
            S = np.arange(1, N.size) * run**2
        out[1:] = unit * S
    return np.where(np.isnan(out), np.inf, out)


def _abs_power_errors(T: np.ndarray, kmax: int, lanczos: bool) -> np.ndarray:
    """Rounding of the powers of a Schur form that is exact (`A` upper triangular: ``T = A``).

    No backward error of a Schur decomposition then; only the products round, elementwise:
    ``|fl(P T) - P T| <= g |P| |T|`` with ``g = (n + 2) u`` (the normalisation included), so the
    computed ``T^k`` is within ``((1 + g)^k - 1) |T|^k`` of the exact one, entry by entry, and
    its 2-norm within ``((1 + g)^k - 1) || |T|^k ||_2`` (a nonnegative matrix dominating the
    error's moduli has the larger 2-norm). Plus ``2 u ||T^k||`` for the SVD: added by the caller.
    ``0.5 I + 400 N`` (n = 8): peak 4.393e19 exact to 5e-17; the normwise bound said 3.6e28.
    """
    n = T.shape[0]
    g = (n + 2) * _EPS
    powers = _PowerNorms(np.abs(T), lanczos=lanczos)
    absn = np.array([1.0] + [powers.next() for _ in range(kmax)])
    with np.errstate(over="ignore", invalid="ignore"):
        grow = np.expm1(np.arange(kmax + 1) * np.log1p(g))
        out = grow * absn
    return np.where(np.isnan(out), np.inf, out)


#: size of the first-order error bound (relative to max(1, ||A^k||)) above which the norms'
#: sensitivity is measured (2-3 more Schur forms and power runs); below, it is negligible
#: against the digits printed and the test ||A^m|| < 1 (about 1e-11 on the shipped checkpoints)
_SENSITIVE = 1e-6


def _perturbed_changes(a: np.ndarray, norms: np.ndarray, lanczos: bool) -> np.ndarray:
    """Ten times the largest change of the norms under two random perturbations of ``A``.

    Each perturbation is dense, of 2-norm ``u ||A||`` (the order of the Schur form's backward
    error, which is what moves the norms: the powers of ``T`` are formed accurately), and the
    Schur form is computed again; as for ``spectral_radius_error`` (:mod:`spectra.normality`)
    this is an estimate, not a bound. A review's ``||A|| = 400``, ``n = 8`` matrix: the
    computed ``||A^17||`` is 0.31% off (250-digit arithmetic); perturbations change it by
    0.002-0.09%.
    """
    rng = np.random.default_rng(0)
    size = _EPS * float(norms[1])
    worst = np.zeros_like(norms)
    for _ in range(2):
        E = rng.standard_normal(a.shape)
        if np.iscomplexobj(a):
            E = E + 1j * rng.standard_normal(a.shape)
        E *= size / max(float(np.linalg.norm(E, 2)), 1e-300)
        powers = _PowerNorms(_power_form(a + E)[0], lanczos=lanczos)
        other = np.array([1.0] + [powers.next() for _ in range(norms.size - 1)])
        with np.errstate(invalid="ignore"):
            worst = np.maximum(worst, np.abs(other - norms))
    return np.where(np.isnan(worst), np.inf, 10 * worst)


def _norm_errors(a: np.ndarray, T: np.ndarray, norms: np.ndarray, lanczos: bool) -> np.ndarray:
    """How far rounding may have moved the computed norms of the powers (absolute, per k).

    `T` equal to `a` (upper triangular `a`: its own Schur form, exactly): the products' elementwise
    rounding (:func:`_abs_power_errors`). Otherwise the first-order normwise bound
    (:func:`_power_norm_errors`), and where that is not negligible, at most ten times the
    changes that random perturbations of the Schur form's backward-error size make
    (:func:`_perturbed_changes`).
    """
    n = T.shape[0]
    if T.shape == a.shape and np.array_equal(T, a):
        return _abs_power_errors(T, norms.size - 1, lanczos) + 2 * _EPS * norms
    errs = _power_norm_errors(norms, n)
    with np.errstate(invalid="ignore"):
        sensitive = bool(np.any(errs[1:] > _SENSITIVE * np.maximum(norms[1:], 1.0)))
    if sensitive:
        # the first-order bound is pessimistic (x100 and more on such matrices): measure instead
        errs = np.minimum(errs, _perturbed_changes(a, norms, lanczos))
    return errs


def transient_growth(A, kmax: int | None = None) -> TransientGrowth:
    """2-norms of the powers ``||A^k||_2``, ``k = 0..kmax``, with how far rounding may have moved them.

    ``||A^k||_2 = ||T^k||_2`` for the Schur form ``A = Q T Q*`` (real Schur
    form for real `A`); the powers of the (quasi-)triangular ``T`` are formed
    one by one (stable: no eigenvector basis is used), kept normalised (a norm
    beyond the largest float is reported as inf, without overflow elsewhere),
    and each norm is the largest singular value: by a dense SVD (Golub & Van
    Loan, sec. 8.6) for ``n < 96``, above by Lanczos on ``P* P`` warm-started
    from the previous power, with every 32nd power (and the first three) also
    computed by the SVD as a check; a failed check (beyond 1e-11) starts the
    powers again with SVDs only. Measured against the SVD loop: within 7e-15
    relative, 2-5x faster (n = 150..512). The norms are those of the stored
    matrix to within ``norm_errors`` (:func:`_power_norm_errors`): about
    ``k n u`` relative for well-conditioned powers, but a strongly
    non-normal matrix's powers are ill-conditioned (``||A|| = 400``:
    ``||A^17||`` 0.31% off in double precision, whatever the algorithm).

    Parameters
    ----------
    A : (n, n) array_like
        The matrix.
    kmax : int, optional
        Last power. Default, chosen from the data:

        * ``rho(A) >= 1``: ``kmax = 100`` (:data:`KMAX_UNSTABLE`);
        * otherwise powers are computed until, past the peak, ``||A^k||``
          has fallen to ``0.01 max(1, peak)`` and below 1 (or to 0:
          nilpotent), and ``kmax`` is that ``k``;
        * never more than 2000 powers (:data:`KMAX_CAP`).

        With the default rule and the decay reached before the cap, ``peak``
        is exactly ``sup_{k>=0} ||A^k||`` (``sup_proved``): for ``j >= kmax``,
        ``||A^j|| <= ||A^kmax|| ||A^(j-kmax)|| <= ||A^kmax|| sup_k ||A^k||``
        with ``||A^kmax|| < 1``. (Stopping at 1% of a peak above 100 would
        not do: an early hump of 1000 decaying to 10 can precede a later,
        larger one.) When the cap stops the powers first (``rho`` very close
        to 1: ``[[0.9999, 0.001], [0, 0.9999]]`` peaks at ``k = 9797``),
        ``peak`` is only a lower bound on the supremum; a
        :class:`RuntimeWarning` says so.

    Returns
    -------
    TransientGrowth
        ``.norms``, ``.peak``, ``.peak_k``, ``.spectral_bound = rho^k``, ``.kmax``.

    Raises
    ------
    NonSquareError, NonFiniteError
        If `A` is not a finite square matrix.
    ValueError
        If `kmax` is negative.

    Examples
    --------
    >>> tg = transient_growth([[0.5, 1.0], [0.0, 0.5]], kmax=3)
    >>> round(float(tg.norms[1]), 6)
    1.207107
    """
    T, rho = _power_form(A)
    n = T.shape[0]
    if kmax is not None:
        if isinstance(kmax, bool) or not isinstance(kmax, int | np.integer) or kmax < 0:
            raise InvalidArgumentError(f"kmax must be a non-negative integer, got {kmax!r}")
        kmax = int(kmax)
    limit = kmax if kmax is not None else (KMAX_UNSTABLE if rho >= 1 else KMAX_CAP)
    for lanczos in (True, False):
        powers = _PowerNorms(T, lanczos=lanczos)
        norms = [1.0]
        peak, peak_k = 1.0, 0
        k = 0
        while k < limit and not powers.failed:
            k += 1
            nk = powers.next()
            norms.append(nk)
            if nk > peak:
                # where: the first k within rounding of the top (an orthogonal matrix's norms, all 1
                # to rounding, peak at k = 0, not wherever rounding put the largest)
                if nk > norms[peak_k] * (1 + 1e-12):
                    peak_k = k
                peak = nk
            if (
                kmax is None
                and rho < 1
                and (nk == 0.0 or (k > peak_k and nk <= 0.01 * max(1.0, peak) and nk < 1))
            ):
                break
        if not powers.failed:
            break
    errs = _norm_errors(as_square_matrix(A), T, np.asarray(norms), lanczos)
    past = np.asarray(norms[peak_k + 1 :]) + errs[peak_k + 1 :]
    sup_proved = bool(past.size and np.min(past) < 1)
    if kmax is None and rho < 1 and len(norms) - 1 == limit and not sup_proved:
        grow = "still growing" if peak_k == limit else "not yet decayed below 1"
        warnings.warn(
            f"transient_growth: ||A^k|| {grow} at the cap of {limit} powers (rho(A) = {rho:.10g}): "
            f"the peak {peak:.6g} (k = {peak_k}) is only a lower bound on sup_k ||A^k|| "
            "(pass kmax, or spectra transient --kmax, to go further)",
            RuntimeWarning,
            stacklevel=2,
        )
    norms_a = np.asarray(norms)
    kk = np.arange(len(norms_a))
    with np.errstate(over="ignore"):
        bound = rho**kk  # inf past the largest float, like the norms
    return TransientGrowth(
        norms=norms_a,
        spectral_bound=bound,
        peak=float(peak),
        peak_k=int(peak_k),
        kmax=int(len(norms_a) - 1),
        spectral_radius=rho,
        n=n,
        sup_proved=sup_proved,
        norm_errors=errs,
    )


# ----------------------------------------------------------------------------- sigma_min helpers


def _smin_dense(T: np.ndarray, zs: np.ndarray, chunk_bytes: int = 32 << 20) -> np.ndarray:
    """``sigma_min(z I - T)`` for many ``z`` by batched dense SVD (values only)."""
    n = T.shape[0]
    out = np.empty(zs.size)
    step = max(1, chunk_bytes // (16 * n * n))
    eye = np.eye(n)
    for s in range(0, zs.size, step):
        z = zs[s : s + step]
        B = z[:, None, None] * eye - T
        out[s : s + step] = np.linalg.svd(B, compute_uv=False)[:, -1]
    return out


def _inverse_iteration(T: np.ndarray, z: complex, iters: int = 60, tol: float = 1e-13, v0=None):
    """Smallest singular triplet of ``B = zI - T`` by inverse iteration on ``B* B``.

    ``B`` is upper triangular, so each step is two triangular solves (O(n^2);
    :func:`spectra.crisscross._smin_estimate`). Returns ``(sigma, u, v)`` with
    ``B v = sigma u``; ``sigma = ||B v||`` is never below the true ``sigma_min``
    (up to rounding). `v0` warm-starts.
    """
    sigma, v, _ = _smin_estimate(T, z, None if v0 is None else v0 / np.linalg.norm(v0), iters, tol)
    Bv = z * v - T @ v
    u = Bv / sigma if sigma > 0 else v
    return sigma, u, v


def _smin_batched(T: np.ndarray, zs: np.ndarray, iters: int = 6) -> np.ndarray:
    """Upper estimates ``||B v||`` of ``sigma_min(z I - T)`` by batched inverse iteration.

    All shifts at once with the shared blocked triangular solver of
    :mod:`spectra._triangular` when it is available (else one shift at a time).
    ``||B v|| >= sigma_min(B)`` for every unit ``v``, so these never
    underestimate ``sigma_min`` (only the search for good starting points
    uses them; every reported value is recomputed by :func:`_triplet`).
    """
    try:
        from spectra._triangular import ShiftedTriangular
    except ImportError:  # pragma: no cover - fallback when the grid engine is absent
        return np.array([_inverse_iteration(T, z, iters=iters, tol=1e-6)[0] for z in zs])
    n = T.shape[0]
    solver = ShiftedTriangular(T)
    out = np.empty(zs.size)
    step = max(1, (16 << 20) // (16 * n))
    for s in range(0, zs.size, step):
        z = zs[s : s + step]
        dinv = 1.0 / (z[None, :] - np.diag(T)[:, None])
        dinvc = np.conj(dinv)
        X = np.ones((n, z.size), dtype=np.complex128) / math.sqrt(n)
        for _ in range(iters):
            solver.solve_adjoint(X, dinvc)
            solver.solve(X, dinv)
            X /= np.linalg.norm(X, axis=0)
        BX = z[None, :] * X - T @ X
        out[s : s + step] = np.linalg.norm(BX, axis=0)
    return out


def _smin_values(T: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """``sigma_min(z I - T)`` at every point of `zs` (values only; estimates for large n)."""
    zs = np.asarray(zs, dtype=np.complex128).ravel()
    if T.shape[0] <= _DENSE_N:
        return _smin_dense(T, zs)
    return _smin_batched(T, zs)


def _triplet(T: np.ndarray, z: complex, v0=None):
    """Smallest singular triplet ``(sigma, u, v)`` of ``zI - T`` (`v0`: warm start, large n)."""
    n = T.shape[0]
    if n <= _DENSE_N:
        U, s, Vh = np.linalg.svd(z * np.eye(n) - T)
        return float(s[-1]), U[:, -1], Vh[-1].conj()
    return _inverse_iteration(T, z, v0=v0)


def _kreiss_objective(T: np.ndarray, z: complex, v0=None) -> tuple[float, np.ndarray, np.ndarray]:
    """``f(z) = (|z| - 1)/sigma_min(zI - T)``, its gradient in ``(Re z, Im z)``, and ``v``.

    With the singular triplet ``(sigma, u, v)``: ``d sigma/dx = Re(u* v)``,
    ``d sigma/dy = -Im(u* v)`` (Sun 1988; NUMERICS.md).
    """
    r = abs(z)
    sigma, u, v = _triplet(T, z, v0)
    if sigma <= 0:
        return math.inf, np.zeros(2), v
    w = np.vdot(u, v)
    dsig = np.array([w.real, -w.imag])
    dr = np.array([z.real, z.imag]) / r if r > 0 else np.zeros(2)
    f = (r - 1) / sigma
    grad = (dr * sigma - (r - 1) * dsig) / sigma**2
    return f, grad, v


def _local_max(T: np.ndarray, z0: complex) -> tuple[float, complex]:
    """BFGS ascent of ``f`` from `z0`; returns the best ``(f, z)`` seen (|z| > 1)."""
    best = [-math.inf, z0]
    warm = [None]

    def fun(p):
        z = complex(p[0], p[1])
        if abs(z) <= 1:
            # outside the domain: f <= 0 there; a steep, smooth wall back to |z| > 1
            return 1.0 + (1 - abs(z)), -np.array([p[0], p[1]]) / max(abs(z), 1e-300)
        f, g, v = _kreiss_objective(T, z, warm[0])
        warm[0] = v
        if f > best[0]:
            best[0], best[1] = f, z
        return -f, -g

    try:
        minimize(
            fun,
            np.array([z0.real, z0.imag]),
            jac=True,
            method="BFGS",
            options={"gtol": 1e-11, "maxiter": 200},
        )
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):  # pragma: no cover - defensive
        pass
    return float(best[0]), complex(best[1])


def _smin_at(T: np.ndarray, z: complex) -> float:
    """``sigma_min(zI - T)`` by a dense SVD (values only)."""
    return float(sla.svdvals(z * np.eye(T.shape[0]) - T, check_finite=False)[-1])


def _f_at(T: np.ndarray, z: complex) -> float:
    """``f(z) = (|z| - 1)/sigma_min(zI - T)`` by a dense SVD (an attained value: a lower bound on K)."""
    s = _smin_at(T, z)
    return (abs(z) - 1) / s if s > 0 else math.inf


def _eig_condition(T: np.ndarray, k: int) -> float:
    """Wilkinson's condition number ``||x|| ||y||/|y* x|`` of the eigenvalue ``T[k, k]`` (inf if repeated)."""
    n = T.shape[0]
    lam = T[k, k]
    with np.errstate(all="ignore"):
        try:
            x = np.zeros(n, dtype=np.complex128)
            x[k] = 1
            if k > 0:
                x[:k] = sla.solve_triangular(T[:k, :k] - lam * np.eye(k), -T[:k, k], check_finite=False)
            y = np.zeros(n, dtype=np.complex128)
            y[k] = 1
            if k < n - 1:
                m = n - k - 1
                y[k + 1 :] = sla.solve_triangular(
                    (T[k + 1 :, k + 1 :] - lam * np.eye(m)).conj().T,
                    -np.conj(T[k, k + 1 :]),
                    lower=True,
                    check_finite=False,
                )
            kappa = float(np.linalg.norm(x) * np.linalg.norm(y) / abs(np.vdot(y, x)))
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError):
            return math.inf
    return kappa if math.isfinite(kappa) else math.inf


def _disk_clear(T: np.ndarray, lam: complex, r: float, tol: float, m: int = 32) -> bool:
    """Whether ``sigma_min(zI - T) > tol`` on the whole circle ``|z - lam| = r`` (m SVDs, Lipschitz).

    ``sigma_min`` is 1-Lipschitz in ``z``, so the smallest sample minus half the spacing
    ``2 pi r/m`` bounds it on the circle. Then no perturbation of norm ``tol`` moves an
    eigenvalue across the circle, and the disc holds as many eigenvalues of the matrix as
    of the computed (perturbed) one.
    """
    zs = lam + r * np.exp(2j * np.pi * np.arange(m) / m)
    need = tol + math.pi * r / m
    # stops at the first sample that fails (a non-normal matrix that cannot pass costs one SVD)
    return all(_smin_at(T, complex(z)) > need for z in zs)


def _monomial_contraction(a: np.ndarray) -> bool:
    """Whether ``||A||_2 <= 1`` exactly because `a` has at most one nonzero per row and column.

    Its 2-norm is then its largest entry in modulus (a signed permutation, a diagonal); complex
    moduli, rounded, must stay below 1 by their rounding.
    """
    nz = a != 0
    if nz.sum(axis=0).max(initial=0) > 1 or nz.sum(axis=1).max(initial=0) > 1:
        return False
    m = float(np.max(np.abs(a), initial=0.0))
    return m <= 1 if not np.iscomplexobj(a) else m <= 1 - 4 * np.finfo(float).eps


def _triangular_outside(a: np.ndarray) -> complex | None:
    """A diagonal entry of modulus > 1 when `a` is triangular (then ``rho(a) > 1`` exactly), else None.

    A real entry's modulus is exact; a complex one's is compared beyond its rounding (``hypot``
    is correct to an ulp).
    """
    if not is_triangular(a):
        return None
    d = np.diag(a)
    k = int(np.argmax(np.abs(d)))
    slack = 0.0 if np.isrealobj(d) or d[k].imag == 0 else 2 * _EPS
    return complex(d[k]) if float(np.abs(d[k])) > 1 + slack else None


def _fmt_entry(v: complex) -> str:
    """A matrix entry with all its digits (real entries without an imaginary part)."""
    return f"{v.real:.17g}" if v.imag == 0 else f"{v:.17g}"


def _outside_resolved(a: np.ndarray, T: np.ndarray, tol: float) -> bool:
    """Whether the matrix as given has ``rho > 1`` for sure, its computed ``rho`` being ``> 1 + tol``.

    The computed eigenvalues are exact for ``A + E``, ``||E|| <= tol``. Any of these proves an
    eigenvalue of ``A`` itself outside the unit circle: `a` is triangular (its eigenvalues are
    its diagonal, exactly); ``|trace(a)|/n > 1`` beyond the sum's rounding (the mean of the
    eigenvalues: one has modulus at least that); one of the computed
    eigenvalues ``lambda`` outside is well enough conditioned that
    ``kappa(lambda) tol < (|lambda| - 1)/2`` (first-order perturbation, Wilkinson's condition
    number from the Schur factor); or, for the largest, ``sigma_min > tol`` on the circle of
    radius ``(|lambda| - 1)/2`` about it (:func:`_disk_clear`: a repeated or low-order
    defective eigenvalue far from the unit circle). Otherwise (a rotated Jordan block next to
    the circle) rounding could have put it outside.
    """
    n = a.shape[0]
    if is_triangular(a):
        return True
    d = np.diag(a)
    if abs(complex(np.sum(d))) / n - 1 > 4 * n * _EPS * float(np.sum(np.abs(d))) / n:
        return True
    t = np.diag(T)
    outside = [int(k) for k in np.argsort(-np.abs(t), kind="stable") if abs(t[k]) > 1 + tol]
    for k in outside:
        if _eig_condition(T, k) * tol < 0.5 * (abs(t[k]) - 1):
            return True
    if outside:
        lam = complex(t[outside[0]])
        return _disk_clear(T, lam, 0.5 * (abs(lam) - 1), tol)
    return False


def _ray_lower_bound(T: np.ndarray, lam: np.ndarray, norm: float) -> tuple[float, complex | None]:
    """A lower bound on K from rays out through eigenvalues `lam` (next to the unit circle).

    ``(|z| - 1)/(sigma_min(zI - T) + 10 n u (||A|| + |z|))`` at ``|z| = 1 + t``, ``t`` from
    1e-15 to 1 (31 values per ray): each value is below ``f(z)`` even allowing for the SVD's
    rounding (``sigma_min`` there may be far below it), for when no maximiser is to be found
    (a defective eigenvalue at ``|lambda| = 1`` to rounding).
    """
    n = T.shape[0]
    best, zbest = 1.0, None
    for mu in lam[:4]:
        u = mu / abs(mu) if abs(mu) > 0 else 1.0
        for t in np.logspace(-15, 0, 31):
            z = complex(u * (1 + t))
            if abs(z) <= 1:
                continue
            f = (abs(z) - 1) / (_smin_at(T, z) + 10 * n * _EPS * (norm + abs(z)))
            if f > best:
                best, zbest = f, z
    return best, zbest


# ----------------------------------------------------------------------------- Kreiss constant


@dataclass(frozen=True)
class KreissResult:
    """The Kreiss constant ``K(A) = sup_{|z|>1} (|z| - 1) ||(zI - A)^{-1}||_2``.

    Attributes
    ----------
    value : float
        Best estimate of ``K(A)`` (the lower bound, converged by local
        optimisation); ``inf`` when ``rho(A) >= 1``.
    lower : float
        A guaranteed lower bound: ``(|z| - 1)/sigma_min(zI - A)`` evaluated at
        :attr:`z`, or 1 (the limit ``|z| -> inf``) when that is larger.
    upper : float
        A guaranteed upper bound (see :func:`kreiss_constant`, ``Notes``).
    z : complex or None
        Where :attr:`lower` is attained (``|z| > 1``); None when the lower bound
        is the limit at infinity or ``K`` is infinite.
    certified : bool
        True when ``upper/lower - 1 <= rtol`` was proved.
    n : int
        Order of the matrix.
    spectral_radius : float
        ``rho(A)``.
    norm : float
        ``||A||_2``.
    message : str
        Plain-language account of how the bounds were obtained.
    evaluations : int
        Number of ``sigma_min`` evaluations (SVDs) used.
    resolved : bool
        False when ``sigma_min(zI - A)`` at the maximiser is below what double
        precision resolves: then :attr:`value` is only a lower bound (possibly
        far below ``K``), not ``K`` to any digit.
    """

    value: float
    lower: float
    upper: float
    z: complex | None
    certified: bool
    n: int
    spectral_radius: float
    norm: float
    message: str
    evaluations: int = 0
    resolved: bool = True

    def __float__(self) -> float:
        return float(self.value)

    @property
    def bracket(self) -> tuple[float, float]:
        """``(K, e n K)`` at ``K = value``: where ``sup_k ||A^k||_2`` must lie.

        Kreiss matrix theorem with Spijker's constant (Trefethen & Embree
        2005, Thm 18.1): ``K(A) <= sup_{k>=0} ||A^k|| <= e n K(A)``. The
        left end is proved (``value = lower``); the right end is exact up to
        the certified ``upper/lower - 1`` when :attr:`certified`, an estimate
        otherwise (``e n upper`` is the proved, looser, right end).
        """
        if math.isinf(self.value):
            return (math.inf, math.inf)
        return (float(self.value), float(math.e * self.n * self.value))

    def where_in_bracket(self, peak: float) -> float:
        """Position of a transient peak in :attr:`bracket`, on a log scale.

        Returns ``log(peak/K) / log(e n K / K) = log(peak/K)/log(e n)``: 0 at
        the Kreiss lower end, 1 at the ``e n K`` upper end; values outside
        ``[0, 1]`` (beyond rounding) contradict the theorem. NaN when ``K`` is
        infinite.
        """
        lo, hi = self.bracket
        if not math.isfinite(lo) or hi <= lo:
            return math.nan
        return math.log(peak / lo) / math.log(hi / lo)


@dataclass
class _Cells:
    """Polar cells ``r0 <= |z| <= r1``, ``t0 <= arg z <= t1`` (the search grid)."""

    r0: np.ndarray
    r1: np.ndarray
    t0: np.ndarray
    t1: np.ndarray


def _eigen_ray_starts(T: np.ndarray, half: bool, count: int = 48, keep: int = 2) -> list[complex]:
    """Best points ``(1 + c d) lambda/|lambda|`` (``c`` = 1/4, 1, 4) over the eigenvalues nearest the circle.

    ``d = 1 - |lambda|``: a Jordan-like block ``[[lambda, a], [0, lambda]]`` puts the maximum of
    ``f`` on that ray at ``|z| - 1 ~ d`` with width ``~ d``, missed by cells wider than that.
    Returns the `keep` best of about ``3 count`` points (by ``f``), farthest apart first.
    """
    lam = np.diag(T)
    if half:
        lam = lam[lam.imag >= 0]  # real A: conjugate pairs, and f(conj z) = f(z)
    lam = lam[np.abs(lam) > 0]
    if lam.size == 0:
        return []
    gap = np.maximum(1 - np.abs(lam), 1e-12)
    order = np.argsort(gap, kind="stable")[:count]
    zs = np.concatenate([(1 + c * gap[order]) * lam[order] / np.abs(lam[order]) for c in (0.25, 1.0, 4.0)])
    sig = _smin_values(T, zs)
    f = (np.abs(zs) - 1) / np.maximum(sig, 1e-300)
    out: list[complex] = []
    for i in np.argsort(-f):
        z = complex(zs[i])
        if all(abs(z - o) > 0.25 * (abs(z) - 1) for o in out):
            out.append(z)
        if len(out) >= keep:
            break
    return out


def _initial_cells(rho: float, R: float, half: bool, r_start: float = 1.0) -> _Cells:
    """Polar cells covering ``r_start <= |z| <= R`` (upper half plane when `half`).

    Radial step ``h = 1 - rho`` (clipped to ``[2e-3, 0.1]``) for eight
    rings next to the unit circle, then rings growing by 25%; about square
    cells (angular width ~ radial width, at least 16 per ring).
    """
    h = min(0.1, max(2e-3, 1.0 * (1 - rho)))
    edges = [r_start + h * j for j in range(9)] if r_start == 1.0 else [r_start]
    while edges[-1] < R:
        edges.append(min(R, edges[-1] * 1.25 + h))
    span = math.pi if half else 2 * math.pi
    out: list[list[np.ndarray]] = [[], [], [], []]
    for e0, e1 in zip(edges[:-1], edges[1:]):
        nt = int(min(512, max(16, math.ceil(span * e1 / (e1 - e0)))))
        te = np.linspace(0.0, span, nt + 1)
        out[0].append(np.full(nt, e0))
        out[1].append(np.full(nt, e1))
        out[2].append(te[:-1])
        out[3].append(te[1:])
    return _Cells(*(np.concatenate(o) if o else np.empty(0) for o in out))


def kreiss_constant(
    A,
    *,
    rtol: float = 1e-6,
    certify: bool | str = "auto",
    method: str = "auto",
    max_evals: int | None = None,
    transient: TransientGrowth | None = None,
    stored_dtype: str | None = None,
) -> KreissResult:
    """Kreiss constant ``K(A) = sup_{|z|>1} (|z| - 1)/sigma_min(zI - A)``.

    Equivalently ``K(A) = sup_eps (rho_eps(A) - 1)/eps`` (Trefethen & Embree
    2005, eq. (18.4) and Thm 18.1); ``K <= sup_k ||A^k|| <= e n K``.

    Parameters
    ----------
    A : (n, n) array_like
        The matrix.
    rtol : float
        Relative gap ``upper/lower - 1`` the certificate aims for. Where the
        level sets cannot resolve it (``sigma_min`` at the maximiser within
        about ``4/rtol`` of their rounding margin), the proof is made at a
        larger tolerance, and the message says so: for ``n <= 16`` the
        tightest tenfold step that succeeds (never looser than a larger
        `rtol` would give); above, where a failed try costs the whole
        budget, one step below the a-priori floor, then the floor. At most 1;
        below :data:`RTOL_MIN` (1e-14) it is tried as 1e-14, the tightest bracket
        double precision resolves.
    certify : bool or "auto"
        Prove an upper bound within `rtol` of the lower one. First by square
        cells (:mod:`spectra._kreiss_cells`: a few thousand ``sigma_min``
        values by the pseudospectra engine, O(n^2) each; 0.6-0.9 of one
        100x100 pseudospectra grid for the random n = 64..512 matrices of
        benchmarks/kreiss.py),
        then, where the cells give up (``f`` maximal along a whole curve, or
        ``sigma_min`` at the maximiser near rounding), by the circle walk
        (:mod:`spectra._kreiss_certificate`: 15-21 eigenproblems of order 2n,
        O(n^3) each). ``"auto"``: the cells for every n, the walk only for
        ``n <= 64``. ``False``: neither; :attr:`KreissResult.upper` is then the
        weaker, still guaranteed ``max_{j<m} ||A^j||`` (first ``m`` with
        ``||A^m|| <= 1``; then ``sup_k ||A^k|| = max_{j<m} ||A^j||``).
    method : {"auto", "cells", "levelset"}
        Which proof: ``"auto"`` the cells, then the walk as `certify` says;
        ``"cells"`` the cells alone (where they give up, the result is not
        certified and the upper bound is ``sup_k ||A^k||``); ``"levelset"``
        the search and the circle walk alone (the eleventh session's method,
        resting on LAPACK's eigensolver rather than on Lanczos, see Notes).
    max_evals : int, optional
        Budget of the certificate. The cells: at most this many ``sigma_min``
        values (never more than their default, ``max(125 n, 2e6/n^2)`` within
        ``[16000, 200000]``); the circle walk:
        SVD-equivalents (an eigenproblem of order
        2n counts 12). When exhausted the result is not certified and the upper
        bound is ``sup_k ||A^k||`` (from the powers), or the largest bound of the
        cells left when smaller. Default ``200000 (16/n)^2``, at least 2000 and
        at most 200000 (a certificate that stalls stops within minutes, not
        hours, at n = 200; a normal one at n = 512 uses a few hundred).
    transient : TransientGrowth, optional
        The result of :func:`transient_growth` for the same `A`; without the
        certificate its norms give the upper bound without recomputing powers.
    stored_dtype : str, optional
        The dtype the weights were stored in (``"float32"``...): ``rho(A) = 1``
        to rounding then allows for their rounding to it (``u_s ||A||_F``, at
        most ``1e-6 max(1, ||A||)``; see :func:`spectra._validate.storage_rounding`):
        an orthogonal matrix stored in float32 has ``rho = 1 +- 1e-7`` and is
        treated as ``rho = 1``, not as ``rho > 1`` (``K = inf``).

    Returns
    -------
    KreissResult
        ``.value``, ``.lower`` (attained at ``.z``, less the rounding of f
        there: within about 1e-8 of the unit circle computed f overshot K by
        up to 9e-9), ``.upper``, ``.bracket``, ``.message``; ``float(result)``
        is ``.value``.

    Raises
    ------
    NonSquareError, NonFiniteError
        If `A` is not a finite square matrix.
    ValueError
        If `rtol` is not positive or `certify` is not a bool or ``"auto"``.

    Notes
    -----
    Method (on the complex Schur form ``T``):

    1. ``rho(A) >= 1``: ``K = inf``. ``||A||_2 <= 1``: ``K = 1`` exactly
       (``sigma_min(zI - A) >= |z| - ||A|| >= |z| - 1`` and ``f -> 1`` as
       ``|z| -> inf``), certified where the computed ``||A||_2 <= 1 - 8 n u``
       or one nonzero per row and column makes ``||A||_2`` the largest entry;
       within ``8 n u`` of 1 otherwise (an orthogonal matrix, exactly
       orthogonal only to rounding) ``value = lower = 1`` and ``upper = inf``.
       A triangular matrix's eigenvalues are its diagonal, exactly: ``rho``
       is read from it, with no rounding window. Also ``K = 1`` when the numerical radius
       ``w(A) <= 1``, since ``sigma_min(zI - A) >= dist(z, W(A)) >= |z| -
       w(A)`` (Trefethen & Embree 2005, Thm 17.1): tested by a coarse
       bracket of ``w(A)`` (nine eigenvalue problems of order n) with the
       certificate, and without it whenever ``||A|| <= 2`` and
       ``lambda_max((A + A*)/2) <= 1`` leave ``w(A) <= 1`` possible.
       ``rho(A) = 1`` to rounding (within ``64 n u max(1, ||A||)``, plus the
       rounding to `stored_dtype`), not a
       contraction (a triangular matrix with a diagonal entry of modulus
       above 1 is ``K = inf``, certified: its eigenvalues are exact): with a
       defective eigenvalue there, ``value = inf`` (K is
       infinite, or astronomically large if rounding put ``rho`` just below
       1), ``lower`` a finite bound attained on a ray (allowing for the SVD's
       rounding); else ``value`` is ``K(sA)`` for ``s = 1 - 4`` tol, a lower
       bound on ``K(A)`` (substitute ``z = w/s``) that may be low by about
       ``sqrt(1 - s) K`` (the supremum is approached at the unimodular
       eigenvalue), and ``upper = inf``: nothing above K is proved. Both
       ``certified=False``. ``rho > 1`` beyond that window counts only when
       something proves it of the matrix as given (triangular, ``|trace|/n > 1``,
       or a largest eigenvalue conditioned well enough for rounding not to
       reach the circle); else (a rotated Jordan block) ``value = inf``,
       ``certified=False``, with a ray lower bound, and the message says that
       ``rho >= 1`` is not resolved.
    2. Search (without the certificate, or after the cells gave up): ``f`` at the centres of a polar grid over
       ``1 <= |z| <= R`` (radial step ``h = 1 - rho`` clipped to
       ``[2e-3, 0.1]`` for eight rings next to the circle, then rings growing
       by 25%; angles ``[0, pi]`` for real A by conjugate symmetry), then BFGS
       ascent from the four best distinct centres with the exact gradient from
       the singular triplet. Every value is attained at a point, so it is a
       lower bound; the ascent converges quadratically, but without the
       certificate nothing proves that no higher maximum was missed.
    3. Certificate, cells (:mod:`spectra._kreiss_cells`, where the method and
       what it relies on are documented). ``sigma_min(zI - A)^2 - |z|^2`` is
       the smallest eigenvalue of a Hermitian matrix affine in ``(Re z, Im
       z)``, so concave: on a triangle it lies above the linear interpolant of
       its vertex values, and ``f <= gamma`` on a square follows from the
       ``sigma_min`` at its four corners by minimising two convex quadratics in
       closed form. Squares over ``1 <= |z| <= R`` (far field as below; upper
       half plane for real A) are cut in four where the test fails; the
       largest ``f`` at a vertex is the lower bound (attained there), so the
       cells find the maximum as they prove it, and no separate search is
       run. ``gamma = lower (1 + 0.9 rtol)``. Vertex values: LAPACK SVDs for
       ``n <= 40``, else inverse Lanczos on the Schur form (the pseudospectra
       engine), each point from its own random-phase start, to 1e-5 (trusted
       to 2e-3), again to ``1e-3 rtol`` (in ``[1e-12, 1e-9]``, trusted to
       twice that) at the corners of squares that need it; all lowered by
       ``10 n u (||A|| + |z|)`` too. Limits: that each Lanczos value is the
       *smallest* singular value to its tolerance (the residual test proves it
       is close to one of them; from a start favouring no direction Lanczos
       finds the extreme one in practice) is assumed, not proved, and fails in
       a cluster: where ``sigma_2`` is nearly ``sigma_1`` a value may be high
       by up to their gap (measured: 0.16% of vertices, up to 7.7e-6
       relative, see the module); the cells
       give up where ``f`` is maximal along a curve (a scaled shift: ``f``
       depends on ``|z|`` only), the failed squares next to the maximum then
       doubling each round, where ``sigma_min`` at the maximiser is within
       ``5/rtol`` of the vertex values' rounding, and after
       ``max(125 n, 2e6/n^2)`` values (within ``[16000, 200000]``).
       Cost for the random matrices of benchmarks/kreiss.py: 1572-5994
       values, 0.6-0.9 pseudospectra grids at n = 64..512.
    4. Certificate, circle walk (:mod:`spectra._kreiss_certificate`, where the method and
       exactly what relies on LAPACK's backward stability are documented),
       where the cells give up, after the search of step 2:
       ``R`` is chosen so that the far field ``|z| >= R`` is bounded by
       ``(R - 1)/(R - w(A)) <= gamma = lower (1 + 0.9 rtol)``; the annulus
       ``1 <= |z| <= R`` is proved by a walk over circles: ``|z|^s ||(zI -
       A)^{-1}||`` is subharmonic, so on the ring between two circles ``f`` is
       bounded by its weighted values on them, and each circle is checked by one
       level set (a 2n x 2n eigenproblem: every crossing of ``sigma_min`` with
       the level, so nothing between samples can be missed). Points met on the
       way that beat the lower bound raise it (and seed another ascent). Where
       the walk stalls next to a maximum, Lipschitz rings and polar cells with a
       second-order test take over. Cost: 15-21 eigenproblems for random
       n = 64..512 matrices (about 1.2-1.8 pseudospectra grids at n = 64, 2-3 at
       128, 4-6 at n = 256..512; benchmarks/kreiss.py), hence ``"auto"``
       runs it only for ``n <= 64``. Limits: the
       proof is only as good as the eigensolver's crossings (backward stable,
       with a margin); the budget `max_evals` may stop it short of `rtol`
       (``certified=False``, honest but looser ``upper``). Every circle carries
       a rounding margin ``1e-10 (||A|| + r)``, so where ``sigma_min`` at the
       maximiser is within ``4e-10 (||A|| + r)/rtol`` of it (K in the
       thousands to millions next to the unit circle) the bracket is proved to
       that tolerance instead (``certified=False``, the message says so); and
       where ``sigma_min`` is down at the rounding level itself (a delay line
       ``1.5 S`` of order 60: K ~ 1e8 and more) no certificate is run: ``lower``
       allows for the SVD's rounding and ``upper`` is ``sup_k ||A^k||``.
    """
    if not (0 < rtol <= 1):
        # a larger rtol made the far-field radius round to w(A) (ZeroDivisionError), inf "proved" inf
        raise InvalidArgumentError(f"rtol must be in (0, 1], got {rtol!r}")
    if certify not in (True, False, "auto"):
        raise InvalidArgumentError(f"certify must be True, False or 'auto', got {certify!r}")
    if method not in ("auto", "cells", "levelset"):
        raise InvalidArgumentError(f"method must be 'auto', 'cells' or 'levelset', got {method!r}")
    a = as_square_matrix(A)
    T, _, R_real = _schur_forms(a)
    n = T.shape[0]
    rho = float(np.max(np.abs(np.diag(T))))
    normT = float(sla.svdvals(T, check_finite=False)[0])

    def result(
        value: float, lower: float, upper: float, z, certified: bool, message: str, evaluations: int = 0
    ) -> KreissResult:
        return KreissResult(
            value=value,
            lower=lower,
            upper=upper,
            z=z,
            certified=certified,
            n=n,
            spectral_radius=rho,
            norm=normT,
            message=message,
            evaluations=evaluations,
        )

    def exact(value: float, message: str) -> KreissResult:
        return result(value, value, value, None, True, message)

    def infinite_to_rounding(lam: np.ndarray, why: str) -> KreissResult:
        """K = inf, not certified, with a lower bound from rays through the eigenvalues `lam`."""
        f_lo, z_lo = _ray_lower_bound(T, lam, normT)
        why = f"{why} (K >= {f_lo:.6g}, attained at z allowing for the SVD's rounding)"
        return result(math.inf, f_lo, math.inf, z_lo, False, why)

    storage = storage_rounding(stored_dtype, a, normT)
    # a triangular matrix's eigenvalues are its diagonal, exactly: no rounding window about 1 (a
    # stable [[0.9, 1e14], [0, 0.9]] fell in the window 64 n u ||A|| and came out K = inf)
    triangular = is_triangular(a)
    if triangular:
        rho = float(np.max(np.abs(np.diag(a))))  # exact (a lower triangular A's Schur form is not)
    # (2 u: rho = 1 exactly still takes the rho = 1 branch: K finite when semisimple)
    on_circle = max(storage, 2 * _EPS) if triangular else rho_one_tolerance(n, normT, storage)
    stored_note = f", the rounding of the weights to {stored_dtype} included" if storage > 0 else ""
    # within rounding of the unit circle, the eigenvalues of a triangular matrix are still exact
    # (its diagonal): rho(A) > 1 there is a fact, not rounding
    diag_out = _triangular_outside(a) if triangular or rho < 1 + on_circle else None
    if diag_out is not None:
        return exact(
            math.inf,
            f"spectral radius rho(A) = 1 + {abs(diag_out) - 1:.3g} >= 1, exactly: A is triangular, with "
            f"the diagonal entry {_fmt_entry(diag_out)} (its eigenvalues are its diagonal, so no rounding "
            "is involved); the powers of A grow without bound and K(A) is infinite",
        )
    slack = 8 * n * np.finfo(float).eps
    if normT <= 1 - slack or (normT <= 1 + slack and _monomial_contraction(a)):
        # ||A^k|| <= ||A||^k <= 1 and K >= 1 always, so K = 1, even with rho(A) = 1 (a signed
        # permutation, the identity: ||A||_2 = max |a_ij| exactly)
        return exact(
            1.0, f"||A||_2 = {normT:.6g} <= 1, so K(A) = 1 exactly (a contraction: no transient growth)"
        )
    if normT <= 1 + slack:
        # ||A||_2 = 1 to rounding (an orthogonal matrix, singular values clipped at 1): K = 1 if A
        # is a contraction, but as stored rho may exceed 1 by rounding (12 of 20 numpy QR factors
        # have rho = 1 + 1e-17, exactly), and then K is infinite: nothing above 1 is proved
        return result(
            1.0,
            1.0,
            math.inf,
            None,
            False,
            f"||A||_2 = {normT:.17g} is 1 to rounding: K(A) = 1 if A is a contraction (no "
            "transient growth), but rounding cannot tell ||A||_2 <= 1 from ||A||_2 just above 1 "
            "(then K may exceed 1, and is infinite if rho(A) >= 1): no upper bound is proved",
        )
    # rho > 1 beyond that window, but rounding can move an ill-conditioned (defective) eigenvalue
    # by far more than u ||A|| (a Jordan block of order k by (u ||A||)^(1/k)): see
    # _outside_resolved for what proves rho(A) > 1 of the matrix as given
    unresolved_outside = rho >= 1 + on_circle and not _outside_resolved(a, T, on_circle)
    if unresolved_outside:
        near = np.diag(T)[np.argsort(-np.abs(np.diag(T)), kind="stable")]
        return infinite_to_rounding(
            near[np.abs(near) >= 1],
            f"rho(A) = {rho:.6g} as computed, but its largest eigenvalue is so ill-conditioned "
            "(defective, or nearly) that rounding alone could have moved it across the unit circle: "
            "whether rho >= 1 is not resolved. K is infinite, or astronomically large",
        )
    if abs(rho - 1) < on_circle:
        # rho(A) = 1 to rounding (e.g. A divided by its spectral radius): whether K is
        # finite depends on the unimodular eigenvalues being semisimple, which rounding
        # cannot decide; K(sA) for s -> 1- tends to K(A) when it is finite (and grows
        # without bound when a unimodular eigenvalue is defective), so evaluate just inside.
        from spectra.normality import is_defective

        lam = sla.eigvals(a, check_finite=False)
        near = lam[np.abs(np.abs(lam) - 1) < on_circle]
        if is_defective(a, near):
            return infinite_to_rounding(
                near,
                f"rho(A) = {rho:.17g} is 1 to rounding (within {on_circle:.1e}{stored_note}) and an "
                "eigenvalue there is defective (a Jordan block): ||A^k|| grows without bound, or, if "
                "rounding put rho just below 1, transiently to astronomical size; K(A) is infinite to "
                "rounding",
            )
        s = (1 - 4 * on_circle) / rho  # clear of the window, so no recursion
        # no certificate: nothing it proves about sA bounds K(A) from above
        inner = kreiss_constant(a * s, rtol=rtol, certify=False)
        # K(sA) <= K(A) for s < 1 (substitute z = w/s), so K(sA)'s lower bound holds for A; f of
        # A itself at the same point is another. K(sA) -> K(A) as s -> 1-, but the gap can be of
        # order sqrt(1 - s) K (sup approached at the unimodular eigenvalue): no upper bound is
        # proved for A
        f_a = _f_at(T, inner.z) if inner.z is not None else -math.inf
        lower = max(inner.lower, f_a)
        return replace(
            inner,
            value=max(inner.value, lower),
            lower=lower,
            upper=math.inf,
            certified=False,
            spectral_radius=rho,
            norm=normT,
            message=(
                f"rho(A) = {rho:.17g} is 1 to rounding (within {on_circle:.1e}{stored_note}): K "
                f"estimated by K(sA) with s = 1 - {1 - s:.1e} "
                "(finite when the unimodular eigenvalues are semisimple; K(sA) <= K(A), and the gap "
                f"may be of order sqrt(1 - s) K: the estimate may be low by about {math.sqrt(1 - s):.0e} "
                "relative, and no upper bound is proved for A); K(sA) from a grid search and BFGS ascent"
            ),
        )
    if rho >= 1:
        return exact(
            math.inf,
            f"spectral radius rho(A) = {rho:.6g} >= 1: the powers of A are not bounded by a "
            "Kreiss constant (K(A) is infinite); K(A/gamma) for gamma > rho bounds "
            "||A^k|| <= gamma^k sup_j ||(A/gamma)^j||",
        )
    # "auto": the cells for every n (about a pseudospectra grid or less), the circle walk (O(n^3)
    # level sets) behind them only up to _CERTIFY_N; True: both, for every n
    walk = bool(certify) if certify != "auto" else n <= _CERTIFY_N
    certify = walk if method == "levelset" else bool(certify)
    cells_note = ""
    w_hi = normT
    # w(A) >= ||A||/2 and w(A) >= lambda_max((A + A*)/2): when neither exceeds 1, w(A) <= 1 (K = 1)
    # is possible and worth a coarse bracket even without the certificate (it saves the search)
    w_maybe_one = normT <= 2 and float(sla.eigvalsh(0.5 * (a + a.conj().T), check_finite=False)[-1]) <= 1
    cells_first = certify and method != "levelset"
    if (certify and not cells_first) or w_maybe_one:
        from spectra.numerical_range import _coarse_bounds, numerical_radius_bounds

        # a loose bracket (within 2%) is enough for the far field; a tight one only to
        # decide w(A) <= 1 (real A keeps its conjugate symmetry: half the angles)
        w_lo, w_hi = _coarse_bounds(a if not np.iscomplexobj(a) else T)
        if w_lo <= 1 < w_hi:
            # the tight bracket costs ~15x the coarse one: only as tight as deciding w <= 1 needs
            # (half the room left below 1), and only the certificate goes down to 1e-9
            wtol = max(1e-9 if certify else 1e-4, 0.5 * (1 / w_lo - 1) if w_lo > 0 else 1.0)
            w_lo, w_hi = numerical_radius_bounds(a if not np.iscomplexobj(a) else T, rtol=wtol)
        w_hi = min(normT, w_hi)
        if w_hi <= 1:
            return exact(
                1.0,
                f"numerical radius w(A) <= {w_hi:.6g} <= 1, so K(A) = 1 exactly: "
                "||(zI - A)^-1|| <= 1/dist(z, W(A)) <= 1/(|z| - 1)",
            )
    half = not np.iscomplexobj(a)

    def w_coarse() -> float:
        from spectra.numerical_range import _coarse_bounds

        return min(normT, _coarse_bounds(a if not np.iscomplexobj(a) else T)[1])

    evals = 0
    cres = None
    if cells_first:
        # ---- the cells (spectra._kreiss_cells): search and proof in one, a few thousand
        # sigma_min values by the grid engine (O(n^2) each); where they give up, the search and
        # the circle walk (O(n^3) level sets) below take over
        from spectra._kreiss_cells import certify_cells

        rtol_cells = max(rtol, RTOL_MIN)
        cres = certify_cells(
            a,
            T,
            R_real,
            normT=normT,
            w_up=w_hi,
            rtol=rtol_cells,
            w_refine=None if w_maybe_one else w_coarse,
            max_vertices=None if max_evals is None else max(1, int(max_evals)),
        )
        evals += cres.vertices
        if cres.certified:
            low_safe = _attained_safely(cres.lower, cres.z, normT, n)
            how = (
                f"{cres.cells} square cells by concave interpolation of sigma_min^2 - |z|^2, "
                f"{cres.vertices} sigma_min values"
            )
            return result(
                low_safe,
                low_safe,
                cres.upper,
                cres.z,
                bool(cres.upper <= cres.lower * (1 + rtol_cells)),
                f"K certified: {low_safe:.10g} <= K <= {cres.upper:.10g} ({how})",
                evals,
            )
        cells_note = f"the cells gave up ({cres.stopped}) after {cres.vertices} sigma_min values"
        if method == "cells":
            low_safe = _attained_safely(cres.lower, cres.z, normT, n)
            upper = max(low_safe, _powers_upper(a)[0])
            return result(
                low_safe,
                low_safe,
                upper,
                cres.z,
                False,
                f"{cells_note}: K >= {low_safe:.10g} (attained at z), K <= sup_k ||A^k|| = "
                f"{upper:.6g}; method='auto' hands over to the circle walk there",
                evals,
            )
        if not walk:
            certify = False  # the search below, then its uncertified result
        elif w_hi >= normT:
            w_hi = w_coarse()

    # ---- 2. global search on the cell centres, then local ascents
    R = max(2.0, 2 * normT + 1)
    cells = _initial_cells(rho, R, half)
    rc = 0.5 * (cells.r0 + cells.r1)
    zc = rc * np.exp(0.5j * (cells.t0 + cells.t1))
    sig = _smin_values(T, zc)
    fvals = (rc - 1) / np.maximum(sig, 1e-300)
    evals += int(np.count_nonzero(np.isfinite(fvals)))
    lower, zbest = 1.0, None
    order = np.argsort(-fvals)
    starts = []
    for idx in order:
        if len(starts) >= 4:
            break
        if all(abs(zc[idx] - s) > 0.05 for s in starts):
            starts.append(complex(zc[idx]))
    # a narrow peak next to the unit circle (an eigenvalue at distance d from it: width ~ d in
    # radius and angle) can fall between the cell centres, which then all lie on a broader, lower
    # maximum: also start from the rays through the eigenvalues nearest the circle
    for z0 in _eigen_ray_starts(T, half):
        if all(abs(z0 - s) > 0.25 * (abs(z0) - 1) for s in starts):
            starts.append(z0)
    for z0 in starts:
        f, z = _local_max(T, z0)
        evals += 1
        if f > lower:
            lower, zbest = f, z
    if cres is not None and cres.lower > lower:
        lower, zbest = cres.lower, cres.z

    # ---- 3. certificate
    certified = False
    if not certify:
        upper, m_pow = math.inf, 0
        if transient is not None and (
            transient.n != n or (len(transient.norms) > 1 and abs(transient.norms[1] - normT) > 1e-8 * normT)
        ):
            got = transient.norms[1] if len(transient.norms) > 1 else math.nan
            raise InvalidArgumentError(
                f"transient: not transient_growth of this matrix (n = {transient.n}, ||A|| = {got:.6g}; "
                f"this one: n = {n}, ||A|| = {normT:.6g})"
            )
        if transient is not None:
            # each norm with the band rounding may have moved it by, as _powers_upper has them
            upper, m = transient.sup_bound()
            m_pow = m or 0
        if m_pow == 0:
            upper, m_pow = _powers_upper(a)
        if math.isinf(upper):
            up_msg = (
                f"no upper bound (||A^k|| was still above 1 after {m_pow} powers, so sup_k ||A^k|| "
                "was not reached)"
            )
        else:
            up_msg = f"upper bound max_(j<{m_pow}) ||A^j|| = sup_k ||A^k|| from the powers"
        if cells_note:
            how = (
                f"{cells_note}; certify=True then runs the circle walk (level sets), 'auto' only for "
                f"n <= {_CERTIFY_N}"
            )
        else:
            how = "no certificate was asked for: certify=True or 'auto' runs it"
        msg = f"K from a grid search and BFGS ascent (lower bound attained at z); {up_msg} ({how})"
        lower = _attained_safely(lower, zbest, normT, n)
        return KreissResult(
            value=lower,
            lower=lower,
            upper=max(upper, lower),
            z=zbest,
            certified=False,
            n=n,
            spectral_radius=rho,
            norm=normT,
            message=msg,
            evaluations=evals,
        )
    from spectra._kreiss_certificate import TAU
    from spectra._kreiss_certificate import certify as _certify

    if max_evals is None:
        max_evals = int(min(200_000, max(2000, 200_000 * (16 / n) ** 2)))
    # what double precision resolves: every circle is tested TAU (||A|| + r) above its level,
    # so near a maximiser z with sigma_min(zI - A) = sigma circles cannot close the bracket
    # below about rtol_floor = 4 TAU (||A|| + r)/sigma; the cells (rounding margin 10 n u
    # (||A|| + r)) can, at a cost that grows with rtol_floor/rtol. Up to 1000x rtol (or for
    # n <= 16, where cells are cheap) the proof is tried at rtol first (within the budget);
    # beyond, or when that fails, at rtol_floor; not at all when sigma is down at the rounding
    # level (rtol_floor > 0.5)
    rtol_floor = 0.0
    if zbest is not None:
        r_best = abs(zbest)
        sig_best = (r_best - 1) / lower
        floor = TAU * (normT + r_best)
        # lower = inf (sigma_min underflows against ||A|| ~ 1e100): nothing is resolved
        rtol_floor = 4 * floor / sig_best if sig_best > 0 else math.inf
        if rtol_floor > 0.5:
            svd_err = 10 * n * _EPS * (normT + r_best)  # LAPACK's backward error on sigma_min
            lower_safe = max(1.0, float((r_best - 1) / (sig_best + svd_err)))  # K >= 1 always
            upper, m_pow = _powers_upper(a)
            upper = max(lower_safe, upper)
            if math.isinf(upper):
                up_msg = (
                    f"no upper bound was proved (||A^k|| was still above 1 after {m_pow} powers, "
                    "so sup_k ||A^k|| was not reached)"
                )
            else:
                up_msg = f"K <= sup_k ||A^k|| = {upper:.6g}"
            return KreissResult(
                value=max(lower_safe, min(lower, upper)),  # the computed maximum, as printed
                lower=lower_safe,
                upper=upper,
                z=zbest,
                certified=False,
                n=n,
                spectral_radius=rho,
                norm=normT,
                message=(
                    f"sigma_min(zI - A) = {sig_best:.3g} at the maximiser z is below what double "
                    f"precision resolves here ({floor:.1e}, the level-set margin; rounding in the SVD "
                    f"alone is up to {svd_err:.1e}): K >= {lower_safe:.6g} (attained at z, allowing "
                    f"for that rounding) and {up_msg}; the level-set "
                    "certificate cannot bracket K more closely and was not run"
                ),
                evaluations=evals,
                resolved=False,
            )

    inner = rc <= np.min(rc) * (1 + 1e-12)

    def run(rtol_x: float, budget: int):
        gamma = lower * (1 + 0.9 * rtol_x)
        # first ring half-width: the slack of the innermost search ring, shared with 1/gamma
        h0 = 0.5 * float(np.min(sig[inner]) - (np.min(rc) - 1) / gamma) / (1 + 1 / gamma)
        h0 = max(h0, 1e-3 * (1 - rho))
        return _certify(
            T,
            a if half else T,
            normT=normT,
            w_up=w_hi,
            lower=lower,
            zbest=zbest,
            rtol=rtol_x,
            max_evals=budget,
            h0=h0,
            sig_inner=float(np.min(sig[inner])),
        )

    # tolerances to try, tightest first: rtol itself (see above), then, where rtol_floor is far
    # above it, tenfold steps up to rtol_floor, so that a tighter rtol never ends with a looser
    # bracket than a looser rtol would have proved (one step below rtol_floor for n > 16, where
    # a failed try costs the whole budget)
    # below RTOL_MIN no bracket is resolved in double precision (gamma = lower (1 + 0.9 rtol)
    # rounds to lower): tries start there, or a tiny rtol would run one budget per tenfold step
    rtol_try = max(rtol, RTOL_MIN)
    tries = [rtol_try] if rtol_floor <= 1000 * rtol_try or n <= 16 else []
    if rtol_floor > 10 * rtol_try:
        ladder = []
        t = 10 * rtol_try if tries else max(10 * rtol_try, rtol_floor / 1000)
        while t < rtol_floor:
            ladder.append(t)
            t *= 10
        tries += (ladder if n <= 16 else ladder[-1:]) + [rtol_floor]
    cert = None
    for rtol_cert in tries:
        if cert is not None:
            evals += cert.stats.svds + cert.stats.cells  # the failed try's work counts too
        cert = run(rtol_cert, max_evals)
        if cert.certified:
            break
    st = cert.stats
    lower, zbest, upper, proved = cert.lower, cert.z, cert.upper, cert.certified
    computed, lower = lower, _attained_safely(lower, zbest, normT, n)
    if not proved:
        # the budget ran out: K <= sup_k ||A^k|| (the Kreiss lower inequality) is still an upper bound
        upper = min(upper, max(lower, _powers_upper(a)[0]))
    # to rtol as computed; the bound itself allows for the rounding of f at z (far below rtol
    # except within about 1e-8 of the unit circle)
    certified = proved and upper <= computed * (1 + rtol)
    evals += st.svds + st.cells
    how = (
        f"{st.circles} circles by level sets (maximum principle on the rings between), "
        f"{st.rings} Lipschitz rings, {st.cells} SVD cells"
    )
    if certified:
        msg = f"K certified: {lower:.10g} <= K <= {upper:.10g} ({how})"
    elif proved:
        r_best = abs(zbest)
        msg = (
            f"K bracket proved: {lower:.10g} <= K <= {upper:.10g}, to {rtol_cert:.1e} rather than "
            f"rtol = {rtol:g}: sigma_min(zI - A) = {(r_best - 1) / lower:.3g} at the maximiser is only "
            f"{4 / rtol_floor:.3g} times the level sets' rounding margin TAU (||A|| + |z|) = "
            f"{TAU * (normT + r_best):.1e}, which limits how closely they can bracket K; the proof "
            f"failed within the budget at every tighter tolerance tried ({how})"
        )
    else:
        why = cert.stopped or "the budget was spent"
        msg = (
            f"certificate stopped within the budget max_evals = {max_evals} ({why}; a larger "
            f"max_evals may finish it): {lower:.10g} <= K <= {upper:.6g}, gap above rtol = "
            f"{rtol_cert:g} ({how})"
        )
    return KreissResult(
        value=lower,
        lower=lower,
        upper=upper,
        z=zbest,
        certified=bool(certified),
        n=n,
        spectral_radius=rho,
        norm=normT,
        message=msg,
        evaluations=evals,
    )


def _attained_safely(lower: float, z, normT: float, n: int) -> float:
    """`lower` = f(z) computed in double precision, lowered by its rounding error (never below 1).

    ``|z| - 1`` loses ``u |z|`` and ``sigma_min(zI - A)`` is off by about ``u (||A|| + |z|)``
    (allowed four times over): near the unit circle (``|z| - 1`` about 1e-8) the computed value
    of the exact f at the reported z overshot K by up to 9e-9 relative, and a lower bound must not.
    """
    if z is None or not math.isfinite(lower) or lower <= 1.0:
        return lower
    r = abs(z)
    if not r > 1:
        return lower
    sigma = (r - 1) / lower
    rel = 4 * _EPS * (normT + r) / sigma + 2 * _EPS * r / (r - 1)
    return max(1.0, lower / (1 + rel))


def _powers_upper(a: np.ndarray) -> tuple[float, int]:
    """``sup_k ||A^k||`` from above, as ``max_{j<m} (||A^j|| + err_j)`` with ``||A^m|| + err_m <= 1``.

    ``A^{qm + j} = (A^m)^q A^j`` gives ``||A^{qm+j}|| <= ||A^j||``; ``err`` are the bands
    rounding may have moved the computed norms by (:attr:`TransientGrowth.norm_errors`). Returns
    ``(inf, kmax)`` when no power up to :data:`KMAX_CAP` gets below 1 with its band.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the cap's warning: said by the caller
        tg = transient_growth(a)
    up, m = tg.sup_bound()
    return (up, m) if m is not None else (math.inf, tg.kmax)


# ----------------------------------------------------------------------------- lower bound on powers


@dataclass(frozen=True)
class TransientBound:
    """Pseudospectral lower bound on ``max_{0<=k<=kmax} ||A^k||``.

    Attributes
    ----------
    value : float
        The bound (``>= 1``).
    z : complex or None
        The point used, ``|z| = r > 1``; None when the trivial bound 1 is best.
    epsilon : float or None
        ``sigma_min(zI - A)`` at `z` (so ``rho_eps(A) >= r``); None with `z`.
    kmax : int or None
        The horizon; None for ``sup_{k>=0}`` (then ``value = (r - 1)/eps``).
    """

    value: float
    z: complex | None
    epsilon: float | None
    kmax: int | None

    def __float__(self) -> float:
        return float(self.value)


def _power_bound(r: np.ndarray, eps: np.ndarray, kmax: int | None) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if kmax is None:
            return (r - 1) / eps
        rK = r ** float(kmax)
        out = rK / (1 + (rK - 1) * eps / (r - 1))
        # r^K overflow: the bound tends to (r - 1)/eps
        return np.where(np.isfinite(rK), out, (r - 1) / eps)


def transient_lower_bound(A, kmax: int | None = None, *, npts: int = 64) -> TransientBound:
    """Lower bound on transient growth from one point of a pseudospectrum.

    For any ``z`` with ``|z| = r > 1`` and ``eps = sigma_min(zI - A)``
    (so ``rho_eps(A) >= r``), and any ``K >= 1`` (Trefethen & Embree 2005,
    Thm 16.4)::

        max_{0<=k<=K} ||A^k|| >= r^K / (1 + (r^K - 1)/((r - 1)/eps)),

    which tends to the Kreiss bound ``sup_k ||A^k|| >= (r - 1)/eps`` as
    ``K -> inf``. Proof: ``(zI - A)^{-1} = sum_{k<K} A^k/z^{k+1} + A^K z^{-K}
    (zI - A)^{-1}``; take norms with ``||A^k|| <= M`` for ``k <= K``.
    The bound is maximised over the centres of a polar grid (``npts`` angles,
    radii ``1 + (1 - rho) 2^j``) and refined by a bounded 2-D search.

    Parameters
    ----------
    A : (n, n) array_like
        The matrix.
    kmax : int, optional
        The horizon ``K``; None for ``sup_{k>=0}``.
    npts : int
        Number of angles of the search grid.

    Returns
    -------
    TransientBound
        ``.value`` and where it is attained (``.z``, ``.epsilon``).

    Raises
    ------
    NonSquareError, NonFiniteError
        If `A` is not a finite square matrix.
    ValueError
        If `kmax < 1` or `npts < 4`.
    """
    if kmax is not None and int(kmax) < 1:
        raise InvalidArgumentError(f"kmax must be a positive integer or None, got {kmax!r}")
    if npts < 4:
        raise InvalidArgumentError(f"npts must be at least 4, got {npts!r}")
    T, _ = _schur(A)
    rho = float(np.max(np.abs(np.diag(T))))
    base = max(1 - rho, 0.0) if rho < 1 else 0.0
    steps = max(base, 1e-3) * 2.0 ** np.arange(-3, 8)
    radii = np.concatenate([1 + steps, [max(rho, 1.0) * (1 + s) for s in steps]]) if rho >= 1 else 1 + steps
    th = np.linspace(0, 2 * np.pi, npts, endpoint=False)
    Rg, Tg = np.meshgrid(radii, th, indexing="ij")
    zs = (Rg * np.exp(1j * Tg)).ravel()
    eps = _smin_values(T, zs)
    r = np.abs(zs)
    vals = _power_bound(r, np.maximum(eps, 1e-300), kmax)
    best = 1.0
    bz, be = None, None
    for j in np.argsort(-vals)[:4]:
        if not vals[j] > best:
            continue

        def neg(p):
            z = complex(p[0], p[1])
            rr = abs(z)
            if rr <= 1:
                return 0.0
            e = _triplet(T, z)[0]
            return -float(_power_bound(np.array([rr]), np.array([max(e, 1e-300)]), kmax)[0])

        res = minimize(
            neg,
            np.array([zs[j].real, zs[j].imag]),
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-12},
        )
        cand = [(float(vals[j]), complex(zs[j]))]
        if -res.fun > 0:
            cand.append((float(-res.fun), complex(res.x[0], res.x[1])))
        for v, z in cand:
            if v > best and abs(z) > 1:
                # re-evaluate at the point reported, so the value is attained there
                e = _triplet(T, z)[0]
                v2 = float(_power_bound(np.array([abs(z)]), np.array([max(e, 1e-300)]), kmax)[0])
                if v2 > best:
                    best, bz, be = v2, z, e
    return TransientBound(
        value=best, z=bz, epsilon=None if be is None else float(be), kmax=None if kmax is None else int(kmax)
    )
