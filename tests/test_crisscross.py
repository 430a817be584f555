"""Tests of spectra.crisscross against independent oracles.

Oracles: closed forms (normal matrices, the 2x2 Jordan-like block), and brute
force maximisation/minimisation of sigma_min(zI - A) evaluated by batched dense
SVDs on grids, refined by bisection and Brent's method -- no eigenvalue pencils.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq, minimize_scalar

import spectra.crisscross as cc
from spectra.crisscross import (
    DistanceResult,
    PseudospectralResult,
    distance_to_instability,
    pseudospectral_abscissa,
    pseudospectral_radius,
)
from spectra.errors import NonFiniteError, NonSquareError

# ---------------------------------------------------------------------------
# brute-force oracles (batched SVDs only)
# ---------------------------------------------------------------------------


def smin(A: np.ndarray, z) -> np.ndarray:
    """sigma_min(zI - A) for an array of points z, by a batched dense SVD."""
    z = np.atleast_1d(np.asarray(z, dtype=complex))
    n = A.shape[0]
    M = z[:, None, None] * np.eye(n) - A[None, :, :]
    return np.linalg.svd(M, compute_uv=False)[:, -1]


def smin1(A: np.ndarray, z: complex) -> float:
    return float(smin(A, z)[0])


def outermost_on_line(A, eps, point, direction, t_max, h) -> float:
    """Largest t in [0, t_max] with sigma_min(point + t*direction) <= eps, by scan + bisection.

    Assumes point + t_max*direction is outside and no feature is thinner than h.
    """
    ts = np.arange(t_max, -h, -h)
    vals = smin(A, point + ts * direction)
    inside = np.nonzero(vals <= eps)[0]
    if inside.size == 0:
        return -np.inf
    i = inside[0]
    if i == 0:
        return t_max
    g = lambda t: smin1(A, point + t * direction) - eps  # noqa: E731
    return brentq(g, ts[i], ts[i - 1], xtol=1e-14, rtol=1e-15)


def _profile_peaks(profile: np.ndarray, k: int, cyclic: bool) -> list[int]:
    """Indices of the k largest local maxima of a sampled profile."""
    left = np.roll(profile, 1) if cyclic else np.concatenate([[-np.inf], profile[:-1]])
    right = np.roll(profile, -1) if cyclic else np.concatenate([profile[1:], [-np.inf]])
    peaks = np.nonzero((profile >= left) & (profile >= right) & np.isfinite(profile))[0]
    return list(peaks[np.argsort(-profile[peaks])][:k])


def _boundary_profile(vals: np.ndarray, ts: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a grid of sigma_min values along ts: largest inside t, and a linear
    interpolation of where sigma_min crosses eps just beyond it (a smooth profile)."""
    inside = vals <= eps
    idx = np.where(inside, np.arange(ts.size), -1).max(axis=1)
    grid = np.where(idx >= 0, ts[np.maximum(idx, 0)], -np.inf)
    interp = grid.copy()
    for j, i in enumerate(idx):
        if 0 <= i < ts.size - 1:
            v0, v1 = vals[j, i], vals[j, i + 1]
            interp[j] = ts[i] + (ts[1] - ts[0]) * (eps - v0) / (v1 - v0)
    return grid, interp


def brute_abscissa(A, eps, m=100, k=3):
    """Grid maximum of Re z over {sigma_min <= eps}, and its refinement.

    On a cartesian grid, each line Im z = y gives its largest inside Re z; the k
    best local maxima of that (interpolated) profile over y are refined by
    scan + bisection along the line and Brent's method over y.
    """
    R = np.linalg.norm(A, 2) + eps
    lam = np.linalg.eigvals(A)
    x0 = lam.real.min() - eps
    xs = np.linspace(x0, R, m)
    ys = np.linspace(-R, R, 2 * m)
    X, Y = np.meshgrid(xs, ys)
    vals = smin(A, (X + 1j * Y).ravel()).reshape(X.shape)
    grid, profile = _boundary_profile(vals, xs, eps)
    hx, hy = xs[1] - xs[0], ys[1] - ys[0]

    def neg_x(y):
        return -(x0 + outermost_on_line(A, eps, complex(x0, y), 1.0, R - x0 + hx, hx / 8))

    best = grid.max()
    for i in _profile_peaks(profile, k, cyclic=False):
        res = minimize_scalar(
            neg_x, bounds=(ys[i] - 2 * hy, ys[i] + 2 * hy), method="bounded", options={"xatol": 1e-10}
        )
        best = max(best, -res.fun)
    return grid.max(), best


