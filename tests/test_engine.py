"""The pseudospectra engine's parts: shifted (quasi-)triangular solves, closed forms, Lanczos.

Oracles: dense LAPACK solves and SVDs of ``zI - A`` (numpy), independent of the engine.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from spectra._lanczos import lanczos_sigma_min
from spectra._shifted import ShiftedComplexTriangular, ShiftedQuasiTriangular, shifted_solver
from spectra.pseudospectra import pseudospectra


def smin(A, z):
    n = A.shape[0]
    return np.array([np.linalg.svd(zz * np.eye(n) - A, compute_uv=False)[-1] for zz in np.ravel(z)])


def backward_error(M, x, b):
    return np.linalg.norm(M @ x - b) / (np.linalg.norm(M, 2) * np.linalg.norm(x) + np.linalg.norm(b))


def quasi_with_bad_pairs(n, seed):
    """A real Schur-like matrix whose 2x2 blocks are nearly defective (cond of V ~ 1e6)."""
    rng = np.random.default_rng(seed)
    R = np.triu(rng.standard_normal((n, n)), 1) * 0.5
    for i in range(0, n - 1, 4):
        R[i, i] = R[i + 1, i + 1] = rng.uniform(-0.5, 0.5)
        R[i, i + 1], R[i + 1, i] = 1.0, -1e-12  # eigenvalues a +- 1e-6 i
        R[i + 1, i + 2 :] = R[i + 1, i + 2 :]  # keep the row
    for i in range(2, n, 4):
        R[i, i] = rng.uniform(-0.5, 0.5)
        if i + 1 < n:
            R[i + 1, i + 1] = R[i, i] + 1e-9  # nearly repeated: ill-conditioned leaf
    return R


@pytest.mark.parametrize("kind", ["random_real", "bad_pairs", "jordan", "complex"])
def test_shifted_solves_are_backward_stable(kind):
    n = 67
    rng = np.random.default_rng(1)
    if kind == "random_real":
        A = rng.standard_normal((n, n)) / np.sqrt(n) + np.triu(rng.standard_normal((n, n)), 1)
        solver, lam = shifted_solver(A)
        assert isinstance(solver, ShiftedQuasiTriangular)
        assert solver.leaf_kinds["eig"] > 0
    elif kind == "bad_pairs":
        solver = ShiftedQuasiTriangular(quasi_with_bad_pairs(n, 2))
        assert solver.leaf_kinds["pair"] > 0 and solver.leaf_kinds["row"] > 0
    elif kind == "jordan":
        solver = ShiftedQuasiTriangular(0.3 * np.eye(n) + np.diag(np.ones(n - 1), 1))
        assert solver.leaf_kinds == {"eig": 0, "row": n, "pair": 0}
    else:
        A = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
        solver, lam = shifted_solver(A)
        assert isinstance(solver, ShiftedComplexTriangular)
    S = solver.S
    z = np.array([0.3 + 0.2j, -1.1 + 0.5j, 0.05 - 0.7j, solver.lam[5] + 1e-7, solver.lam[9] + 1e-11j])
    if kind == "jordan":  # (zI - J)^{-1} has entries (z - 0.3)^{-67}: keep them finite
        z = np.array([0.3 + 0.5j, -0.2 + 0.1j, 1.0, 0.3 + 0.2j, 0.6])
    X = rng.standard_normal((n, z.size)) + 1j * rng.standard_normal((n, z.size))
    Y, Y2 = X.copy(), X.copy()
    sh = solver.prepare(z)
    solver.solve(Y, sh)
    solver.solve_adjoint(Y2, sh)
    for j, zz in enumerate(z):
        M = zz * np.eye(n) - S
        assert backward_error(M, Y[:, j], X[:, j]) < 1e-14
        assert backward_error(M.conj().T, Y2[:, j], X[:, j]) < 1e-14


def test_block_diagonal_closed_form_matches_svd_even_for_equal_singular_values():
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(100):
        a, b = rng.standard_normal(), 3 * rng.standard_normal()
        c = -np.sign(b) * rng.uniform(0.01, 3)
        R = np.array([[a, b], [c, a]])
        z = np.concatenate([rng.standard_normal(10) + 1j * rng.standard_normal(10), [a + 0j, a + 1e-9]])
        got, rest = ShiftedQuasiTriangular(R).block_diagonal_sigma(z)
        assert rest == 0.0
        worst = max(worst, np.max(np.abs(got - smin(R, z)) / smin(R, z)))
    # the normal block [[a, b], [-b, a]] at z = a: sigma_1 = sigma_2 (the cancellation case)
    R = np.array([[0.2, 0.7], [-0.7, 0.2]])
    got, _ = ShiftedQuasiTriangular(R).block_diagonal_sigma(np.array([0.2 + 0j, 0.2 + 1e-8j]))
    np.testing.assert_allclose(got, [0.7, 0.7 - 1e-8], rtol=1e-14)
    assert worst < 1e-13


def test_lanczos_stops_early_and_restarts_from_ritz_vectors():
    n = 120
    rng = np.random.default_rng(4)
    A = rng.standard_normal((n, n)) / np.sqrt(n) + np.triu(rng.standard_normal((n, n)), 1) / np.sqrt(n)
    solver, _ = shifted_solver(A)
    z = rng.uniform(-1.5, 1.5, 300) + 1j * rng.uniform(0, 1.5, 300)
    V0 = np.exp(2j * np.pi * rng.random((n, z.size)))
    ref = smin(A, z)
    sig, conv, steps, ritz, stopped = lanczos_sigma_min(
        solver, z, V0, tol=1e-8, maxiter=200, want_vectors=True, min_live=100
    )
    assert stopped.any() and conv.any() and not np.any(conv & stopped)
    np.testing.assert_allclose(sig[conv], ref[conv], rtol=1e-8)
    # a converged Ritz vector is the right singular vector for sigma_min: ||(zI - A) v|| = sigma
    Q = scipy.linalg.schur(A, output="real")[1]
    for j in np.flatnonzero(conv)[:5]:
        v = Q @ ritz[:, j]
        assert np.linalg.norm((z[j] * np.eye(n) - A) @ v) == pytest.approx(ref[j], rel=1e-3)
    # restarted from their Ritz vectors, the stopped points converge in fewer steps than from scratch
    idx = np.flatnonzero(stopped)
    s2, c2, st2, _, stop2 = lanczos_sigma_min(solver, z[idx], ritz[:, idx], tol=1e-8, maxiter=200)
    assert c2.all() and not stop2.any()
    np.testing.assert_allclose(s2, ref[idx], rtol=1e-8)
    _, _, cold, _, _ = lanczos_sigma_min(solver, z[idx], V0[:, idx], tol=1e-8, maxiter=200)
    assert st2.mean() < cold.mean()


def test_full_grid_uses_warm_starts_and_stays_within_the_contract():
    n = 80
    rng = np.random.default_rng(7)
    A = rng.standard_normal((n, n)) / np.sqrt(n) + np.triu(rng.standard_normal((n, n)), 1) / np.sqrt(n)
    g = pseudospectra(A, npts=60)
    o = g.options
    assert o["warm_started_points"] > 0.5 * o["points_computed"]
    assert o["closed_form_points"] == 0
    Z = g.z[::7, ::7]
    ref = smin(A, Z).reshape(Z.shape)
    np.testing.assert_allclose(g.sigma_min[::7, ::7], ref, rtol=1e-8)


def test_worker_threads_give_the_same_grid():
    n = 210  # threads are used from n = 200
    rng = np.random.default_rng(8)
    A = rng.standard_normal((n, n)) / np.sqrt(n) + np.triu(rng.standard_normal((n, n)), 1) / np.sqrt(n)
    one = pseudospectra(A, npts=24)
    two = pseudospectra(A, npts=24, workers=2)
    assert two.options["workers"] == 2
    assert pseudospectra(A[:80, :80], npts=8, workers=2).options["workers"] == 1  # small n: one thread
    # different chains, different warm starts: equal to within the accuracy contract
    np.testing.assert_allclose(two.sigma_min, one.sigma_min, rtol=2e-8)
    with pytest.raises(ValueError, match="workers"):
        pseudospectra(A, npts=10, workers=0)
