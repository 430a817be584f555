"""Numerical range and radius against closed forms and brute force."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from spectra.errors import NonSquareError
from spectra.numerical_range import numerical_radius, numerical_radius_bounds, numerical_range


def brute_radius(A: np.ndarray, m: int = 20000) -> float:
    """max over a fine angle grid of lambda_max((e^{it} A + h.c.)/2), by numpy eigvalsh."""
    best = 0.0
    for t in np.array_split(np.linspace(0, 2 * np.pi, m, endpoint=False), 20):
        X = np.exp(1j * t)[:, None, None] * A
        H = (X + np.conj(np.swapaxes(X, 1, 2))) / 2
        best = max(best, float(np.max(np.linalg.eigvalsh(H)[:, -1])))
    return best


def test_normal_radius_is_spectral_radius():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)) + 1j * rng.standard_normal((6, 6)))
    lam = np.array([0.3 + 0.8j, -0.5, 0.2j, 0.6 - 0.1j, 0.0, -0.4 - 0.4j])
    A = Q @ np.diag(lam) @ Q.conj().T
    assert numerical_radius(A) == pytest.approx(np.max(np.abs(lam)), rel=1e-12)
    # real symmetric: w = max |lambda|
    S = rng.standard_normal((5, 5))
    S = S + S.T
    assert numerical_radius(S) == pytest.approx(np.max(np.abs(np.linalg.eigvalsh(S))), rel=1e-12)


@pytest.mark.parametrize("a,b", [(0.5, 1.0), (0.3 + 0.4j, 2.0 - 1.0j), (-1.0, 0.5j), (0.0, 3.0)])
def test_jordan2_disc(a, b):
    A = np.array([[a, b], [0, a]])
    # W([[a, b], [0, a]]) is the disc about a of radius |b|/2
    assert numerical_radius(A) == pytest.approx(abs(a) + abs(b) / 2, rel=1e-12)
    pts = numerical_range(A, npts=64)
    np.testing.assert_allclose(np.abs(pts - a), abs(b) / 2, rtol=1e-12)
    lo, hi = numerical_radius_bounds(A)
    truth = abs(a) + abs(b) / 2
    # a disc about 0 has a constant support function: the maximum is a whole circle and
    # the bisection stops at 4096 intervals (documented), so the bracket is ~1e-8 wide
    gap = 1e-7 if a == 0 else 1e-11
    assert lo <= truth * (1 + 1e-14) and truth <= hi <= lo * (1 + gap)


@pytest.mark.parametrize("n,seed,cplx", [(5, 1, False), (9, 2, True), (16, 3, False)])
def test_random_vs_brute_force(n, seed, cplx):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if cplx else 0)
    brute = brute_radius(A)
    w = numerical_radius(A)
    lo, hi = numerical_radius_bounds(A)
    # the grid max is a lower bound; with 20000 angles it is within ||A|| (pi/20000)^2/2
    assert w >= brute * (1 - 1e-13)
    assert w <= brute + np.linalg.norm(A, 2) * (np.pi / 20000) ** 2
    assert lo <= w <= hi <= lo * (1 + 1e-11)
    nrm = np.linalg.norm(A, 2)
    assert nrm / 2 <= w * (1 + 1e-14) and w <= nrm * (1 + 1e-14)
    # random unit vectors give values |x* A x| <= w
    X = rng.standard_normal((200, n)) + 1j * rng.standard_normal((200, n))
    X /= np.linalg.norm(X, axis=1)[:, None]
    assert np.max(np.abs(np.einsum("ki,ij,kj->k", X.conj(), A, X))) <= w * (1 + 1e-12)


@pytest.mark.parametrize("n,seed,cplx", [(5, 1, False), (9, 2, True), (16, 3, False), (12, 4, True)])
def test_coarse_bracket_contains_brute_force(n, seed, cplx):
    # the cheap far-field bracket of the Kreiss certificate: it must contain w(A), and
    # be no looser than the convexity factor 1/cos(pi/16) (2%) of its 8 intervals
    from spectra.numerical_range import _coarse_bounds

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if cplx else 0)
    A += 2 * np.triu(rng.standard_normal((n, n)), 1)  # non-normal: W(A) far from a disc
    brute = brute_radius(A)
    lo, hi = _coarse_bounds(A)
    assert lo <= brute * (1 + 1e-13)
    assert hi >= brute
    assert hi <= brute / np.cos(np.pi / 16) * (1 + 1e-12)


def test_boundary_points_are_support_points():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((7, 7)) + 0.5j * rng.standard_normal((7, 7))
    npts = 50
    pts = numerical_range(A, npts=npts)
    theta = 2 * np.pi * np.arange(npts) / npts
    for t, p in zip(theta, pts):
        H = (np.exp(1j * t) * A + np.exp(-1j * t) * A.conj().T) / 2
        # x* A x at the top eigenvector of H attains the support function in direction e^{-it}
        assert (np.exp(1j * t) * p).real == pytest.approx(np.linalg.eigvalsh(H)[-1], rel=1e-10, abs=1e-12)
    # eigenvalues lie in W(A): inside the polygon's support half-planes (up to its inner approximation)
    w = numerical_radius(A)
    assert np.all(np.abs(pts) <= w * (1 + 1e-12))
    assert np.all(np.abs(np.linalg.eigvals(A)) <= w * (1 + 1e-12))


def test_powers_bounded_by_berger():
    # ||A^k|| <= 2 w(A)^k (Berger's power inequality + ||B|| <= 2 w(B))
    rng = np.random.default_rng(6)
    A = rng.standard_normal((6, 6)) + 2 * np.triu(rng.standard_normal((6, 6)), 1)
    A /= numerical_radius(A)
    P = np.eye(6)
    for _ in range(30):
        P = P @ A
        assert np.linalg.norm(P, 2) <= 2 * (1 + 1e-10)


def test_errors():
    with pytest.raises(NonSquareError):
        numerical_radius(np.ones((2, 3)))
    with pytest.raises(ValueError, match="npts"):
        numerical_range(np.eye(2), npts=2)
    with pytest.raises(ValueError, match="rtol"):
        numerical_radius_bounds(np.eye(2), rtol=0)
    assert numerical_radius(np.zeros((3, 3))) == 0.0


@pytest.mark.parametrize("scale", [1e-300, 1e-170, 1e170, 1e300, 1.5e308])
def test_numerical_radius_at_the_ends_of_the_float_range(scale):
    # ||A||_F underflowed to 0 (entries ~1e-300) and hit the zero shortcut: (0, 0) for w = 1e-300;
    # entries near the largest float raised OverflowError (the scale 2**1024)
    J = np.array([[0.5, 1.0], [0.0, 0.5]])  # w = 0.5 + 1/2 = 1
    lo, hi = numerical_radius_bounds(J * scale)
    assert lo == pytest.approx(scale, rel=1e-12) and lo <= hi <= scale * (1 + 1e-9)
    assert numerical_radius(J * scale) == pytest.approx(scale, rel=1e-12)
    # W(J) is the disc |z - 0.5| <= 0.5: the boundary points, scaled
    p = numerical_range(J * scale, npts=16)
    np.testing.assert_allclose(np.abs(p / scale - 0.5), 0.5, rtol=1e-12)


def _fresh_process(code: str) -> str:
    """Stdout of `code` run by a new interpreter (which does not flush denormals to zero)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_numerical_radius_of_subnormal_entries():
    # subnormal entries raised LinAlgError: the divisor 2**1029 of the rescaling overflowed. In a
    # fresh process: the test session flushes denormals to zero (torch.set_flush_denormal)
    code = (
        "import numpy as np; from spectra.numerical_range import *; "
        "J = 1e-310 * np.array([[0.5, 1.0], [0.0, 0.5]]); "
        "print(numerical_radius(J) / 1e-310, *(v / 1e-310 for v in numerical_radius_bounds(J)), "
        "np.max(np.abs(np.abs(numerical_range(J, npts=16) * 1e300 / 1e-10 - 0.5) - 0.5)))"
    )
    w, lo, hi, off = (float(v) for v in _fresh_process(code).split())
    # 1e-310 carries about 11 significant bits of J's entries: w = 1e-310 to about 1e-4
    assert w == pytest.approx(1.0, rel=1e-4) and lo <= w * (1 + 1e-12) and lo <= hi
    assert hi == pytest.approx(1.0, rel=1e-4) and off < 1e-4
    # the bounds of a subnormal matrix still bracket w: rescaled to subnormal, they were rounded
    # to nearest (177 of 200 brackets missed the value); oracle: the same matrix at unit scale
    code = (
        "import numpy as np; from spectra.numerical_range import numerical_radius_bounds as b; "
        "rng = np.random.default_rng(3); bad = 0\n"
        "for t in range(60):\n"
        "    M = rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4))\n"
        "    e = int(rng.integers(-1068, -1030))\n"
        "    A = np.ldexp(M.real, e) + 1j * np.ldexp(M.imag, e)\n"
        "    U = np.ldexp(A.real, -e) + 1j * np.ldexp(A.imag, -e)\n"
        "    ulo, uhi = b(U, rtol=1e-14); lo, hi = b(A)\n"
        "    bad += np.ldexp(lo, -e) > uhi or np.ldexp(hi, -e) < ulo\n"
        "print(bad)"
    )
    assert _fresh_process(code).strip() == "0"