def brute_radius(A, eps, m=100, k=3):
    """Grid maximum of |z| over {sigma_min <= eps} on a polar grid, and its refinement."""
    R = np.linalg.norm(A, 2) + eps
    rs = np.linspace(0.0, R, m)
    ths = np.linspace(0.0, 2 * np.pi, 3 * m, endpoint=False)
    Rg, Tg = np.meshgrid(rs, ths)
    vals = smin(A, (Rg * np.exp(1j * Tg)).ravel()).reshape(Rg.shape)
    grid, profile = _boundary_profile(vals, rs, eps)
    hr, ht = rs[1] - rs[0], ths[1] - ths[0]

    def neg_r(th):
        return -outermost_on_line(A, eps, 0.0, np.exp(1j * th), R + hr, hr / 8)

    best = grid.max()
    for i in _profile_peaks(profile, k, cyclic=True):
        res = minimize_scalar(
            neg_r, bounds=(ths[i] - 2 * ht, ths[i] + 2 * ht), method="bounded", options={"xatol": 1e-10}
        )
        best = max(best, -res.fun)
    return grid.max(), best


def brute_distance(A, m=20000):
    """min over m angles of sigma_min(e^{i theta} I - A), refined by Brent's method.

    For real A, sigma_min(conj(z) I - A) = sigma_min(zI - A): the m/2 angles of
    [0, pi] with the same spacing suffice.
    """
    h = 2 * np.pi / m
    ths = np.arange(m // 2 + 1) * h if np.isrealobj(A) else np.arange(m) * h
    vals = smin(A, np.exp(1j * ths))
    k = int(np.argmin(vals))
    res = minimize_scalar(
        lambda t: smin1(A, np.exp(1j * t)),
        bounds=(ths[k] - h, ths[k] + h),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return float(vals.min()), min(float(res.fun), float(vals.min()))


# ---------------------------------------------------------------------------
# test matrices
# ---------------------------------------------------------------------------


def random_nonnormal(n, seed, *, complex_=False, upper=1.0):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, n))
    U = np.triu(rng.standard_normal((n, n)), 1)
    if complex_:
        G = (G + 1j * rng.standard_normal((n, n))) / np.sqrt(2)
        U = U + 1j * np.triu(rng.standard_normal((n, n)), 1)
    return G / np.sqrt(n) + upper * U / np.sqrt(n)


