"""spectra.pseudospectra against dense float64 SVDs and closed forms."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import scipy.linalg

import spectra
from spectra._triangular import ShiftedTriangular, top_ritz_value
from spectra.errors import CorruptFileError, NonFiniteError, NonSquareError, UnsupportedFormatError
from spectra.pseudospectra import PseudospectrumGrid, auto_bounds, default_levels, load_grid, pseudospectra

EPS = np.finfo(float).eps
RTOL = 1e-8


def dense_reference(A, x, y):
    """sigma_min((x_i + i y_j) I - A) by scipy's SVD at every point: the oracle."""
    n = A.shape[0]
    out = np.empty((len(y), len(x)))
    eye = np.eye(n)
    for j, yy in enumerate(y):
        for i, xx in enumerate(x):
            out[j, i] = scipy.linalg.svdvals((xx + 1j * yy) * eye - A)[-1]
    return out


def assert_close_to(sig, ref, A, x, y):
    """Within 1e-8 relative, or at rounding level (n eps ||zI - A||) where ref is that small."""
    n = A.shape[0]
    zmax = np.hypot(np.max(np.abs(x)), np.max(np.abs(y)))
    atol = 20 * n * EPS * (np.linalg.norm(A, 2) + zmax)
    assert np.all(np.isfinite(sig))
    err = np.abs(sig - ref)
    bad = err > RTOL * ref + atol
    assert not bad.any(), f"max rel err {np.max(err / np.maximum(ref, atol)):.3e} at {np.argwhere(bad)[:5]}"
    # and strictly relative wherever the value is well above rounding level
    big = ref > 1e4 * atol
    assert big.sum() > 0.5 * ref.size
    assert np.max(err[big] / ref[big]) <= RTOL


def nonnormal(n, seed, *, complex_=False):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) / np.sqrt(n) + np.triu(rng.standard_normal((n, n)), 1) / np.sqrt(n)
    if complex_:
        A = A + 1j * rng.standard_normal((n, n)) / np.sqrt(n)
    return A