@pytest.mark.parametrize("npts", [7, 8, 50])
def test_numerical_range_of_real_matrix_by_conjugate_symmetry_equals_every_angle(npts):
    # real A: half the angles are computed, the rest mirrored; the points must be those of all angles
    A = np.random.default_rng(0).standard_normal((12, 12))
    theta = 2 * np.pi * np.arange(npts) / npts
    pts = []
    for t in theta:
        H = (np.exp(1j * t) * A + np.exp(-1j * t) * A.T) / 2
        x = np.linalg.eigh(H)[1][:, -1]
        pts.append(x.conj() @ A @ x)
    np.testing.assert_allclose(numerical_range(A, npts), np.array(pts), atol=1e-12)


def test_maximum_next_to_the_real_axis_of_a_real_matrix():
    # h'(0) = 0 by symmetry for real A; here 0 is a local minimum of h and the maximum
    # (|1 + 0.05i|, W(A) of this normal matrix is the segment between 1 +- 0.05i) lies at
    # theta = -0.05, within one sample step of 0 (a slope-only refinement missed it)
    A = np.array([[1.0, 0.05], [-0.05, 1.0]])
    assert numerical_radius(A) == pytest.approx(abs(1 + 0.05j), rel=1e-13)


def test_two_peaks_of_the_support_function_close_in_angle():
    # W(A) = segment [e^{-0.05i}, 0.99 e^{-0.40i}]: h peaks at 0.05 (value 1) and at 0.40
    # (0.99), with a kink between them (found by a review: a refinement by sign changes of
    # h' returned cos 0.05)
    A = np.diag([np.exp(-0.05j), 0.99 * np.exp(-0.40j)])
    assert numerical_radius(A) == pytest.approx(1.0, rel=1e-13)