def normal_matrix(lam, seed, *, real=False):
    """Q diag(lam) Q^* (complex) or a real orthogonal similarity of a real block form."""
    rng = np.random.default_rng(seed)
    n = len(lam)
    if not real:
        Q, _ = np.linalg.qr(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
        return Q @ np.diag(lam) @ Q.conj().T
    # real: lam given as list of reals and (a, b) pairs for a +- ib
    blocks = []
    for item in lam:
        if isinstance(item, tuple):
            a, b = item
            blocks.append(np.array([[a, b], [-b, a]]))
        else:
            blocks.append(np.array([[item]]))
    D = np.zeros((sum(b.shape[0] for b in blocks),) * 2)
    i = 0
    for b in blocks:
        k = b.shape[0]
        D[i : i + k, i : i + k] = b
        i += k
    Q, _ = np.linalg.qr(rng.standard_normal(D.shape))
    return Q @ D @ Q.T


def disc_radius(eps, b):
    """Radius of the eps-pseudospectrum of [[a, b], [0, a]] (a disc about a)."""
    return np.sqrt(eps * (eps + abs(b)))


# ---------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------

LAM = np.array([0.5 + 0.3j, -0.7, 0.1 - 0.8j, 0.2, -0.3 + 0.6j])


@pytest.mark.parametrize("eps", [1e-6, 1e-3, 0.1, 1.0, 10.0])
def test_normal_complex_closed_form(eps):
    A = normal_matrix(LAM, 0)
    a = pseudospectral_abscissa(A, eps)
    r = pseudospectral_radius(A, eps)
    assert abs(a.value - (LAM.real.max() + eps)) <= 1e-10
    assert abs(r.value - (np.abs(LAM).max() + eps)) <= 1e-10
    assert a.converged and r.converged and a.reliable
    # The returned points are on the boundary and attain the value.
    assert a.z.real == pytest.approx(a.value, abs=1e-14)
    assert abs(r.z) == pytest.approx(r.value, abs=1e-13)
    assert smin1(A, a.z) == pytest.approx(eps, abs=1e-10)
    assert smin1(A, r.z) == pytest.approx(eps, abs=1e-10)


@pytest.mark.parametrize("eps", [1e-4, 0.05, 0.7])
def test_normal_real_closed_form(eps):
    spec = [(0.3, 0.6), -0.85, 0.4, (-0.2, 0.1)]
    lam = np.array([0.3 + 0.6j, 0.3 - 0.6j, -0.85, 0.4, -0.2 + 0.1j, -0.2 - 0.1j])
    A = normal_matrix(spec, 1, real=True)
    assert np.isrealobj(A)
    assert abs(pseudospectral_abscissa(A, eps).value - (lam.real.max() + eps)) <= 1e-10
    assert abs(pseudospectral_radius(A, eps).value - (np.abs(lam).max() + eps)) <= 1e-10


@pytest.mark.parametrize("a", [0.3 + 0.4j, -0.6, 0.0, 2.0 - 1.0j])
@pytest.mark.parametrize("b", [1.0, 2.5j, 40.0])
@pytest.mark.parametrize("eps", [1e-6, 1e-2, 0.5])
def test_jordan_like_2x2_closed_form(a, b, eps):
    A = np.array([[a, b], [0, a]])
    R = disc_radius(eps, b)
    assert abs(pseudospectral_abscissa(A, eps).value - (np.real(a) + R)) <= 1e-10 * (1 + abs(b))
    assert abs(pseudospectral_radius(A, eps).value - (abs(a) + R)) <= 1e-10 * (1 + abs(b))


def test_zero_matrix_is_disc():
    A = np.zeros((3, 3))
    assert pseudospectral_abscissa(A, 0.25).value == pytest.approx(0.25, abs=1e-14)
    assert pseudospectral_radius(A, 0.25).value == pytest.approx(0.25, abs=1e-14)
    assert distance_to_instability(A).value == pytest.approx(1.0, abs=1e-14)


def test_distance_normal_closed_form():
    A = normal_matrix(LAM, 2)
    d = distance_to_instability(A)
    assert abs(d.value - (1 - np.abs(LAM).max())) <= 1e-10
    assert d.certified
    # the closest eigenvalue to the circle is 0.1 - 0.8j: the minimiser is its direction
    assert d.theta == pytest.approx(np.mod(np.angle(0.1 - 0.8j), 2 * np.pi), abs=1e-6)
    assert abs(d.z - np.exp(1j * d.theta)) < 1e-15


def test_distance_real_normal_closed_form():
    spec = [(0.3, 0.6), -0.85, 0.4]
    A = normal_matrix(spec, 3, real=True)
    d = distance_to_instability(A)
    assert abs(d.value - 0.15) <= 1e-10
    assert d.theta == pytest.approx(np.pi, abs=1e-6)  # real A: theta in [0, pi]


@pytest.mark.parametrize("a", [0.5, -0.3 + 0.4j, 0.9j, 0.0])
@pytest.mark.parametrize("b", [0.2, 1.5, 7.0j])
def test_distance_jordan_like_2x2(a, b):
    # sigma_min = (sqrt(|b|^2 + 4|w|^2) - |b|)/2 with w = z - a, increasing in |w|;
    # min over |z| = 1 of |z - a| is 1 - |a|.
    A = np.array([[a, b], [0, a]])
    w = 1 - abs(a)
    expected = (np.sqrt(abs(b) ** 2 + 4 * w**2) - abs(b)) / 2
    d = distance_to_instability(A)
    assert abs(d.value - expected) <= 1e-10
    if a != 0:
        assert abs(np.exp(1j * d.theta) - np.exp(1j * np.angle(a))) <= 1e-5 or (
            np.isrealobj(A) and abs(np.exp(-1j * d.theta) - np.exp(1j * np.angle(a))) <= 1e-5
        )


@pytest.mark.parametrize(
    "A",
    [np.diag([1.0, 0.2]), np.diag([0.1, -1.5]), np.array([[0.5, 3.0], [0.0, 1.0j]]), np.eye(4) * 1.2j],
)
def test_distance_unstable_is_zero(A):
    d = distance_to_instability(A)
    assert d.value == 0.0 and d.certified
    assert abs(abs(d.z) - 1) < 1e-15


# ---------------------------------------------------------------------------
# random non-normal matrices against brute force
# ---------------------------------------------------------------------------

RANDOM_CASES = [
    (6, 0, False, 0.05),
    (8, 1, True, 0.02),
    (10, 2, False, 0.3),
    (12, 3, True, 0.1),
]


@pytest.mark.parametrize("n,seed,cplx,eps_rel", RANDOM_CASES)
def test_abscissa_random_vs_brute_force(n, seed, cplx, eps_rel):
    A = random_nonnormal(n, seed, complex_=cplx)
    eps = eps_rel * np.linalg.norm(A, 2)
    res = pseudospectral_abscissa(A, eps)
    grid_max, refined = brute_abscissa(A, eps)
    assert res.value >= grid_max - 1e-12
    assert abs(res.value - refined) <= 1e-6
    assert smin1(A, res.z) == pytest.approx(eps, rel=1e-9)
    assert res.z.real == res.value


def check_radius_vs_brute_force(n, seed, cplx, eps_rel):
    """rho_eps of a random non-normal matrix against the brute-force oracle; the result."""
    A = random_nonnormal(n, seed + 10, complex_=cplx)
    eps = eps_rel * np.linalg.norm(A, 2)
    res = pseudospectral_radius(A, eps)
    grid_max, refined = brute_radius(A, eps)
    assert res.value >= grid_max - 1e-12
    assert abs(res.value - refined) <= 1e-6
    assert smin1(A, res.z) == pytest.approx(eps, rel=1e-9)
    return res


@pytest.mark.parametrize("n,seed,cplx,eps_rel", RANDOM_CASES)
def test_radius_random_vs_brute_force(n, seed, cplx, eps_rel):
    res = check_radius_vs_brute_force(n, seed, cplx, eps_rel)
    assert abs(res.z) == pytest.approx(res.value, rel=1e-14)


def check_distance_vs_dense_sampling(n, seed, cplx, rho):
    """d_inst of a random non-normal matrix scaled to rho against dense sampling; the result."""
    A = random_nonnormal(n, seed, complex_=cplx, upper=0.5)
    A = A * (rho / np.abs(np.linalg.eigvals(A)).max())
    d = distance_to_instability(A)
    sampled_min, refined = brute_distance(A)
    assert d.value <= sampled_min + 1e-12
    assert abs(d.value - refined) <= 1e-10
    assert smin1(A, d.z) == pytest.approx(d.value, abs=1e-12)
    assert d.certified
    return d


@pytest.mark.parametrize(
    "n,seed,cplx,rho",
    [
        (5, 20, False, 0.9),
        (10, 21, True, 0.8),
        (20, 22, False, 0.95),
        (16, 23, True, 0.97),
        (30, 24, False, 0.6),
    ],
)
def test_distance_random_vs_dense_sampling(n, seed, cplx, rho):
    d = check_distance_vs_dense_sampling(n, seed, cplx, rho)
    if not cplx:
        assert 0.0 <= d.theta <= np.pi


def test_real_and_complex_paths_agree():
    # A real matrix uses the y -> -y / theta -> -theta symmetry; the same matrix as
    # complex128 takes the general path.
    A = random_nonnormal(9, 30)
    A = A * (0.9 / np.abs(np.linalg.eigvals(A)).max())
    Ac = A.astype(complex)
    for eps in (1e-3, 0.1):
        assert pseudospectral_abscissa(A, eps).value == pytest.approx(
            pseudospectral_abscissa(Ac, eps).value, abs=1e-11
        )
        assert pseudospectral_radius(A, eps).value == pytest.approx(
            pseudospectral_radius(Ac, eps).value, abs=1e-11
        )
    assert distance_to_instability(A).value == pytest.approx(distance_to_instability(Ac).value, abs=1e-12)


def test_monotone_in_eps_and_bounds():
    # alpha_eps >= alpha + eps, rho_eps >= rho + eps (eigenvector discs), and
    # rho_eps <= ||A|| + eps (sigma_min(zI - A) >= |z| - ||A||).
    A = random_nonnormal(10, 40, complex_=True)
    lam = np.linalg.eigvals(A)
    prev_a = prev_r = -np.inf
    for eps in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
        a = pseudospectral_abscissa(A, eps).value
        r = pseudospectral_radius(A, eps).value
        assert a >= lam.real.max() + eps - 1e-12 and r >= np.abs(lam).max() + eps - 1e-12
        assert r <= np.linalg.norm(A, 2) + eps + 1e-12 and a <= r + 1e-12
        assert a > prev_a and r > prev_r
        prev_a, prev_r = a, r


# ---------------------------------------------------------------------------
# the circle pencil and its QZ fallback
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cplx", [False, True])
def test_circle_pencil_unimodular_eigenvalues_are_crossings(cplx):
    A = random_nonnormal(12, 50, complex_=cplx)
    A = A * (0.9 / np.abs(np.linalg.eigvals(A)).max())
    eps = 0.6 * smin1(A, 1.0) + 0.4 * smin1(A, -1.0)
    thetas = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    s = smin(A, np.exp(1j * thetas))
    # sign changes of sigma_min - eps on a fine sampling: crossings of the smallest value
    changes = np.count_nonzero(np.diff(np.sign(np.append(s, s[0]) - eps)))
    lam_qz = cc._circle_pencil_eigenvalues(A, eps, None)
    lam_sh = cc._circle_pencil_eigenvalues(A, eps, complex(np.exp(0.77j)))
    for lam in (lam_qz, lam_sh):
        uni = lam[np.abs(np.abs(lam) - 1) < 1e-8]
        assert len(uni) >= changes > 0
        for z in uni:  # eps is a singular value of zI - A
            sv = np.linalg.svd(z * np.eye(12) - A, compute_uv=False)
            assert np.min(np.abs(sv - eps)) < 1e-9
    a_qz = np.sort(np.angle(lam_qz[np.abs(np.abs(lam_qz) - 1) < 1e-8]))
    a_sh = np.sort(np.angle(lam_sh[np.abs(np.abs(lam_sh) - 1) < 1e-8]))
    np.testing.assert_allclose(a_qz, a_sh, atol=1e-9)


def test_qz_fallback_gives_same_results(monkeypatch):
    A = random_nonnormal(8, 60, complex_=True)
    A = A * (0.85 / np.abs(np.linalg.eigvals(A)).max())
    r_ref = pseudospectral_radius(A, 0.05).value
    d_ref = distance_to_instability(A).value
    monkeypatch.setattr(cc, "_SHIFT_GAP", np.inf)  # no shift is ever good enough: QZ
    assert pseudospectral_radius(A, 0.05).value == pytest.approx(r_ref, abs=1e-12)
    assert distance_to_instability(A).value == pytest.approx(d_ref, abs=1e-12)


# ---------------------------------------------------------------------------
# results, arguments and errors
# ---------------------------------------------------------------------------


def test_result_objects():
    A = np.diag([0.5, -0.25])
    a = pseudospectral_abscissa(A, 0.1)
    r = pseudospectral_radius(A, 0.1)
    d = distance_to_instability(A)
    assert isinstance(a, PseudospectralResult) and a.kind == "abscissa" and a.eps == 0.1
    assert isinstance(r, PseudospectralResult) and r.kind == "radius"
    assert isinstance(d, DistanceResult)
    assert float(a) == a.value and float(r) == r.value and float(d) == d.value
    assert a.iterations >= 1 and r.iterations >= 1 and d.iterations >= 1
    with pytest.raises(AttributeError):
        a.value = 1.0  # frozen


def test_small_eps_marked_unreliable():
    A = np.array([[0.5, 1.0], [0.0, 0.5]])
    res = pseudospectral_abscissa(A, 1e-12)
    assert not res.reliable
    assert res.value >= 0.5  # never below the spectral abscissa
    assert pseudospectral_radius(A, 1e-3).reliable


@pytest.mark.parametrize("func", [pseudospectral_abscissa, pseudospectral_radius])
@pytest.mark.parametrize("eps", [0.0, -1e-3, np.nan, np.inf, "a", None])
def test_bad_eps(func, eps):
    with pytest.raises(ValueError, match="eps"):
        func(np.eye(2), eps)


@pytest.mark.parametrize("func", [pseudospectral_abscissa, pseudospectral_radius])
def test_bad_max_iterations(func):
    with pytest.raises(ValueError, match="max_iterations"):
        func(np.eye(2), 0.1, max_iterations=0)
    with pytest.raises(ValueError, match="max_iterations"):
        distance_to_instability(np.eye(2) * 0.5, max_iterations=-1)
    with pytest.raises(ValueError, match="tol"):
        func(np.eye(2), 0.1, tol=-1.0)
    with pytest.raises(ValueError, match="tol"):
        distance_to_instability(np.eye(2) * 0.5, tol=np.nan)


@pytest.mark.parametrize(
    "func",
    [
        lambda A: pseudospectral_abscissa(A, 0.1),
        lambda A: pseudospectral_radius(A, 0.1),
        distance_to_instability,
    ],
)
def test_bad_matrices(func):
    with pytest.raises(NonSquareError):
        func(np.ones((2, 3)))
    with pytest.raises(NonSquareError):
        func(np.ones(3))
    with pytest.raises(NonFiniteError):
        func(np.array([[0.1, np.nan], [0.0, 0.2]]))


def test_public_names_resolve_lazily():
    import spectra

    assert spectra.pseudospectral_abscissa is pseudospectral_abscissa
    assert spectra.pseudospectral_radius is pseudospectral_radius
    assert spectra.distance_to_instability is distance_to_instability


def test_crossing_fallback_without_eigenvalue_candidates(monkeypatch):
    # With a zero axis tolerance no complex eigenvalue counts as a crossing: the
    # horizontal/radial searches fall back to Brent's method on sigma_min - eps.
    A = normal_matrix(LAM, 7)
    monkeypatch.setattr(cc, "_AXIS_TOL", 0.0)
    assert abs(pseudospectral_abscissa(A, 0.05).value - (LAM.real.max() + 0.05)) <= 1e-10
    assert abs(pseudospectral_radius(A, 0.05).value - (np.abs(LAM).max() + 0.05)) <= 1e-10


def test_jordan_block_vs_brute_force():
    # J_4(0.3): sigma_min depends only on |z - 0.3|, rho_eps - 0.3 ~ eps^(1/4).
    A = 0.3 * np.eye(4) + np.diag(np.ones(3), 1)
    for eps in (1e-3, 0.1):
        a = pseudospectral_abscissa(A, eps).value
        r = pseudospectral_radius(A, eps).value
        assert r - 0.3 == pytest.approx(a - 0.3, abs=1e-12)  # a disc about 0.3 > 0
        _, refined = brute_radius(A, eps, m=60)
        assert abs(r - refined) <= 1e-8
        assert smin1(A, r) == pytest.approx(eps, rel=1e-9)


def test_distance_flat_circulant():
    # 0.9 * cyclic shift: normal, eigenvalues 0.9 * roots of unity, so d = 0.1 while
    # sigma_min on the unit circle is nearly constant (hard for shift choice).
    A = 0.9 * np.roll(np.eye(16), 1, axis=1)
    d = distance_to_instability(A)
    assert abs(d.value - 0.1) <= 1e-10
    assert abs(np.exp(16j * d.theta) - 1) <= 1e-6  # at a root of unity


# ---------------------------------------------------------------------------
# invariances and bounds (metamorphic oracles)
# ---------------------------------------------------------------------------


def test_invariances():
    # sigma_min(zI - QAQ^*) = sigma_min(zI - A) for unitary Q; rotating A by e^{i phi}
    # rotates its pseudospectra; A^T has the same sigma_min(zI - .) everywhere;
    # alpha_eps(A + cI) = alpha_eps(A) + Re c.
    A = random_nonnormal(7, 70, complex_=True)
    A = A * (0.8 / np.abs(np.linalg.eigvals(A)).max())
    Q, _ = np.linalg.qr(np.random.default_rng(71).standard_normal((7, 7)) + 0j)
    eps = 0.03
    a, r, d = (
        pseudospectral_abscissa(A, eps).value,
        pseudospectral_radius(A, eps).value,
        distance_to_instability(A).value,
    )
    B = Q @ A @ Q.conj().T
    assert pseudospectral_abscissa(B, eps).value == pytest.approx(a, abs=1e-11)
    assert pseudospectral_radius(B, eps).value == pytest.approx(r, abs=1e-11)
    assert distance_to_instability(B).value == pytest.approx(d, abs=1e-12)
    assert pseudospectral_radius(np.exp(0.7j) * A, eps).value == pytest.approx(r, abs=1e-11)
    assert distance_to_instability(np.exp(-2.1j) * A).value == pytest.approx(d, abs=1e-12)
    assert distance_to_instability(A.T).value == pytest.approx(d, abs=1e-12)
    shift = 0.4 - 0.3j
    assert pseudospectral_abscissa(A + shift * np.eye(7), eps).value == pytest.approx(a + 0.4, abs=1e-11)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 7),
    seed=st.integers(0, 2**32 - 1),
    cplx=st.booleans(),
    log_eps=st.floats(-6, 0.5, allow_subnormal=False),
    rho=st.floats(0.05, 0.99, allow_subnormal=False),
)
def test_bounds_property(n, seed, cplx, log_eps, rho):
    # alpha + eps <= alpha_eps <= rho_eps <= ||A|| + eps; the maximiser is on the
    # boundary; 1 - ||A|| <= d(A) <= 1 - rho(A) <= sigma_min at every sampled angle.
    A = random_nonnormal(n, seed, complex_=cplx)
    A = A * (rho / max(np.abs(np.linalg.eigvals(A)).max(), 1e-300))
    nrm = np.linalg.norm(A, 2)
    eps = 10.0**log_eps * max(nrm, 1e-3)
    lam = np.linalg.eigvals(A)
    a = pseudospectral_abscissa(A, eps)
    r = pseudospectral_radius(A, eps)
    tol = 1e-10 * (nrm + eps)
    assert lam.real.max() + eps - tol <= a.value <= r.value + tol
    assert np.abs(lam).max() + eps - tol <= r.value <= nrm + eps + tol
    assert smin1(A, a.z) == pytest.approx(eps, rel=1e-6, abs=1e-12)
    assert smin1(A, r.z) == pytest.approx(eps, rel=1e-6, abs=1e-12)
    d = distance_to_instability(A)
    assert 1 - nrm - 1e-12 <= d.value <= 1 - np.abs(lam).max() + 1e-12
    ths = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    assert d.value <= smin(A, np.exp(1j * ths)).min() + 1e-12
    assert smin1(A, d.z) == pytest.approx(d.value, abs=1e-12)