def random_unitary(n, seed):
    rng = np.random.default_rng(seed)
    Q, R = np.linalg.qr(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
    return Q * (np.diag(R) / np.abs(np.diag(R)))


# ----------------------------------------------------------------------------- the building blocks


def test_shifted_triangular_solves_match_dense_solve():
    rng = np.random.default_rng(0)
    n, m = 70, 9
    T = np.triu(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / np.sqrt(n)
    z = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    B = rng.standard_normal((n, m)) + 1j * rng.standard_normal((n, m))
    dinv = 1.0 / (z[None, :] - np.diag(T)[:, None])
    solver = ShiftedTriangular(T, leaf=8)
    X = B.copy()
    solver.solve(X, dinv)
    Y = B.copy()
    solver.solve_adjoint(Y, np.conj(dinv))
    for j in range(m):
        M = z[j] * np.eye(n) - T
        # backward stable: residual at rounding level of ||M|| ||x||
        tol = 100 * n * EPS * np.linalg.norm(M, 2)
        assert np.linalg.norm(M @ X[:, j] - B[:, j]) <= tol * np.linalg.norm(X[:, j])
        assert np.linalg.norm(M.conj().T @ Y[:, j] - B[:, j]) <= tol * np.linalg.norm(Y[:, j])
        np.testing.assert_allclose(X[:, j], np.linalg.solve(M, B[:, j]), rtol=1e-9)


@pytest.mark.parametrize("k", [1, 2, 5, 17])
def test_top_ritz_value_matches_eigvalsh(k):
    rng = np.random.default_rng(k)
    m = 40
    alpha = rng.uniform(0.0, 3.0, (k, m))
    beta = rng.uniform(0.01, 1.0, (k - 1, m))
    exact = np.array(
        [
            np.linalg.eigvalsh(np.diag(alpha[:, j]) + np.diag(beta[:, j], 1) + np.diag(beta[:, j], -1))[-1]
            for j in range(m)
        ]
    )
    upper = np.max(alpha, axis=0) + 2.0 * (np.max(beta, axis=0) if k > 1 else 0.0) + 1.0
    got = top_ritz_value(alpha, beta, np.min(alpha, axis=0), upper)
    np.testing.assert_allclose(got, exact, rtol=1e-13)


# ----------------------------------------------------------------------------- against dense SVD


@pytest.mark.parametrize(
    "n,complex_,method",
    [
        (30, False, "svd"),  # below the dense threshold
        (30, True, "lanczos"),  # forced Lanczos on a small complex matrix
        (80, False, "auto"),  # Lanczos, real: mirrored rows
        (64, True, "auto"),  # Lanczos, complex: no mirroring
        (120, False, "auto"),
    ],
)
def test_matches_dense_svd_on_nonnormal_random(n, complex_, method):
    A = nonnormal(n, seed=n, complex_=complex_)
    x = np.linspace(-2.2, 2.3, 17)
    y = np.linspace(-2.0, 2.0, 15)  # symmetric: mirroring applies for real A
    g = pseudospectra(A, x=x, y=y, method=method)
    assert g.sigma_min.shape == (15, 17)
    assert_close_to(g.sigma_min, dense_reference(A, x, y), A, x, y)
    expect = "svd" if method == "svd" or (method == "auto" and n < 55) else "lanczos"
    assert g.options["method"] == expect
    assert (g.options["mirrored_rows"] > 0) == (not complex_)


@pytest.mark.parametrize("scale", [1e100, 1e-100, 2.0**300])
@pytest.mark.parametrize("device", [None, os.environ.get("SPECTRA_TEST_DEVICE", "cpu")])
def test_matrices_of_extreme_scale_match_dense_svd(scale, device):
    # the Lanczos vectors are of size sigma^-2: their squared norms left the float64 range
    # for ||A|| beyond ~1e77 (values off by a factor 20 at 1e100)
    if device is not None:
        pytest.importorskip("torch")
    A = nonnormal(60, seed=2) * scale
    x = np.linspace(-2.2, 2.3, 9) * scale
    y = np.linspace(-2.0, 2.0, 7) * scale
    g = pseudospectra(A, x=x, y=y, device=device)
    assert g.options["method"].startswith("lanczos")
    assert_close_to(g.sigma_min, dense_reference(A, x, y), A, x, y)
    ref_eigs = scipy.linalg.eigvals(A)
    gap = np.abs(g.eigenvalues[:, None] - ref_eigs[None, :]).min(axis=1)
    assert g.eigenvalues.size == 60 and np.all(gap <= 1e-10 * np.abs(ref_eigs).max())


def test_grid_far_from_a_matrix_of_norm_one_matches_dense_svd():
    A = nonnormal(60, seed=3)
    x, y = np.linspace(1e90, 3e90, 5), np.linspace(-1e90, 1e90, 5)
    g = pseudospectra(A, x=x, y=y)
    ref = dense_reference(A, x, y)
    np.testing.assert_allclose(g.sigma_min, ref, rtol=1e-8)


@pytest.mark.parametrize("method", ["auto", "svd"])
def test_a_grid_mixing_ordinary_and_far_points_matches_dense_svd(method):
    # one point at 1e200 set the scale of the whole grid: every ordinary point came out 0
    A = nonnormal(60, seed=4)
    x = np.array([-1.5, -0.2, 0.4, 1.3, 1e200])
    y = np.array([-0.7, 0.0, 0.9])
    g = pseudospectra(A, x=x, y=y, method=method)
    ref = dense_reference(A, x, y)
    np.testing.assert_allclose(g.sigma_min, ref, rtol=1e-8)


def test_explicit_axes_are_used_as_given_and_nonsymmetric_grid_is_not_mirrored():
    A = nonnormal(70, seed=5)
    x = np.array([-1.3, -0.2, 0.05, 0.9, 1.7])
    y = np.array([-0.7, 0.1, 0.35, 1.2])
    g = pseudospectra(A, x=x, y=y)
    assert g.x is not x and np.array_equal(g.x, x) and np.array_equal(g.y, y)
    assert g.options["mirrored_rows"] == 0
    assert_close_to(g.sigma_min, dense_reference(A, x, y), A, x, y)


def test_symmetric_grid_mirrors_rows_exactly_for_real_matrices():
    A = nonnormal(60, seed=6)
    y = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    x = np.linspace(-1.5, 1.5, 7)
    g = pseudospectra(A, x=x, y=y)
    assert g.options["mirrored_rows"] == 2
    np.testing.assert_array_equal(g.sigma_min[0], g.sigma_min[4])
    np.testing.assert_array_equal(g.sigma_min[1], g.sigma_min[3])
    assert_close_to(g.sigma_min, dense_reference(A, x, y), A, x, y)


def test_jordan_block_matches_svd_and_is_radial():
    n, lam = 60, 0.3 + 0.1j
    J = lam * np.eye(n) + np.diag(np.ones(n - 1), 1)
    x = lam.real + np.linspace(-1.6, 1.6, 13)
    y = lam.imag + np.linspace(-1.6, 1.6, 13)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = pseudospectra(J, x=x, y=y)
    ref = dense_reference(J, x, y)
    # near lam the values are ~|w|^n: far below rounding, compare with the absolute floor
    atol = 20 * n * EPS * (np.linalg.norm(J, 2) + 3)
    assert np.all(np.isfinite(g.sigma_min))
    assert np.all(np.abs(g.sigma_min - ref) <= RTOL * ref + atol)
    # sigma_min depends only on |z - lam| (Trefethen & Embree ch. 7): the grid is symmetric about lam
    np.testing.assert_allclose(g.sigma_min, g.sigma_min.T, rtol=1e-8, atol=atol)
    np.testing.assert_allclose(g.sigma_min, g.sigma_min[::-1, ::-1], rtol=1e-8, atol=atol)


def test_solves_that_overflow_fall_back_to_dense_svd():
    n = 100  # sigma_min ~ 0.05^100 = 1e-130 near 0: (T_z^* T_z)^{-1} overflows
    J = np.diag(np.ones(n - 1), 1)
    x = np.array([-0.05, 0.0, 0.05, 0.8])
    y = np.array([0.0, 0.04])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = pseudospectra(J, x=x, y=y)
    assert np.all(np.isfinite(g.sigma_min))
    assert g.options["dense_fallback_points"] >= 1
    ref = dense_reference(J, x, y)
    atol = 20 * n * EPS * 3
    assert np.all(np.abs(g.sigma_min - ref) <= RTOL * ref + atol)


@pytest.mark.parametrize("n", [20, 75])
def test_point_exactly_at_an_eigenvalue_returns_rounding_level_without_warnings(n):
    rng = np.random.default_rng(n)
    d = np.linspace(-0.9, 0.9, n)
    d[3] = 0.5
    T = np.diag(d) + np.triu(rng.standard_normal((n, n)), 1) / np.sqrt(n)
    P = np.eye(n)[rng.permutation(n)]
    for A in (T, P @ T @ P.T):  # triangular (exact zero pivot) and permuted (computed eigenvalue)
        x = np.array([0.25, 0.5, 0.75])
        y = np.array([-0.1, 0.0, 0.1])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            g = pseudospectra(A, x=x, y=y)
        assert np.all(np.isfinite(g.sigma_min))
        assert g.sigma_min[1, 1] <= 1e-13 * np.linalg.norm(A, 2)
        assert_close_to_loose = np.abs(g.sigma_min - dense_reference(A, x, y))
        ref = dense_reference(A, x, y)
        assert np.all(assert_close_to_loose <= RTOL * ref + 20 * n * EPS * (np.linalg.norm(A, 2) + 1))


def test_nearly_singular_matrix():
    n = 70
    rng = np.random.default_rng(7)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    d = np.concatenate([[1e-11, -3e-12], rng.uniform(0.2, 0.9, n - 2)])
    A = Q @ (np.diag(d) + 0.3 * np.triu(rng.standard_normal((n, n)), 1) / np.sqrt(n)) @ Q.T
    x = np.array([-1e-9, -1e-11, 0.0, 2e-10, 1e-6, 0.1])
    y = np.array([-1e-9, 0.0, 1e-9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = pseudospectra(A, x=x, y=y)
    ref = dense_reference(A, x, y)
    atol = 20 * n * EPS * (np.linalg.norm(A, 2) + 1)
    assert np.all(np.abs(g.sigma_min - ref) <= RTOL * ref + atol)


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("a,b", [(0.5, 1.0), (-0.2 + 0.3j, 2.5), (0.1, 1e-3)])
def test_two_by_two_closed_form(a, b):
    A = np.array([[a, b], [0, a]])
    x = np.linspace(-1.5, 1.5, 21)
    y = np.linspace(-1.2, 1.3, 18)
    g = pseudospectra(A, x=x, y=y)
    w = np.abs(g.z - a)
    exact = (np.sqrt(abs(b) ** 2 + 4 * w**2) - abs(b)) / 2
    # the closed form itself cancels for |w| << |b|: use the equivalent stable form
    exact = 2 * w**2 / (np.sqrt(abs(b) ** 2 + 4 * w**2) + abs(b))
    np.testing.assert_allclose(g.sigma_min, exact, rtol=RTOL, atol=1e-15)


def test_embedded_two_by_two_closed_form_on_the_lanczos_path():
    """blockdiag([[a, b], [0, a]], diag(mu)) rotated by a unitary: sigma_min = min(block, dist to mu)."""
    n, a, b = 64, 0.1 + 0.05j, 1.5
    rng = np.random.default_rng(11)
    mu = 2.5 * np.exp(2j * np.pi * rng.random(n - 2)) * rng.uniform(1.0, 1.4, n - 2)
    D = np.zeros((n, n), dtype=complex)
    D[:2, :2] = [[a, b], [0, a]]
    D[2:, 2:] = np.diag(mu)
    U = random_unitary(n, 3)
    A = U @ D @ U.conj().T
    x = np.linspace(-2.0, 2.0, 21)
    y = np.linspace(-1.9, 2.1, 20)
    g = pseudospectra(A, x=x, y=y)
    assert g.options["method"] == "lanczos"
    w = np.abs(g.z - a)
    block = 2 * w**2 / (np.sqrt(abs(b) ** 2 + 4 * w**2) + abs(b))
    dist = np.min(np.abs(g.z[..., None] - mu), axis=-1)
    exact = np.minimum(block, dist)
    np.testing.assert_allclose(g.sigma_min, exact, rtol=RTOL, atol=50 * n * EPS * 4)


@pytest.mark.parametrize("n", [40, 90])
def test_normal_matrix_sigma_is_distance_to_spectrum(n):
    rng = np.random.default_rng(n)
    lam = rng.uniform(-1, 1, n) + 1j * rng.uniform(-1, 1, n)
    U = random_unitary(n, n + 1)
    A = U @ np.diag(lam) @ U.conj().T
    x = np.linspace(-1.3, 1.3, 19)
    y = np.linspace(-1.25, 1.35, 16)
    g = pseudospectra(A, x=x, y=y)
    dist = np.min(np.abs(g.z[..., None] - lam), axis=-1)
    np.testing.assert_allclose(g.sigma_min, dist, rtol=RTOL, atol=50 * n * EPS * 2)
    np.testing.assert_allclose(np.sort_complex(g.eigenvalues), np.sort_complex(lam), atol=1e-12)


def test_real_normal_matrix_with_conjugate_pairs_mirrors_and_matches_distance():
    n = 60
    rng = np.random.default_rng(2)
    blocks, lam = [], []
    for _ in range(n // 2):
        r, t = rng.uniform(0.1, 1.0), rng.uniform(0, np.pi)
        c, s = r * np.cos(t), r * np.sin(t)
        blocks.append(np.array([[c, -s], [s, c]]))
        lam += [c + 1j * s, c - 1j * s]
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = Q @ scipy.linalg.block_diag(*blocks) @ Q.T
    x = np.linspace(-1.2, 1.2, 15)
    y = np.linspace(-1.2, 1.2, 15)
    y = (y - y[::-1]) / 2  # exactly symmetric: mirroring needs y[j] == -y[k] bit for bit
    g = pseudospectra(A, x=x, y=y)
    assert g.options["mirrored_rows"] == 7
    dist = np.min(np.abs(g.z[..., None] - np.array(lam)), axis=-1)
    np.testing.assert_allclose(g.sigma_min, dist, rtol=RTOL, atol=50 * n * EPS * 2)


# ----------------------------------------------------------------------------- defaults, options, errors


def test_default_grid_bounds_levels_and_recurrent_matrix_input():
    A = 0.9 * nonnormal(60, seed=9)
    from spectra.checkpoint import RecurrentMatrix

    rm = RecurrentMatrix(id="rnn.weight_hh_l0[update]", matrix=A, layer="rnn")
    g = pseudospectra(rm, npts=41)
    assert g.matrix_id == "rnn.weight_hh_l0[update]" and g.n == 60
    xmin, xmax, ymin, ymax = g.options["bounds"]
    assert xmin <= -1.1 and xmax >= 1.1 and ymin <= -1.1 and ymax >= 1.1 and ymin == -ymax
    assert max(g.sigma_min.shape) == 41
    ev = g.eigenvalues
    assert np.all((ev.real > xmin) & (ev.real < xmax) & (ev.imag > ymin) & (ev.imag < ymax))
    # levels: 1..8 of them, evenly spaced by 0.25, 0.5 or 1, every contour closed inside the box
    lev = g.levels
    assert 1 <= lev.size <= 8
    if lev.size > 1:
        steps = np.diff(lev)
        assert np.allclose(steps, steps[0]) and round(steps[0], 12) in (0.25, 0.5, 1.0)
    s = g.sigma_min
    edge = np.concatenate([s[0], s[-1], s[:, 0], s[:, -1]])
    assert 10 ** lev.max() <= edge.min() * (1 + 1e-12)
    assert 10 ** lev.min() >= s.min() * (1 - 1e-12)
    # the numerical-range box padded by eps encloses the eps-pseudospectrum (T&E thm 17.5)
    box = auto_bounds(A, levels=np.array([-1.0]))
    g2 = pseudospectra(A, bounds=box, npts=30, levels=[-1.0])
    s2 = g2.sigma_min
    assert np.concatenate([s2[0], s2[-1], s2[:, 0], s2[:, -1]]).min() >= 0.1 * (1 - 1e-9)


def test_default_levels_closed_form_cases():
    s = np.full((5, 5), 10.0)
    s[2, 2] = 1e-3
    lev = default_levels(s)
    assert lev.max() == 1.0 and lev.min() >= -3.0 and lev.size <= 8


def test_progress_callback_counts_to_total():
    A = nonnormal(60, seed=1)
    calls = []
    g = pseudospectra(A, npts=20, progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1] == g.options["points_computed"]
    assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:]))


def test_maxiter_exhaustion_falls_back_to_dense_and_stays_accurate():
    A = nonnormal(64, seed=4)
    x = np.linspace(-1, 1, 6)
    y = np.linspace(0.1, 1, 5)
    g = pseudospectra(A, x=x, y=y, maxiter=3)
    assert g.options["dense_fallback_points"] > 0
    assert_close_to(g.sigma_min, dense_reference(A, x, y), A, x, y)


def test_seed_changes_nothing_beyond_tolerance():
    A = nonnormal(64, seed=8)
    x = np.linspace(-1.5, 1.5, 9)
    y = np.linspace(0.05, 1.5, 7)
    g1 = pseudospectra(A, x=x, y=y, seed=1)
    g2 = pseudospectra(A, x=x, y=y, seed=2)
    np.testing.assert_allclose(g1.sigma_min, g2.sigma_min, rtol=2 * RTOL)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"bounds": (1, 0, -1, 1)}, "bounds"),
        ({"bounds": (0, 1, -1)}, "bounds"),
        ({"npts": 1}, "npts"),
        ({"npts": (10,)}, "npts"),
        ({"levels": []}, "levels"),
        ({"levels": [np.nan]}, "levels"),
        ({"method": "qr"}, "method"),
        ({"tol": 0.0}, "tol"),
        ({"maxiter": 1}, "maxiter"),
        ({"x": [0.0, -1.0], "y": [0.0, 1.0]}, "increasing"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pseudospectra(np.eye(3), **kwargs)


def test_unknown_keyword_raises_type_error():
    with pytest.raises(TypeError):
        pseudospectra(np.eye(3), colour="red")


def test_bad_matrices_raise_the_library_errors():
    with pytest.raises(NonSquareError):
        pseudospectra(np.ones((3, 4)))
    with pytest.raises(NonFiniteError):
        pseudospectra(np.array([[1.0, np.nan], [0.0, 1.0]]))


# ----------------------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path):
    A = nonnormal(60, seed=3)
    g = pseudospectra(A, npts=15, matrix_id="lstm/recurrent_kernel[cell]", title="cell gate")
    p = tmp_path / "g.npz"
    g.save(p)
    h = load_grid(p)
    assert isinstance(h, PseudospectrumGrid)
    for name in ("x", "y", "sigma_min", "eigenvalues", "levels"):
        np.testing.assert_array_equal(getattr(h, name), getattr(g, name))
    assert (h.matrix_id, h.title, h.n) == (g.matrix_id, g.title, g.n)
    assert h.options == g.options
    assert spectra.load_grid is load_grid and spectra.PseudospectrumGrid is PseudospectrumGrid


def test_load_grid_refuses_other_files(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(UnsupportedFormatError, match="not a pseudospectrum grid"):
        load_grid(other)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(os.urandom(300))
    with pytest.raises(CorruptFileError):
        load_grid(junk)
    single = tmp_path / "one.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(UnsupportedFormatError):
        load_grid(single)
    with pytest.raises(OSError):
        load_grid(tmp_path / "missing.npz")


@pytest.mark.parametrize("n", [100, 128])
def test_clustered_singular_values_neither_plateau_nor_misconverge(n):
    """Eigenvalues dense on a circle (a normal A): sigma_1 ~ sigma_2 ~ ... The Ritz value
    stagnates for dozens of steps (the residual check must not accept the plateau), and a
    start vector with a tiny component along the top singular vector converges to the
    second one first (equal-magnitude start vector). Both failures gave errors ~1e-5 here."""
    phi = 2 * np.pi * (np.arange(n) + 0.3) / n
    lam = 0.95 * np.exp(1j * phi)
    U = random_unitary(n, 12)
    # a whisker of non-normality (1e-7) keeps the engine off the closed form for normal
    # matrices, so Lanczos meets the clustered singular values; the oracle is a dense SVD
    N = 1e-7 * np.triu(np.random.default_rng(3).standard_normal((n, n)), 1) / np.sqrt(n)
    A = U @ (np.diag(lam) + N) @ U.conj().T
    x = np.linspace(-1.3, 1.3, 25)
    y = np.linspace(-1.2, 1.3, 24)
    g = pseudospectra(A, x=x, y=y)
    assert g.options["closed_form_points"] == 0
    np.testing.assert_allclose(g.sigma_min, dense_reference(A, x, y), rtol=RTOL, atol=50 * n * EPS * 2)
    assert g.options["lanczos_steps_max"] > 30  # the plateau is real: this is a hard case


def test_normal_matrix_uses_the_closed_form_with_weyl_bound():
    """A normal A: sigma_min(zI - A) = dist(z, spectrum) exactly; the engine takes the
    block-diagonal closed form (no Lanczos step) and matches to rounding."""
    n = 90
    phi = 2 * np.pi * (np.arange(n) + 0.3) / n
    lam = 0.95 * np.exp(1j * phi)
    U = random_unitary(n, 5)
    A = U @ np.diag(lam) @ U.conj().T
    g = pseudospectra(A, npts=30)
    assert g.options["closed_form_points"] == g.options["points_computed"]
    assert g.options["lanczos_steps_max"] == 0
    dist = np.min(np.abs(g.z[..., None] - lam), axis=-1)
    np.testing.assert_allclose(g.sigma_min, dist, rtol=1e-12)


@pytest.mark.parametrize("tol", [1e-11, 1e-5, 1e-2])
def test_tol_is_the_relative_accuracy_delivered(tol):
    A = nonnormal(64, seed=21)
    x = np.linspace(-1.5, 1.5, 9)
    y = np.linspace(-1.4, 1.5, 8)
    g = pseudospectra(A, x=x, y=y, tol=tol)
    ref = dense_reference(A, x, y)
    assert np.max(np.abs(g.sigma_min - ref) / ref) <= tol


def test_grid_files_and_levels_refuse_what_they_cannot_hold(tmp_path):
    import json

    from spectra.errors import InvalidArgumentError

    base = dict(x=np.arange(3.0), y=np.arange(2.0), sigma_min=np.ones((2, 3)), eigenvalues=np.ones(1))
    meta = json.dumps({"format": "rnn-spectra/pseudospectrum-grid"})
    np.savez(tmp_path / "list.npz", **base, levels=np.ones(1), meta=np.array(json.dumps([1, 2])))
    with pytest.raises(UnsupportedFormatError):  # was a bare AttributeError
        load_grid(tmp_path / "list.npz")
    np.savez(tmp_path / "empty.npz", **base, levels=np.ones(0), meta=np.array(meta))
    with pytest.raises(CorruptFileError, match="no contour levels"):  # plot() failed later with "None"
        load_grid(tmp_path / "empty.npz")
    with pytest.raises(InvalidArgumentError, match="NaN"):  # was a ValueError from math.ceil
        default_levels(np.full((5, 5), np.nan))
    # a zoom where every value is below the rounding level: the fallback level is not drawn there
    J = np.diag(np.ones(99), 1) + 0.5 * np.eye(100)
    g = pseudospectra(J, x=np.linspace(0.49, 0.51, 20), y=np.linspace(-0.01, 0.01, 20))
    assert g.levels.min() >= np.log10(1e-13 * np.linalg.norm(J, 2)) - 0.01
