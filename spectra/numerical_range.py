"""The numerical range (field of values) ``W(A) = {x* A x : ||x|| = 1}`` and its radius.

What lives here: :func:`numerical_range` (boundary points by Johnson's
algorithm) and :func:`numerical_radius` ``w(A) = max{|p| : p in W(A)}``, with
:func:`numerical_radius_bounds` giving a certified bracket. Kreiss constants
and powers are in :mod:`spectra.kreiss`; drawing the boundary is
:func:`spectra.plot.transient.plot_numerical_range`.

Facts used (Horn & Johnson, *Topics in Matrix Analysis*, ch. 1; Trefethen &
Embree 2005, ch. 17): ``W(A)`` is convex (Toeplitz-Hausdorff) and contains the
spectrum; its support function is ``h(theta) = max Re(e^{i theta} W(A)) =
lambda_max(H(e^{i theta} A))`` with ``H(X) = (X + X*)/2`` (Johnson 1978);
``w(A) = max_theta h(theta)``; ``||A||/2 <= w(A) <= ||A||``; power inequality
``w(A^k) <= w(A)^k`` (Berger) and ``||A^k|| <= 2 w(A)^k``, so ``w(A) <= 1``
forbids transient growth beyond 2.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

from spectra._validate import as_square_matrix
from spectra.errors import InvalidArgumentError

__all__ = ["numerical_radius", "numerical_radius_bounds", "numerical_range"]

_EPS = np.finfo(float).eps


def _hermitian_parts(a: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``H(e^{i theta} A)`` for every angle, stacked ``(len(theta), n, n)``."""
    e = np.exp(1j * np.asarray(theta, dtype=float))[:, None, None]
    X = e * a
    return 0.5 * (X + np.conj(np.swapaxes(X, -1, -2)))