def test_distance_to_instability_does_not_stop_at_a_symmetric_local_maximum():
    """Real A whose smallest sample f(0) is a local maximum of f(theta) = sigma_min(e^{i theta} I - A)
    between two lower minima at +-0.09: the symmetric arc around 0 must be searched, not
    certified from its mirror-point midpoint (a bug found by a dense cross-check)."""
    A = np.array(
        [
            [
                0.23478470472407936,
                0.4668708536310541,
                -1.5693362614578756,
                0.9705904459289095,
                0.41263447580440404,
            ],
            [
                0.8260322303680003,
                0.21569539995865733,
                -1.4189417856791466,
                -0.022935766852954786,
                0.28162644495066763,
            ],
            [
                0.5881418406738226,
                -0.32405259672788816,
                -0.556592485731623,
                0.26173779103715183,
                0.483065805806129,
            ],
            [
                -0.04457843482834564,
                0.07410801517203765,
                -0.42434578863055283,
                0.34212432671041626,
                -0.18465687310149786,
            ],
            [
                0.047567876314694404,
                0.08414568838952366,
                0.4756007477676822,
                -0.62528368600328,
                0.19899781472355807,
            ],
        ]
    )

    def f(t):
        return np.linalg.svd(np.exp(1j * t) * np.eye(5) - A, compute_uv=False)[-1]

    ts = np.linspace(0, np.pi, 20001)
    j = int(np.argmin([f(t) for t in ts]))
    ref = minimize_scalar(
        f, bounds=(ts[max(j - 1, 0)], ts[j + 1]), method="bounded", options={"xatol": 1e-12}
    ).fun
    r = distance_to_instability(A)
    assert f(0.0) > ref + 1e-4  # the trap: the mirror point is well above the minimum
    assert float(r) == pytest.approx(ref, rel=1e-10, abs=1e-13)
    assert f(r.theta) == pytest.approx(float(r), rel=1e-9)


