"""Batched inverse Lanczos for ``sigma_min(z_j I - S)`` with per-point start vectors.

For each shift ``z_j`` the largest eigenvalue ``theta`` of
``(T_z^* T_z)^{-1}``, ``T_z = z_j I - S``, gives ``sigma_min = theta^{-1/2}``
(Trefethen, Acta Numerica 1999, sec. 5; Wright & Trefethen, SISC 2001); one
Lanczos step applies that operator with one adjoint solve and one solve
(:mod:`spectra._shifted`), for all the points of a batch at once.

Stopping rule (per point, every step): the top Ritz value ``theta_1`` of the
Lanczos tridiagonal ``T_k`` (Newton from above, :func:`top_ritz_value`), its
Ritz vector ``y`` and residual ``r = beta_k |y_k|``; some eigenvalue of the
operator lies within ``min(r, r^2/gap)`` of ``theta_1`` (Kato-Temple;
Parlett, *The Symmetric Eigenvalue Problem*, thm. 11.7.1), and the point stops
when that is at most ``tol/2`` relative (``sigma``'s relative error is about half
``theta``'s). ``gap`` is ``theta_1`` minus an upper bound of the second Ritz
value (Newton from above on the deflated characteristic polynomial, started at
``theta_1(T_{k-1})``, which bounds it by interlacing), so the estimate is never
smaller than the one with the exact Ritz gap.

The converged Ritz vectors are returned too: the caller starts the next,
neighbouring points from them (a warm start saves about a third of the steps).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from spectra import _kernels
from spectra._triangular import _residual_ok, top_ritz_value

__all__ = ["lanczos_sigma_min"]

_EPS = np.finfo(np.float64).eps


def _colnorm2(X: np.ndarray) -> np.ndarray:
    """Squared 2-norms of the columns of a C-ordered complex array."""
    v = X.view(np.float64)
    r = np.einsum("ij,ij->j", v, v)
    return r[0::2] + r[1::2]


def _ritz_check(
    a: np.ndarray,
    b: np.ndarray,
    beta_k: np.ndarray,
    theta: np.ndarray,
    theta_prev: np.ndarray,
    rtol: float = np.inf,
):
    """Kato-Temple error bound of the top Ritz pair, and the pair's eigenvector.

    Parameters
    ----------
    a : (k, p) ndarray
        Diagonals of the tridiagonals (one per column).
    b : (k - 1, p) ndarray
        Off-diagonals.
    beta_k : (p,) ndarray
        The next off-diagonal (the residual scale).
    theta : (p,) ndarray
        Top eigenvalues of the tridiagonals (from above, to ~1e-14).
    theta_prev : (p,) ndarray
        Top eigenvalues of the leading ``(k-1) x (k-1)`` blocks.
    rtol : float
        The caller's acceptance level: the gap is computed only where
        ``r^2/theta <= rtol theta``, since ``gap <= theta`` means the test
        cannot pass elsewhere (``err`` is then ``r``).

    Returns
    -------
    err : (p,) ndarray
        ``min(r, r^2/gap)``; inf where the computation is not valid.
    y : (k, p) ndarray
        Normalised top eigenvectors.
    gap : (p,) ndarray
        The gap used (0 where no second Ritz value was separated from the top one).
    """
    k, p = a.shape
    # pivots of l I - T_k: r_i = l - a_i - b_{i-1}^2 / r_{i-1}, positive for i < k when l is
    # above theta_1(T_{k-1}); l = theta nudged up by rounding (theta_1(T_k) = theta_1(T_{k-1})
    # to rounding once converged), an inverse-iteration shift for the eigenvector
    lam = theta * (1.0 + 64 * _EPS)
    piv = np.empty((k, p))
    r = lam - a[0]
    piv[0] = r
    for i in range(1, k):
        r = lam - a[i] - b[i - 1] ** 2 / piv[i - 1]
        piv[i] = r
    ok = np.all(piv[: k - 1] > 0, axis=0) if k > 1 else np.ones(p, dtype=bool)
    # (theta I - T) y = 0 with y_k = 1: y_i = b_i y_{i+1} / r_i (all positive)
    y = np.empty((k, p))
    y[k - 1] = 1.0
    for i in range(k - 2, -1, -1):
        y[i] = b[i] * y[i + 1] / piv[i]
    nrm = np.sqrt(np.sum(y * y, axis=0))
    y /= nrm
    res = beta_k * y[k - 1]
    # upper bound of the second Ritz value: Laguerre's method on p(l)/(l - theta), from above
    gap = np.zeros(p)
    if k > 1:
        hope = np.flatnonzero(res * res <= rtol * theta * theta)
        if hope.size:
            gap[hope] = _second_ritz_gap(a[:, hope], b[:, hope], theta[hope], theta_prev[hope])
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.minimum(res, np.where(gap > 0, res * res / gap, np.inf))
    err = np.where(ok & np.isfinite(err), err, np.inf)
    return err, y, gap


def _second_ritz_gap(a: np.ndarray, b: np.ndarray, theta: np.ndarray, theta_prev: np.ndarray) -> np.ndarray:
    """``theta`` minus an upper bound of the second eigenvalue of each tridiagonal (0 if none found).

    Laguerre's method on the deflated characteristic polynomial
    ``f(l) = p(l)/(l - theta)``, whose roots are all real, converges
    monotonically from above its largest root (Wilkinson, *The Algebraic
    Eigenvalue Problem*, ch. 7, sec. 9). It starts at ``theta_1(T_{k-1})``
    (an upper bound by interlacing), moved at least ``1e-3 theta`` below
    ``theta`` so that removing the known root does not cancel (a smaller
    gap is reported as 0, and the caller uses the residual alone); the result is
    accepted only where a Sturm count (negative pivots of ``l I - T``)
    confirms that exactly one eigenvalue lies above it.
    """
    k, p = a.shape
    bb = b * b
    if _kernels.enabled():
        return _kernels.second_ritz_gap(
            np.ascontiguousarray(a, dtype=np.float64), np.ascontiguousarray(bb), theta, theta_prev
        )
    N = k - 1
    lam = np.minimum(theta_prev, theta * (1.0 - 1e-3))
    with np.errstate(all="ignore"):
        for _ in range(3):
            r = lam - a[0]
            rp = np.ones(p)
            rpp = np.zeros(p)
            G = rp / r
            Hs = -G * G
            for i in range(1, k):
                g = bb[i - 1] / r
                r_new = lam - a[i] - g
                rpp = bb[i - 1] * (rpp * r - 2.0 * rp * rp) / (r * r * r)
                rp = 1.0 + g * rp / r
                r = r_new
                u = rp / r
                G += u
                Hs += rpp / r - u * u
            d = lam - theta
            Gf = G - 1.0 / d
            Hf = -Hs - 1.0 / (d * d)
            disc = np.sqrt(np.maximum((N - 1) * (N * Hf - Gf * Gf), 0.0))
            step = N / (Gf + disc)
            lam = np.where(np.isfinite(step) & (step > 0), lam - step, lam)
        # the iterates decrease to the root and may land on it or, by rounding, just below:
        # step back up a little, then a Sturm count: exactly one eigenvalue above lam
        lam = lam + 1e-9 * theta
        r = lam - a[0]
        neg = (r < 0).astype(np.int64)
        for i in range(1, k):
            r = lam - a[i] - bb[i - 1] / r
            neg += r < 0
        gap = theta - lam
    return np.where((neg == 1) & np.isfinite(gap) & (gap > 0), gap, 0.0)


def _recurrence(q, w, q_prev, beta_prev, k, spare, tmp):
    """The three-term recurrence in numpy (the twin of :func:`spectra._kernels.lanczos_update`).

    alpha over whole columns, then the updates and the squared norms block of
    rows by block of rows (contiguous, and the products stay in cache); `w`
    becomes the next Lanczos vector and `spare` its copy for the next solves.
    """
    n, width = w.shape
    r = np.einsum("ij,ij->j", q.view(np.float64), w.view(np.float64))
    alpha = r[0::2] + r[1::2]
    b2 = np.zeros(2 * width)
    rows = tmp.shape[0]
    for r0 in range(0, n, rows):
        qb, wb = q[r0 : r0 + rows], w[r0 : r0 + rows]
        t = tmp[: qb.shape[0], :width]
        np.multiply(qb, alpha, out=t)
        wb -= t
        if k > 1:
            np.multiply(q_prev[r0 : r0 + rows], beta_prev, out=t)
            wb -= t
        wv = wb.view(np.float64)
        b2 += np.einsum("ij,ij->j", wv, wv)
    beta = np.sqrt(b2[0::2] + b2[1::2])
    w *= 1.0 / np.where(beta > 0, beta, 1.0)
    np.copyto(spare, w)
    return alpha, beta


def _ritz_vectors(ritz, hist, hist_pos, Y, K) -> None:
    """``ritz[:, p] = sum_{i < K[p]} Y[i, p] q_{i+1}(p)`` (normalised) from the single-precision history.

    Done once after the run, for every point with ``K[p] > 0``. ``hist[i]``
    holds ``q_{i+1}`` in the column layout of step ``i``; ``hist_pos[i][0]``
    maps a point to its column then.
    """
    kmax = int(K.max(initial=0))
    if kmax == 0:
        return
    colmap = np.stack([hist_pos[i][0] for i in range(kmax)])
    Y = np.ascontiguousarray(Y[:kmax])
    if _kernels.enabled():
        _kernels.ritz_vectors(hist, colmap, Y, K, ritz)
        return
    n, m = ritz.shape
    acc = np.zeros((n, m), dtype=np.complex64)
    for i in range(kmax):
        pts = np.flatnonzero(K > i)
        if pts.size:
            acc[:, pts] += hist[i][:, colmap[i, pts]] * Y[i, pts].astype(np.float32)
    acc = acc.astype(np.complex128)
    nrm = np.sqrt(_colnorm2(acc))
    good = (K > 0) & np.isfinite(nrm) & (nrm > 0)
    ritz[:, good] = acc[:, good] / nrm[good]


def lanczos_sigma_min(
    solver,
    z: np.ndarray,
    V0: np.ndarray,
    *,
    tol: float,
    maxiter: int,
    want_vectors: bool = False,
    history_cap: int = 48,
    min_live: int = 0,
    on_done: Callable[[int], None] | None = None,
):
    """``sigma_min(z_j I - S)`` for every shift, from per-point start vectors.

    Parameters
    ----------
    solver : ShiftedQuasiTriangular or ShiftedComplexTriangular
        The Schur factor ``S``.
    z : (m,) ndarray, complex
        Shifts; none may be an eigenvalue (within rounding).
    V0 : (n, m) ndarray, complex
        Start vectors (normalised here; must be non-zero).
    tol : float
        Relative accuracy wanted in ``sigma``.
    maxiter : int
        Most Lanczos steps per point.
    want_vectors : bool
        Also return the converged top Ritz vectors (the right singular
        vectors of ``T_z`` for ``sigma_min``), for warm starts.
    history_cap : int
        Lanczos vectors kept per point for the Ritz vectors (points still
        running after that many steps return none).
    min_live : int
        Stop early, once fewer than this many points are still iterating
        (each step has a fixed cost, so a handful of slow points is cheaper
        in the next batch); those points are returned as ``stopped``, with
        their current Ritz vectors to restart from.
    on_done : callable, optional
        Called with the number of points that just converged.

    Returns
    -------
    sigma : (m,) ndarray
        ``sigma_min`` (NaN where not converged).
    converged : (m,) ndarray of bool
        False where `maxiter` was reached or the solves overflowed; the caller
        recomputes those densely.
    steps : (m,) ndarray of int
        Lanczos steps per point.
    ritz : (n, m) ndarray or None
        Unit Ritz vectors (zero columns where not available), when `want_vectors`.
    stopped : (m,) ndarray of bool
        Points stopped early by `min_live` (not converged, not failed).
    """
    n = solver.n
    m = z.shape[0]
    sigma = np.full(m, np.nan)
    converged = np.zeros(m, dtype=bool)
    steps = np.zeros(m, dtype=np.int64)
    ritz = np.zeros((n, m), dtype=np.complex128) if want_vectors else None
    stopped = np.zeros(m, dtype=bool)
    if m == 0:
        return sigma, converged, steps, ritz, stopped
    tol_theta = 0.25 * tol
    cand_change = 1e4 * tol_theta
    ritz_rtol = float(np.clip(tol_theta * 1e-2, 4 * _EPS, 1e-10))

    sh = solver.prepare(z)
    q = np.array(V0, dtype=np.complex128, order="C", copy=True)
    q /= np.sqrt(_colnorm2(q))
    q_prev = np.zeros_like(q)
    w = q.copy()  # the vector the next step's solves overwrite: a copy of q
    spare = np.empty_like(q)
    tmp = np.empty((max(4, 2**14 // m), m), dtype=np.complex128)
    # Lanczos vectors for the Ritz vectors, in single precision (a warm start needs ~1e-4);
    # the vectors are formed after the run (Y: the Ritz coefficients, K: how many)
    cap = min(history_cap, maxiter)
    hist = np.empty((cap, n, m), dtype=np.complex64) if want_vectors else None
    Y = np.zeros((cap, m)) if want_vectors else None
    K = np.zeros(m, dtype=np.int64)
    ids = np.arange(m)
    beta_prev = np.zeros(m)
    alphas: list[np.ndarray] = []
    betas: list[np.ndarray] = []
    scale = np.ones(m)
    theta = np.zeros(m)
    change_prev = np.full(m, np.inf)
    hist_pos: list[np.ndarray] = []
    active = np.ones(m, dtype=bool)  # columns still iterating (finished ones linger until compressed)
    fast = _kernels.enabled()
    with np.errstate(all="ignore"):
        for k in range(1, maxiter + 1):
            store = want_vectors and k <= history_cap
            if store:
                if not hist_pos or hist_pos[-1][1] is not ids:
                    pos = np.full(m, -1, dtype=np.int64)
                    pos[ids] = np.arange(ids.size)
                    hist_pos.append((pos, ids))
                else:
                    hist_pos.append(hist_pos[-1])
            solver.solve_adjoint(w, sh)
            solver.solve(w, sh)
            # three-term recurrence (w becomes the next Lanczos vector, `spare` its copy for the
            # next solves); q into the history (a contiguous single-precision copy)
            if store:
                hist[k - 1, :, : q.shape[1]] = q
            if fast:
                alpha, beta = _kernels.lanczos_update(q, w, q_prev, beta_prev, k == 1, spare)
            else:
                alpha, beta = _recurrence(q, w, q_prev, beta_prev, k, spare, tmp)
            if k == 1:
                scale = alpha.copy()
            a_s = alpha / scale
            b_s = beta / scale
            alphas.append(a_s)
            if k == 1:
                theta_new = a_s.copy()
            else:
                bl = betas[-1]
                half = 0.5 * (theta - a_s)
                upper = (0.5 * (theta + a_s) + np.sqrt(half * half + bl * bl)) * (1.0 + 1e-10)
                # likely bound: the last change again, doubled (Lanczos converges geometrically)
                guess = theta * (1.0 + 2.0 * np.minimum(change_prev, 1.0)) if k > 2 else None
                theta_new = top_ritz_value(
                    np.stack(alphas), np.stack(betas), theta, upper, guess=guess, rtol=ritz_rtol
                )
            finite = active & np.isfinite(theta_new) & np.isfinite(beta) & (scale > 0) & np.isfinite(scale)
            change = np.maximum(np.where(theta_new > 0, (theta_new - theta) / theta_new, np.inf), 0.0)
            # the remaining error extrapolated from the last two changes (geometric convergence,
            # rate rho): guards the Kato-Temple test, whose Ritz gap can overestimate the true gap
            # in a cluster of slowly separating eigenvalues
            rho = np.where(change_prev > 0, change / change_prev, 0.0)
            extrap = np.where(rho < 1, change * rho / np.maximum(1 - rho, 1e-300), np.inf)
            breakdown = finite & (b_s <= 64 * _EPS * np.maximum(theta_new, 1.0))
            cand = finite & (k >= 3) & (change <= cand_change) & (extrap <= tol_theta) & ~breakdown
            conv = breakdown.copy()
            y_c = None
            idx_c = np.flatnonzero(cand | breakdown) if want_vectors else np.flatnonzero(cand)
            if idx_c.size:
                A_ = np.stack([x[idx_c] for x in alphas])
                B_ = np.stack([x[idx_c] for x in betas]) if k > 1 else np.zeros((0, idx_c.size))
                err, y_c, gap = _ritz_check(
                    A_, B_, b_s[idx_c], theta_new[idx_c], theta[idx_c], rtol=tol_theta
                )
                passed = err <= tol_theta * theta_new[idx_c]
                # no separated second Ritz value: a cluster at the top (e.g. a ghost copy of a
                # converged value, Lanczos without reorthogonalisation): cluster residual test
                clus = np.flatnonzero(~passed & (gap == 0) & cand[idx_c] & (k >= 3))
                if clus.size:
                    passed[clus] = _residual_ok(alphas, betas, b_s, idx_c[clus], tol_theta)
                conv[idx_c[passed & cand[idx_c]]] = True
            betas.append(b_s)
            fail = active & (~finite | ((k == maxiter) & ~conv))
            leave = conv | fail
            theta = theta_new
            change_prev = change
            if np.any(leave):
                gi = ids[leave]
                ok = conv[leave]
                sigma[gi[ok]] = 1.0 / np.sqrt(theta[conv] * scale[conv])
                converged[gi[ok]] = True
                steps[gi] = k
                if want_vectors and y_c is not None and k <= history_cap:
                    # Ritz vectors of the converged points: sum_i y_i q_i
                    sel = np.flatnonzero(conv[idx_c])
                    cols = idx_c[sel]
                    g = ids[cols]
                    Y[:k, g] = y_c[:, sel]
                    K[g] = k
                if on_done is not None and np.any(ok):
                    on_done(int(ok.sum()))
            active &= ~leave
            live = active
            nlive = int(np.count_nonzero(live))
            if nlive == 0:
                break
            if nlive < min_live and 2 <= k < maxiter:
                cols = np.flatnonzero(live)
                g = ids[cols]
                stopped[g] = True
                steps[g] = k
                if want_vectors and k <= history_cap:
                    _, y, _ = _ritz_check(
                        np.stack([x[cols] for x in alphas]),
                        np.stack([x[cols] for x in betas[: k - 1]]) if k > 1 else np.zeros((0, cols.size)),
                        betas[k - 1][cols],
                        theta[cols],
                        theta[cols],
                    )
                    Y[:k, g] = y
                    K[g] = k
                break
            if np.count_nonzero(live) <= 0.8 * ids.size:
                ids = ids[live]
                alphas = [x[live] for x in alphas]
                betas = [x[live] for x in betas]
                scale, theta, beta = scale[live], theta[live], beta[live]
                change_prev = change_prev[live]
                active = active[live]
                sh = sh.take(live)
                q_prev = np.compress(live, q, axis=1)
                q = np.compress(live, w, axis=1)
                w = q.copy()
                spare = np.empty_like(q)
            else:
                q_prev, q, w, spare = q, w, spare, q_prev
            beta_prev = beta
    if want_vectors:
        _ritz_vectors(ritz, hist, hist_pos, Y, K)
    return sigma, converged, steps, ritz, stopped