def _support(a: np.ndarray, theta: np.ndarray, chunk_bytes: int = 32 << 20) -> np.ndarray:
    """``h(theta) = lambda_max(H(e^{i theta} A))`` at every angle (batched ``eigvalsh``)."""
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    n = a.shape[0]
    step = max(1, chunk_bytes // (16 * n * n))
    out = np.empty(theta.size)
    for s in range(0, theta.size, step):
        out[s : s + step] = np.linalg.eigvalsh(_hermitian_parts(a, theta[s : s + step]))[:, -1]
    return out


def numerical_range(A, npts: int = 200) -> np.ndarray:
    """Boundary points of the numerical range ``W(A)`` by Johnson's algorithm.

    For each angle ``theta_j = 2 pi j/npts`` the unit eigenvector ``x`` of the
    largest eigenvalue of ``H(e^{i theta} A) = (e^{i theta} A + e^{-i theta} A*)/2``
    gives the boundary point ``x* A x``, the point of ``W(A)`` farthest in the
    direction ``e^{-i theta}`` (Johnson, SIAM J. Numer. Anal. 15, 1978).

    Parameters
    ----------
    A : (n, n) array_like
        The matrix.
    npts : int
        Number of angles (and of boundary points).

    Returns
    -------
    (npts,) complex ndarray
        Points on the boundary of ``W(A)``, in order around it (clockwise);
        the polygon through them lies inside ``W(A)``.

    Raises
    ------
    NonSquareError, NonFiniteError
        If `A` is not a finite square matrix.
    ValueError
        If `npts < 3`.

    Examples
    --------
    >>> p = numerical_range([[0.0, 2.0], [0.0, 0.0]], npts=8)
    >>> bool(np.allclose(np.abs(p), 1.0))
    True
    """
    if int(npts) < 3:
        raise InvalidArgumentError(f"npts must be at least 3, got {npts!r}")
    a0 = as_square_matrix(A, any_magnitude=True)  # rescaled below
    a, e = _unit_scaled(a0.astype(np.complex128))
    N = int(npts)
    # real A: W(A) is symmetric about the real axis, the point at -theta the conjugate of that
    # at theta (theta_{N-j} = -theta_j): half the eigenproblems
    half = N // 2 + 1 if not np.iscomplexobj(a0) else N
    theta = 2 * np.pi * np.arange(half) / N
    _, vecs = np.linalg.eigh(_hermitian_parts(a, theta))
    x = vecs[:, :, -1]
    p = _ldexp(np.einsum("ki,ij,kj->k", x.conj(), a, x), e)
    if half == N:
        return p
    out = np.empty(N, dtype=np.complex128)
    out[:half] = p
    j = np.arange(half, N)
    out[j] = np.conj(p[N - j])
    return out


def _sampled_max(a: np.ndarray, real: bool, m: int = 48) -> tuple[np.ndarray, np.ndarray, float]:
    """Sample ``h`` at ``m + 1`` angles, refine the best candidates by Brent; return samples and max.

    Candidates are the samples that are local maxima and the directions of the three
    largest eigenvalues (each
    eigenvalue lies in ``W(A)``, so ``h(-arg lambda) >= |lambda|``: the value is never below
    ``rho(A)``, and for a normal matrix the maximiser is among them). Up to four distinct
    candidates, best first, are refined within one sample step on either side, while the
    convexity bound ``max(h_j, h_{j+1})/cos(Delta/2)`` still allows more above them.
    """
    # real A: W(A) is symmetric about the real axis, angles in [0, pi] suffice
    span = math.pi if real else 2 * math.pi
    th = np.linspace(0.0, span, m + 1)
    h = _support(a, th)
    step = span / m
    lam = np.linalg.eigvals(a)
    top = lam[np.argsort(-np.abs(lam), kind="stable")[:3]]
    top = top[np.abs(top) > 0]
    th_e = np.abs(np.angle(top)) if real else np.mod(-np.angle(top), span)
    h_e = _support(a, th_e) if th_e.size else np.empty(0)
    # local maxima of the samples (a peak between two samples makes one of them one): a
    # sample on the shoulder of a higher peak is covered by that peak's refinement
    prev = np.concatenate([[h[1] if real else h[-2]], h[:-1]])
    nxt = np.concatenate([h[1:], [h[-2] if real else h[1]]])
    peak = (h >= prev) & (h >= nxt)
    cand_t = np.concatenate([th[peak], th_e])
    cand_h = np.concatenate([h[peak], h_e])
    lo = float(np.max(cand_h))
    bound = np.maximum(h[:-1], h[1:]) / math.cos(0.5 * step)  # w <= max of these
    chosen: list[float] = []
    for j in np.argsort(-cand_h, kind="stable"):
        if len(chosen) >= 4:
            break
        t = float(cand_t[j])
        if any(abs(t - c) < step for c in chosen):
            continue
        near = (th[:-1] <= t + step) & (th[1:] >= t - step)  # the intervals Brent will search
        if chosen and not np.any(bound[near] > lo * (1 + 1e-13)):
            continue  # nothing above lo can hide there
        chosen.append(t)
        res = minimize_scalar(
            lambda x: -_support(a, np.array([x]))[0],
            bounds=(t - step, t + step),
            method="bounded",
            options={"xatol": 1e-10},
        )
        lo = max(lo, float(-res.fun))
    return th, h, lo


def _prepared(A) -> tuple[np.ndarray, bool, float, float]:
    """`A` as complex128 scaled by a power of two, whether it was real, ``||.||_F``, the exponent.

    Real `A` has conjugate symmetry (angles in ``[0, pi]``). The scale (exact, a power
    of two: ``w(A) = 2**e w(a)``) keeps ``||a||_F`` from underflowing or overflowing for
    entries near the ends of the float range.
    """
    a0 = as_square_matrix(A, any_magnitude=True)  # rescaled below
    a, e = _unit_scaled(a0.astype(np.complex128))
    return a, not np.iscomplexobj(a0), float(np.linalg.norm(a)), e


def _up(x: float, e: int, toward: float | None = None) -> float:
    """``x 2**e`` (inf where it overflows: ``w(A)`` can exceed the largest float by up to ``n``).

    Exact unless the result is subnormal; a bound then moves one ulp `toward` (0 for a lower
    bound, inf for an upper one) so that rounding cannot cross the value it bounds.
    """
    with np.errstate(over="ignore"):
        y = float(np.ldexp(x, e))
    if toward is not None and 0 < abs(y) < _TINY:
        y = float(np.nextafter(y, toward))
    return y


#: the smallest normal float64: below it, scaling by a power of two rounds
_TINY = float(np.finfo(float).tiny)


def _ldexp(a: np.ndarray, e: int) -> np.ndarray:
    """``a * 2**e`` for complex `a`, exact (``2**e`` itself may lie outside the float range)."""
    out = np.empty_like(a)
    out.real = np.ldexp(a.real, e)
    out.imag = np.ldexp(a.imag, e)
    return out


def _unit_scaled(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``(a 2**-e, e)`` with the largest entry of the result near 1; ``e = 0`` for moderate `a`.

    Keeps ``||a||_F`` (and the Hermitian parts' eigenproblems) away from underflow and overflow
    for entries near the ends of the float range, subnormal ones included (``a / 2**1029`` is
    not a number: the divisor overflows).
    """
    big = float(np.max(np.abs(a))) if a.size else 0.0
    if big == 0 or 1e-150 < big < 1e150:
        return a, 0
    e = math.frexp(big)[1]
    return _ldexp(a, -e), e


def _margin(a: np.ndarray, normF: float) -> float:
    """Rounding margin of a computed ``h(theta)`` (``eigvalsh``): ``4 n u ||A||_F``."""
    return 4 * a.shape[0] * _EPS * normF


def numerical_radius_bounds(A, rtol: float = 1e-12, *, max_intervals: int = 4096) -> tuple[float, float]:
    """Certified bracket ``lo <= w(A) <= hi`` with ``hi/lo - 1 <= rtol`` (when reachable).

    ``lo`` is a value ``h(theta)`` attained at an angle found by sampling and
    Brent refinement. ``hi`` uses convexity: every direction lies within
    ``Delta/2`` of a sampled angle of its interval, so
    ``w <= max(h(theta_j), h(theta_{j+1}))/cos(Delta_j/2)`` for each interval
    ``[theta_j, theta_{j+1}]`` of width ``Delta_j``; intervals whose bound is
    above ``lo (1 + rtol)`` are bisected (second order in ``Delta``). A margin
    ``4 n u ||A||_F`` covers the rounding of ``eigvalsh``. Limit: when the
    maximum is attained along an arc (``W(A)`` a disc about 0, e.g. a Jordan
    block at 0) no interval can be discarded; bisection stops beyond
    `max_intervals` open intervals and the bracket is then about ``1e-8``
    wide (4096; ``1.3e-7`` for complex A; 256 give ``1e-5`` and ``3e-5``).
    Where ``||A||_2`` is within `rtol` of the attained value (a normal, an
    orthogonal matrix) it closes the bracket at once.

    Parameters
    ----------
    A : (n, n) array_like
        The matrix.
    rtol : float
        Target relative width of the bracket.
    max_intervals : int
        Most open intervals bisection keeps (its cost, in ``eigvalsh`` calls,
        is at most about twice this).

    Returns
    -------
    (float, float)
        ``(lo, hi)``.

    Raises
    ------
    NonSquareError, NonFiniteError
        If `A` is not a finite square matrix.
    ValueError
        If `rtol` is not positive.
    """
    if not (rtol > 0):
        raise InvalidArgumentError(f"rtol must be positive, got {rtol!r}")
    a, real, normF, e = _prepared(A)
    if normF == 0:
        return 0.0, 0.0
    margin = _margin(a, normF)
    th, h, lo = _sampled_max(a, real=real)
    # w <= ||A||_2: for a normal (an orthogonal) matrix w = rho = ||A||_2 and h is flat along
    # arcs that bisection cannot discard (orthogonal n = 256 took 2075 eigenproblems)
    norm2 = float(np.linalg.norm(a, 2))
    if norm2 + margin <= lo * (1 + rtol):
        return _up(max(lo, 0.0), e, 0.0), _up(norm2 + margin, e, math.inf)
    # certified upper bound by bisection of the intervals
    left, right = th[:-1], th[1:]
    hl, hr = h[:-1], h[1:]
    hi_done = -math.inf
    evaluations = 0
    for _ in range(60):
        bound = np.maximum(hl, hr) / np.cos(0.5 * (right - left))
        keep = bound > lo * (1 + rtol) if lo > 0 else bound > rtol * normF
        if np.any(~keep):
            hi_done = max(hi_done, float(np.max(bound[~keep])))
        if not np.any(keep):
            break
        left, right, hl, hr = left[keep], right[keep], hl[keep], hr[keep]
        # far from converging: stop refining, report the honest bound (open intervals, and all the
        # eigenproblems of the bisection together, at most about twice that)
        if left.size > max_intervals or evaluations + left.size > 2 * max_intervals:
            break
        mid = 0.5 * (left + right)
        hm = _support(a, mid)
        evaluations += mid.size
        lo = max(lo, float(np.max(hm)))
        left, right, hl, hr = (
            np.concatenate([left, mid]),
            np.concatenate([mid, right]),
            np.concatenate([hl, hm]),
            np.concatenate([hm, hr]),
        )
    bound = np.maximum(hl, hr) / np.cos(0.5 * (right - left))
    hi = min(max(hi_done, float(np.max(bound)) if bound.size else -math.inf, lo), norm2)
    return _up(max(lo, 0.0), e, 0.0), _up(hi + margin, e, math.inf)


def _coarse_bounds(A, m: int = 8) -> tuple[float, float]:
    """Cheap bracket ``lo <= w(A) <= hi`` from ``m + 1`` samples of ``h`` (no refinement).

    ``lo`` is the largest sample (attained); ``hi`` the convexity bound of
    :func:`numerical_radius_bounds` on the sampled intervals,
    ``max(h_j, h_{j+1})/cos(Delta/2)`` with ``Delta = pi/m`` (``2 pi/m`` for
    complex A), plus the rounding margin: at most ``1/cos(pi/(2m)) - 1`` (2% for
    ``m = 8``) above ``w(A)``. For bounds that need not be tight (the far field
    of the Kreiss certificate), at about a fifth of the cost of a 1e-3 bracket.
    """
    a, real, normF, e = _prepared(A)
    if normF == 0:
        return 0.0, 0.0
    k = m if real else 2 * m
    th = np.linspace(0.0, math.pi if real else 2 * math.pi, k + 1)
    h = _support(a, th)
    bound = np.maximum(h[:-1], h[1:]) / np.cos(0.5 * (th[1] - th[0]))
    lo = float(np.max(h))
    return _up(max(lo, 0.0), e, 0.0), _up(max(float(np.max(bound)), lo) + _margin(a, normF), e, math.inf)


def numerical_radius(A) -> float:
    """Numerical radius ``w(A) = max_{||x||=1} |x* A x| = max_theta lambda_max(H(e^{i theta} A))``.

    The lower end of :func:`numerical_radius_bounds` with ``rtol = 1e-9`` and
    at most 256 open intervals: a value of the support function ``h`` attained
    at an angle (never above ``w(A)`` beyond rounding, never below
    ``rho(A)``), and proved within ``1e-9`` relative of ``w(A)``; where ``h``
    is flat along an arc (``W(A)`` a disc about 0, such as a Jordan block at
    0) the proof stops at about ``1e-5`` (``3e-5`` for complex A; the value
    is then exact to rounding). Sampling alone missed a lobe of ``W(A)`` between two of 49
    angles by ``5e-4`` relative.
    ``||A||/2 <= w(A) <= ||A||``, and ``||A^k|| <= 2 w(A)^k`` (Berger's power
    inequality; Trefethen & Embree 2005, ch. 17).

    Parameters
    ----------
    A : (n, n) array_like
        The matrix.

    Returns
    -------
    float
        ``w(A)``.

    Raises
    ------
    NonSquareError, NonFiniteError
        If `A` is not a finite square matrix.

    Examples
    --------
    >>> round(numerical_radius([[0.5, 1.0], [0.0, 0.5]]), 12)
    1.0
    """
    return radius_bracket(A)[0]


def radius_bracket(A) -> tuple[float, float]:
    """The bracket :func:`numerical_radius` is the lower end of (``rtol = 1e-9``, 256 intervals).

    What ``spectra analyze`` and ``spectra kreiss`` print w(A) from: the upper end says which
    digits of the lower one are right.
    """
    return numerical_radius_bounds(A, rtol=1e-9, max_intervals=256)
