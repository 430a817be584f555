"""Certified upper bound on the Kreiss constant: a walk over circles, each one level set.

Used by :func:`spectra.kreiss.kreiss_constant` (``certify=True``) where the
square cells of :mod:`spectra._kreiss_cells` give up (a maximum of ``f`` along
a whole circle, ``sigma_min`` near rounding), and alone with
``method="levelset"``. Given a level ``gamma`` it proves

    f(z) = (|z| - 1)/sigma_min(zI - A) <= gamma   for every |z| > 1,

and so ``K(A) <= gamma``, with ``gamma = lower (1 + 0.9 rtol)`` from the best
point found so far. Any point found on the way with ``f > lower`` raises the
lower bound (and ``gamma``, after a local ascent from it) and the proof goes
on: what is already proved for a smaller ``gamma`` stays proved.

Method
------
1. Far field: ``sigma_min(zI - A) >= |z| - w(A)`` (numerical radius ``w``;
   Trefethen & Embree 2005, Thm 17.1), so ``f <= (R - 1)/(R - w) <= gamma`` for
   ``|z| >= R = (gamma w - 1)/(gamma - 1)``.
2. Circles and the maximum principle. ``||(zI - A)^{-1}||`` is subharmonic off
   the spectrum (the norm of an analytic function), and so is
   ``|z|^s ||(zI - A)^{-1}||`` for every real ``s`` (``s log|z|`` is harmonic).
   ``log(r - 1)`` is concave in ``log r``, so a tangent line gives a weight
   ``W(r) = C r^s >= r - 1`` on any ring ``r_i <= |z| <= r_j`` (see
   :func:`_line_level`). By the maximum principle,
   ``f(z) <= W(|z|) ||(zI - A)^{-1}|| <= max`` over the two boundary circles,
   so the whole ring is proved once ``sigma_min >= W(r_i)/gamma`` on
   ``|z| = r_i`` and ``sigma_min >= W(r_j)/gamma`` on ``|z| = r_j``. Each circle
   test is *one* level set: the unimodular eigenvalues of a 2n x 2n pencil give
   every angle where the level is a singular value of ``r e^{it} I - A``
   (Mengi & Overton 2005; :mod:`spectra.crisscross`); no crossing (every gap
   classified by an SVD at its midpoint) means ``sigma_min >= level`` on the
   whole circle. The walk goes outwards from the unit circle: after each circle
   ``r_i`` (tested at a level ``l_i``) the next weight is the line through
   ``(log r_i, log(gamma l_i))`` tangent to ``log(r - 1)``, and the next circle
   needs ``l_j = W(r_j)/gamma``. Circles with ``r - w(A) >= l`` pass for free
   (item 1). The angular structure of ``f`` does not matter: a maximum along a
   whole circle costs no more than an isolated one.
3. Steering (no part of the proof): ``sigma_min`` along the ridge of ``f``
   (:func:`_ridge_min`: four values by dense SVD, or for n > 160 by the grid
   engine's inverse Lanczos, O(n^2) a step) predicts whether a circle will
   pass; a circle that must fail is not tried, one that should pass is tested
   at a level raised towards ``sigma_min`` (:data:`BOOST`), which flattens the
   next weight and lengthens the next step. For n >= 192 (where a circle costs
   far more than a few estimates) longer steps are tried first and the
   farthest predicted to pass is taken (:data:`STRETCH`). Near a maximum ``r*``
   of ``f`` the slack ``sigma_min - (r - 1)/gamma`` and the room left by a
   weight both fall like ``(r - r*)^2``: steps are capped at a fraction of
   ``r* - r`` on the way in, one step straddles ``r*`` (about ``sqrt(rtol)
   (r* - 1)`` wide), and steps grow in proportion to ``r - r*`` on the way out.
   This bounds the count from below: three-circle bounds (``log`` of the
   largest resolvent norm on ``|z| = r`` is convex in ``log r``; Hadamard) and
   the concave ``log(r - 1)`` leave room for steps growing about 3.3-fold per
   circle even with ``sigma_min`` known exactly on every circle (a simulation
   with dense SVDs planned 13-14 circles for the n = 64 benchmark matrix).
   Measured: 20-21 circles at n = 64, 128 and 15 at n = 256, 512 for the
   random benchmark matrices.
4. Fallback (rarely needed): where the walk stalls next to a maximum, or the
   search missed the maximum and the lower bound creeps, the rings are proved
   directly: a Lipschitz ring ``[a, b]`` (one level set at its middle circle at
   ``(b - 1)/gamma + (b - a)/2``; ``sigma_min`` is 1-Lipschitz), and the arcs
   where that fails by polar cells with a first-order (Lipschitz, far field)
   and a second-order test (:func:`_second_order_ok`: the exact second-order
   expansion of ``sigma_min`` from the full SVD at the centre, positive
   curvature included, with a rigorous third-order remainder); failing cells
   are split in two.

What is rigorous and what relies on LAPACK
------------------------------------------
The inequalities above are theorems (maximum principle, Lipschitz bounds,
Feshbach/Schur-complement bound, Lagrangian duality for the disc minimum).
Floating point enters in three places:

1. Level sets: the test relies on the eigensolver returning every crossing of
   the level within the tolerance of :mod:`spectra.crisscross` (eigenvalues
   within ``1e-6`` relative of the unit circle are candidates; LAPACK's
   eigensolver is backward stable, so a lost pair of crossings is a dip of
   ``sigma_min`` below the level of the order of ``u ||A||``). Every test is
   run at ``level + TAU (||A|| + r)`` with :data:`TAU` ``= 1e-10``, so such a
   dip cannot take ``sigma_min`` below the level that is claimed. This is the
   standard of level-set globality certificates (Boyd & Balakrishnan 1990;
   Mitchell 2020, 2021), not a computer-assisted proof in interval arithmetic.
2. Gap classification by an SVD at each gap midpoint (between two true
   crossings ``sigma_min - level`` keeps its sign).
3. Cell tests use singular values and vectors from LAPACK's backward-stable
   SVD, exact for ``B + E`` with ``||E|| <= c n u ||B||``; a margin
   ``10 n u (||A|| + |z|)`` is subtracted from every singular value, and
   ``1e-10`` relative slack is given to the quadratic forms built from the
   computed vectors.

The weights' exponentials and logarithms carry ``1e-12`` relative slack.
``K = 1`` shortcuts (``||A|| <= 1`` or ``w(A) <= 1``) and ``rho(A) >= 1`` are
handled by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla

from spectra import crisscross as _cc

_EPS = float(np.finfo(float).eps)

#: an eigenproblem of order 2n (circle level set) costs about this many values-only
#: SVDs of order n (measured: 11 at n = 64, 12 at n = 512, one thread)
EIG_COST = 12.0
#: a full SVD (with vectors) costs about this many values-only SVDs
FULL_SVD_COST = 2.5
#: circle level sets are run at ``level + TAU (||A|| + r)``: a dip of sigma_min below the level
#: that rounding could hide from the eigensolver is far shallower (see the module notes)
TAU = 1e-10
#: consecutive failed circles before the rings and cells take over
MAX_FAILS = 12
#: ... or this many next to a maximum of f
STALL = 3
#: a circle expected to pass is tested this far up from the level it needs towards sigma_min
BOOST = 0.7
#: step growth after a circle passed
GROWTH = 3.0
#: ridge estimates by dense SVD up to this order (per value: 0.5 ms at n = 64 against ~0.9 ms
#: for a small batch of the Lanczos engine; 2.2 ms at n = 128 against ~1 ms, but the engine's
#: first use in a process imports numba and loads its kernels, 0.35-0.6 s)
PROBE_DENSE_N = 160
#: look-ahead: longer steps (multiples of the planned one) tried first when the ridge
#: estimates predict that their circle passes ...
STRETCH = (8.0, 4.0, 2.0, 1.4)
#: ... for matrices of at least this order (below, a circle costs about as much as the estimates)
LOOKAHEAD_N = 192
#: ... with sigma_min at least this far (relative) above the level the circle needs
STRETCH_MARGIN = 1e-8
#: parabolic rounds of the ridge estimate (three values each, plus one)
RIDGE_ROUNDS = 1
#: on the way to a maximum r* steps start capped at KAPPA (r* - r) ...
KAPPA = 0.6
#: ... and one step straddles r*, about CROSS (r* - 1) on either side (both adapt)
CROSS = 1e-3
#: local maxima of f within this fraction of the lower bound are approached with capped steps
PEAK_NEAR = 1e-4
#: raises of the lower bound without a local maximum found before the rings and cells take over
MAX_BUMPS = 8
#: a failed ring hands its arcs to the cells when they need at most this many square
#: cells of the ring's width (else the ring is split)
ARC_CELLS = 8
#: rings are not split below this fraction of their distance to the best point (near a
#: maximum the slack falls like the square of that distance: rings would never get there)
APPROACH = 0.25
#: nor below this fraction of their radius
H_MIN = 1e-3
#: a failed ring goes to the cells after this many splits without progress (passes
#: earn one back): the slack may be heading to 0 at a maximum not found by the search
MAX_SPLITS = 6
#: arc cells are this many times longer (in angle) than the ring is wide
ARC_ASPECT = 2.0


@dataclass
class CertificateStats:
    """Counts of the work done by :func:`certify`.

    ``circles``: circle level sets of the walk; ``rings``: Lipschitz rings of
    the fallback; ``eigenproblems``: both together (2n x 2n each); ``cells``:
    polar cells (one full SVD each); ``svds``: ``sigma_min`` values in all
    (n x n SVDs, or Lanczos values for the ridge estimates at n > 160; steering,
    gap classification, cells, local ascents); ``ring_edges``: ``(r0, r1,
    how, cells)`` for every ring proved, in order (diagnostics).
    """

    circles: int = 0
    rings: int = 0
    eigenproblems: int = 0
    cells: int = 0
    svds: int = 0
    ring_edges: list = field(default_factory=list)


@dataclass
class Certificate:
    """Outcome of :func:`certify`: the (possibly raised) lower bound and the proved upper bound."""

    lower: float
    z: complex | None
    upper: float
    certified: bool
    stats: CertificateStats
    #: why the proof stopped short ("" when it did not): the budget spent, or a planned
    #: covering that would not fit in what was left of it
    stopped: str = ""


def _circle_arcs(M: np.ndarray, real: bool, norm: float, r: float, level: float):
    """Arcs of ``|z| = r`` where ``sigma_min(zI - M) < level``; with ``sigma_min`` at their midpoints.

    Returns ``(arcs, svds)``: ``arcs`` a list of ``(lo, hi, mid, sigma_mid)``
    (angles; for real `M` within ``[0, pi]``, mirrored by conjugation), and
    the number of n x n SVDs used.
    """
    An, en = M / r, level / r
    scale = 1.0 + norm / r + en
    svals: dict[float, np.ndarray] = {}
    first = [0.0, np.pi] if real else [0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi]
    rest = [2 * np.pi * (k + 0.5) / 8 for k in range(8)]
    for batch in (first, rest):
        for phi in batch:
            svals[phi] = sla.svdvals(_cc._shifted(An, _cc._unit(phi)), check_finite=False)
        best_gap = max(float(np.min(np.abs(sv - en))) for sv in svals.values())
        if best_gap >= _cc._GOOD_GAP * scale:
            break
    mu = _cc._choose_shift(svals, en, scale, real)
    angles = _cc._unimodular_angles(An, en, mu, scale)
    nsvd = [len(svals)]
    known = {phi: float(s[-1]) * r for phi, s in svals.items()}

    def smin(t: float) -> float:
        if t in known:
            return known[t]
        nsvd[0] += 1
        return float(sla.svdvals(_cc._shifted(M, r * _cc._unit(t)), check_finite=False)[-1])

    pieces = _cc._sublevel_pieces(angles, smin, level, circle=True, symmetric=real)
    return [(p.lo, p.hi, p.mid, p.fmid) for p in pieces], nsvd[0]


def _arc_cell_counts(a: float, b: float, arcs, real: bool) -> list[tuple[float, float, float]]:
    """``(lo, hi, m)`` per arc: the ``m`` about-square polar cells :func:`_arc_cells` would make.

    ``m`` is a float: a ring 1e-13 wide asks for ~1e13 cells, which must be refused, not allocated.
    """
    c = 0.5 * (a + b)
    out = []
    for lo, hi, _, _ in arcs:
        if real:
            lo, hi = max(lo, 0.0), min(hi, np.pi)
        out.append((lo, hi, max(1.0, math.ceil((hi - lo) * c / (ARC_ASPECT * (b - a))))))
    return out


def _arc_cells(a: float, b: float, arcs, real: bool) -> tuple[np.ndarray, ...]:
    """Polar cells ``[a, b] x [lo, hi]`` covering the arcs, about square."""
    out: list[list[np.ndarray]] = [[], [], [], []]
    for lo, hi, m in _arc_cell_counts(a, b, arcs, real):
        m = int(m)
        te = np.linspace(lo, hi, m + 1)
        out[0].append(np.full(m, a))
        out[1].append(np.full(m, b))
        out[2].append(te[:-1])
        out[3].append(te[1:])
    return tuple(np.concatenate(o) for o in out)


def _covering_radius(r0, r1, t0, t1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre ``z_c``, its modulus ``r_c`` and the covering radius ``d`` of polar cells.

    ``|r e^{it} - r_c e^{it_c}|^2 = (r - r_c)^2 + 4 r r_c sin^2((t - t_c)/2)`` is
    largest at a corner; 1e-12 relative slack.
    """
    rc = 0.5 * (r0 + r1)
    tc = 0.5 * (t0 + t1)
    s2h = np.sin(0.25 * (t1 - t0)) ** 2
    d = np.sqrt(np.maximum((r0 - rc) ** 2 + 4 * r0 * rc * s2h, (r1 - rc) ** 2 + 4 * r1 * rc * s2h))
    return rc * np.exp(1j * tc), rc, d * (1 + 1e-12)


