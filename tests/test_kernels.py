"""The compiled kernels (numba) against their numpy twins and against dense oracles.

Each kernel in ``spectra._kernels`` replaces a numpy loop in the engine; the
twin runs where numba is missing or ``SPECTRA_NUMBA=0``. Both must agree to
rounding, and both against an independent float64 computation.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from spectra import _kernels
from spectra._lanczos import _recurrence, _ritz_vectors, _second_ritz_gap
from spectra._shifted import ShiftedQuasiTriangular
from spectra._triangular import top_ritz_value
from spectra.pseudospectra import pseudospectra

pytestmark = pytest.mark.skipif(not _kernels.available(), reason="numba not installed")


def _tridiagonals(rng, k, m):
    a = rng.standard_normal((k, m)) + 3.0
    b = np.abs(rng.standard_normal((k - 1, m))) + 0.1
    return a, b


def _top(a, b):
    out = []
    for j in range(a.shape[1]):
        w = scipy.linalg.eigh_tridiagonal(a[:, j], b[:, j], eigvals_only=True)
        out.append(w[-2:])
    return np.array(out)


@pytest.mark.parametrize("k", [1, 2, 5, 12])
def test_newton_top_matches_numpy_and_eigh(monkeypatch, k):
    rng = np.random.default_rng(k)
    a, b = _tridiagonals(rng, k, 300)
    upper = np.max(a, axis=0) + 2 * np.max(np.abs(np.vstack([b, np.zeros((1, 300))])), axis=0) + 1
    lower = np.full(300, -100.0)
    guess = upper * 0.9  # below the root for some columns: exercises the fallback
    fast = top_ritz_value(a, b, lower, upper, guess=guess, rtol=1e-14)
    monkeypatch.setenv("SPECTRA_NUMBA", "0")
    assert not _kernels.enabled()
    slow = top_ritz_value(a, b, lower, upper, guess=guess, rtol=1e-14)
    exact = _top(a, b)[:, -1] if k > 1 else a[0]
    np.testing.assert_allclose(fast, slow, rtol=1e-13)
    np.testing.assert_allclose(fast, exact, rtol=1e-12)


def test_second_ritz_gap_matches_numpy_and_eigh(monkeypatch):
    rng = np.random.default_rng(7)
    a, b = _tridiagonals(rng, 9, 200)
    w = _top(a, b)
    theta = w[:, -1]
    theta_prev = np.array([_top(a[:-1, [j]], b[:-1, [j]])[0, -1] for j in range(200)])
    fast = _second_ritz_gap(a, b, theta, theta_prev)
    monkeypatch.setenv("SPECTRA_NUMBA", "0")
    slow = _second_ritz_gap(a, b, theta, theta_prev)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=0)
    found = fast > 0
    assert found.mean() > 0.5  # 3 Laguerre steps: most columns separate a second value
    # an upper bound of the second eigenvalue: the gap never exceeds the true one
    assert np.all(fast[found] <= (theta - w[:, -2])[found] * (1 + 1e-12))


def test_lanczos_update_matches_numpy(monkeypatch):
    rng = np.random.default_rng(3)
    n, m = 37, 51
    q = np.ascontiguousarray(rng.standard_normal((n, m)) + 1j * rng.standard_normal((n, m)))
    q_prev = np.ascontiguousarray(rng.standard_normal((n, m)) + 1j * rng.standard_normal((n, m)))
    w0 = np.ascontiguousarray(rng.standard_normal((n, m)) + 1j * rng.standard_normal((n, m)))
    beta_prev = rng.random(m)
    for first in (True, False):
        w1, w2 = w0.copy(), w0.copy()
        s1, s2 = np.empty_like(w0), np.empty_like(w0)
        a1, b1 = _kernels.lanczos_update(q, w1, q_prev, beta_prev, first, s1)
        tmp = np.empty((8, m), dtype=np.complex128)
        a2, b2 = _recurrence(q, w2, q_prev, beta_prev, 1 if first else 2, s2, tmp)
        # independent oracle
        alpha = np.real(np.sum(np.conj(q) * w0, axis=0))
        v = w0 - alpha * q - (0 if first else beta_prev * q_prev)
        beta = np.linalg.norm(v, axis=0)
        for al, be, w, s in ((a1, b1, w1, s1), (a2, b2, w2, s2)):
            np.testing.assert_allclose(al, alpha, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(be, beta, rtol=1e-12)
            np.testing.assert_allclose(w, v / beta, rtol=1e-12, atol=1e-14)
            np.testing.assert_array_equal(s, w)


def test_leaf_scaling_solves_match_dense(monkeypatch):
    """Solves with real block-diagonal leaves (complex pairs): compiled and numpy paths vs dense."""
    rng = np.random.default_rng(11)
    n, m = 40, 9
    A = rng.standard_normal((n, n)) / np.sqrt(n)
    R, _ = scipy.linalg.schur(A, output="real")
    z = rng.standard_normal(m) * 0.5 + 1j * rng.standard_normal(m) * 0.5
    X0 = np.ascontiguousarray(rng.standard_normal((n, m)) + 1j * rng.standard_normal((n, m)))
    results = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("SPECTRA_NUMBA", flag)
        s = ShiftedQuasiTriangular(R, leaf=8)
        assert s.leaf_kinds["eig"] > 0 and s._reig
        sh = s.prepare(z)
        X, Y = X0.copy(), X0.copy()
        s.solve(X, sh)
        s.solve_adjoint(Y, sh)
        results[flag] = (X, Y)
    for j in range(m):
        M = z[j] * np.eye(n) - R
        for got in results.values():
            np.testing.assert_allclose(got[0][:, j], np.linalg.solve(M, X0[:, j]), rtol=1e-10, atol=1e-12)
            adj = np.linalg.solve(M.conj().T, X0[:, j])
            np.testing.assert_allclose(got[1][:, j], adj, rtol=1e-10, atol=1e-12)


def test_ritz_vectors_match_numpy_and_definition(monkeypatch):
    """Ritz vectors formed after the run, with a compression in between (columns repacked)."""
    rng = np.random.default_rng(5)
    cap, n, m0 = 6, 20, 30
    hist = (rng.standard_normal((cap, n, m0)) + 1j * rng.standard_normal((cap, n, m0))).astype(np.complex64)
    live = np.sort(rng.choice(m0, 18, replace=False))
    pos0 = (np.arange(m0), np.arange(m0))
    pos1_map = np.full(m0, -1)
    pos1_map[live] = np.arange(live.size)
    hist_pos = [pos0] * 3 + [(pos1_map, live)] * 3
    K = np.zeros(m0, dtype=np.int64)
    K[rng.choice(m0, 8, replace=False)] = rng.integers(1, 4, 8)  # left before the compression
    K[live[::2]] = rng.integers(4, cap + 1, live[::2].size)  # converged later
    Y = rng.standard_normal((cap, m0))
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("SPECTRA_NUMBA", flag)
        ritz = np.zeros((n, m0), dtype=np.complex128)
        _ritz_vectors(ritz, hist, hist_pos, Y, K)
        out[flag] = ritz
    ref = np.zeros((n, m0), dtype=np.complex128)
    for p in np.flatnonzero(K):
        for i in range(K[p]):
            ref[:, p] += hist[i][:, hist_pos[i][0][p]].astype(np.complex128) * Y[i, p]
        ref[:, p] /= np.linalg.norm(ref[:, p])
    for r in out.values():
        np.testing.assert_allclose(r, ref, rtol=1e-5, atol=1e-6)
        assert not np.any(r[:, K == 0])


def test_engine_same_values_with_and_without_kernels(monkeypatch):
    rng = np.random.default_rng(2)
    n = 60
    A = rng.standard_normal((n, n)) / np.sqrt(n) + np.triu(rng.standard_normal((n, n)), 1) / np.sqrt(n)
    x = np.linspace(-1.6, 1.6, 23)
    y = np.linspace(-1.4, 1.4, 17)
    fast = pseudospectra(A, x=x, y=y, dense_below=0).sigma_min
    monkeypatch.setenv("SPECTRA_NUMBA", "0")
    slow = pseudospectra(A, x=x, y=y, dense_below=0).sigma_min
    ref = np.array([[scipy.linalg.svdvals((a + 1j * b) * np.eye(n) - A)[-1] for a in x] for b in y])
    for got in (fast, slow):
        assert np.max(np.abs(got - ref) / ref) < 1e-8


@pytest.mark.parametrize("real", [True, False])
def test_shift_inverses_match_numpy(monkeypatch, real):
    """The per-batch factors of the solver, compiled and numpy, including complex-pair rows."""
    from spectra._shifted import shifted_solver

    rng = np.random.default_rng(4)
    n = 30
    A = rng.standard_normal((n, n)) / np.sqrt(n)
    if not real:
        A = A + 1j * rng.standard_normal((n, n)) / np.sqrt(n)
    s, _ = shifted_solver(A, leaf=8)
    z = rng.standard_normal(40) + 1j * rng.standard_normal(40)
    fast = s.prepare(z)
    monkeypatch.setenv("SPECTRA_NUMBA", "0")
    slow = s.prepare(z)
    np.testing.assert_allclose(fast.dinv, slow.dinv, rtol=1e-14)
    np.testing.assert_allclose(fast.dinv_adj, slow.dinv_adj, rtol=1e-14)
    if real:
        assert np.any(s._pair_rows()[0] > 0)  # the pair rows were exercised
    else:  # plain rows only: against the definition
        np.testing.assert_allclose(fast.dinv, 1.0 / (z[None, :] - np.diag(s.S)[:, None]), rtol=1e-14)


def test_kernels_compile_without_a_writable_cache(monkeypatch):
    """Where numba finds no writable cache folder ("no locator available": read-only install and
    home), the kernel is compiled in memory instead of failing."""
    from numba.core import caching

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])

    def twice(x):
        return 2.0 * x

    f = _kernels._jit(twice)
    assert f(1.5) == 3.0


def test_a_failing_numba_turns_the_kernels_off_with_one_warning(monkeypatch):
    """A numba that cannot compile (broken install): one warning, the call still answers (plain
    Python), and enabled() is false afterwards, so the engine takes its numpy code."""
    import numba

    def broken(*args, **kwargs):
        raise numba.core.errors.NumbaError("simulated failure")

    monkeypatch.setattr(numba, "njit", lambda *a, **k: broken)
    monkeypatch.setattr(_kernels, "_BROKEN", None)

    def twice(x):
        return 2.0 * x

    f = _kernels._jit(twice)
    with pytest.warns(RuntimeWarning, match="numba failed"):
        assert f(1.5) == 3.0
    assert not _kernels.enabled()
    A = np.diag(np.linspace(0.1, 0.9, 60)) + np.triu(np.ones((60, 60)), 1) * 0.01
    g = pseudospectra(A, npts=12, dense_below=0)  # the numpy code, same contract
    ref = scipy.linalg.svdvals(complex(g.x[3], g.y[5]) * np.eye(60) - A)[-1]
    assert abs(g.sigma_min[5, 3] - ref) <= 1e-8 * ref