def test_tiny_matrix_large_eps_keeps_every_crossing():
    # ||A|| = 2e-8, eps = 1: no shift keeps the circle pencil well conditioned, QZ runs, and a
    # pair of crossings came out 2.1e-6 off the unit circle, past the candidate tolerance:
    # two arcs merged across a gap, rho_eps came out 4.5e-10 short and the distance to
    # instability 1e-12 high (both "certified"); oracle: dense SVDs on the circle
    rng = np.random.default_rng(1215)
    n = 55
    G = rng.standard_normal((n, n))
    G = (G + 1j * rng.standard_normal((n, n))) / np.sqrt(2)
    A = 1e-8 * G / np.sqrt(n)

    def smin(z):
        return np.linalg.svd(z * np.eye(n) - A, compute_uv=False)[-1]

    th = np.linspace(0, 2 * np.pi, 2048, endpoint=False)
    r = pseudospectral_radius(A, 1.0)
    assert min(smin(r.value * np.exp(1j * t)) for t in th[::2]) >= 1.0 - 1e-13  # nothing beyond
    d = distance_to_instability(A)
    s = np.array([smin(np.exp(1j * t)) for t in th])
    k = int(np.argmin(s))
    from scipy.optimize import minimize_scalar

    ref = minimize_scalar(
        lambda t: smin(np.exp(1j * t)),
        bounds=(th[k] - 0.01, th[k] + 0.01),
        method="bounded",
        options={"xatol": 1e-12},
    ).fun
    assert d.certified and d.value <= min(ref, s.min()) + 1e-13


