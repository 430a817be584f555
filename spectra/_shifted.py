"""Solves with ``z_j I - S`` for many shifts ``z_j`` at once, ``S`` a (quasi-)triangular Schur factor.

The numerical core of the pseudospectra engine (:mod:`spectra._lanczos` runs
the Lanczos iteration on top of it; :mod:`spectra.pseudospectra` owns the grid).

``z I - S`` differs from ``S`` only on its diagonal, so the off-diagonal blocks
of a recursive blocked substitution (Golub & Van Loan, 4th ed., sec. 3.1.4) are
shared by every shift: ``X[top] += S[top, bottom] @ X[bottom]`` is one matrix
product over all the points (the columns of ``X``).

Two factors are supported:

* :class:`ShiftedQuasiTriangular` -- the real Schur form ``R`` of a real matrix
  (Golub & Van Loan, Thm 7.4.1: quasi-upper-triangular, 2x2 diagonal blocks for
  complex pairs). Its off-diagonal blocks are real, so each block update is a
  real ``dgemm`` on the float64 view of the complex right-hand sides: half the
  arithmetic of the complex Schur form.
* :class:`ShiftedComplexTriangular` -- the complex Schur form of a complex matrix.

Diagonal blocks ("leaves", at most ``leaf`` rows) are diagonalised once,
``S_L = V diag(lam) V^{-1}``, and then ``(z I - S_L)^{-1} = V diag(1/(z - lam))
V^{-1}``: two small matrix products and a scaling per leaf, for every shift at
once, instead of a row-by-row substitution. This is done only where the
eigenvector matrix is well conditioned (``cond(V) <= kappa_max``, default
1e3, and ``V diag(lam) V^{-1}`` reproduces ``S_L`` to ``1e-13``); otherwise the
leaf is split, down to single rows and single 2x2 blocks, which are solved
directly (a 2x2 block by its adjugate over ``(z - lam_1)(z - lam_2)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.linalg.blas import dgemm, zgemm

from spectra import _kernels

__all__ = ["Shifts", "ShiftedComplexTriangular", "ShiftedQuasiTriangular", "shifted_solver"]

_EPS = np.finfo(np.float64).eps


@dataclass
class Shifts:
    """Per-batch data for a set of shifts ``z`` (from :meth:`prepare`).

    ``dinv[i, j] = 1 / (z_j - lam_i)`` and ``dinv_adj[i, j] = 1 / (conj(z_j) - mu_i)``
    with ``lam``/``mu`` the eigenvalues a leaf uses for the solve and the adjoint solve.
    """

    z: np.ndarray
    dinv: np.ndarray
    dinv_adj: np.ndarray
    #: use the compiled kernels (:func:`spectra._kernels.enabled`, decided once per batch)
    fast: bool = False

    def take(self, mask: np.ndarray) -> Shifts:
        """The shifts of the columns where `mask` is true (copies)."""
        return Shifts(
            self.z[mask],
            np.compress(mask, self.dinv, axis=1),
            np.compress(mask, self.dinv_adj, axis=1),
            self.fast,
        )


class _Blocked:
    """Recursive blocked substitution over a tree of leaves (shared by both factors)."""

    S: np.ndarray
    n: int
    leaf: int
    kappa_max: float
    real: bool

    #: several threads share the solver: use GIL-free numpy products (see _gemm)
    threads = False

    def _init_tree(self) -> None:
        self.lam = np.zeros(self.n, dtype=np.complex128)  # eigenvalue used for row i (solve)
        self.mu = np.zeros(self.n, dtype=np.complex128)  # and for the adjoint solve
        self._node: dict[tuple[int, int], tuple] = {}
        self._reig: list[tuple[int, int]] = []
        self.leaf_kinds = {"eig": 0, "row": 0, "pair": 0}
        self._build(0, self.n)

    # ---- tree
    def _cut_ok(self, i: int) -> bool:
        """Whether the matrix may be split between rows ``i - 1`` and ``i`` (not inside a 2x2 block)."""
        return not (self.real and 0 < i < self.n and self.S[i, i - 1] != 0)

    def _split(self, s: int, e: int) -> int:
        if e - s > 2 * self.leaf:
            half = (e - s) // 2
            mid = s + max(self.leaf, (half // self.leaf) * self.leaf)
        else:
            mid = s + (e - s) // 2
        if not self._cut_ok(mid):
            mid += 1 if mid + 1 < e else -1
        return mid

    def _build(self, s: int, e: int) -> None:
        size = e - s
        if size == 1:
            self._node[(s, e)] = ("row",)
            self.lam[s] = self.mu[s] = self.S[s, s]
            if not self.real:
                self.mu[s] = np.conj(self.S[s, s])
            self.leaf_kinds["row"] += 1
            return
        if size <= self.leaf and self._try_eig(s, e):
            return
        if size == 2 and not self._cut_ok(s + 1):
            self._make_pair(s)
            return
        mid = self._split(s, e)
        B = self.S[s:mid, mid:e]
        # upper: X.T[:, s:mid] += X.T[:, mid:e] @ B.T;  lower: X.T[:, mid:e] += X.T[:, s:mid] @ B^H.T
        self._node[(s, e)] = ("split", mid, np.asfortranarray(B.T), np.asfortranarray(B.conj()))
        self._build(s, mid)
        self._build(mid, e)

    def _try_eig(self, s: int, e: int) -> bool:
        B = self.S[s:e, s:e]
        try:
            w, V = scipy.linalg.eig(B, check_finite=False)
            W = np.linalg.inv(V)
        except (np.linalg.LinAlgError, ValueError):
            return False
        if not (np.all(np.isfinite(V)) and np.all(np.isfinite(W))):
            return False
        kappa = np.linalg.norm(V, 2) * np.linalg.norm(W, 2)
        scale = max(np.linalg.norm(B, 2), np.finfo(float).tiny)
        recon = np.linalg.norm((V * w) @ W - B, 2)
        if not (kappa <= self.kappa_max and recon <= 1e-13 * scale):
            return False
        if self.real:
            return self._real_eig_leaf(s, e, w, V)
        self.lam[s:e] = w
        # (zbar I - B^H)^{-1} = W^H diag(1/(zbar - conj(w))) V^H
        self.mu[s:e] = np.conj(w)
        adj = (np.ascontiguousarray(V.conj().T), np.ascontiguousarray(W.conj().T))
        self._node[(s, e)] = ("eig", np.ascontiguousarray(W), np.ascontiguousarray(V), *adj)
        self.leaf_kinds["eig"] += 1
        return True

    def _real_eig_leaf(self, s: int, e: int, w: np.ndarray, V: np.ndarray) -> bool:
        """A real leaf in real block-diagonal form ``B_L = Vr D Vr^{-1}`` (all real).

        A complex pair ``lam = a + ib`` (``b > 0``) with eigenvector ``x + iy``
        gives ``B_L [x, y] = [x, y] [[a, b], [-b, a]]``; ``Vr`` holds the ``x``
        of every pair, then their ``y``, then the real eigenvectors, so ``D``
        acts on contiguous row blocks. The products with ``Vr`` and its inverse
        are real ``dgemm`` on the float view of the right-hand sides (half the
        arithmetic of complex products); ``(zI - D)^{-1}`` on a pair is
        ``[[z - a, b], [-b, z - a]] / ((z - lam)(z - conj(lam)))``.
        """
        B = self.S[s:e, s:e]
        up = np.flatnonzero(w.imag > 0)
        real = np.flatnonzero(w.imag == 0)
        if 2 * up.size + real.size != e - s:
            return False
        Vr = np.concatenate([V[:, up].real, V[:, up].imag, V[:, real].real], axis=1)
        try:
            Wr = np.linalg.inv(Vr)
        except np.linalg.LinAlgError:
            return False
        p = up.size
        a, b = w[up].real, w[up].imag
        D = np.zeros((e - s, e - s))
        i = np.arange(p)
        D[i, i] = D[p + i, p + i] = a
        D[i, p + i] = b
        D[p + i, i] = -b
        D[2 * p :, 2 * p :] = np.diag(w[real].real)
        kappa = np.linalg.norm(Vr, 2) * np.linalg.norm(Wr, 2)
        scale = max(np.linalg.norm(B, 2), np.finfo(float).tiny)
        if not (np.all(np.isfinite(Wr)) and kappa <= self.kappa_max):
            return False
        if not np.linalg.norm(Vr @ D @ Wr - B, 2) <= 1e-13 * scale:
            return False
        lam = np.concatenate([w[up], w[up], w[real].real])  # placeholders for the pair rows
        self.lam[s:e] = self.mu[s:e] = lam
        self._node[(s, e)] = (
            "reig",
            np.ascontiguousarray(Wr),
            np.ascontiguousarray(Vr),
            np.ascontiguousarray(Vr.T),
            np.ascontiguousarray(Wr.T),
            p,
            a.copy(),
            b.copy(),
            w[up].copy(),
        )
        self._reig.append((s, e))
        self.leaf_kinds["eig"] += 1
        return True

    def _make_pair(self, s: int) -> None:
        a, b = self.S[s, s], self.S[s, s + 1]
        c, d = self.S[s + 1, s], self.S[s + 1, s + 1]
        w = np.linalg.eigvals(self.S[s : s + 2, s : s + 2])
        self.lam[s : s + 2] = self.mu[s : s + 2] = w
        self._node[(s, s + 2)] = ("pair", float(a), float(b), float(c), float(d))
        self.leaf_kinds["pair"] += 1

    # ---- block-diagonal part (closed forms)
    def block_diagonal_sigma(self, z: np.ndarray) -> tuple[np.ndarray, float]:
        """``sigma_min(z I - D)`` for the block-diagonal part ``D`` of ``S``, and ``||S - D||_F``.

        ``D`` keeps the 1x1 and 2x2 diagonal blocks. By Weyl's inequality for
        singular values, ``|sigma_min(zI - S) - sigma_min(zI - D)| <= ||S - D||_2
        <= ||S - D||_F``: for a normal ``A`` (``S - D = 0`` up to rounding) these
        are the values, in closed form (a 2x2 block ``M``: ``sigma_max^2`` is the
        larger eigenvalue of the 2x2 matrix ``M^H M``, computed without
        cancellation, and ``sigma_min = |det M| / sigma_max`` with ``det M``
        the product ``(z - lam_1)(z - lam_2)``).
        """
        z = np.asarray(z, dtype=np.complex128)
        S = self.S
        n = self.n
        pair = np.zeros(n, dtype=bool)
        if self.real and n > 1:
            pair[:-1] = np.diag(S, -1) != 0
        off = np.triu(S, 1).copy()
        i = np.flatnonzero(pair)
        off[i, i + 1] = 0.0
        rest = float(np.linalg.norm(off))
        single = np.ones(n, dtype=bool)
        single[i] = single[i + 1] = False
        out = np.full(z.size, np.inf)
        d = np.diag(S)[single]
        for c in range(0, z.size, 4096):
            zz = z[c : c + 4096]
            if d.size:
                out[c : c + 4096] = np.min(np.abs(zz[:, None] - d[None, :]), axis=1)
            for j in i:
                a, b, cc, dd = S[j, j], S[j, j + 1], S[j + 1, j], S[j + 1, j + 1]
                l1, l2 = np.linalg.eigvals(S[j : j + 2, j : j + 2])
                # M = zI - B = [[w1, -b], [-c, w2]]; M^H M = [[p, q], [conj(q), r]]; its larger
                # eigenvalue without cancellation, the smaller one as |det M|^2 / larger
                w1, w2 = zz - a, zz - dd
                p_ = np.abs(w1) ** 2 + cc * cc
                r_ = b * b + np.abs(w2) ** 2
                q_ = -b * np.conj(w1) - cc * w2
                h = 0.5 * (p_ - r_)
                smax = np.sqrt(0.5 * (p_ + r_) + np.sqrt(h * h + np.abs(q_) ** 2))
                det = np.abs((zz - l1) * (zz - l2))
                with np.errstate(divide="ignore", invalid="ignore"):
                    smin = np.where(smax > 0, det / smax, 0.0)
                out[c : c + 4096] = np.minimum(out[c : c + 4096], smin)
        return out, rest

    # ---- shifts
    def prepare(self, z: np.ndarray) -> Shifts:
        """Per-batch factors ``1/(z - lam)`` for the shifts `z` (1-D complex)."""
        z = np.asarray(z, dtype=np.complex128)
        if _kernels.enabled():
            kind, pa, pb, plam = self._pair_rows()
            dinv = np.empty((self.n, z.size), dtype=np.complex128)
            dinv_adj = np.empty_like(dinv)
            _kernels.shift_inverses(
                np.ascontiguousarray(z), self.lam, self.mu, kind, pa, pb, plam, dinv, dinv_adj
            )
            return Shifts(z, dinv, dinv_adj, True)
        zc = np.conj(z)
        with np.errstate(divide="ignore", invalid="ignore"):
            dinv = 1.0 / (z[None, :] - self.lam[:, None])
            dinv_adj = 1.0 / (zc[None, :] - self.mu[:, None])
            for s, e in self._reig:
                _, _, _, _, _, p, a, b, lam = self._node[(s, e)]
                if p == 0:
                    continue
                # rows s..s+p: (z - a)/D, rows s+p..s+2p: b/D, D = (z - lam)(z - conj(lam))
                Dz = (z[None, :] - lam[:, None]) * (z[None, :] - np.conj(lam)[:, None])
                Dc = (zc[None, :] - lam[:, None]) * (zc[None, :] - np.conj(lam)[:, None])
                dinv[s : s + p] = (z[None, :] - a[:, None]) / Dz
                dinv[s + p : s + 2 * p] = b[:, None] / Dz
                dinv_adj[s : s + p] = (zc[None, :] - a[:, None]) / Dc
                dinv_adj[s + p : s + 2 * p] = b[:, None] / Dc
        return Shifts(z, dinv, dinv_adj)

    def _pair_rows(self):
        """Per-row description of :meth:`prepare`'s factors for the compiled kernel (cached).

        ``kind`` 0: ``1/(z - lam_i)``; 1 and 2: the first and second rows of a
        complex pair ``a + ib`` of a real block-diagonal leaf.
        """
        rows = getattr(self, "_pair_rows_cache", None)
        if rows is None:
            kind = np.zeros(self.n, dtype=np.int64)
            pa, pb = np.zeros(self.n), np.zeros(self.n)
            plam = np.zeros(self.n, dtype=np.complex128)
            for s, e in self._reig:
                _, _, _, _, _, p, a, b, lam = self._node[(s, e)]
                for rows_, k in ((slice(s, s + p), 1), (slice(s + p, s + 2 * p), 2)):
                    kind[rows_], pa[rows_], pb[rows_], plam[rows_] = k, a, b, lam
            rows = self._pair_rows_cache = (kind, pa, pb, plam)
        return rows

    # ---- solves
    def solve(self, X: np.ndarray, sh: Shifts) -> None:
        """Overwrite ``X[:, j]`` with ``(z_j I - S)^{-1} X[:, j]``; `X` is C-ordered (n, m) complex128."""
        self._upper(X, sh, 0, self.n)

    def solve_adjoint(self, X: np.ndarray, sh: Shifts) -> None:
        """Overwrite ``X[:, j]`` with ``(z_j I - S)^{-*} X[:, j]``."""
        self._lower(X, sh, 0, self.n)

    def _upper(self, X: np.ndarray, sh: Shifts, s: int, e: int) -> None:
        node = self._node[(s, e)]
        kind = node[0]
        if kind == "split":
            mid = node[1]
            self._upper(X, sh, mid, e)
            self._gemm(X, mid, e, s, mid, node[2])
            self._upper(X, sh, s, mid)
        elif kind == "reig":
            leaf = _kernels.leaf_solve if sh.fast else _leaf_solve
            leaf(X[s:e], node[1], node[2], sh.dinv[s:e], node[5], 1.0)
        elif kind == "eig":
            t = node[1] @ X[s:e]
            t *= sh.dinv[s:e]
            np.matmul(node[2], t, out=X[s:e])
        elif kind == "row":
            X[s] *= sh.dinv[s]
        else:
            _, a, b, c, d = node
            z = sh.z
            r1, r2 = X[s].copy(), X[s + 1]
            det = sh.dinv[s] * sh.dinv[s + 1]
            X[s] = ((z - d) * r1 + b * r2) * det
            X[s + 1] = (c * r1 + (z - a) * r2) * det

    def _lower(self, X: np.ndarray, sh: Shifts, s: int, e: int) -> None:
        node = self._node[(s, e)]
        kind = node[0]
        if kind == "split":
            mid = node[1]
            self._lower(X, sh, s, mid)
            self._gemm(X, s, mid, mid, e, node[3])
            self._lower(X, sh, mid, e)
        elif kind == "reig":
            leaf = _kernels.leaf_solve if sh.fast else _leaf_solve
            leaf(X[s:e], node[3], node[4], sh.dinv_adj[s:e], node[5], -1.0)
        elif kind == "eig":
            t = node[3] @ X[s:e]
            t *= sh.dinv_adj[s:e]
            np.matmul(node[4], t, out=X[s:e])
        elif kind == "row":
            X[s] *= sh.dinv_adj[s]
        else:
            # (zbar I - B^T) x = r with B = [[a, b], [c, d]]
            _, a, b, c, d = node
            zc = np.conj(sh.z)
            r1, r2 = X[s].copy(), X[s + 1]
            det = sh.dinv_adj[s] * sh.dinv_adj[s + 1]
            X[s] = ((zc - d) * r1 + c * r2) * det
            X[s + 1] = (b * r1 + (zc - a) * r2) * det

    def _gemm(self, X: np.ndarray, r0: int, r1: int, d0: int, d1: int, BT: np.ndarray) -> None:
        """``X[d0:d1] += B @ X[r0:r1]`` given ``BT = B.T`` (Fortran-ordered), in place.

        With `threads` set (several threads share the solver) numpy's matmul is
        used instead of scipy's BLAS wrappers, which hold the GIL: it needs a
        temporary, but lets the threads run their products at the same time.
        """
        if self.threads:
            B = BT.T
            if self.real:
                Xv = X.view(np.float64)
                Xv[d0:d1] += np.matmul(B, Xv[r0:r1])
            else:
                X[d0:d1] += np.matmul(B, X[r0:r1])
            return
        if self.real:
            XT = X.view(np.float64).T  # (2m, n), Fortran-ordered: column ranges are contiguous
            out = dgemm(1.0, XT[:, r0:r1], BT, beta=1.0, c=XT[:, d0:d1], overwrite_c=1)
        else:
            XT = X.T
            out = zgemm(1.0, XT[:, r0:r1], BT, beta=1.0, c=XT[:, d0:d1], overwrite_c=1)
        if not np.shares_memory(out, X):  # pragma: no cover - f2py copied after all
            XT[:, d0:d1] = out


def _leaf_solve(X: np.ndarray, W: np.ndarray, V: np.ndarray, dinv: np.ndarray, p: int, sign: float) -> None:
    """The numpy twin of :func:`spectra._kernels.leaf_solve`: ``X <- V (zI - D)^{-1} W X``, one leaf."""
    t = _real_times(W, X)
    if p:
        c, d = dinv[:p], sign * dinv[p : 2 * p]
        y1, y2 = t[:p], t[p : 2 * p]
        new1 = c * y1 + d * y2
        y2 *= c
        y2 -= d * y1
        y1[...] = new1
    t[2 * p :] *= dinv[2 * p :]
    _real_times(V, t, out=X)


def _real_times(M: np.ndarray, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``M @ X`` for real ``M`` and complex, row-contiguous ``X``: one real product on the float view."""
    Xv = X.view(np.float64)
    if out is None:
        return np.matmul(M, Xv).view(np.complex128)
    np.matmul(M, Xv, out=out.view(np.float64))
    return out


