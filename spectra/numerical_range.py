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
import scipy.linalg as sla

from spectra._validate import as_square_matrix
from spectra.errors import InvalidArgumentError

__all__ = ["numerical_radius", "numerical_radius_bounds", "numerical_range"]

_EPS = np.finfo(float).eps
#: up to this order the support points come from batched ``eigh`` (every eigenvector)
_BATCHED_N = 48
#: angles sampled before the cuts (over [0, pi] for real A; twice as many over [0, 2 pi])
_SAMPLES = 16


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


def _support_points(
    a: np.ndarray, theta: np.ndarray, chunk_bytes: int = 32 << 20
) -> tuple[np.ndarray, np.ndarray]:
    """``h(theta)`` and the boundary point ``x* A x`` it is attained at, for every angle.

    ``x`` is the unit eigenvector of ``lambda_max(H(e^{i theta} A))``: ``Re(e^{i theta} x* A x)
    = h(theta)`` (Johnson 1978). Small n: batched ``eigh``; larger n: the top eigenpair alone
    (LAPACK's MRRR on the tridiagonal form, O(n^2) past the reduction).
    """
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    n = a.shape[0]
    h = np.empty(theta.size)
    p = np.empty(theta.size, dtype=np.complex128)
    if n <= _BATCHED_N:
        step = max(1, chunk_bytes // (32 * n * n))
        for s in range(0, theta.size, step):
            w, v = np.linalg.eigh(_hermitian_parts(a, theta[s : s + step]))
            x = v[:, :, -1]
            h[s : s + step] = w[:, -1]
            p[s : s + step] = np.einsum("ki,ij,kj->k", x.conj(), a, x)
        return h, p
    for k, t in enumerate(theta):
        H = _hermitian_parts(a, t[None])[0]
        w, v = sla.eigh(H, subset_by_index=[n - 1, n - 1], driver="evr", check_finite=False, overwrite_a=True)
        x = v[:, 0]
        h[k] = w[0]
        p[k] = np.vdot(x, a @ x) / np.vdot(x, x).real
    return h, p


def _vertex_bounds(th: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each gap between consecutive angles: a bound on ``h`` inside it, and where it is reached.

    The support half-planes ``Re(e^{i t_j} z) <= h_j`` of two angles ``t_j < t_{j+1}`` (gap
    below pi) meet at a vertex ``v``; ``W(A)`` lies in their wedge, and for ``t`` in the gap
    ``Re(e^{i t} z)`` is largest over the wedge at ``v``: ``h(t) <= Re(e^{i t} v)``, at most
    ``|v|`` (at ``t = -arg v``) when that direction lies in the gap, else ``max(h_j, h_{j+1})``.
    Valid for any upper bounds ``h_j``. Computed in the frame of ``t_j`` (``v e^{i t_j} = h_j +
    i y``), which stays accurate for nearly parallel lines. Returns the bounds and the angles
    (the cutting plane's next samples).
    """
    t0, h0, h1 = th[:-1], h[:-1], h[1:]
    d = th[1:] - t0
    y = ((h0 - h1) - 2.0 * h0 * np.sin(0.5 * d) ** 2) / np.sin(d)
    rel = np.mod(-np.arctan2(y, h0), 2 * np.pi)  # direction of v, from t_j
    inside = rel <= d
    bound = np.where(inside, np.hypot(h0, y), np.maximum(h0, h1))
    at = np.where(inside, t0 + rel, np.where(h0 >= h1, t0, th[1:]))
    return bound, at


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

    A cutting-plane method on the support function ``h`` (Johnson 1978; the
    polygon bounds of Uhlig's method, 2009): at each sampled angle the top
    eigenpair of ``H(e^{i theta} A)`` gives ``h(theta)`` (its support line)
    and the boundary point ``p = x* A x``. ``lo`` is the largest ``|p|`` (a
    point of ``W(A)``, so ``|p| <= w``). ``W(A)`` lies inside every support
    half-plane, so ``h`` between two consecutive angles is at most the
    modulus of their lines' vertex (:func:`_vertex_bounds`), and ``w`` at
    most the largest vertex: ``hi``. Gaps whose vertex is above ``lo (1 +
    rtol)`` are cut at the vertex's direction (each cut shrinks its gap by a
    tenth at least) until none is; 16 angles over ``[0, pi]`` first (32 over
    ``[0, 2 pi]`` for complex A). A margin ``4 n u ||A||_F`` covers the
    rounding of the eigensolver: it is added to every ``h`` in ``hi``, and
    gaps within it of ``lo`` are not cut (so `rtol` below about ``4 n u
    ||A||_F/w`` is not reached). Limit: when the maximum is attained along an
    arc (``W(A)`` a disc about 0, e.g. a Jordan block at 0) no gap can be
    discarded; cutting stops beyond `max_intervals` open gaps (or twice as
    many eigenproblems) and the bracket is then about ``1e-8`` wide (4096;
    256 give about ``5e-6``, ``2e-5`` for complex A). Where ``||A||_2`` is within `rtol` of ``lo`` (a
    normal, an orthogonal matrix) it closes the bracket at once.

    Parameters
    ----------
    A : (n, n) array_like
        The matrix.
    rtol : float
        Target relative width of the bracket.
    max_intervals : int
        Most open gaps the cuts keep (their cost, in eigenproblems of order n,
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
    # w <= ||A||_2: for a normal (an orthogonal) matrix w = rho = ||A||_2 and h is flat along
    # arcs no cut can discard (orthogonal n = 256 took 2075 eigenproblems)
    norm2 = float(sla.svdvals(a.real if real else a, check_finite=False)[0])
    span = math.pi if real else 2 * math.pi
    m = _SAMPLES if real else 2 * _SAMPLES
    th = np.linspace(0.0, span, m + 1)
    h, p = _support_points(a, th[:-1] if not real else th)
    if not real:  # h(2 pi) = h(0)
        h, p = np.append(h, h[0]), np.append(p, p[0])
    lo = max(float(np.max(np.abs(p))), float(np.max(h)))
    evaluations = 0
    for _ in range(200):
        if norm2 + margin <= lo * (1 + rtol):
            return _up(max(lo - margin, 0.0), e, 0.0), _up(norm2 + margin, e, math.inf)
        bound, at = _vertex_bounds(th, h)
        # (gaps within the eigensolver's rounding of lo stay closed: no cut can settle them)
        open_ = bound > lo * (1 + rtol) + margin if lo > 0 else bound > rtol * normF + margin
        k = int(np.count_nonzero(open_))
        # far from converging (a flat h): stop cutting, report the honest bound (open gaps, and
        # all the eigenproblems of the cuts together, at most about twice that)
        if k == 0 or k > max_intervals or evaluations + k > 2 * max_intervals:
            break
        t0, t1, t = th[:-1][open_], th[1:][open_], at[open_]
        # the cut at the vertex direction, kept off the ends (a tenth of the gap) so that every
        # cut shrinks its gap
        new = np.clip(t, t0 + 0.1 * (t1 - t0), t1 - 0.1 * (t1 - t0))
        hn, pn = _support_points(a, new)
        evaluations += k
        lo = max(lo, float(np.max(np.abs(pn))), float(np.max(hn)))
        order = np.argsort(np.concatenate([th, new]), kind="stable")
        th = np.concatenate([th, new])[order]
        h = np.concatenate([h, hn])[order]
    # the bound with every h_j raised by the margin of its eigensolver: proved; and lo lowered by
    # it (a computed |x* A x| overshot w by up to 6 ulps, and w = 1.2344999... printed 1.235)
    hi = min(max(float(np.max(_vertex_bounds(th, h + margin)[0])), lo), norm2 + margin)
    return _up(max(lo - margin, 0.0), e, 0.0), _up(hi, e, math.inf)


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

    The lower end of :func:`numerical_radius_bounds` with ``rtol = 1e-12``
    and at most 256 open gaps: the modulus of a point of ``W(A)`` less the
    eigensolver's rounding margin ``4 n u ||A||_F`` (so never above ``w(A)``,
    and for ``[[1.0]]`` 1 - 9e-16), proved within ``1e-12`` relative of
    ``w(A)``, or within the eigensolver's rounding ``4 n u ||A||_F`` where
    that is larger (about ``3e-11`` at n = 1024); where ``h`` is flat along an
    arc (``W(A)`` a disc about 0, such as a Jordan block at 0) the proof stops
    at about ``5e-6`` (``2e-5`` for complex A; the value is then exact to rounding). Sampling alone
    (49 angles) missed a lobe of ``W(A)`` by ``5e-4`` relative.
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
    """The bracket :func:`numerical_radius` is the lower end of (``rtol = 1e-12``, 256 gaps).

    What ``spectra analyze`` and ``spectra kreiss`` print w(A) from: the upper end says which
    digits of the lower one are right.
    """
    return numerical_radius_bounds(A, rtol=1e-12, max_intervals=256)