# ---------------------------------------------------------------------------
# the O(n^2) search path (Schur factor + inverse iteration), used above _RAY_DENSE_N
# ---------------------------------------------------------------------------


@pytest.fixture
def estimate_path(monkeypatch):
    """Run the searches between level sets on the Schur-factor estimates at every n."""
    monkeypatch.setattr(cc, "_RAY_DENSE_N", 0)


@pytest.mark.parametrize("n,seed,cplx,eps_rel", RANDOM_CASES)
def test_radius_estimate_path_vs_brute_force(estimate_path, n, seed, cplx, eps_rel):
    check_radius_vs_brute_force(n, seed, cplx, eps_rel)


@pytest.mark.parametrize("n,seed,cplx,rho", [(5, 20, False, 0.9), (10, 21, True, 0.8), (20, 22, False, 0.95)])
def test_distance_estimate_path_vs_dense_sampling(estimate_path, n, seed, cplx, rho):
    check_distance_vs_dense_sampling(n, seed, cplx, rho)


@pytest.mark.parametrize("bias", [1.01, 0.99])
def test_wrong_estimates_are_caught_by_the_dense_check(estimate_path, monkeypatch, bias):
    # Estimates 1% off sigma_min (above: overestimates as a stalled iteration gives; below:
    # impossible for ||Bv||, but the dense check must not trust them either): the radial
    # roots land off the boundary, and the dense SVD check sends Brent to dense values.
    real_estimate = cc._smin_estimate

    def biased(*args, **kw):
        s, v, ok = real_estimate(*args, **kw)
        return bias * s, v, ok

    monkeypatch.setattr(cc, "_smin_estimate", biased)
    A = random_nonnormal(10, 12, complex_=False)
    eps = 0.05 * np.linalg.norm(A, 2)
    res = pseudospectral_radius(A, eps)
    _, refined = brute_radius(A, eps)
    assert abs(res.value - refined) <= 1e-6
    assert smin1(A, res.z) == pytest.approx(eps, rel=1e-9)
    d = distance_to_instability(A * (0.9 / np.abs(np.linalg.eigvals(A)).max()))
    _, refined_d = brute_distance(A * (0.9 / np.abs(np.linalg.eigvals(A)).max()))
    assert abs(d.value - refined_d) <= 1e-10