@pytest.mark.parametrize("m2", [0.9999, 0.998])
def test_numerical_radius_finds_a_peak_between_samples_beside_higher_samples(m2):
    # a normal matrix: w = max |lambda| = 1, attained between two of the 49 sample angles, with
    # two slightly smaller eigenvalues exactly on sample angles: only the two best samples were
    # refined and w came out 0.998 (< rho, impossible)
    step = 2 * np.pi / 48
    lam = np.array([np.exp(-10.5j * step), m2 * np.exp(-20j * step), (m2 - 1e-4) * np.exp(-30j * step), 0.1])
    Q = np.linalg.qr(
        np.random.default_rng(0).standard_normal((4, 4))
        + 1j * np.random.default_rng(1).standard_normal((4, 4))
    )[0]
    for A in (np.diag(lam), Q @ np.diag(lam) @ Q.conj().T):
        assert abs(numerical_radius(A) - 1.0) < 1e-12


def test_numerical_radius_finds_a_lobe_between_samples_behind_five_higher_candidates():
    # W(A) = conv of five points on the unit circle (at sample angles) and the disc
    # D(0.99 e^{-i 40.5 pi/48}, 0.01052) (a 2x2 block [[c, 2r], [0, c]]), realified: w = 1.00052
    # in closed form. Only four sampled candidates were refined, so the disc's peak between two
    # samples was never looked at and w came out 1.000000 (found by a review)
    step = np.pi / 48
    blocks = [np.array([[np.exp(-1j * j * step)]]) for j in (5, 15, 25, 35, 45)]
    c, r = 0.99 * np.exp(-1j * 40.5 * step), 0.01052
    blocks.append(np.array([[c, 2 * r], [0, c]]))
    n = sum(b.shape[0] for b in blocks)
    M = np.zeros((n, n), complex)
    i = 0
    for b in blocks:
        k = b.shape[0]
        M[i : i + k, i : i + k] = b
        i += k
    A = np.block([[M.real, -M.imag], [M.imag, M.real]])  # real, unitarily similar to M + conj(M)
    exact = abs(c) + r
    assert numerical_radius(A) == pytest.approx(exact, rel=1e-9)
    assert numerical_radius(M) == pytest.approx(exact, rel=1e-9)
    lo, hi = numerical_radius_bounds(A)
    assert lo <= exact * (1 + 1e-15) and hi >= exact * (1 - 1e-15)


