"""Certified upper bound on the Kreiss constant by concave interpolation on square cells.

Used first by :func:`spectra.kreiss.kreiss_constant` whenever a certificate is
asked for (``certify=True``, and ``"auto"``, the default, for every n); where
it gives up (a ridge of ``f``, ``sigma_min`` near rounding, its budget), the
circle walk of :mod:`spectra._kreiss_certificate` takes over (``"auto"``: for
n <= 64).

The fact it rests on
--------------------
With ``z = x + iy``,

    sigma_min(zI - A)^2 = lambda_min((zI - A)^*(zI - A)) = |z|^2 + g(x, y),
    g(x, y) = lambda_min(A^*A - x (A + A^*) - y i(A^* - A)),

and ``g`` is the smallest eigenvalue of a Hermitian matrix that is affine in
``(x, y)``: the minimum of affine functions ``v^*(...)v`` over unit ``v``, so
**concave** (on the whole plane, eigenvalue crossings included). A concave
function lies above its linear interpolant on every triangle, so from the
values ``s_i = sigma_min(v_i I - A)`` at the three vertices of a triangle alone,

    sigma_min(wI - A)^2 >= L(w) - (rho^2 - |w - o|^2)    for every w in the triangle,

where ``L`` interpolates ``s_i^2`` linearly and ``o``, ``rho`` are the
triangle's circumcentre and circumradius (``|w|^2`` minus its own linear
interpolant). The bound is exact where ``g`` is linear, and its error is the
concavity gap of ``g`` only: second order in the cell size.

The test of a cell
------------------
``f(w) = (|w| - 1)/sigma_min(wI - A) <= gamma`` on a triangle (for ``|w| >= 1``)
follows from ``gamma^2 sigma_min^2 - (|w| - 1)_+^2 >= 0``, and two convex
quadratic minorants of that function are minimised over the triangle in
closed form (the minimum of ``a |d|^2 + b.d + c`` over a triangle: its interior
stationary point, or the best point of an edge):

1. ``(|w| - 1)^2 = |w|^2 - 2|w| + 1`` with ``|w| >= <w, m/|m|>`` (Cauchy-Schwarz;
   ``m`` the centre of the square): loses ``|w| - <w, m/|m|>``, of the order of
   ``h^2/|m|``;
2. the convex ``(|w| - 1)_+^2`` below its linear interpolant: exact on the unit
   disc side of a cell that straddles the unit circle (where (1) would ask for
   ``gamma sigma_min >= 1 - |w|``, a condition nobody needs).

A cell (a square of side ``h``, cut along a diagonal into two right triangles,
whose circumcentre is the square's centre) passes when on each triangle one of
the minorants is non-negative; a failed cell is cut into four. Cells inside
the unit disc, and beyond the far-field radius ``R = (gamma w - 1)/(gamma - 1)``
(``sigma_min(zI - A) >= |z| - w(A)``, numerical radius ``w``; Trefethen &
Embree 2005, Thm 17.1), are dropped; for real ``A`` only ``Im z >= 0`` is
covered (``f(conj z) = f(z)``). Vertices are shared between neighbouring
cells (dyadic coordinates, exact in floating point), and each round's new
vertices are computed in one batch.

Near a maximum ``z*`` of ``f`` the cells that fail are those where the
concavity gap exceeds the room ``gamma - f``: a region whose diameter shrinks
with the cells, so each round fails about the same number of cells there
(20-70 for the benchmark matrices) and the count grows with
``log(1/rtol)``, not as a power of it. There is no separate search: the
largest ``f`` at a vertex is the lower bound (attained there), and
``gamma = lower (1 + 0.9 rtol)``; a vertex with ``f > lower`` raises both,
and the cells already passed stay passed (``gamma`` only grows). Along a
ridge of ``f`` (maximal on a whole curve) the failed cells next to the maximum
double from round to round instead: the cells give up there.

What the proof relies on
------------------------
The inequalities are theorems. The vertex values come from the pseudospectra
engine's inverse Lanczos (:mod:`spectra._lanczos`, the Schur form, shared
blocked triangular solves) with its residual test, each point from its own
random-phase start vector, or, for ``n <= 40`` and wherever Lanczos does not
converge, LAPACK's SVD. Two tolerances: first ``1e-5``, a value then trusted
to ``2e-3`` relative (``200 tol``: a loose tolerance can stop Lanczos before
the smallest singular value emerged, the reason the pseudospectra grids run it
100 times tighter than they promise); again to the tight ``tol = 1e-3 rtol``
(within ``[1e-12, 1e-9]``, trusted to ``2 tol``) at the corners of the squares
that need it, and from the start next to the maximum. Every value is also
lowered by ``10 n u (||A|| + |z|)`` (the solves' backward error). The residual
test proves that a value is close to *a* singular value of ``zI - A``; that it
is the smallest, to its tolerance, is what Lanczos from a start with no
direction favoured delivers in practice, not something proved here. Its known
failure: a cluster. Where ``sigma_2`` is within about the tolerance's reach of
``sigma_1``, Lanczos (no block, no deflation) returns a value between them and
the residual test cannot tell; checked against dense SVDs on 84,680 vertices of
48 matrices (n = 48-128, direct sums among them), 134 (0.16%) were above
``sigma_min`` by more than their margin, up to 7.7e-6 relative, each within the
relative gap ``sigma_2/sigma_1 - 1`` (at most 3.3e-3) of its cluster. A
certificate can be wrong by that much where such a vertex decides a square next
to the maximum; none did in these runs or in a review's 3,100 certificates.
A start warm from a neighbouring vertex's singular vector, as the
pseudospectra grids use, does *not* deliver it where the smallest singular
value changes branch between the two points (a direct sum of blocks whose
values cross: 33% too high), so none is used. The circle walk
(``method="levelset"``) rests on LAPACK's eigensolver instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_EPS = float(np.finfo(float).eps)

#: vertex values by dense SVD up to this order (LAPACK, batched)
DENSE_N = 40
#: coarse cells across the square [-R0, R0]^2 (about; the side is a power of two)
COARSE = 12
#: give up (and hand over to the circle walk) past max(VERTICES_PER_N n, VERTICES_N2 / n^2)
#: vertices, within [MIN_VERTICES, MAX_VERTICES] (a vertex costs O(n^2) by Lanczos, next to
#: nothing for tiny n; a circle of the walk O(n^3)) ...
VERTICES_PER_N = 125
VERTICES_N2 = 2e6
MIN_VERTICES = 16000
MAX_VERTICES = 200000
#: ... or when the failed cells next to the maximum (f >= HOT gamma at a corner) have grown by a
#: factor in [RIDGE_GROWTH, RIDGE_MAX] in each of RIDGE_ROUNDS rounds in a row, past RIDGE_MIN of
#: them: near a peak they stay about as many from round to round once the cells are smaller than
#: it (the region shrinks with them; before, they grow fourfold, covering an area); along a ridge
#: of f (a whole circle where f depends on |z| only) they double, covering a curve
RIDGE_GROWTH = 1.6
RIDGE_MAX = 2.8
RIDGE_ROUNDS = 4
RIDGE_MIN = 100
#: ... or when a cell would shrink below this fraction of its distance from 0 (rounding)
H_MIN = 1e-9
#: vertices are first computed to this relative tolerance (far from the maximum that is plenty);
#: those of a cell that fails only for it are computed again to the tight one
TOL_LOOSE = 1e-5
#: ... and the children of a square with a corner where f >= HOT gamma are tight from the start
HOT = 0.99


@dataclass
class CellsResult:
    """Outcome of :func:`certify_cells`."""

    certified: bool
    lower: float
    z: complex | None
    upper: float
    vertices: int
    cells: int
    rounds: int
    lanczos_steps: int
    stopped: str = ""


class _Sigma:
    """``sigma_min(zI - A)`` at batches of points, with lower-bound margins."""

    def __init__(self, T: np.ndarray, R_real, normT: float, tol: float, seed: int = 0) -> None:
        self.n = n = T.shape[0]
        self.T = T
        self.tol = tol
        self.normT = normT
        self.dense = n <= DENSE_N
        self.eigs = np.diag(T).copy()
        self.steps = 0
        rng = np.random.default_rng(seed)
        self.rng = rng
        if not self.dense:
            from spectra._shifted import ShiftedComplexTriangular, ShiftedQuasiTriangular

            if R_real is not None:
                self.solver = ShiftedQuasiTriangular(R_real, leaf=16)
            else:
                self.solver = ShiftedComplexTriangular(T, leaf=16)

    def _dense(self, z: np.ndarray) -> np.ndarray:
        from spectra.pseudospectra import _dense_sigma_min

        return _dense_sigma_min(self.T, z)

    def values(self, z: np.ndarray) -> np.ndarray:
        """Computed ``sigma_min`` (not yet lowered) at the points `z`.

        Every point starts from its own random-phase vector (equal moduli in the Schur basis):
        no singular vector is favoured, so Lanczos converges to the extreme one first. A warm
        start from a neighbour's vector (an earlier version of this module) favoured that
        neighbour's singular vector, and where the smallest singular value changes branch
        between the two points (a direct sum: the blocks' values cross) Lanczos converged to
        the wrong one: 33% too high against a margin of 0.2% (found by a review).
        """
        if self.dense or z.size == 0:
            return self._dense(z)
        # within rounding of an eigenvalue the solves break down: a dense SVD there (sigma ~ 0)
        at_eig = np.min(np.abs(z[:, None] - self.eigs[None, :]), axis=1) <= 1e-13 * max(self.normT, 1e-300)
        if np.any(at_eig):
            out = np.empty(z.size)
            out[at_eig] = self._dense(z[at_eig])
            rest = np.flatnonzero(~at_eig)
            if rest.size:
                out[rest] = self.values(z[rest])
            return out
        from spectra._lanczos import lanczos_sigma_min

        n = self.n
        out = np.empty(z.size)
        step = 800
        for s in range(0, z.size, step):
            zz = z[s : s + step]
            S0 = np.exp(2j * np.pi * self.rng.random((n, zz.size)))
            sig, conv, steps, _, _ = lanczos_sigma_min(
                self.solver, zz, S0, tol=self.tol, maxiter=max(100, n // 2), want_vectors=False
            )
            self.steps += int(steps.sum())
            bad = ~conv | ~np.isfinite(sig)
            if np.any(bad):
                sig[bad] = self._dense(zz[bad])
            out[s : s + step] = sig
        return out


def _rel_margin(tol):
    """How far (relative) a Lanczos value run to `tol` is trusted.

    ``2 tol`` up to ``1e-8``, else ``200 tol``: a loose tolerance can stop Lanczos before the
    smallest singular value emerged from the start vector
    (:func:`spectra.pseudospectra.pseudospectra` runs it 100 times tighter than it promises
    for the same reason).
    """
    return np.where(np.asarray(tol) <= 1e-8, 2.0, 200.0) * tol


def _clip_div(num: np.ndarray, den: np.ndarray | float, lim: np.ndarray) -> np.ndarray:
    """``num/den`` clipped to ``[-lim, lim]`` (0 where it is undefined: ``0/0``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip(num / den, -lim, lim)
    return np.where(np.isnan(t), 0.0, t)


def _half_min(a: float, bx, by, c, hh, upper: bool) -> np.ndarray:
    """Minimum of ``a |d|^2 + bx dx + by dy + c`` over a half square.

    The square is ``|dx|, |dy| <= hh``; the half is ``dy <= dx`` (`upper` False: corners
    ``(-hh, -hh), (hh, -hh), (hh, hh)``) or ``dy >= dx`` (corners ``(-hh, -hh), (hh, hh),
    (-hh, hh)``). Candidates: the stationary point when inside (``a > 0``), the best point of
    each edge (for ``a >= 0`` a convex function of one variable, clipped to the edge) and the
    corners (for ``a < 0``).
    """

    def q(dx, dy):
        return a * (dx * dx + dy * dy) + bx * dx + by * dy + c

    e = -hh if not upper else hh  # the horizontal edge: dy = -hh (lower half) or dy = hh (upper)
    best = q(_clip_div(-bx, 2 * a, hh), e)
    best = np.minimum(best, q(-e, _clip_div(-by, 2 * a, hh)))  # dx = hh (lower) or dx = -hh (upper)
    t = _clip_div(-(bx + by), 4 * a, hh)  # the diagonal dx = dy = t
    best = np.minimum(best, q(t, t))
    # the corners (where the minimum lies when a < 0: gamma < 1, never asked by the certificate)
    for cx_, cy_ in ((-hh, -hh), (hh, hh), (-e, e)):
        best = np.minimum(best, q(cx_, cy_))
    if a > 0:
        sx, sy = -bx / (2 * a), -by / (2 * a)
        inside = (np.abs(sx) <= hh) & (np.abs(sy) <= hh) & ((sy <= sx) if not upper else (sy >= sx))
        best = np.where(inside, np.minimum(best, c - (bx * bx + by * by) / (4 * a)), best)
    return best


def cells_pass(
    x0: np.ndarray, y0: np.ndarray, h: np.ndarray, s2: list[np.ndarray], gamma: float
) -> np.ndarray:
    """Whether ``f <= gamma`` is proved on each square (corners ccw from ``(x0, y0)``).

    `s2` holds the four corners' lowered ``sigma_min^2`` (the module notes give the test).
    """
    G2 = gamma * gamma
    hh = 0.5 * h
    mx, my = x0 + hh, y0 + hh
    mr = np.hypot(mx, my)
    with np.errstate(invalid="ignore", divide="ignore"):
        ux = np.where(mr > 0, mx / mr, 0.0)
        uy = np.where(mr > 0, my / mr, 0.0)
    rho2 = 0.5 * h * h  # circumradius^2 of both triangles (centre: the square's centre)
    # (|w| - 1)_+^2 at the corners, for minorant 2
    p2 = [
        np.maximum(np.hypot(mx + sx * hh, my + sy * hh) - 1, 0.0) ** 2
        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    centre = 0.5 * (s2[0] + s2[2])  # L at the centre (on the shared diagonal 0-2)
    pc = 0.5 * (p2[0] + p2[2])
    # rounding in forming and minimising the quadratics: a few ulps of their largest terms
    slack = 1e-13 * (G2 * np.maximum(np.maximum(s2[0], s2[1]), np.maximum(s2[2], s2[3])) + (mr + h) ** 2)
    c1 = G2 * (centre - rho2) - (mr - 1) ** 2
    c2 = G2 * (centre - rho2) - pc
    ok = np.ones(x0.size, dtype=bool)
    # the two triangles (corners 0-1-2 and 0-2-3, right angles at 1 and 3) and the gradients
    # of the linear interpolants on them: (v1 - v0, v2 - v1)/h and (v2 - v3, v3 - v0)/h
    for upper, (i, j), (k, m) in ((False, (1, 0), (2, 1)), (True, (2, 3), (3, 0))):
        gx, gy = (s2[i] - s2[j]) / h, (s2[k] - s2[m]) / h
        # gamma^2 sigma^2 >= gamma^2 (L(w) - rho^2 + |d|^2), d = w - m
        # 1: -(|w| - 1)^2 >= -|m|^2 - 2 m.d - |d|^2 + 2 |m| + 2 u.d - 1   (|w| >= u.w)
        q1 = _half_min(G2 - 1, G2 * gx - 2 * mx + 2 * ux, G2 * gy - 2 * my + 2 * uy, c1, hh, upper)
        # 2: -(|w| - 1)_+^2 >= -(its linear interpolant)
        px, py = (p2[i] - p2[j]) / h, (p2[k] - p2[m]) / h
        q2 = _half_min(G2, G2 * gx - px, G2 * gy - py, c2, hh, upper)
        ok &= (q1 >= slack) | (q2 >= slack)
    return ok


def certify_cells(
    a: np.ndarray,
    T: np.ndarray,
    R_real,
    *,
    normT: float,
    w_up: float,
    rtol: float,
    lower: float = 1.0,
    zbest: complex | None = None,
    w_refine=None,
    max_vertices: int | None = None,
) -> CellsResult:
    """Find ``K(A)`` and prove ``K(A) <= lower (1 + 0.9 rtol)`` by cells.

    The lower bound is the largest ``f`` at a vertex (attained there: the
    Lanczos value is never below ``sigma_min``, so ``f`` computed with it is
    never above the true one, up to rounding); cells refine where ``f`` is
    close to it, so the vertices close in on the maximiser as the proof does.

    Parameters
    ----------
    a : (n, n) ndarray
        The matrix (real: only ``Im z >= 0`` is covered).
    T : (n, n) complex ndarray
        Its complex Schur form.
    R_real : (n, n) ndarray or None
        Its real Schur form (real `a`: the solves run in real arithmetic).
    normT, w_up : float
        ``||A||_2`` and an upper bound on the numerical radius (``||A||`` will do).
    rtol : float
        Target ``upper/lower - 1``.
    lower, zbest : float, complex or None
        A lower bound known beforehand, and where it is attained.
    w_refine : callable, optional
        ``w_refine() -> float``: a tighter upper bound on ``w(A)``, called once when
        the far-field radius from `w_up` lies beyond ``max(2, 2 ||A|| + 1)`` (the
        first extent of the cells).
    max_vertices : int, optional
        Vertex budget; by default (and at most) ``max(125 n, 2e6/n^2)`` within
        ``[16000, 200000]`` (:data:`VERTICES_PER_N`...). Beyond it the result is not certified.
    """
    n = T.shape[0]
    n_budget = int(min(MAX_VERTICES, max(MIN_VERTICES, VERTICES_PER_N * n, VERTICES_N2 / n**2)))
    max_vertices = n_budget if max_vertices is None else min(n_budget, int(max_vertices))
    hot_history: list[int] = []
    half = not np.iscomplexobj(a)
    tight = float(np.clip(1e-3 * rtol, 1e-12, 1e-9))
    loose = max(tight, TOL_LOOSE)
    sig = _Sigma(T, R_real, normT, tight)
    if sig.dense:
        loose = tight  # LAPACK: no tolerance, nothing to tighten
    gamma = lower * (1 + 0.9 * rtol)
    floor_abs = 10 * n * _EPS  # the solves' backward error, times ||A|| + |z|

    def far_radius(g: float, w: float) -> float:
        return math.inf if g <= 1 else (g * w - 1) / (g - 1)

    def lattice(reach: float):
        h0 = 2.0 ** math.floor(math.log2(2 * reach / COARSE))
        m0 = int(math.ceil(reach / h0))
        ii, jj = np.meshgrid(np.arange(-m0, m0), np.arange(0 if half else -m0, m0))
        return h0 / 2.0**48, ii.ravel().astype(np.int64) << 48, jj.ravel().astype(np.int64) << 48

    # the search needs a first extent before any lower bound: where f <= (r - 1)/(r - w) < 2
    reach = max(2.0, 2 * w_up + 1) if lower <= 1 else far_radius(gamma, w_up)
    R = far_radius(gamma, w_up)
    if not math.isfinite(reach) or reach > 1e6 * max(1.0, normT):
        return CellsResult(False, lower, zbest, math.inf, 0, 0, 0, 0, "far-field radius too large")
    unit, cx, cy = lattice(reach)
    lev = np.zeros(cx.size, dtype=np.int64)  # side = h0 / 2^lev
    hot = np.zeros(cx.size, dtype=bool)  # parent close to gamma: new vertices at the tight tolerance
    # per vertex: an index into the arrays of the store
    index: dict[tuple[int, int], int] = {}
    store = {"raw": np.empty(1024), "tol": np.empty(1024), "absz": np.empty(1024), "size": 0}
    key_of: list[tuple[int, int]] = []  # the vertex of each index
    nvert = ncells = rounds = 0
    stopped = ""
    certified = False
    refined_w = w_refine is None

    def compute(klist: list, tol: float) -> tuple[np.ndarray, np.ndarray]:
        """Values at the vertices `klist` to `tol` (stored)."""
        z = np.array([complex(k[0] * unit, k[1] * unit) for k in klist])
        sig.tol = tol
        sv = sig.values(z)
        pos = np.empty(len(klist), dtype=np.int64)
        for c, k in enumerate(klist):
            at = index.get(k)
            if at is None:
                at = index[k] = store["size"]
                store["size"] += 1
                key_of.append(k)
            pos[c] = at
        if store["size"] > store["raw"].size:
            for name in ("raw", "tol", "absz"):
                grown = np.empty(2 * store["size"])
                grown[: store[name].size] = store[name]
                store[name] = grown
        store["raw"][pos], store["tol"][pos], store["absz"][pos] = sv, tol, np.abs(z)
        return z, sv

    def corner_values(idx: list[np.ndarray], assume_tight: bool = False) -> list[np.ndarray]:
        """Lowered ``sigma_min^2`` at the corners (vertex indices `idx`, one array per corner)."""
        out = []
        for ix in idx:
            t_ = tight if assume_tight else store["tol"][ix]
            rel = 0.0 if sig.dense else _rel_margin(t_)
            lo = np.maximum(store["raw"][ix] * (1 - rel) - floor_abs * (normT + store["absz"][ix]), 0.0)
            out.append(lo * lo)
        return out

    while True:
        side = np.left_shift(np.int64(1), 48 - lev).astype(np.int64)
        x0 = cx.astype(np.float64) * unit
        y0 = cy.astype(np.float64) * unit
        h = side.astype(np.float64) * unit
        # drop squares inside the unit disc or beyond the far field
        far = np.max(
            [np.hypot(p, q) for p, q in ((x0, y0), (x0 + h, y0), (x0 + h, y0 + h), (x0, y0 + h))], axis=0
        )
        near = np.hypot(np.clip(0.0, x0, x0 + h), np.clip(0.0, y0, y0 + h))
        keep = (far > 1) & (near < R)
        cx, cy, lev, side, hot = cx[keep], cy[keep], lev[keep], side[keep], hot[keep]
        x0, y0, h = x0[keep], y0[keep], h[keep]
        if cx.size == 0:
            certified = True
            break
        ncells += cx.size
        keys = [
            list(zip((cx + dx * side).tolist(), (cy + dy * side).tolist()))
            for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))
        ]
        new: dict[tuple[int, int], bool] = {}  # new vertex: tight from the start (next to the maximum)
        for corner in keys:
            for q, key in enumerate(corner):
                if key not in index:
                    new[key] = new.get(key, False) or bool(hot[q])
        if new:
            if nvert + len(new) > max_vertices:
                stopped = f"the cells would need more than {max_vertices} sigma_min values"
                break
            zs, ss = [], []
            for want_tight in (False, True):
                klist = [k for k, v in new.items() if v == want_tight]
                if klist:
                    z, sv = compute(klist, tight if want_tight else loose)
                    zs.append(z)
                    ss.append(sv)
            z, sv = np.concatenate(zs), np.concatenate(ss)
            nvert += z.size
            r = np.abs(z)
            with np.errstate(divide="ignore", invalid="ignore"):
                fz = np.where(r > 1, (r - 1) / sv, -np.inf)
            best = int(np.argmax(fz))
            if fz[best] > lower:
                lower, zbest = float(fz[best]), complex(z[best])
                gamma = max(gamma, lower * (1 + 0.9 * rtol))
                zb = abs(zbest)
                sb = (zb - 1) / lower
                if floor_abs * (normT + zb) + 2 * tight * sb > 0.2 * rtol * sb:
                    stopped = (
                        f"sigma_min(zI - A) = {sb:.3g} at the best point is too close to the vertex "
                        "values' rounding for cells to resolve rtol"
                    )
                    break
            if not refined_w and far_radius(gamma, w_up) > max(2.0, 2 * normT + 1):
                w_up = min(w_up, float(w_refine()))
                refined_w = True
            R = min(R, far_radius(gamma, w_up))
            if rounds == 0 and R > reach * (1 + 1e-12):
                # the first extent was too small for the far field of this gamma: start again wider
                if R > 1e6 * max(1.0, normT):
                    stopped = "far-field radius too large (K too close to 1 for the cells)"
                    break
                reach = R
                unit, cx, cy = lattice(reach)
                lev = np.zeros(cx.size, dtype=np.int64)
                hot = np.zeros(cx.size, dtype=bool)
                index.clear()
                key_of.clear()
                store["size"] = 0
                rounds += 1
                continue
        idx = [np.fromiter((index[k] for k in corner), dtype=np.int64, count=len(corner)) for corner in keys]
        ok = cells_pass(x0, y0, h, corner_values(idx), gamma)
        if loose > tight and not np.all(ok):
            # failed cells that the tight tolerance would pass: tighten their loose vertices and
            # test them again
            redo = np.flatnonzero(~ok)
            sub = [ix[redo] for ix in idx]
            again = cells_pass(x0[redo], y0[redo], h[redo], corner_values(sub, assume_tight=True), gamma)
            if np.any(again):
                cand = np.unique(np.concatenate([ix[again] for ix in sub]))
                cand = cand[store["tol"][cand] > tight]
                if cand.size:
                    if nvert + cand.size > max_vertices:
                        stopped = f"the cells would need more than {max_vertices} sigma_min values"
                        break
                    klist = [key_of[v] for v in cand.tolist()]
                    compute(klist, tight)
                    nvert += cand.size  # computed again: counted again
                ok[redo] = cells_pass(x0[redo], y0[redo], h[redo], corner_values(sub), gamma)
        rounds += 1
        bad = ~ok
        nbad = int(bad.sum())
        if nbad == 0:
            certified = True
            break
        # children of a square whose corners come close to gamma are computed tight from the start
        fmax = np.zeros(nbad)
        for ix in idx:
            r_ = store["absz"][ix[bad]]
            with np.errstate(divide="ignore", invalid="ignore"):
                fmax = np.maximum(fmax, np.where(r_ > 1, (r_ - 1) / store["raw"][ix[bad]], 0.0))
        hot = fmax >= HOT * gamma
        hot_history.append(int(hot.sum()))
        recent = hot_history[-(RIDGE_ROUNDS + 1) :]
        if (
            len(recent) == RIDGE_ROUNDS + 1
            and recent[-1] >= RIDGE_MIN
            and all(RIDGE_GROWTH * a <= b <= RIDGE_MAX * a for a, b in zip(recent[:-1], recent[1:]))
        ):
            stopped = (
                f"the failed cells next to the maximum grew from {recent[0]} to {recent[-1]} in "
                f"{RIDGE_ROUNDS} rounds: a ridge of f, not a peak"
            )
            break
        cx, cy, lev, side = cx[bad], cy[bad], lev[bad], side[bad]
        if np.any(lev >= 47) or np.any(h[bad] < H_MIN * np.maximum(1.0, np.hypot(x0[bad], y0[bad]))):
            stopped = "cells would shrink to the rounding level"
            break
        half_side = side >> 1
        cx = np.concatenate([cx, cx + half_side, cx, cx + half_side])
        cy = np.concatenate([cy, cy, cy + half_side, cy + half_side])
        lev = np.concatenate([lev + 1] * 4)
        hot = np.concatenate([hot] * 4)
    return CellsResult(
        certified=certified,
        lower=lower,
        z=zbest,
        upper=gamma if certified else math.inf,
        vertices=nvert,
        cells=ncells,
        rounds=rounds,
        lanczos_steps=sig.steps,
        stopped=stopped,
    )