def test_unconverged_estimates_switch_to_svds(estimate_path, monkeypatch):
    # A Jordan-like T (clustered small singular values) stalls inverse iteration: after
    # _MAX_STALLS stalled estimates the search switches to dense SVDs for good (each stalled
    # estimate costs its full iteration count) and still gives the 2x2 block's closed form.
    calls = []
    real_estimate = cc._smin_estimate

    def stalled(T, z, v0, iters=80, tol=1e-13):
        calls.append(iters)
        s, v, _ = real_estimate(T, z, v0, iters=1, tol=tol)
        return s, v, False

    monkeypatch.setattr(cc, "_smin_estimate", stalled)
    a, b, eps = 0.5, 1.5, 0.01
    A = np.array([[a, b], [0.0, a]])
    assert pseudospectral_radius(A, eps).value == pytest.approx(a + disc_radius(eps, b), abs=1e-12)
    assert len(calls) == cc._MAX_STALLS


def test_normal_large_closed_form():
    # n above _RAY_DENSE_N (the estimate path without monkeypatching): rho + eps, 1 - rho
    rng = np.random.default_rng(5)
    n = cc._RAY_DENSE_N + 24
    lam = 0.9 * np.sqrt(rng.random(n)) * np.exp(2j * np.pi * rng.random(n))
    A = normal_matrix(lam, 6)
    rho = np.abs(lam).max()
    for eps in (1e-3, 0.1):
        assert pseudospectral_radius(A, eps).value == pytest.approx(rho + eps, abs=1e-12)
    assert distance_to_instability(A).value == pytest.approx(1 - rho, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cplx", [False, True])
def test_boundary_ascent_starts_the_circles_at_the_maximum(estimate_path, seed, cplx):
    # The ascent from the top eigenvalue's ray reaches the (here global) maximum of |z| on
    # the boundary, so the first circle ends the iteration (1 to 4 circles without it);
    # the value is the brute-force one and its point lies on the boundary.
    A = random_nonnormal(12, seed, complex_=cplx)
    eps = 0.05 * np.linalg.norm(A, 2)
    res = pseudospectral_radius(A, eps)
    _, refined = brute_radius(A, eps)
    assert abs(res.value - refined) <= 1e-6
    assert smin1(A, res.z) == pytest.approx(eps, rel=1e-9)
    assert res.iterations == 1


@pytest.mark.parametrize("cplx", [False, True])
def test_clustered_smallest_singular_values_large_n(cplx):
    # Four nearly equal 2x2 Jordan-like blocks hidden by a similarity (n = 150, the estimate
    # path): sigma_min is nearly 4-fold, inverse iteration stagnates and its root was
    # accepted 7.5e-8 eps inside the pseudospectrum (found by a review). The closed form is
    # that of the largest block: a + sqrt(eps (eps + b_max)).
    rng = np.random.default_rng(0)
    n, a, jit = 150, 0.5, 3e-7
    b, eps = (1000.0, 0.1) if cplx else (100.0, 0.01)
    blocks = [np.array([[a, b * (1 + jit * k / 4)], [0.0, a]]) for k in range(4)]
    B = np.zeros((n, n))
    for k, blk in enumerate(blocks):
        B[2 * k : 2 * k + 2, 2 * k : 2 * k + 2] = blk
    B[8:, 8:] = np.diag(0.05 * rng.uniform(-1, 1, n - 8))
    if cplx:
        Q, _ = np.linalg.qr(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
        A = Q @ B @ Q.conj().T
    else:
        Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        A = Q @ B @ Q.T
    assert n > cc._RAY_DENSE_N
    res = pseudospectral_radius(A, eps)
    assert res.value == pytest.approx(a + disc_radius(eps, b * (1 + 3 * jit / 4)), rel=1e-12)


def test_schur_cache_follows_the_matrix_contents():
    # the last Schur factor is reused for the same bytes only: a matrix changed in place
    # (same object, same id) gets a new one
    rng = np.random.default_rng(8)
    n = cc._RAY_DENSE_N + 8
    lam = 0.8 * np.sqrt(rng.random(n)) * np.exp(2j * np.pi * rng.random(n))
    A = normal_matrix(lam, 9)
    rho = np.abs(lam).max()
    assert pseudospectral_radius(A, 0.01).value == pytest.approx(rho + 0.01, abs=1e-12)
    T1 = cc._schur_triangle(A)
    assert cc._schur_triangle(A.copy()) is T1
    A *= 0.5
    assert pseudospectral_radius(A, 0.01).value == pytest.approx(0.5 * rho + 0.01, abs=1e-12)
    assert distance_to_instability(A).value == pytest.approx(1 - 0.5 * rho, abs=1e-12)


def test_brent_running_out_of_steps_on_estimates_is_survived(estimate_path, monkeypatch):
    # scipy's brentq raises RuntimeError after 100 steps; on the estimates (the ascent and
    # the first pass of a radial search) that must fall back to dense values, not escape
    real_brentq = cc.brentq

    def exhausted(f, *args, **kw):
        if getattr(f, "__name__", "") != "g":  # the dense root finder of a radial search is g
            raise RuntimeError("Failed to converge after 100 iterations")
        return real_brentq(f, *args, **kw)

    monkeypatch.setattr(cc, "brentq", exhausted)
    A = random_nonnormal(10, 12, complex_=True)
    eps = 0.05 * np.linalg.norm(A, 2)
    res = pseudospectral_radius(A, eps)
    _, refined = brute_radius(A, eps)
    assert abs(res.value - refined) <= 1e-6
    assert smin1(A, res.z) == pytest.approx(eps, rel=1e-9)


def test_real_matrix_takes_a_real_shift_whose_gap_clears_the_threshold():
    # a real shift keeps the 2n x 2n shift-and-invert eigenproblem real (a third of the time of a
    # complex one at n = 1024); with a gap of 1e-4 (1 + ||A||) its crossings are accurate to
    # ~u/gap, so a complex angle with a larger gap is not worth its SVD (the rule asked for a
    # quarter of the best gap and took the complex one)
    from spectra.crisscross import _SHIFT_GAP, _choose_shift

    scale, eps = 2.0, 0.3
    svals = {0.0: np.array([2.0, eps + 50 * _SHIFT_GAP * scale]), 1.0: np.array([2.0, eps + 0.5])}
    assert _choose_shift(svals, eps, scale, real=True) == 1.0
    svals[0.0] = np.array([2.0, eps + 0.5 * _SHIFT_GAP * scale])  # below the threshold: complex
    assert _choose_shift(svals, eps, scale, real=True) == complex(np.exp(1j))
