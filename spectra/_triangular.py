"""Pieces of the first pseudospectra engine still in use: complex triangular solves, Ritz values.

:class:`ShiftedTriangular` (used by :mod:`spectra.kreiss` and mirrored by the
torch engine), :func:`top_ritz_value` and the cluster residual test
``_residual_ok`` (used by :mod:`spectra._lanczos`). The engine itself now
lives in :mod:`spectra._shifted` and :mod:`spectra._lanczos`.

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

import numpy as np
from scipy.linalg.blas import zgemm

from spectra import _kernels

__all__ = ["ShiftedTriangular", "top_ritz_value"]

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
    if _kernels.enabled():
        return _kernels.newton_top(
            np.ascontiguousarray(alpha, dtype=np.float64),
            np.ascontiguousarray(b2, dtype=np.float64),
            np.ascontiguousarray(lam),
            hi,
            lo,
            float(rtol),
            guess is not None,
        )
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
