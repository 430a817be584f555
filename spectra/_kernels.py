"""Compiled inner loops of the pseudospectra engine (numba), with the numpy code as the fallback.

At n = 128 a Lanczos step of :mod:`spectra._lanczos` spent two thirds of its
time outside the triangular solves: dozens of small numpy calls per step on
arrays of one value per grid point (the Newton iteration for the top Ritz
value, the three-term recurrence, the leaf scalings of :mod:`spectra._shifted`).
These kernels do the same arithmetic in one compiled loop each, column by
column, and release the GIL (the grid's worker threads run them at once).

Every kernel has a numpy twin in its caller, which runs where numba is not
installed or ``SPECTRA_NUMBA=0`` is set; the tests run both and compare them.
numba is imported when a kernel is first called (not at ``import spectra``:
the import alone takes 0.4 s); kernels are compiled then and cached on disk
(``cache=True``; numba compiles in memory where the package folder is
read-only), so a new process pays about 0.2 s to load them.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings

import numpy as np

__all__ = [
    "available",
    "enabled",
    "lanczos_update",
    "leaf_solve",
    "newton_top",
    "ritz_vectors",
    "second_ritz_gap",
    "shift_inverses",
]

_AVAILABLE = importlib.util.find_spec("numba") is not None


def available() -> bool:
    """Whether numba is installed."""
    return _AVAILABLE


def enabled() -> bool:
    """Whether the compiled kernels are used (numba installed and working, ``SPECTRA_NUMBA`` not ``0``)."""
    return _AVAILABLE and _BROKEN is None and os.environ.get("SPECTRA_NUMBA", "1") != "0"


#: why numba could not be used in this process (None while it works)
_BROKEN: str | None = None


def _give_up(exc: BaseException) -> None:
    """Turn the kernels off for this process after numba failed, and say so once."""
    global _BROKEN
    if _BROKEN is None:
        _BROKEN = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        warnings.warn(
            f"numba failed ({_BROKEN}); the pseudospectra engine goes on with its numpy code "
            "(same results, slower; SPECTRA_NUMBA=0 skips numba)",
            RuntimeWarning,
            stacklevel=3,
        )


def _jit(fn):
    """Compile `fn` with numba on its first call (the plain Python function without numba).

    A numba that cannot be imported or cannot compile turns the kernels off for
    the process (:func:`enabled` becomes false, one warning); the call that
    found out runs the plain Python function, later ones take the numpy code.
    """
    compiled = None

    @functools.wraps(fn)
    def call(*args):
        nonlocal compiled
        if compiled is not None:
            return compiled(*args)
        if not _AVAILABLE or _BROKEN is not None:  # pragma: no cover - callers check enabled()
            return fn(*args)
        try:
            import numba

            try:
                jitted = numba.njit(cache=True, nogil=True, error_model="numpy")(fn)
            except RuntimeError:  # no writable cache folder ("no locator available")
                jitted = numba.njit(nogil=True, error_model="numpy")(fn)
            out = jitted(*args)  # compiles (or loads the cache) here
        except Exception as exc:  # noqa: BLE001 - any numba failure: fall back, never crash
            _give_up(exc)
            return fn(*args)
        compiled = jitted
        globals()[fn.__name__] = compiled  # later calls skip this wrapper
        return out

    return call


@_jit
def newton_top(a, bb, lam, hi, lo, rtol, guessed):  # pragma: no cover - compiled
    """Largest eigenvalue of each tridiagonal, Newton from above (see ``top_ritz_value``).

    ``a`` (k, m) diagonals, ``bb`` (k - 1, m) squared off-diagonals; ``lam``
    the start points, ``hi``/``lo`` bounds (all (m,), updated in place).
    The same iteration, column by column, as ``_newton_from_above``.
    """
    k, m = a.shape
    eps4 = 4.0 * 2.220446049250313e-16
    for j in range(m):
        for it in range(100):
            la = lam[j]
            r = la - a[0, j]
            u = 1.0 / r
            S = u
            rmin = r
            for i in range(1, k):
                g = bb[i - 1, j] / r
                r = la - a[i, j] - g
                g = g * u + 1.0
                u = g / r
                S += u
                if r < rmin or r != r:
                    rmin = r
            step = 1.0 / S
            valid = rmin > 0.0 and np.isfinite(step)
            if valid:
                h = la
                l_ = lo[j]
            else:
                h = hi[j]
                l_ = lo[j] if lo[j] >= la else la  # np.maximum: NaN if la is NaN
            hi[j] = h
            lo[j] = l_
            if valid:
                new = la - step
                if not (new > l_):
                    new = 0.5 * (l_ + h)
            elif it == 0 and guessed:
                new = h
            else:
                new = 0.5 * (l_ + h)
            done = (valid and k * step <= rtol * la) or (h - l_ <= eps4 * h)
            lam[j] = h if (done and not valid) else new
            if done:
                break
    return lam


@_jit
def lanczos_update(q, w, q_prev, beta_prev, first, spare):  # pragma: no cover - compiled
    """One three-term recurrence step for every column, in place; returns ``(alpha, beta)``.

    ``alpha_j = Re(q_j^* w_j)``, ``w_j -= alpha_j q_j + beta_prev_j q_prev_j``
    (no ``q_prev`` term when `first`), ``beta_j = ||w_j||``, ``w_j /= beta_j``
    (where positive) and ``spare = w``. ``q``, ``w``, ``q_prev``, ``spare``:
    C-ordered (n, m).
    """
    n, m = q.shape
    alpha = np.zeros(m)
    for i in range(n):
        for j in range(m):
            x = q[i, j]
            y = w[i, j]
            alpha[j] += x.real * y.real + x.imag * y.imag
    b2 = np.zeros(m)
    for i in range(n):
        for j in range(m):
            x = q[i, j]
            v = w[i, j] - alpha[j] * x
            if not first:
                v -= beta_prev[j] * q_prev[i, j]
            w[i, j] = v
            b2[j] += v.real * v.real + v.imag * v.imag
    beta = np.sqrt(b2)
    inv = np.empty(m)
    for j in range(m):
        inv[j] = 1.0 / beta[j] if beta[j] > 0.0 else 1.0
    for i in range(n):
        for j in range(m):
            v = w[i, j] * inv[j]
            w[i, j] = v
            spare[i, j] = v
    return alpha, beta


@_jit
def ritz_vectors(hist, colmap, Y, K, ritz):  # pragma: no cover - compiled
    """``ritz[:, p] = sum_{i < K[p]} Y[i, p] hist[i, :, colmap[i, p]]``, normalised, for ``K[p] > 0``.

    All the converged points of a Lanczos run at once, after the run: each
    history row is read once (per point, at convergence, the gathers read the
    whole history every step). ``hist`` (k', n, m0) single precision, row
    ``r`` of step ``i`` contiguous; ``colmap`` (k, m) the column of each point
    at each step; ``Y`` (k, m) Ritz coefficients; ``K`` (m,) steps used;
    ``ritz`` (n, m) complex128, written only where ``K > 0`` (zero where the
    sum is zero or not finite). Accumulates in single precision, like the
    numpy twin.
    """
    kmax, m = Y.shape
    n = hist.shape[1]
    acc = np.zeros((n, m), dtype=np.complex64)
    for i in range(kmax):
        cnt = 0
        for p in range(m):
            if K[p] > i:
                cnt += 1
        if cnt == 0:
            continue
        pts = np.empty(cnt, dtype=np.int64)
        c = 0
        for p in range(m):
            if K[p] > i:
                pts[c] = p
                c += 1
        cols = np.empty(cnt, dtype=np.int64)
        yi = np.empty(cnt, dtype=np.float32)
        for t in range(cnt):
            cols[t] = colmap[i, pts[t]]
            yi[t] = np.float32(Y[i, pts[t]])
        for r in range(n):
            row = hist[i, r]
            for t in range(cnt):
                acc[r, pts[t]] += row[cols[t]] * yi[t]
    s2 = np.zeros(m)
    for r in range(n):
        for p in range(m):
            v = acc[r, p]
            s2[p] += float(v.real) * float(v.real) + float(v.imag) * float(v.imag)
    inv = np.zeros(m)
    for p in range(m):
        nrm = np.sqrt(s2[p])
        if K[p] > 0 and nrm > 0.0 and np.isfinite(nrm):
            inv[p] = 1.0 / nrm
    for r in range(n):
        for p in range(m):
            if inv[p] > 0.0:
                ritz[r, p] = complex(acc[r, p]) * inv[p]


@_jit
def second_ritz_gap(a, bb, theta, theta_prev):  # pragma: no cover - compiled
    """Column-by-column twin of ``spectra._lanczos._second_ritz_gap`` (``bb``: squared off-diagonals)."""
    k, p = a.shape
    N = k - 1
    out = np.zeros(p)
    for j in range(p):
        lam = min(theta_prev[j], theta[j] * (1.0 - 1e-3))
        for _ in range(3):
            r = lam - a[0, j]
            rp = 1.0
            rpp = 0.0
            G = rp / r
            Hs = -G * G
            for i in range(1, k):
                g = bb[i - 1, j] / r
                r_new = lam - a[i, j] - g
                rpp = bb[i - 1, j] * (rpp * r - 2.0 * rp * rp) / (r * r * r)
                rp = 1.0 + g * rp / r
                r = r_new
                u = rp / r
                G += u
                Hs += rpp / r - u * u
            d = lam - theta[j]
            Gf = G - 1.0 / d
            Hf = -Hs - 1.0 / (d * d)
            disc = np.sqrt(max((N - 1) * (N * Hf - Gf * Gf), 0.0))
            step = N / (Gf + disc)
            if np.isfinite(step) and step > 0.0:
                lam = lam - step
        lam = lam + 1e-9 * theta[j]
        r = lam - a[0, j]
        neg = 1 if r < 0.0 else 0
        for i in range(1, k):
            r = lam - a[i, j] - bb[i - 1, j] / r
            if r < 0.0:
                neg += 1
        gap = theta[j] - lam
        if neg == 1 and np.isfinite(gap) and gap > 0.0:
            out[j] = gap
    return out


@_jit
def shift_inverses(z, lam, mu, kind, pa, pb, plam, dinv, dinv_adj):  # pragma: no cover - compiled
    """The per-batch factors of ``spectra._shifted._Blocked.prepare``, in place.

    ``dinv[i, j] = 1/(z_j - lam_i)``, ``dinv_adj[i, j] = 1/(conj(z_j) - mu_i)``
    for plain rows (``kind`` 0); the rows of a complex pair ``lam = a + ib`` of a
    real block-diagonal leaf (``kind`` 1: ``(z - a)/D``, ``kind`` 2: ``b/D``,
    ``D = (z - lam)(z - conj(lam))``, and the same at ``conj(z)`` for the
    adjoint), with ``a = pa[i]``, ``b = pb[i]``, ``lam = plam[i]``.
    """
    n = lam.shape[0]
    m = z.shape[0]
    for i in range(n):
        kd = kind[i]
        for j in range(m):
            zj = z[j]
            zc = zj.conjugate()
            if kd == 0:
                dinv[i, j] = 1.0 / (zj - lam[i])
                dinv_adj[i, j] = 1.0 / (zc - mu[i])
            else:
                L = plam[i]
                Lc = L.conjugate()
                num = (zj - pa[i]) if kd == 1 else pb[i] + 0j
                numc = (zc - pa[i]) if kd == 1 else pb[i] + 0j
                dinv[i, j] = num / ((zj - L) * (zj - Lc))
                dinv_adj[i, j] = numc / ((zc - L) * (zc - Lc))


@_jit
def leaf_solve(X, W, V, dinv, p, sign):  # pragma: no cover - compiled
    """``X <- V (zI - D)^{-1} W X`` for one real block-diagonal leaf, in place (one call per leaf).

    ``X`` (L, m) complex rows of the leaf, C-ordered; ``W``, ``V`` (L, L)
    real: the leaf's inverse eigenvector matrix and eigenvector matrix (or
    their transposes, for the adjoint). The middle step is ``(zI - D)^{-1}``:
    rows ``[0, p)`` and ``[p, 2p)`` are the two halves of the complex pairs,
    ``(y1, y2) <- (c y1 + s d y2, c y2 - s d y1)`` with ``c = dinv[:p]``,
    ``d = dinv[p:2p]``, ``s = sign`` (+1 for the solve, -1 for the adjoint);
    the remaining rows are scaled by their ``dinv``.
    """
    Xv = X.view(np.float64)
    t = np.dot(W, Xv)
    tc = t.view(np.complex128)
    rows, m = tc.shape
    for i in range(p):
        for j in range(m):
            c = dinv[i, j]
            d = dinv[p + i, j]
            y1 = tc[i, j]
            y2 = tc[p + i, j]
            tc[i, j] = c * y1 + sign * d * y2
            tc[p + i, j] = c * y2 - sign * d * y1
    for i in range(2 * p, rows):
        for j in range(m):
            tc[i, j] = tc[i, j] * dinv[i, j]
    Xv[:, :] = np.dot(V, t)
