"""The Kreiss certificate by square cells (spectra._kreiss_cells) against independent oracles.

The cell test rests on one fact: ``g(z) = sigma_min(zI - A)^2 - |z|^2`` is concave. Its
soundness is checked here against dense numpy SVDs of ``zI - A`` (no Schur form, no
library code), on squares where ``f = (|z| - 1)/sigma_min`` is found above the level
``gamma`` by brute force: the test must never pass such a square.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg as sla
from scipy.optimize import minimize
from test_kreiss import dense_max_f, random_nonnormal, random_nonnormal_maybe_complex

from spectra._kreiss_cells import cells_pass, certify_cells
from spectra.kreiss import _schur_forms, kreiss_constant


def smin(A: np.ndarray, z: np.ndarray) -> np.ndarray:
    n = A.shape[0]
    z = np.atleast_1d(z)
    return np.linalg.svd(z[:, None, None] * np.eye(n) - A, compute_uv=False)[:, -1]


def square_max_f(A: np.ndarray, x0: float, y0: float, h: float) -> float:
    """max of f over the square (|z| > 1 part) by a 41 x 41 sample and Nelder-Mead from the best."""
    t = np.linspace(0.0, 1.0, 41)
    X, Y = np.meshgrid(x0 + h * t, y0 + h * t)
    z = (X + 1j * Y).ravel()
    f = np.where(np.abs(z) > 1, (np.abs(z) - 1) / smin(A, z), -np.inf)
    best = float(np.max(f))

    def negf(p):
        x, y = min(max(p[0], x0), x0 + h), min(max(p[1], y0), y0 + h)
        w = complex(x, y)
        return -((abs(w) - 1) / smin(A, np.array([w]))[0]) if abs(w) > 1 else 0.0

    i = int(np.argmax(f))
    res = minimize(
        negf, [z[i].real, z[i].imag], method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-14}
    )
    return max(best, -float(res.fun))


def corner_s2(A: np.ndarray, x0: float, y0: float, h: float) -> list[np.ndarray]:
    corners = [complex(x0, y0), complex(x0 + h, y0), complex(x0 + h, y0 + h), complex(x0, y0 + h)]
    return [smin(A, np.array([c])) ** 2 for c in corners]


def squares(rng, count: int, sizes=(0.4, 0.05, 0.004)):
    for _ in range(count):
        h = float(rng.choice(sizes))
        r = 0.95 + 1.2 * rng.random()
        t = 2 * math.pi * rng.random()
        yield r * math.cos(t) - h / 2, r * math.sin(t) - h / 2, h


@pytest.mark.parametrize("n,cplx,seed", [(3, False, 1), (5, False, 2), (4, True, 3), (6, True, 4)])
def test_a_square_where_f_exceeds_gamma_never_passes(n, cplx, seed):
    A = random_nonnormal_maybe_complex(n, seed, cplx)
    rng = np.random.default_rng(seed)
    passed_high = 0
    for x0, y0, h in squares(rng, 60):
        fmax = square_max_f(A, x0, y0, h)
        if fmax <= 0:
            continue
        s2 = corner_s2(A, x0, y0, h)
        args = (np.array([x0]), np.array([y0]), np.array([h]), s2)
        # gamma just below the maximum over the square: the proof must fail
        assert not cells_pass(*args, fmax * (1 - 1e-6))[0], (x0, y0, h, fmax)
        # and far above it, small squares pass (the test is not vacuous)
        passed_high += int(cells_pass(*args, fmax * 1.5)[0])
    assert passed_high >= 20


def test_cells_pass_is_second_order_near_a_maximum():
    # at the maximiser z* of f, squares of side h pass gamma = K (1 + c h^2) for a fixed c:
    # the concave interpolation loses O(h^2), not O(h) (a Lipschitz bound would need c ~ 1/h)
    A = random_nonnormal(5, 0.9, seed=7)
    K = kreiss_constant(A, certify=True)
    zs = K.z
    ok = []
    for h in (1e-2, 1e-3, 1e-4):
        x0, y0 = zs.real - h / 2, zs.imag - h / 2
        s2 = corner_s2(A, x0, y0, h)
        gamma = K.value * (1 + 50 * h * h)
        ok.append(cells_pass(np.array([x0]), np.array([y0]), np.array([h]), s2, gamma)[0])
    assert all(ok)


@pytest.mark.parametrize("n,seed,cplx", [(48, 61, False), (48, 62, True), (12, 63, False)])
def test_certify_cells_brackets_the_dense_maximum(n, seed, cplx):
    # n = 48: vertex values by inverse Lanczos at two tolerances; n = 12: LAPACK SVDs
    A = random_nonnormal_maybe_complex(n, seed, cplx)
    T, _, R = _schur_forms(A)
    normT = float(sla.svdvals(A)[0])
    res = certify_cells(A, T, R, normT=normT, w_up=normT, rtol=1e-6)
    assert res.certified, res.stopped
    assert res.upper <= res.lower * (1 + 1e-6)
    oracle = dense_max_f(A, R=min(res.upper * 2 * normT, 6.0), nt=120)
    assert oracle > 1.05
    assert oracle <= res.upper
    assert res.lower >= oracle * (1 - 1e-6)
    # the lower bound is attained at z (Lanczos' value is never below sigma_min, up to its tolerance)
    f_z = (abs(res.z) - 1) / smin(A, np.array([res.z]))[0]
    assert f_z >= res.lower * (1 - 1e-8)


def test_cells_give_up_on_a_ridge_and_the_circle_walk_finishes():
    # f(z) of a scaled shift depends on |z| only: its maximum is a whole circle, where cells fail
    # in ever larger numbers; method="cells" says so, "auto" (certify=True) hands over to the walk
    w, n = 1.3, 8
    A = w * np.eye(n, k=1)
    cells = kreiss_constant(A, certify=True, method="cells")
    assert not cells.certified and "cells gave up" in cells.message and "ridge" in cells.message
    # sup_k ||A^k|| = w^(n-1) (closed form) is the upper bound left
    assert cells.upper == pytest.approx(w ** (n - 1), rel=1e-9)
    full = kreiss_constant(A, certify=True)
    assert full.certified and "circles" in full.message, full.message
    assert cells.lower <= full.upper and full.upper <= full.lower * (1 + 1e-6)


def test_auto_certifies_large_matrices_by_cells_alone():
    # beyond n = 64 "auto" runs the cells (about one pseudospectra grid of work), not the walk
    A = random_nonnormal(80, 0.9, seed=5)
    K = kreiss_constant(A)
    assert K.certified and "square cells" in K.message, K.message
    # a ridge at n > 64: the cells give up and "auto" does not run the walk: uncertified
    B = 1.05 * np.eye(70, k=1)
    K = kreiss_constant(B)
    assert not K.certified and "cells gave up" in K.message and "certify=True" in K.message


def test_method_is_checked():
    with pytest.raises(ValueError, match="method"):
        kreiss_constant(np.array([[0.5, 1.0], [0.0, 0.5]]), method="grid")


def test_vertices_at_an_eigenvalue_are_no_error():
    # a lattice vertex lands on an eigenvalue (0, 0.5): the solves break down there, a dense SVD
    # gives sigma_min = 0 (inside the unit disc, where nothing is claimed)
    n = 48
    A = np.diag(np.r_[0.0, 0.5, np.full(n - 2, 0.25)]) + 0.5 * np.eye(n, k=1)
    K = kreiss_constant(A, certify=True, method="cells")
    assert K.certified, K.message
    oracle = dense_max_f(A, R=3.0, nt=120)
    assert oracle <= K.upper and K.lower >= oracle * (1 - 1e-6)


def test_max_evals_bounds_the_cells_too():
    A = random_nonnormal(48, 0.9, seed=3)
    K = kreiss_constant(A, certify=True, method="cells", max_evals=100)
    assert not K.certified and "more than 100 sigma_min values" in K.message, K.message
    full = kreiss_constant(A, certify=True, method="cells")
    assert full.certified and K.lower <= full.upper and full.lower <= K.upper


@pytest.mark.parametrize(
    "A",
    [np.array([[0.999999, 10.0], [0.0, 0.2]]), np.array([[0.999999, 10.0], [0.0, -0.999999]])],
    ids=["one sharp peak", "two equal peaks"],
)
def test_a_sharp_peak_next_to_an_eigenvalue_at_the_circle_is_not_taken_for_a_ridge(A):
    # an eigenvalue 1e-6 inside the unit circle: the peak of f is narrow and the cells need
    # ~70000 values (next to nothing at n = 2). A fixed cap on the failed cells next to the
    # maximum (600) took it for a ridge and handed over to the circle walk: 10.8 s and an
    # uncertified bracket [12.51203221, 12.51272642] (found by a review)
    K = kreiss_constant(A, certify=True)
    assert K.certified and "square cells" in K.message, K.message
    oracle = dense_max_f(A, R=3.0, nr=200, nt=720)
    assert oracle <= K.upper and K.lower >= oracle * (1 - 1e-6)


def test_no_vertex_value_of_a_passed_square_exceeds_sigma_min_on_a_direct_sum(monkeypatch):
    # A direct sum: sigma_min(zI - A) is the smaller of the two blocks' values, and which block
    # gives it changes across the plane. Lanczos warm-started from a neighbouring vertex's
    # singular vector (the first version of the cells) converged there to the other block's
    # value: 141 corner values of passed squares were up to 15% above sigma_min^2 (a review).
    # Every corner value a passed square used must be a lower bound of the true one (numpy SVD).
    import spectra._kreiss_cells as kc

    rng = np.random.default_rng(0)
    m = 25
    B1 = random_nonnormal(m, 0.9, seed=11).astype(complex)
    B2 = np.exp(0.2j) * (B1 + 0.03 * np.triu(rng.normal(size=(m, m)), 1))
    A = sla.block_diag(B1, B2)
    n = A.shape[0]
    orig = kc.cells_pass
    seen = {"corners": 0, "over": 0}

    def checked(x0, y0, h, s2, gamma):
        ok = orig(x0, y0, h, s2, gamma)
        idx = np.flatnonzero(ok)
        if idx.size > 200:
            idx = rng.choice(idx, 200, replace=False)
        for c, (dx, dy) in enumerate(((0, 0), (1, 0), (1, 1), (0, 1))):
            if idx.size:
                z = x0[idx] + dx * h[idx] + 1j * (y0[idx] + dy * h[idx])
                true2 = smin(A, z) ** 2
                seen["corners"] += idx.size
                seen["over"] += int(np.sum(s2[c][idx] > true2 * (1 + 1e-12) + 1e-300))
        return ok

    monkeypatch.setattr(kc, "cells_pass", checked)
    K = kreiss_constant(A, certify=True, method="cells")
    assert n == 50 and K.certified, K.message
    assert seen["corners"] > 1000 and seen["over"] == 0, seen