class ShiftedQuasiTriangular(_Blocked):
    """Solves with ``z_j I - R`` for a real quasi-upper-triangular ``R`` (real Schur form).

    Parameters
    ----------
    R : (n, n) array_like, real
        Real Schur factor (2x2 diagonal blocks allowed; entries below the
        first subdiagonal are ignored).
    leaf : int
        Largest diagonal block handled by diagonalisation.
    kappa_max : float
        Largest condition number of a leaf's eigenvector matrix accepted.

    Notes
    -----
    Right-hand sides are the columns of a C-ordered ``(n, m)`` complex128
    array, overwritten in place.
    """

    def __init__(self, R: np.ndarray, *, leaf: int = 16, kappa_max: float = 1e3) -> None:
        R = np.asarray(R, dtype=np.float64)
        self.n = R.shape[0]
        self.S = np.ascontiguousarray(np.triu(R, -1))
        self.leaf = max(2, int(leaf))
        self.kappa_max = float(kappa_max)
        self.real = True
        self._init_tree()


class ShiftedComplexTriangular(_Blocked):
    """Solves with ``z_j I - T`` for a complex upper triangular ``T`` (complex Schur form).

    Same parameters as :class:`ShiftedQuasiTriangular`.
    """

    def __init__(self, T: np.ndarray, *, leaf: int = 16, kappa_max: float = 1e3) -> None:
        T = np.asarray(T, dtype=np.complex128)
        self.n = T.shape[0]
        self.S = np.ascontiguousarray(np.triu(T))
        self.leaf = max(2, int(leaf))
        self.kappa_max = float(kappa_max)
        self.real = False
        self._init_tree()