def _form(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x2 real forms of ``(x, y) -> |x a_j + y b_j|^2``, stacked ``(..., 2, 2)``."""
    f11 = np.abs(a) ** 2
    f22 = np.abs(b) ** 2
    f12 = np.real(np.conj(a) * b)
    return np.stack([np.stack([f11, f12], -1), np.stack([f12, f22], -1)], -2)


def _eig2(H: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues ``lam1 <= lam2`` of symmetric 2x2 matrices and a unit eigenvector of ``lam1``."""
    h11, h12, h22 = H[..., 0, 0], H[..., 0, 1], H[..., 1, 1]
    mid = 0.5 * (h11 + h22)
    rad = np.hypot(0.5 * (h11 - h22), h12)
    lam1, lam2 = mid - rad, mid + rad
    # eigenvector of lam1: (h12, lam1 - h11) or (lam1 - h22, h12), the longer one
    va = np.stack([h12, lam1 - h11], -1)
    vb = np.stack([lam1 - h22, h12], -1)
    v = np.where((np.linalg.norm(va, axis=-1) >= np.linalg.norm(vb, axis=-1))[..., None], va, vb)
    nv = np.linalg.norm(v, axis=-1)
    v = np.where((nv > 0)[..., None], v / np.where(nv > 0, nv, 1.0)[..., None], np.array([1.0, 0.0]))
    return lam1, lam2, v


def _disc_min_lower(g0, l, H, d) -> np.ndarray:
    """Lower bound of ``min_{|x| <= d} g0 + l.x + x^T H x`` (2-D, vectorised) by Lagrangian duality.

    For every ``nu >= 0`` with ``H + nu I > 0`` the minimum is at least
    ``g0 - nu d^2 - l^T (H + nu I)^{-1} l / 4`` (weak duality; equality at the
    best ``nu``, the trust-region subproblem). ``nu`` is found by bisection on
    the derivative; any ``nu`` gives a valid bound.
    """
    lam1, lam2, v = _eig2(H)
    l1 = np.einsum("...i,...i->...", l, v) ** 2
    l2 = np.maximum(np.einsum("...i,...i->...", l, l) - l1, 0.0)
    nu0 = np.maximum(0.0, -lam1)
    ln = np.sqrt(l1 + l2)
    tiny = 1e-300 + 1e-15 * (np.abs(lam1) + np.abs(lam2))
    lo = nu0 + tiny
    hi = nu0 + ln / (2 * d) + np.abs(lam2 - lam1) + tiny

    def dual(nu):
        return g0 - nu * d**2 - 0.25 * (l1 / (lam1 + nu) + l2 / (lam2 + nu))

    for _ in range(60):
        nu = 0.5 * (lo + hi)
        slope = -(d**2) + 0.25 * (l1 / (lam1 + nu) ** 2 + l2 / (lam2 + nu) ** 2)
        up = slope > 0
        lo = np.where(up, nu, lo)
        hi = np.where(up, hi, nu)
    with np.errstate(divide="ignore", invalid="ignore"):
        best = np.maximum(dual(lo), dual(hi))
    best = np.where(np.isfinite(best), best, -np.inf)
    return best - 1e-13 * (np.abs(g0) + (np.abs(lam1) + np.abs(lam2) + ln / np.maximum(d, 1e-300)) * d**2)


def _second_order_ok(T, normT, zc, rc, d, gamma, S, U, Vh) -> np.ndarray:
    """Second-order proof of ``sigma_min(zI - T) >= (|z| - 1)/gamma`` on discs ``|z - z_c| <= d``.

    With the SVD ``z_c I - T = U diag(s) V*`` and ``delta = z - z_c``, the
    Jordan-Wielandt matrix ``H' = [[0, B + delta I], [(B + delta I)*, 0]]`` is
    ``H + E``, ``||E|| = |delta|``; ``x = [u1; v1]/sqrt(2)`` is the eigenvector of
    ``H`` for ``s1``, and the rest ``Y`` has eigenvalues ``-s1, +-s_j``
    (``j >= 2``, eigenvectors ``[u_j; +-v_j]/sqrt(2)``). Feshbach (Schur
    complement on ``x``): for ``mu`` not in the spectrum of ``M = Y* H' Y``,
    ``mu`` is an eigenvalue of ``H'`` iff ``psi(mu) = x* H' x - mu - c* (M - mu)^{-1} c = 0``
    with ``c = Y* E x``, and ``psi`` decreases between poles. The spectrum of
    ``M`` lies within ``|delta|`` of ``{-s1, +-s_j}``, so for ``s1 > d`` and
    ``s2 - d > mu_max``, ``psi(mu) > 0`` proves that ``H'`` has no eigenvalue in
    ``[0, mu]``: ``sigma_min(B + delta I) > mu``. The resolvent identity
    ``(M - mu)^{-1} = (D - mu)^{-1} - (D - mu)^{-1} F (M - mu)^{-1}`` (``D`` the
    diagonal, ``F = Y* E Y``, ``||F||, ||c|| <= |delta|``) gives

        psi(mu) >= s1 + Re(delta w) - mu + (Im delta w)^2/(s1 + mu)
                   + sum_j |c_j-|^2/(s_j + mu) - sum_j |c_j+|^2/(s_j - mu) - rem,

    ``w = u1* v1``, ``c_j+- = (delta u_j* v1 +- conj(delta) v_j* u1)/2``,
    ``rem = d^3 ||(D - mu)^{-1} c||/(d gM)``, ``gM = min(s1 - d, s2 - d - mu_max)``:
    the exact second-order expansion of ``sigma_min`` (positive curvature
    included) with a rigorous third-order remainder. With
    ``mu = (|z| - 1)/gamma <= (r_c - 1 + Re(delta conj(z_c))/r_c + |delta|^2/(2 r_c))/gamma``
    (denominators taken at the worst ``mu`` in ``[0, mu_max]``) the right side is a
    quadratic in ``delta`` whose minimum over the disc is bounded below by
    :func:`_disc_min_lower`. Singular values carry the backward-error margin
    ``10 n u (||A|| + |z_c|)``.
    """
    n = T.shape[0]
    m = zc.size
    margin = 10 * n * _EPS * (normT + np.abs(zc))
    s = S[:, ::-1]  # ascending
    s1 = s[:, 0] - margin
    s_lo = s[:, 1:] - margin[:, None]
    s_hi = s[:, 1:] + margin[:, None]
    mu_max = (rc - 1 + d + d**2 / (2 * rc)) / gamma
    valid = (s1 > d) & ((s_lo[:, 0] if n > 1 else np.inf) - d > mu_max) & (mu_max >= 0)
    ok = np.zeros(m, dtype=bool)
    if not np.any(valid):
        return ok
    idx = np.flatnonzero(valid)
    U, Vh = U[idx][:, :, ::-1], Vh[idx][:, ::-1, :]  # columns/rows in ascending order
    zc, rc, d, s1, mu = zc[idx], rc[idx], d[idx], s1[idx], mu_max[idx]
    s_lo, s_hi = s_lo[idx], s_hi[idx]
    u1 = U[:, :, 0]
    v1 = np.conj(Vh[:, 0, :])
    p = np.einsum("kij,ki->kj", U.conj(), v1)  # u_j* v1
    q = np.einsum("kji,ki->kj", Vh, u1)  # v_j* u1
    w = p[:, 0]
    pj, qj = p[:, 1:], q[:, 1:]
    plus = _form(0.5 * (pj + qj), 0.5j * (pj - qj))  # |c_j+|^2 as a form in (x, y)
    minus = _form(0.5 * (pj - qj), 0.5j * (pj + qj))
    im_w = _form(np.imag(w), np.real(w))  # (Im delta w)^2 = (x Im w + y Re w)^2
    with np.errstate(divide="ignore", invalid="ignore"):
        H = (
            im_w / (s1 + mu)[:, None, None]
            + np.einsum("kjab,kj->kab", minus, 1.0 / (s_hi + mu[:, None]))
            - np.einsum("kjab,kj->kab", plus, 1.0 / (s_lo - mu[:, None]))
        )
        H[:, 0, 0] -= 1.0 / (2 * rc * gamma)
        H[:, 1, 1] -= 1.0 / (2 * rc * gamma)
        HD = (
            im_w / (s1**2)[:, None, None]
            + np.einsum("kjab,kj->kab", minus, 1.0 / s_lo**2)
            + np.einsum("kjab,kj->kab", plus, 1.0 / (s_lo - mu[:, None]) ** 2)
        )
    # forms were built from the computed vectors: 1e-10 relative slack on the quadratic terms
    H = H - 1e-10 * (np.abs(H).sum(axis=(1, 2)) + 1e-300)[:, None, None] * np.eye(2)
    tD = np.sqrt(np.maximum(_eig2(HD)[1], 0.0)) * (1 + 1e-10)
    gM = np.minimum(s1 - d, s_lo[:, 0] - d - mu) if n > 1 else s1 - d
    rem = d**3 * tD / gM
    g = w - np.conj(zc) / (rc * gamma)
    lvec = np.stack([np.real(g), -np.imag(g)], -1)
    g0 = s1 - (rc - 1) / gamma
    low = _disc_min_lower(g0, lvec, H, d) - rem
    ok[idx] = low > 0
    return ok


def _linear_coupling_ok(margin, zc, rc, d, gamma, S, U, Vh) -> np.ndarray:
    """The second-order cell test of the earlier branch and bound (valid also for ``d >= s1``).

    Jordan-Wielandt matrix, Schur complement on the 2-D span of ``[u1; +-v1]``
    (Parlett, *The Symmetric Eigenvalue Problem*, sec. 11.5):
    ``sigma_min(B + delta I) >= s1 + Re(delta w) - eta`` for ``|delta| <= d`` with
    ``eta = min(d^2/(s2 - s1 - 2d), d^2 P + d^3 sqrt(Q)/(s2 - s1 - 2d))``,
    ``P = sum_j c_j/(s_j - s1 - d)``, ``Q = sum_j c_j/(s_j - s1 - d)^2``,
    ``c_j = (|u1* v_j| + |v1* u_j|)^2``; with ``|z| - 1 <= r_c - 1 + Re(delta conj(z_c))/r_c
    + d^2/(2 r_c)`` the cell is proved when
    ``r_c - 1 + d^2/(2 r_c) - gamma (s1 - eta) + d |conj(z_c)/r_c - gamma w| <= 0``.
    It keeps only the linear part of ``sigma_min`` (no positive curvature), but
    needs no ``s1 > d``: it proves the small cells next to eigenvalues close to
    the unit circle, where :func:`_second_order_ok` cannot.
    """
    n = S.shape[1]
    s1 = S[:, -1] - margin
    if n == 1:
        return np.zeros(zc.size, dtype=bool)
    s2 = S[:, -2] - margin
    rest = S[:, :-1] - margin[:, None]
    u1 = U[:, :, -1]
    w = np.einsum("ki,ki->k", u1.conj(), Vh[:, -1, :].conj())  # u1* v1
    alpha = np.abs(np.einsum("kji,ki->kj", Vh, u1))  # |u1* v_j|
    beta = np.abs(np.einsum("ki,kij->kj", Vh[:, -1, :], U))  # |v1* u_j|
    ab2 = (alpha[:, :-1] + beta[:, :-1]) ** 2 * (1 + 1e-12) + 1e-15
    smax = s1 + d
    with np.errstate(divide="ignore", invalid="ignore"):
        room = s2 - d - smax
        crude = np.where(room > 0, d**2 / room, np.inf)
        den = np.maximum(rest - smax[:, None], 1e-300)
        P = np.sum(ab2 / den, axis=1)
        Q = np.sum(ab2 / den**2, axis=1)
        fine = np.where(room > 0, d**2 * P + d**3 * np.sqrt(Q) / room, np.inf)
        eta = np.minimum(crude, fine)
        chat = np.conj(zc) / rc
        lhs = rc - 1 + d**2 / (2 * rc) - gamma * (s1 - eta) + d * np.abs(chat - gamma * w)
    return np.isfinite(eta) & (lhs <= 0)


def _cell_pass(T, normT, w_up, gamma, r0, r1, t0, t1):
    """Test polar cells: is ``f <= gamma`` proved on the whole cell.

    Returns ``(ok, f, zc, ub, nfull)``: the verdicts; ``f`` at the centres
    (attained values, for the lower bound); the centres; a cheap upper bound
    of ``f`` on each cell (Lipschitz or far field; inf when neither applies);
    and the number of full SVDs used. Tests: Lipschitz (``sigma_min`` is
    1-Lipschitz: ``f <= (r1 - 1)/(s1 - d)``), far field (``f <= (r1 - 1)/(r0 - w)``),
    then :func:`_second_order_ok` where those fail.
    """
    n = T.shape[0]
    zc, rc, d = _covering_radius(r0, r1, t0, t1)
    m = zc.size
    margin = 10 * n * _EPS * (normT + np.abs(zc))
    eye = np.eye(n)
    step = max(1, (32 << 20) // (16 * n * n))
    S = np.empty((m, n))
    ok = np.zeros(m, dtype=bool)
    ub = np.empty(m)
    nfull = 0
    # cells come from the arcs of failed rings, where the first-order tests rarely pass:
    # one full SVD per cell (values and vectors) is cheaper than values first
    for k in range(0, m, step):
        sl = slice(k, min(m, k + step))
        U, S[sl], Vh = np.linalg.svd(zc[sl, None, None] * eye - T)
        nfull += U.shape[0]
        s1 = S[sl, -1] - margin[sl]
        with np.errstate(divide="ignore", invalid="ignore"):
            lip = np.where(s1 > d[sl], (r1[sl] - 1) / (s1 - d[sl]), np.inf)
            far = np.where(r0[sl] > w_up, (r1[sl] - 1) / (r0[sl] - w_up), np.inf)
        ub[sl] = np.minimum(lip, far)
        ok[sl] = ub[sl] <= gamma
        rest = np.flatnonzero(~ok[sl])
        if rest.size:
            sel = np.arange(m)[sl][rest]
            args = (zc[sel], rc[sel], d[sel], gamma, S[sel], U[rest], Vh[rest])
            ok[sel] = _second_order_ok(T, normT, *args) | _linear_coupling_ok(margin[sel], *args)
    f = (rc - 1) / np.maximum(S[:, -1], 1e-300)
    return ok, f, zc, ub, nfull


class _Probe:
    """``sigma_min(z I - T)`` at a few points at a time, for steering (estimates, never proofs).

    Small matrices: dense SVDs. Larger ones: the grid engine's batched inverse Lanczos
    on the triangular ``T`` (O(n^2) a step; :func:`spectra._lanczos.lanczos_sigma_min`),
    started from a kept vector (the last one of the same valley) plus a small random
    part. A Ritz value gives ``sigma`` from above, as an SVD would within rounding.
    """

    def __init__(self, T: np.ndarray) -> None:
        self.T = T
        self.n = T.shape[0]
        self.dense = self.n <= PROBE_DENSE_N
        #: budget charge of one value, in values-only SVDs (a Lanczos value: ~10 O(n^2) steps)
        self.cost = 1.0 if self.dense else 0.1
        self.rng = np.random.default_rng(0)
        self.solver = None
        if not self.dense:
            from spectra._shifted import ShiftedComplexTriangular

            self.solver = ShiftedComplexTriangular(T)

    def values(self, z: np.ndarray, v0: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """``sigma_min`` at the points `z` and the last point's right singular vector (or None)."""
        z = np.asarray(z, dtype=np.complex128)
        n = self.n
        if self.dense:
            return self._dense(z), None
        from spectra._lanczos import lanczos_sigma_min

        noise = np.exp(2j * np.pi * self.rng.random((n, z.size))) / math.sqrt(n)
        if v0 is None:
            V0 = noise
        else:
            V0 = v0[:, None] / np.linalg.norm(v0) + 0.05 * noise
        sig, conv, _, ritz, _ = lanczos_sigma_min(
            self.solver, z, V0, tol=1e-10, maxiter=150, want_vectors=True
        )
        bad = ~conv | ~np.isfinite(sig)
        if np.any(bad):
            sig[bad] = self._dense(z[bad])
        v = ritz[:, -1] if not bad[-1] and np.any(ritz[:, -1] != 0) else None
        return sig, v

    def _dense(self, z: np.ndarray) -> np.ndarray:
        eye = np.eye(self.n)
        return np.array([sla.svdvals(zz * eye - self.T, check_finite=False)[-1] for zz in z])


def _ridge_min(
    probe: _Probe, r: float, theta: float, real: bool, warm: dict | None = None
) -> tuple[float, float]:
    """A local minimum of ``sigma_min(r e^{it} I - T)`` near ``t = theta`` (four values, parabolic steps).

    Only an estimate (an upper bound on the minimum over the circle): it steers the
    walk, the level sets prove. Start vectors are kept in `warm`, by valley angle.
    """
    seen: dict[float, float] = {}
    vec = [None if warm is None else warm.get(theta)]

    def sv(ts: list[float]) -> list[float]:
        ts = [abs(math.remainder(t, 2 * math.pi)) if real else t for t in ts]
        new = [t for t in dict.fromkeys(ts) if t not in seen]
        if new:
            sig, v = probe.values(r * np.exp(1j * np.array(new)), vec[0])
            seen.update(zip(new, (float(x) for x in sig)))
            vec[0] = v if v is not None else vec[0]
        return [seen[t] for t in ts]

    h = 0.02
    t0 = theta
    for _ in range(RIDGE_ROUNDS):
        fm, f0, fp = sv([t0 - h, t0, t0 + h])
        den = fm - 2 * f0 + fp
        step = 0.5 * h * (fm - fp) / den if den > 0 else (h if fp < fm else -h)
        t0 = t0 + max(-2 * h, min(2 * h, step))
        h = max(abs(step) / 4, h / 8, 1e-6)
    sv([t0])
    t_best = min(seen, key=seen.__getitem__)
    if warm is not None and vec[0] is not None:
        warm[t_best] = vec[0]  # the valley's next angle
    return seen[t_best], t_best


def _line_level(r_i: float, y_i: float, r_j: float) -> float:
    """``W(r_j)`` for the smallest log-linear weight ``W(r) = e^{y_i} (r/r_i)^s >= r - 1`` on ``[r_i, r_j]``.

    ``log(r - 1)`` is concave in ``u = log r``, so the line through
    ``(log r_i, y_i)`` (a point on or above the curve) that is tangent to it
    lies above it everywhere to the right; its slope ``s`` solves the tangency
    condition (bisection; a slightly larger slope is also valid and is what
    rounding errs towards). With ``y_i >= log r_i`` the slope 1 already works.
    """
    u_i, u_j = math.log(r_i), math.log(r_j)
    if y_i >= u_i:
        s = 1.0
    else:

        def g(u: float) -> float:
            return math.log(math.expm1(u))

        def gp(u: float) -> float:
            return 1.0 / -math.expm1(-u)

        lo, hi = u_i, max(u_i, 0.0) + 1.0
        while g(hi) + gp(hi) * (u_i - hi) < y_i:
            hi = 2 * hi + 1.0
        if u_i == 0.0:
            lo = 1e-300
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if g(mid) + gp(mid) * (u_i - mid) < y_i:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-15 * hi:
                break
        s = gp(lo) * (1 + 1e-12)
    try:
        return math.exp(y_i + s * (u_j - u_i)) * (1 + 1e-12)
    except OverflowError:
        return math.inf


def certify(
    T: np.ndarray,
    M: np.ndarray,
    *,
    normT: float,
    w_up: float,
    lower: float,
    zbest: complex | None,
    rtol: float,
    max_evals: int,
    h0: float,
    sig_inner: float,
) -> Certificate:
    """Prove ``K(A) <= lower (1 + 0.9 rtol)`` (raising `lower` where a better point turns up).

    Parameters
    ----------
    T : (n, n) complex ndarray
        Complex Schur form of ``A`` (cells are evaluated on it).
    M : (n, n) ndarray
        ``A`` itself when real (level sets in real arithmetic), else `T`.
    normT, w_up : float
        ``||A||_2`` and an upper bound on the numerical radius ``w(A)``.
    lower, zbest : float, complex or None
        Best lower bound so far and where it is attained.
    rtol : float
        Target ``upper/lower - 1``.
    max_evals : int
        Budget in SVD-equivalents (an eigenproblem counts :data:`EIG_COST`).
    h0 : float
        First ring half-width (a guess; adapted on the way).
    sig_inner : float
        Smallest ``sigma_min`` the search saw next to the unit circle.
    """
    from spectra import kreiss as kr  # late: kreiss imports this module

    real = bool(np.isrealobj(M))
    stats = CertificateStats()
    gamma = lower * (1 + 0.9 * rtol)
    R = max(1.0 + 1e-3, min((gamma * w_up - 1) / (gamma - 1), 1e12))
    far_bound = (R - 1) / (R - w_up)

    peaks = [(abs(zbest), lower)] if zbest is not None else []  # (radius, f) of local maxima
    bumps = [0]

    def raise_lower(f: float, z: complex) -> None:
        nonlocal lower, zbest, gamma
        if f <= lower:
            return
        fz, zz = kr._local_max(T, z)
        stats.svds += 20
        if fz >= f:
            f, z = fz, zz
            peaks.append((abs(zz), f))  # a local maximum of f (the walk approaches it carefully)
        else:
            bumps[0] += 1  # the ascent did not improve on the point: no maximum to aim at
        lower, zbest = f, z
        gamma = max(gamma, lower * (1 + 0.9 * rtol))

    spent = 0.0
    left_upper = 0.0
    stopped = [""]

    def circle_ok(r: float, level: float) -> tuple[bool, list]:
        """Is ``sigma_min(zI - A) >= level`` on ``|z| = r``? (free when ``r - w(A) >= level``)."""
        nonlocal spent
        if r - w_up >= level * (1 + 1e-12):
            return True, []
        arcs, nsvd = _circle_arcs(M, real, normT, r, level + TAU * (normT + r))
        stats.circles += 1
        stats.eigenproblems += 1
        stats.svds += nsvd
        spent += EIG_COST + nsvd
        return not arcs, arcs

    def rings_and_cells(a: float, b_end: float) -> bool:
        """Prove ``f <= gamma`` on ``a <= |z| <= b_end`` by Lipschitz rings, then cells on their arcs."""
        nonlocal spent, left_upper
        cell_parts: list[tuple[np.ndarray, ...]] = []
        h = max(min(h0, 0.5 * (b_end - a)), 1e-15)
        splits = 0
        planned = 0.0
        while a < b_end:
            if spent > max_evals:
                left_upper = math.inf
                stopped[0] = f"the budget was spent ({spent:.0f} SVD-equivalents)"
                return False
            b = min(b_end, a + 2 * h)
            hh = 0.5 * (b - a)
            c = a + hh
            # off the arcs sigma_min(c e^{it}) >= level, so sigma_min >= level - |r - c| >= (b - 1)/gamma
            level = (b - 1) / gamma + hh
            arcs, nsvd = _circle_arcs(M, real, normT, c, level + TAU * (normT + c))
            stats.rings += 1
            stats.eigenproblems += 1
            stats.svds += nsvd
            spent += EIG_COST + nsvd
            for _, _, mid, smid in arcs:
                if smid > 0:
                    raise_lower((c - 1) / smid, c * complex(np.exp(1j * mid)))
            if not arcs:
                stats.ring_edges.append((a, b, "ring", 0))
                a = b
                h = 2 * hh
                splits = max(0, splits - 1)
                continue
            slack = min(sm for _, _, _, sm in arcs) - (c - 1) / gamma
            # sub-rings needed (the ring test passes when h (1 + 1/gamma) <= slack)
            need = hh * (1 + 1 / gamma) / slack if slack > 0 else math.inf
            h_new = hh / max(2.0, min(need * 1.3, 64.0)) if math.isfinite(need) else hh / 2
            n_cells = sum(max(1, math.ceil((hi - lo) * c / (2 * hh))) for lo, hi, _, _ in arcs)
            rstar = abs(zbest) if zbest is not None else math.inf
            splits += 1
            if (
                n_cells <= ARC_CELLS
                or h_new < APPROACH * abs(c - rstar)
                or h_new < H_MIN * c
                or splits > MAX_SPLITS
            ):
                # the arcs are local (the ridge of f): cells with second-order tests there
                planned += sum(m for _, _, m in _arc_cell_counts(a, b, arcs, real))
                if spent + FULL_SVD_COST * planned > max_evals:
                    # more cells than the whole budget can test (a ring far thinner than the arcs
                    # are long): give up here rather than allocate them
                    left_upper = math.inf
                    stopped[0] = (
                        f"the rings between r = {a:.6g} and {b_end:.6g} would need about {planned:.3g} "
                        f"cells (one SVD each), more than the budget leaves ({spent:.0f} spent)"
                    )
                    return False
                cell_parts.append(_arc_cells(a, b, arcs, real))
                stats.ring_edges.append((a, b, "cells", n_cells))
                a = b
                splits = 0
                continue
            h = h_new
        if not cell_parts:
            return True
        r0, r1, t0, t1 = (np.concatenate([p[k] for p in cell_parts]) for k in range(4))
        if spent + FULL_SVD_COST * r0.size > max_evals:
            # the arcs of thin rings can ask for more cells than the whole budget: no pass at all
            left_upper = math.inf
            stopped[0] = (
                f"the rings up to r = {b_end:.6g} would need {r0.size} cells (one SVD each), more than "
                f"the budget leaves ({spent:.0f} spent)"
            )
            return False
        while r0.size:
            ok, f, zc, ub, nfull = _cell_pass(T, normT, w_up, gamma, r0, r1, t0, t1)
            stats.cells += r0.size
            stats.svds += nfull
            spent += FULL_SVD_COST * nfull
            if f.size and np.max(f) > lower:
                j = int(np.argmax(f))
                raise_lower(float(f[j]), complex(zc[j]))
            bad = ~ok
            if not np.any(bad):
                return True
            if spent + 2 * FULL_SVD_COST * int(np.count_nonzero(bad)) > max_evals:  # the next pass
                left_upper = max(left_upper, float(np.max(ub[bad])))
                stopped[0] = (
                    f"{int(np.count_nonzero(bad))} cells were still unproved and splitting them would "
                    f"exceed the budget ({spent:.0f} spent)"
                )
                return False
            r0, r1, t0, t1 = r0[bad], r1[bad], t0[bad], t1[bad]
            radial = (r1 - r0) >= r1 * (t1 - t0)
            rm = 0.5 * (r0 + r1)
            tm = 0.5 * (t0 + t1)
            r0, r1, t0, t1 = (
                np.concatenate([r0, np.where(radial, rm, r0)]),
                np.concatenate([np.where(radial, rm, r1), r1]),
                np.concatenate([t0, np.where(radial, t0, tm)]),
                np.concatenate([np.where(radial, t1, tm), t1]),
            )
        return True

    # ---- circles: the maximum principle for |z|^s ||(zI - A)^{-1}|| on the rings between them.
    # The unit circle first, at a level below the smallest sigma_min the search saw near it.
    level0 = 0.5 * max(sig_inner, 1e-300)
    while True:
        ok0, _ = circle_ok(1.0, level0)
        if ok0 or level0 < 1e-12 * (1 + normT):
            break
        level0 *= 0.25
    done = True
    if not ok0:
        done = rings_and_cells(1.0, R)
        r_i = R
    else:
        r_i, y_i = 1.0, math.log(gamma * level0)
    step = max(2.0 * h0, 1e-6)
    fails = 0
    # near a maximum of f the slack falls like (r - r*)^2 and so does the room a ring leaves
    # (the weight's excess over r - 1): steps are capped at kappa (r* - r) on the way in,
    # and one ring of half-width `cross` (relative to r* - 1) straddles r*
    kappa, cross = KAPPA, CROSS
    climbed = False
    valleys = [abs(float(np.angle(zbest))) if zbest is not None else 0.0]  # angles of low sigma_min
    warm: dict[float, np.ndarray] = {}  # start vectors of the ridge estimates, by valley angle
    probe = _Probe(T)
    # the look-ahead pays where a circle costs much more than a few ridge estimates
    lookahead = T.shape[0] >= LOOKAHEAD_N

    def ridge(r: float) -> list[tuple[float, float]]:
        """Ridge estimates ``(sigma, angle)`` on ``|z| = r``, one per valley (charged to the budget)."""
        nonlocal spent
        est = [_ridge_min(probe, r, th, real, warm) for th in valleys]
        stats.svds += (3 * RIDGE_ROUNDS + 1) * len(est)
        spent += probe.cost * (3 * RIDGE_ROUNDS + 1) * len(est)
        return est

    target, fails_here = math.inf, 0
    while done and r_i < R:
        if spent > max_evals:
            left_upper = math.inf
            stopped[0] = f"the budget was spent ({spent:.0f} SVD-equivalents)"
            done = False
            break
        if bumps[0] > MAX_BUMPS or (step < 1e-6 * (r_i - 1) and not (r_i < target < R)):
            # the lower bound keeps creeping up without a local maximum to aim at, or the walk
            # creeps (f reaches gamma where no maximum was found: a failed search); rings and
            # cells raise the lower bound from their centres
            done = rings_and_cells(r_i, R)
            break
        # maxima within PEAK_NEAR of the lower bound leave almost no slack: approached carefully
        ahead = [p for p, fp in peaks if p > r_i and fp >= lower * (1 - PEAK_NEAR)]
        rstar = min(ahead) if ahead else math.inf
        if rstar != target:
            target, fails_here = rstar, 0
        kind = "free"
        step_try = step
        if rstar < R:
            dist = rstar - r_i
            if dist <= cross * (rstar - 1):
                step_try, kind = dist + cross * (rstar - 1), "cross"
            elif kappa * dist < step:
                step_try, kind = kappa * dist, "approach"
        r_j = min(R, r_i + step_try)
        ahead_est = None
        if lookahead and kind != "cross" and r_j < R:
            # look ahead: a ridge estimate costs O(n^2) a value, a circle O(n^3); take the
            # farthest of a few longer steps that the estimates say will pass (no part of the
            # proof: a circle that fails is handled below as any other)
            for mult in STRETCH:
                cand = min(R, r_i + mult * step_try)
                lev_c = _line_level(r_i, y_i, cand) / gamma
                if cand - w_up >= lev_c * (1 + 1e-12):
                    r_j, ahead_est = cand, None  # passes for free (far field)
                    break
                if not lev_c < cand + normT:
                    continue
                est_c = ridge(cand)
                if min(est_c)[0] > lev_c * (1 + STRETCH_MARGIN):
                    r_j, ahead_est = cand, est_c
                    break
            step_try = r_j - r_i
        lev_j = _line_level(r_i, y_i, r_j) / gamma
        lev_test = lev_j
        if not lev_j < r_j + normT:
            ok, arcs = False, []  # sigma_min <= ||A|| + r: the circle cannot pass
        elif r_j - w_up < lev_j:
            # sigma_min along the ridge (O(n^2) values): a circle that must fail is not tried, and
            # one that should pass is tested at a higher level, which flattens the next weight
            est = ahead_est if ahead_est is not None else ridge(r_j)
            m_e, th_e = min(est)
            # follow each valley; forget one that is far above the lowest
            valleys = [th for (m, th) in est if m <= 1.5 * m_e]
            if m_e > 0 and (r_j - 1) / m_e > lower:
                raise_lower((r_j - 1) / m_e, r_j * complex(np.exp(1j * th_e)))
            if m_e <= lev_j:
                ok, arcs = False, []
            else:
                lev_test = lev_j + BOOST * (m_e - lev_j)
                ok, arcs = circle_ok(r_j, lev_test)
                if not ok and min(sm for _, _, _, sm in arcs) > lev_j * (1 + 1e-9):
                    # another valley dips below the raised level: follow it too, and retest
                    mid = min(arcs, key=lambda t: t[3])[2]
                    if len(valleys) < 3:
                        valleys.append(abs(mid) if real else mid)
                    lev_test = lev_j
                    ok, arcs = circle_ok(r_j, lev_j)
        else:
            ok, arcs = circle_ok(r_j, lev_j)
        for _, _, mid, smid in arcs:
            if smid > 0:
                raise_lower((r_j - 1) / smid, r_j * complex(np.exp(1j * mid)))
        if arcs and not climbed:
            # a stall: find the local maximum of f behind the arc and treat it like r*
            _, _, mid, smid = min(arcs, key=lambda t: t[3])
            f_loc, z_loc = kr._local_max(T, r_j * complex(np.exp(1j * mid)))
            stats.svds += 20
            spent += 20
            climbed = True
            if f_loc > 0 and abs(z_loc) > 1:
                raise_lower(f_loc, z_loc)
                if abs(z_loc) > r_i:
                    peaks.append((abs(z_loc), f_loc))
                    kappa, cross = KAPPA, CROSS
        if ok:
            climbed = False
            stats.ring_edges.append((r_i, r_j, "circle", 0))
            r_i, y_i = r_j, math.log(gamma * lev_test)
            behind = [p for p, _ in peaks if p <= r_i]
            # past a maximum the slack grows like (r - r*)^2: steps in proportion to r - r*
            step = max(GROWTH * step_try, 0.6 * (r_i - max(behind)) if behind else 0.0)
            if kind == "approach":
                kappa = min(0.9, 1.15 * kappa)
            fails = 0
            continue
        fails += 1
        fails_here += kind != "free"
        if (kind != "free" and (fails >= STALL or fails_here >= 2 * STALL)) or fails > MAX_FAILS:
            # stuck next to a maximum (the weight cannot follow r - 1 closely enough there):
            # rings and cells across it, then the walk resumes on the curve, W(r) = r - 1
            b = min(R, 2 * rstar - r_i) if kind != "free" else min(R, r_i + step_try)
            done = rings_and_cells(r_i, b)
            r_i, y_i = b, math.log(b - 1)
            step, fails, climbed = max(b - r_i, step_try), 0, False
            kappa, cross = KAPPA, CROSS
            continue
        if kind == "cross":
            cross *= 0.4
        elif kind == "approach":
            kappa *= 0.6
        else:
            step = 0.35 * step_try
    exhausted = not done
    upper = max(gamma, far_bound, left_upper)
    certified = (not exhausted) and upper <= lower * (1 + rtol)
    return Certificate(
        lower=lower, z=zbest, upper=upper, certified=bool(certified), stats=stats, stopped=stopped[0]
    )