def test_numerical_radius_of_a_flat_support_function_stops_early_and_stays_exact(monkeypatch):
    # h is flat along arcs no bisection can discard: a Jordan block at 0 (W(A) the disc of radius
    # cos(pi/(n+1))), an orthogonal matrix (W(A) the polygon of its eigenvalues on the circle,
    # w = 1). Each took up to 60 rounds of 256 intervals (orthogonal n = 256: 2075 eigenproblems,
    # 16 s); the bisection's total is now capped, and w <= ||A||_2 = 1 closes the second at once
    import spectra.numerical_range as nr

    calls = []
    support = nr._support_points
    monkeypatch.setattr(
        nr, "_support_points", lambda a, th, *k: (calls.append(np.size(th)), support(a, th, *k))[1]
    )
    n = 60
    J = np.diag(np.ones(n - 1), 1)
    assert numerical_radius(J) == pytest.approx(np.cos(np.pi / (n + 1)), rel=1e-13)
    assert 17 < sum(calls) <= 17 + 2 * 256  # samples, cuts
    calls.clear()
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((80, 80)))[0]
    lo, hi = numerical_radius_bounds(Q, rtol=1e-9)
    assert lo == pytest.approx(1.0, abs=1e-12) and hi <= 1.0 + 1e-11
    assert sum(calls) <= 17 + 20


def test_vertex_bounds_hold_between_the_sampled_angles():
    # W = conv of random points: h(t) = max_j Re(e^{it} P_j) in closed form; the bound of each
    # gap must hold at every angle inside it (also for h < 0: W away from 0), and the cut lie in it
    from spectra.numerical_range import _vertex_bounds

    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(600):
        P = (
            rng.standard_normal(6)
            + 1j * rng.standard_normal(6)
            + 3 * rng.uniform() * np.exp(2j * np.pi * rng.uniform())
        )

        def h(t, P=P):
            return np.max((np.exp(1j * np.atleast_1d(t))[:, None] * P[None, :]).real, axis=1)

        th = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 9))))
        th = np.concatenate([th, [th[0] + 2 * np.pi]])
        if np.max(np.diff(th)) >= np.pi:
            continue
        bound, at = _vertex_bounds(th, h(th))
        for j in range(bound.size):
            inside = h(np.linspace(th[j], th[j + 1], 300))
            assert np.max(inside) <= bound[j] + 1e-12 * (1 + abs(bound[j]))
            assert th[j] <= at[j] <= th[j + 1]
        checked += 1
    assert checked > 300


def test_numerical_radius_cuts_need_few_eigenproblems(monkeypatch):
    # the cutting plane (vertex directions) against brute force, and its cost: the sampling and
    # Brent refinement before it took 80-100 eigenproblems for 1e-9
    import spectra.numerical_range as nr

    calls = []
    support = nr._support_points
    monkeypatch.setattr(
        nr, "_support_points", lambda a, th, *k: (calls.append(np.size(th)), support(a, th, *k))[1]
    )
    rng = np.random.default_rng(5)
    A = rng.standard_normal((60, 60)) / np.sqrt(60) + np.triu(rng.standard_normal((60, 60)), 1) / 8
    lo, hi = numerical_radius_bounds(A, rtol=1e-12)
    assert sum(calls) <= 45
    brute = brute_radius(A)
    assert lo <= brute * (1 + 1e-13) + 1e-15 and hi >= brute
    assert hi <= lo * (1 + 1e-12) + nr._margin(A.astype(complex), np.linalg.norm(A))


def test_numerical_radius_lower_end_is_not_above_w():
    # W([[0, b], [0, 0]]) is the disc of radius b/2 about 0 (exact in floating point): the lower
    # end was the computed |x* A x|, up to 6 ulps above w, and w = 1.2344999... printed 1.235
    for b in (2 * 1.2345, 2 * 0.7, 3.0, 2 * 1.1):
        lo, hi = numerical_radius_bounds(np.array([[0.0, b], [0.0, 0.0]]))
        assert lo <= b / 2 <= hi
        assert numerical_radius(np.array([[0.0, b], [0.0, 0.0]])) <= b / 2