def shifted_solver(A: np.ndarray, *, leaf: int = 16, kappa_max: float = 1e3):
    """Schur-factorise `A` and return ``(solver, eigenvalues)``.

    Real `A`: real Schur form and :class:`ShiftedQuasiTriangular`; complex `A`:
    complex Schur form and :class:`ShiftedComplexTriangular`.
    """
    if np.iscomplexobj(A):
        T, _ = scipy.linalg.schur(A, output="complex", check_finite=False)
        solver = ShiftedComplexTriangular(T, leaf=leaf, kappa_max=kappa_max)
        return solver, np.diag(T).copy()
    R, _ = scipy.linalg.schur(np.asarray(A, dtype=np.float64), output="real", check_finite=False)
    solver = ShiftedQuasiTriangular(R, leaf=leaf, kappa_max=kappa_max)
    return solver, _real_schur_eigs(R)


def _real_schur_eigs(R: np.ndarray) -> np.ndarray:
    """Eigenvalues of a real Schur factor from its 1x1 and 2x2 diagonal blocks."""
    n = R.shape[0]
    out = np.empty(n, dtype=np.complex128)
    i = 0
    while i < n:
        if i + 1 < n and R[i + 1, i] != 0:
            out[i : i + 2] = np.linalg.eigvals(R[i : i + 2, i : i + 2])
            i += 2
        else:
            out[i] = R[i, i]
            i += 1
    return out
