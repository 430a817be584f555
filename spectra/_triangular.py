"""Batched inverse Lanczos for ``sigma_min(zI - T)`` over many shifts ``z`` at once.

This is the numerical core of :func:`spectra.pseudospectra.pseudospectra`;
the grid, the bounds, the levels and the data object live there.

For an upper triangular ``T`` (a complex Schur factor) and ``m`` shifts
``z_j``, the smallest singular value of ``T_z = z I - T`` is
``theta_max^{-1/2}`` with ``theta_max`` the largest eigenvalue of
``(T_z^* T_z)^{-1} = T_z^{-1} T_z^{-*}`` (Trefethen, Acta Numerica 1999, sec. 5;
Wright & Trefethen, SISC 2001). One Lanczos step applies that operator: one
solve with ``T_z^*`` and one with ``T_z``.

``T_z`` differs from ``T`` only on its diagonal, so the off-diagonal blocks are
shared by every shift. :class:`ShiftedTriangular` solves for all ``m`` shifts
at once with a recursive blocked substitution (Golub & Van Loan, 4th ed.,
sec. 3.1.4): the off-diagonal block updates are ordinary matrix-matrix
products ``X[top] += T[top, bottom] @ X[bottom]`` over all columns (points);
only the small leaf blocks are done row by row, vectorised over the points.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.linalg.blas import zgemm

__all__ = ["ShiftedTriangular", "inverse_lanczos", "top_ritz_value"]

_EPS = np.finfo(np.float64).eps


class ShiftedTriangular:
    """Solve ``(z_j I - T) x_j = b_j`` and ``(z_j I - T)^* x_j = b_j`` for many ``z_j``.

    Parameters
    ----------
    T : (n, n) array_like, complex
        Upper triangular matrix (only the upper triangle is read).
    leaf : int
        Size of the diagonal blocks solved row by row; larger blocks are
        split in halves whose coupling is one matrix-matrix product.

    Notes
    -----
    Right-hand sides are the columns of an ``(n, m)`` C-ordered complex128
    array, overwritten in place. ``dinv[i, j] = 1 / (z_j - T[i, i])`` is passed
    in by the caller (computed once per batch of shifts).
    Flop count per solve: ``4 n^2`` real flops per column (complex
    multiply-add = 8 real flops, ``n^2/2`` of them).
    """

    def __init__(self, T: np.ndarray, *, leaf: int = 16) -> None:
        T = np.triu(np.asarray(T, dtype=np.complex128))
        self.n = T.shape[0]
        self.T = np.ascontiguousarray(T)
        self.TH = np.ascontiguousarray(T.conj().T)
        self.diag = np.diag(T).copy()
        self.leaf = max(1, int(leaf))
        # off-diagonal blocks of the recursion, stored for in-place BLAS zgemm on X.T
        # (X is C-ordered (n, m), so X.T is Fortran-ordered and its column ranges are contiguous)
        self._blocks: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._collect(0, self.n)

    def _collect(self, s: int, e: int) -> None:
        if e - s <= self.leaf:
            return
        mid = self._split(s, e)
        top_right = self.T[s:mid, mid:e]
        # upper: X.T[:, s:mid] += X.T[:, mid:e] @ T[s:mid, mid:e].T
        # lower: X.T[:, mid:e] += X.T[:, s:mid] @ conj(T[s:mid, mid:e])
        self._blocks[(s, mid, e)] = (np.asfortranarray(top_right.T), np.asfortranarray(top_right.conj()))
        self._collect(s, mid)
        self._collect(mid, e)

    def solve(self, X: np.ndarray, dinv: np.ndarray) -> None:
        """Overwrite ``X[:, j]`` with ``(z_j I - T)^{-1} X[:, j]`` (back substitution)."""
        self._upper(X, dinv, 0, self.n)

    def solve_adjoint(self, X: np.ndarray, dinv_conj: np.ndarray) -> None:
        """Overwrite ``X[:, j]`` with ``(z_j I - T)^{-*} X[:, j]`` (forward substitution).

        `dinv_conj` is ``conj(dinv)``, i.e. ``1 / (conj(z_j) - conj(T[i, i]))``.
        """
        self._lower(X, dinv_conj, 0, self.n)

    def _upper(self, X: np.ndarray, dinv: np.ndarray, s: int, e: int) -> None:
        T = self.T
        if e - s <= self.leaf:
            buf = np.empty(X.shape[1], dtype=np.complex128)
            for i in range(e - 1, s - 1, -1):
                if i + 1 < e:
                    np.dot(T[i, i + 1 : e], X[i + 1 : e], out=buf)
                    X[i] += buf
                X[i] *= dinv[i]
            return
        mid = self._split(s, e)
        self._upper(X, dinv, mid, e)
        _gemm_update(X, mid, e, s, mid, self._blocks[(s, mid, e)][0], T[s:mid, mid:e])
        self._upper(X, dinv, s, mid)

    def _lower(self, X: np.ndarray, dinvc: np.ndarray, s: int, e: int) -> None:
        TH = self.TH
        if e - s <= self.leaf:
            buf = np.empty(X.shape[1], dtype=np.complex128)
            for i in range(s, e):
                if i > s:
                    np.dot(TH[i, s:i], X[s:i], out=buf)
                    X[i] += buf
                X[i] *= dinvc[i]
            return
        mid = self._split(s, e)
        self._lower(X, dinvc, s, mid)
        _gemm_update(X, s, mid, mid, e, self._blocks[(s, mid, e)][1], TH[mid:e, s:mid])
        self._lower(X, dinvc, mid, e)

    def _split(self, s: int, e: int) -> int:
        if e - s > 2 * self.leaf:
            half = (e - s) // 2
            return s + max(self.leaf, (half // self.leaf) * self.leaf)
        return s + (e - s) // 2


def _gemm_update(X: np.ndarray, r0: int, r1: int, d0: int, d1: int, BT: np.ndarray, B: np.ndarray) -> None:
    """``X[d0:d1] += B @ X[r0:r1]`` with ``BT = B.T`` Fortran-ordered: one in-place zgemm."""
    if X.flags.c_contiguous:
        XT = X.T
        out = zgemm(1.0, XT[:, r0:r1], BT, beta=1.0, c=XT[:, d0:d1], overwrite_c=1)
        if not np.shares_memory(out, X):  # pragma: no cover - f2py made a copy after all
            XT[:, d0:d1] = out
    else:
        X[d0:d1] += B @ X[r0:r1]


def top_ritz_value(
    alpha: np.ndarray,
    beta: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    guess: np.ndarray | None = None,
    rtol: float = 1e-14,
) -> np.ndarray:
    """Largest eigenvalue of each symmetric tridiagonal ``tridiag(beta, alpha, beta)``.

    Newton's method on the characteristic polynomial ``p(l) = det(l I - T_k)``
    started to the right of its largest root: ``p`` is increasing and convex
    there (all roots real), so the iterates decrease monotonically to the root
    (Wilkinson, *The Algebraic Eigenvalue Problem*, ch. 7). ``p'/p`` is
    accumulated from the LDL^T pivots ``r_i = p_i / p_{i-1}``
    (``r_i = l - alpha_i - beta_{i-1}^2 / r_{i-1}``), which never overflow.

    Parameters
    ----------
    alpha : (k, m) ndarray, float
        Diagonals, one tridiagonal matrix per column.
    beta : (k - 1, m) ndarray, float
        Off-diagonals.
    lower : (m,) ndarray
        A lower bound of the largest eigenvalue (used as a safeguard).
    upper : (m,) ndarray
        An upper bound of the largest eigenvalue (the starting point).
    guess : (m,) ndarray, optional
        A likely (not guaranteed) upper bound close to the root, tried first;
        where it is below the root, Newton starts from `upper` instead.
    rtol : float
        Relative accuracy wanted (the iteration stops when ``k * step`` is
        below ``rtol`` times the iterate, which bounds the error from above).

    Returns
    -------
    (m,) ndarray
        The largest eigenvalues, to a relative `rtol` (from above, up to
        rounding).
    """
    k = alpha.shape[0]
    hi = upper.astype(np.float64, copy=True)
    lo = np.minimum(lower.astype(np.float64, copy=True), hi)
    lam = hi.copy() if guess is None else np.clip(guess, lo, hi)
    b2 = beta * beta
    active = np.ones(lam.shape, dtype=bool)
    idx = np.arange(lam.size)
    with np.errstate(all="ignore"):
        return _newton_from_above(k, alpha, b2, idx, lam, hi, lo, active, rtol, guess is not None)


def _newton_from_above(k, a, bb, idx, lam, hi, lo, active, rtol, guessed):
    for it in range(100):
        la = lam[idx]
        # r_i = p_i/p_{i-1};  u_i = r_i'/r_i;  p'/p = sum_i u_i;  all r_i > 0 iff la > root
        r = la - a[0]
        u = 1.0 / r
        S = u.copy()
        rmin = r.copy()
        for i in range(1, k):
            g = bb[i - 1] / r
            r = la - a[i]
            r -= g
            g *= u
            g += 1.0
            u = np.divide(g, r, out=g)
            S += u
            np.minimum(rmin, r, out=rmin)
        step = 1.0 / S
        valid = (rmin > 0) & np.isfinite(step)
        h = np.where(valid, la, hi[idx])
        l_ = np.where(valid, lo[idx], np.maximum(lo[idx], la))
        hi[idx], lo[idx] = h, l_
        # a guess below the root restarts from the safe upper bound; later failures bisect
        fallback = h if (it == 0 and guessed) else 0.5 * (l_ + h)
        new = np.where(valid, la - step, fallback)
        new = np.where(valid & ~(new > l_), 0.5 * (l_ + h), new)
        # from the right, la - root <= k * step (p'/p >= 1/(la - root), <= k/(la - root))
        done = (valid & (k * step <= rtol * la)) | (h - l_ <= 4 * _EPS * h)
        lam[idx] = np.where(done & ~valid, h, new)
        active[idx[done]] = False
        if np.all(done):
            break
        if np.any(done):
            keep = ~done
            idx = idx[keep]
            a, bb = a[:, keep], bb[:, keep]
    return lam


def _residual_ok(
    alphas: list[np.ndarray], betas: list[np.ndarray], beta_k: np.ndarray, idx: np.ndarray, tol: float
) -> np.ndarray:
    """Whether the top Ritz value of each chosen column is within `tol` (relative) of an eigenvalue.

    For the Ritz pair ``(theta_1, y)`` of ``T_k`` the residual is
    ``r = beta_k |y_k|`` and some eigenvalue lies within ``min(r, r^2/gap)``,
    ``gap = theta_1 - theta_2`` (Kato-Temple; Parlett, *The Symmetric Eigenvalue
    Problem*, thm. 11.7.1 and sec. 13.2); Ritz values within `tol` of ``theta_1``
    are treated as one cluster (residual norm of the cluster, gap to the rest).
    """
    k = len(alphas)
    a = np.stack([x[idx] for x in alphas], axis=1)
    T = np.zeros((idx.size, k, k))
    d = np.arange(k)
    T[:, d, d] = a
    if k > 1:
        b = np.stack([x[idx] for x in betas[: k - 1]], axis=1)
        T[:, d[:-1], d[1:]] = b
        T[:, d[1:], d[:-1]] = b
    w, U = np.linalg.eigh(T)
    th1 = w[:, -1:]
    # Ritz values within `tol` of the top one form a cluster (ghost copies of a converged value
    # appear without reorthogonalisation): use the cluster's residual and its gap to the rest
    cluster = th1 - w <= tol * th1
    r2 = (beta_k[idx, None] * np.abs(U[:, -1, :])) ** 2
    r = np.sqrt(np.sum(np.where(cluster, r2, 0.0), axis=1))
    below = np.max(np.where(cluster, -np.inf, w), axis=1)
    gap = th1[:, 0] - below
    err = np.minimum(r, r * r / np.maximum(gap, np.finfo(float).tiny))
    return err <= tol * th1[:, 0]


def inverse_lanczos(
    solver: ShiftedTriangular,
    z: np.ndarray,
    v0: np.ndarray,
    *,
    tol: float,
    maxiter: int,
    on_done: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sigma_min(z_j I - T)`` for every shift by Lanczos on ``(T_z^* T_z)^{-1}``.

    Lanczos (Golub & Van Loan, 4th ed., alg. 10.1.1, without
    reorthogonalisation, which the extreme Ritz value does not need: Paige)
    from the shared start vector `v0`; ``sigma = theta^{-1/2}`` with ``theta``
    the top Ritz value. A point stops when the relative change ``c_k`` of
    ``theta`` and the extrapolated remaining error ``c_k rho/(1 - rho)``,
    ``rho = c_k / c_{k-1}``, are both at most ``tol / 5`` (``sigma`` error
    about half of ``theta``'s). Converged points leave the batch.

    Parameters
    ----------
    solver : ShiftedTriangular
        The factor ``T``.
    z : (m,) ndarray, complex
        Shifts; none may equal a diagonal entry of ``T`` exactly.
    v0 : (n,) ndarray, complex
        Start vector (normalised here).
    tol : float
        Relative accuracy wanted in ``sigma``.
    maxiter : int
        Most Lanczos steps per point.
    on_done : callable, optional
        Called with the number of points that just converged.

    Returns
    -------
    sigma : (m,) ndarray
        Upper estimates of ``sigma_min`` (NaN where not converged).
    converged : (m,) ndarray of bool
        False where `maxiter` was reached or the solves overflowed (``sigma_min``
        below ``~1e-150``): the caller recomputes those densely.
    steps : (m,) ndarray of int
        Lanczos steps used per point.
    """
    n = solver.n
    m = z.shape[0]
    sigma = np.full(m, np.nan)
    converged = np.zeros(m, dtype=bool)
    steps = np.zeros(m, dtype=np.int64)
    if m == 0:
        return sigma, converged, steps
    tol_theta = tol / 5.0
    ritz_rtol = float(np.clip(tol_theta * 1e-3, 4 * _EPS, 1e-12))
    v0 = np.asarray(v0, dtype=np.complex128)
    v0 = v0 / np.linalg.norm(v0)

    ids = np.arange(m)  # original index of each column; -1 once it has finished
    dinv = 1.0 / (z[None, :] - solver.diag[:, None])
    dinvc = np.conj(dinv)
    q = np.repeat(v0[:, None], m, axis=1)
    q_prev = np.zeros_like(q)
    w = q.copy()  # the vector the next step's solves overwrite
    chunk = max(64, 2**16 // n)  # columns per chunk of the vector updates: ~1 MB per array
    tmp = np.empty((n, chunk), dtype=np.complex128)
    beta_prev = np.zeros(m)
    alphas: list[np.ndarray] = []
    betas: list[np.ndarray] = []
    scale = np.ones(m)
    theta = np.zeros(m)  # top Ritz value, divided by `scale`
    change_prev = np.full(m, np.inf)
    with np.errstate(all="ignore"):
        for k in range(1, maxiter + 1):
            solver.solve_adjoint(w, dinvc)
            solver.solve(w, dinv)
            # three-term recurrence, chunk by chunk of columns so that each chunk stays in cache
            width = w.shape[1]
            alpha = np.empty(width)
            beta = np.empty(width)
            for c in range(0, width, chunk):
                sl = slice(c, min(c + chunk, width))
                qc, wc = q[:, sl], w[:, sl]
                t = tmp[:, : wc.shape[1]]
                # Re(q^H w) and ||w||^2 per column on the real views (2-D einsum is fastest)
                wv = wc.view(np.float64)
                r = np.einsum("ij,ij->j", qc.view(np.float64), wv)
                a = r[0::2] + r[1::2]
                alpha[sl] = a
                np.multiply(qc, a, out=t)
                wc -= t
                if k > 1:
                    np.multiply(q_prev[:, sl], beta_prev[sl], out=t)
                    wc -= t
                r = np.einsum("ij,ij->j", wv, wv)
                beta[sl] = np.sqrt(r[0::2] + r[1::2])
            if k == 1:
                scale = alpha.copy()
            a_s = alpha / scale
            b_s = beta / scale
            alphas.append(a_s)
            if k == 1:
                theta_new = a_s.copy()
            else:
                # Ritz bound: top eig of [[theta, beta], [beta, alpha]] (arrowhead argument)
                bl = betas[-1]
                half = 0.5 * (theta - a_s)
                upper = 0.5 * (theta + a_s) + np.sqrt(half * half + bl * bl)
                upper *= 1.0 + 1e-10
                # likely bound: the last change again, doubled (Lanczos converges geometrically)
                guess = theta * (1.0 + 2.0 * np.minimum(change_prev, 1.0)) if k > 2 else None
                theta_new = top_ritz_value(
                    np.stack(alphas), np.stack(betas), theta, upper, guess=guess, rtol=ritz_rtol
                )
            betas.append(b_s)
            live = ids >= 0
            finite = np.isfinite(theta_new) & np.isfinite(beta) & (scale > 0) & np.isfinite(scale)
            change = np.where(theta_new > 0, (theta_new - theta) / theta_new, np.inf)
            change = np.maximum(change, 0.0)
            rho = np.where(change_prev > 0, change / change_prev, 0.0)
            extrap = np.where(rho < 1, change * rho / np.maximum(1 - rho, 1e-300), np.inf)
            breakdown = b_s <= 64 * _EPS * np.maximum(theta_new, 1.0)
            cand = finite & live & (k >= 2) & (change <= tol_theta) & (extrap <= tol_theta) & ~breakdown
            if np.any(cand):
                # a small change can be a plateau (clustered top eigenvalues): confirm with the
                # Ritz residual r = beta_k |s_k| and gap, error <= min(r, r^2/gap) (Parlett ch. 11)
                idx = np.flatnonzero(cand)
                cand[idx[~_residual_ok(alphas, betas, b_s, idx, tol_theta)]] = False
            conv = finite & live & (cand | breakdown)
            fail = ~finite | (k == maxiter)
            leave = (conv | fail) & live
            theta = theta_new
            change_prev = change
            if np.any(leave):
                gi = ids[leave]
                ok = conv[leave]
                sigma[gi[ok]] = 1.0 / np.sqrt(theta[conv] * scale[conv])
                converged[gi[ok]] = True
                steps[gi] = k
                ids[leave] = -1
                if on_done is not None and np.any(ok):
                    on_done(int(ok.sum()))
            live = ids >= 0
            nlive = int(live.sum())
            if nlive == 0:
                break
            beta_prev = beta
            if nlive <= 0.8 * ids.size:  # drop finished columns (copies: not every step)
                cols = np.flatnonzero(live)
                ids = ids[cols]
                alphas = [a[cols] for a in alphas]
                betas = [b[cols] for b in betas]
                scale, theta = scale[cols], theta[cols]
                change_prev, beta_prev = change_prev[cols], beta_prev[cols]
                # np.compress gathers columns ~10x faster than fancy indexing
                q, w = np.compress(live, w, axis=1), np.compress(live, q, axis=1)
                dinv, dinvc = np.compress(live, dinv, axis=1), np.compress(live, dinvc, axis=1)
                q /= np.where(beta_prev > 0, beta_prev, 1.0)
                q_prev = w
                w = q.copy()
            else:
                # q_prev <- q, q <- w / beta, w <- copy of the new q (chunked, in cache)
                inv = 1.0 / np.where(beta > 0, beta, 1.0)
                spare = q_prev
                for c in range(0, q.shape[1], chunk):
                    sl = slice(c, min(c + chunk, q.shape[1]))
                    wc = w[:, sl]
                    wc *= inv[sl]
                    spare[:, sl] = wc
                q_prev, q, w = q, w, spare
    return sigma, converged, steps
