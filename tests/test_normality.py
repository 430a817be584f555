"""Spectrum, norms and non-normality figures against closed forms and dense formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

import spectra
from spectra.errors import NonFiniteError, NonSquareError
from spectra.normality import analyze_matrix, henrici, schur_nonnormal


def random_unitary(n, rng, complex_=True):
    z = rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if complex_ else 0)
    q, r = np.linalg.qr(z)
    return q * (np.diag(r) / np.abs(np.diag(r)))


@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_normal_matrix_has_zero_departure(n):
    rng = np.random.default_rng(n)
    lam = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    q = random_unitary(n, rng)
    a = q @ np.diag(lam) @ q.conj().T
    r = analyze_matrix(a)
    assert r.henrici < 1e-13 * np.linalg.norm(a)
    assert r.henrici_relative < 1e-13
    assert r.spectral_radius == pytest.approx(np.abs(lam).max(), rel=1e-12)
    assert r.norm_2 == pytest.approx(np.abs(lam).max(), rel=1e-12)  # normal: ||A||_2 = rho
    assert r.kappa_eigvec == pytest.approx(1.0, abs=1e-8)


def test_real_normal_rotation_and_symmetric():
    c, s = math.cos(0.3), math.sin(0.3)
    rot = 0.9 * np.array([[c, -s], [s, c]])
    assert henrici(rot) < 1e-15
    sym = np.array([[2.0, 1.0], [1.0, -3.0]])
    assert henrici(sym) < 1e-15


@pytest.mark.parametrize("a,b", [(0.5, 2.0), (-0.3 + 0.4j, 1e-6), (0.9, -7.0)])
def test_two_by_two_closed_form(a, b):
    A = np.array([[a, b], [0, a]])
    r = analyze_matrix(A)
    assert r.henrici == pytest.approx(abs(b), rel=1e-13)
    assert r.schur_nonnormal_fro == pytest.approx(abs(b), rel=1e-13)
    fro = math.sqrt(2 * abs(a) ** 2 + abs(b) ** 2)
    assert r.norm_fro == pytest.approx(fro, rel=1e-14)
    assert r.henrici_relative == pytest.approx(abs(b) / fro, rel=1e-13)
    assert r.spectral_radius == pytest.approx(abs(a), rel=1e-14)
    # singular values of [[a, b],[0, a]] are (sqrt(|b|^2 + 4|a|^2) +- |b|)/2
    smax = (math.sqrt(abs(b) ** 2 + 4 * abs(a) ** 2) + abs(b)) / 2
    assert r.norm_2 == pytest.approx(smax, rel=1e-12)
    assert math.isinf(r.kappa_eigvec)  # defective


@pytest.mark.parametrize("n", [2, 3, 6])
def test_jordan_block(n):
    J = np.diag(np.full(n, 0.7)) + np.diag(np.ones(n - 1), 1)
    r = analyze_matrix(J)
    assert r.henrici == pytest.approx(math.sqrt(n - 1), rel=1e-13)
    assert math.isinf(r.kappa_eigvec)
    assert r.stable


def test_random_against_eigenvalue_formula():
    rng = np.random.default_rng(1)
    for n in (5, 30, 80):
        a = rng.standard_normal((n, n)) / math.sqrt(n) + np.triu(rng.standard_normal((n, n)), 1)
        lam = scipy.linalg.eigvals(a)
        dep_formula = math.sqrt(np.linalg.norm(a, "fro") ** 2 - np.sum(np.abs(lam) ** 2))
        r = analyze_matrix(a)
        assert r.henrici == pytest.approx(dep_formula, rel=1e-9)
        assert r.norm_2 == pytest.approx(np.linalg.svd(a, compute_uv=False)[0], rel=1e-13)
        assert r.spectral_radius == pytest.approx(np.abs(lam).max(), rel=1e-12)
        _, V = scipy.linalg.eig(a)
        V = V / np.linalg.norm(V, axis=0)
        assert r.kappa_eigvec == pytest.approx(np.linalg.cond(V), rel=1e-6)


def test_nearly_normal_no_cancellation():
    # Q (D + delta N) Q^T with delta tiny: the eigenvalue formula cancels, Schur does not.
    rng = np.random.default_rng(2)
    n, delta = 60, 1e-10
    q = random_unitary(n, rng, complex_=False).real
    D = np.diag(np.linspace(-0.9, 0.9, n))
    N = np.triu(rng.standard_normal((n, n)), 1)
    a = q @ (D + delta * N) @ q.T
    expected = delta * np.linalg.norm(N, "fro")  # ||N||_F is invariant: exact value of dep_F
    assert henrici(a) == pytest.approx(expected, rel=1e-4)


def test_schur_nonnormal_reconstructs():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((9, 9))
    s = schur_nonnormal(a)
    recon = s.Q @ (np.diag(s.eigenvalues) + s.N) @ s.Q.conj().T
    assert np.allclose(recon, a, atol=1e-12)
    assert np.allclose(np.tril(s.N), 0)


def test_errors():
    with pytest.raises(NonSquareError):
        henrici(np.ones((2, 3)))
    with pytest.raises(NonFiniteError):
        henrici(np.array([[np.nan, 0], [0, 1.0]]))
    with pytest.raises(ValueError):  # NonSquareError is a ValueError too
        analyze_matrix(np.ones(3))


def test_public_henrici_is_float():
    v = spectra.henrici(np.array([[0.0, 2.0], [0.0, 0.0]]))
    assert isinstance(v, float) and v == pytest.approx(2.0)


def test_analyze_array_and_nonfinite_warning():
    rep = spectra.analyze(np.array([[0.5, 1.0], [0.0, 0.5]]), figures=["basic"])
    assert rep.matrices[0].henrici == pytest.approx(1.0)
    with pytest.warns(RuntimeWarning, match="NaN or Inf"):
        rep = spectra.analyze(np.array([[np.inf, 0.0], [0.0, 1.0]]), figures=["basic"])
    m = rep.to_dict()["matrices"][0]
    assert m["finite"] is False and m["spectral_radius"] is None


def test_analyze_keeps_the_imaginary_part_of_complex_matrices(tmp_path):
    # the robustness figures once saw only the real part of a complex matrix
    rng = np.random.default_rng(3)
    A = 0.2 * (rng.standard_normal((5, 5)) + 1j * rng.standard_normal((5, 5)))
    th = np.linspace(0, 2 * np.pi, 20000, endpoint=False)
    X = np.exp(1j * th)[:, None, None] * A
    w_brute = float(np.max(np.linalg.eigvalsh((X + np.conj(np.swapaxes(X, 1, 2))) / 2)[:, -1]))
    peak = max(np.linalg.norm(np.linalg.matrix_power(A, k), 2) for k in range(60))
    p = tmp_path / "c.npz"
    np.savez(p, C=A)
    for source in (A, str(p)):
        m = spectra.analyze(source, figures=["basic", "kreiss"]).to_dict()["matrices"][0]
        assert m["numerical_radius"] == pytest.approx(w_brute, rel=1e-6)
        assert m["transient_peak"] == pytest.approx(peak, rel=1e-10)


def test_analyze_rejects_unknown_figures():
    with pytest.raises(spectra.InvalidArgumentError, match="valid"):
        spectra.analyze(np.eye(2), figures=["nope"])


@pytest.mark.parametrize("mult", [2, 15, 29])
def test_kappa_is_one_for_normal_matrices_with_repeated_eigenvalues(mult):
    # eigenvectors of a repeated eigenvalue are only an eigenspace; back substitution gave
    # kappa = 11.3 (mult 15) and 25.5 (mult 29) for a symmetric matrix, set by rounding
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    d = [0.3] * mult + list(np.linspace(-0.9, -0.1, 30 - mult))
    r = analyze_matrix(Q @ np.diag(d) @ Q.T)
    assert r.kappa_eigvec == pytest.approx(1.0, abs=1e-10)
    # non-normal, semisimple double eigenvalue: finite (an orthonormal basis of the eigenspace)
    V = np.eye(4) + 0.5 * np.triu(np.ones((4, 4)), 1)
    A = V @ np.diag([0.5, 0.5, 0.2, -0.3]) @ np.linalg.inv(V)
    k = analyze_matrix(A).kappa_eigvec
    assert 1 < k < 10


def test_matrices_beyond_the_float_range_computed_here_are_refused_not_miscomputed():
    # [[.5, 1e200], [0, .5]]: dep_F came out inf with dep_F/|A|_F nan and kappa(V) = 1 (it is
    # defective), and kreiss_constant said "holds NaN or Inf"; 1e150 B gave rho_eps below rho
    import warnings

    import spectra
    from spectra.errors import InvalidArgumentError, NonFiniteError

    for A in (np.array([[0.5, 1e200], [0.0, 0.5]]), np.array([[0.0, 1e-170], [0.0, 0.0]])):
        for f in (
            spectra.analyze_matrix,
            spectra.kreiss_constant,
            lambda a: spectra.pseudospectral_radius(a, 0.01),
        ):
            with pytest.raises(NonFiniteError, match="rescale"):
                f(A)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = spectra.analyze(A)
        assert rep.matrices[0].finite is False and "rescale" in rep.warnings[0]
    with pytest.raises(InvalidArgumentError, match="numbers"):
        spectra.analyze_matrix([["a"]])


@pytest.mark.filterwarnings(
    "ignore:ComplexHalf support:UserWarning", "ignore:torch.quantize_per_tensor:UserWarning"
)
def test_torch_tensors_of_any_float_dtype_are_read_exactly():
    # np.asarray of a bfloat16 tensor raised a bare TypeError ("unsupported ScalarType BFloat16")
    import torch

    from spectra._validate import as_square_matrix
    from spectra.errors import InvalidArgumentError

    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 5, generator=g, dtype=torch.float64)
    for t in (x.bfloat16(), x.half(), x.float(), x.to(torch.float8_e4m3fn)):
        a = as_square_matrix(t)
        assert a.dtype == np.float64
        # every value of these dtypes is a double: the reference widens bit-exactly
        np.testing.assert_array_equal(a, t.to(torch.float64).numpy())
    z = torch.complex(x, -x).to(torch.complex32)
    np.testing.assert_array_equal(as_square_matrix(z), z.to(torch.complex128).numpy())
    c = torch.complex(x, x).conj()  # a lazy conjugate view
    np.testing.assert_array_equal(as_square_matrix(c), x.numpy() - 1j * x.numpy())
    w = torch.randn(4, 4, generator=g, requires_grad=True)
    np.testing.assert_array_equal(as_square_matrix(w), w.detach().double().numpy())
    q = torch.quantize_per_tensor(x.float(), scale=0.05, zero_point=0, dtype=torch.qint8)
    np.testing.assert_array_equal(as_square_matrix(q), q.dequantize().double().numpy())
    np.testing.assert_array_equal(as_square_matrix(x.to_sparse()), x.numpy())  # sparse: its dense matrix
    with pytest.raises(InvalidArgumentError, match="meta"):
        as_square_matrix(torch.empty(3, 3, device="meta"))
    r = analyze_matrix(x.bfloat16())
    assert r.henrici == pytest.approx(henrici(x.bfloat16().double().numpy()), rel=1e-15)
    with pytest.raises(InvalidArgumentError, match="None"):
        as_square_matrix(np.array([[None, 1.0], [0.0, 1.0]], dtype=object))


def _orthogonal_float32_above_one(n: int = 32) -> np.ndarray:
    """An orthogonal matrix rounded to float32 whose spectral radius came out above 1."""
    for seed in range(50):
        Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))[0].astype(np.float32)
        if np.max(np.abs(np.linalg.eigvals(Q.astype(np.float64)))) > 1 + 1e-9:
            return Q
    raise AssertionError("no seed gave rho > 1")


def test_orthogonal_weights_stored_in_float32_are_marginal_not_unstable(tmp_path):
    # rounding an orthogonal matrix to float32 moves rho by ~1e-7 either way: the stored matrix
    # had rho = 1 + 5e-8 and was called unstable with K = inf (found by a review); a float32
    # matrix with rho clearly above 1 stays unstable
    import spectra
    from spectra.kreiss import kreiss_constant

    Q = _orthogonal_float32_above_one()
    np.save(tmp_path / "q.npy", Q)
    np.save(tmp_path / "big.npy", (Q.astype(np.float64) * 1.001).astype(np.float32))
    rep = spectra.analyze(tmp_path / "q.npy", figures=("basic", "kreiss"))
    (r,) = rep.matrices
    assert r.spectral_radius > 1 and r.marginal
    assert np.isfinite(r.extra["kreiss"]) and r.extra["kreiss"] == pytest.approx(1.0, abs=1e-3)
    (big,) = spectra.analyze(tmp_path / "big.npy", figures=("basic",)).matrices
    assert not big.marginal and not big.stable
    a = Q.astype(np.float64)
    assert kreiss_constant(a).value == np.inf  # the matrix as given (float64): rho > 1
    k = kreiss_constant(a, stored_dtype="float32")
    assert np.isfinite(k.value) and "float32" in k.message


def test_triangular_matrix_spectrum_is_exact_however_ill_conditioned():
    # a nilpotent shift of order 30: rho = 0 and dep_F = sqrt(29) exactly, though kappa(V) = inf;
    # its verdict was "not resolved (rho within rounding of 1)" and dep_F one digit (a review)
    S = np.diag(np.ones(29), 1)
    r = analyze_matrix(S)
    assert r.spectral_radius == 0.0 and r.spectral_radius_error == 0.0
    assert r.henrici == pytest.approx(math.sqrt(29), rel=1e-15) and r.henrici_error == 0.0
    assert r.stable and not r.marginal
    big = analyze_matrix([[0.9, 1e14], [0.0, 0.9]])  # ||A|| far above 1: not "rho = 1 to rounding"
    assert big.spectral_radius == 0.9 and big.stable and not big.marginal


def test_storage_window_counts_only_what_rounding_can_move():
    # a review of the window: a triangular matrix's eigenvalues are its diagonal, which rounding
    # moves by u_s |a_ii| (u_s ||A||_F made [[0.9, 1e14], [0, 0.9]] in float32 "rho = 1", K = inf);
    # and u_s ||A||_F for bfloat16 at n = 128 (0.04) made a stable rho = 0.97 matrix marginal
    from spectra.kreiss import kreiss_constant

    T = np.array([[0.9, 1e14], [0.0, 0.9]])
    r = analyze_matrix(T, stored_dtype="float32")
    assert r.stable and not r.marginal
    assert math.isfinite(kreiss_constant(T, stored_dtype="float32").value)
    rng = np.random.default_rng(3)
    A = rng.standard_normal((128, 128)) / np.sqrt(128) + np.triu(rng.standard_normal((128, 128)), 1) / 40
    A *= 0.97 / np.max(np.abs(np.linalg.eigvals(A)))
    for dt in ("bfloat16", "float16", "float8_e4m3fn"):
        r = analyze_matrix(A, stored_dtype=dt)
        assert r.stable and not r.marginal, dt
        k = kreiss_constant(A, stored_dtype=dt, certify=False)
        assert k.value > 1.05 and "to rounding" not in k.message, dt


def test_analyze_reports_progress_within_each_matrix(tmp_path):
    # one n = 1024 matrix takes about two minutes with every figure: the bar moved only once it
    # was done; it now moves after the basic figures, each rho_eps, d_inst, Kreiss, and w(A)
    calls = []
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "m.npz", a=rng.standard_normal((6, 6)) / 4, b=np.full((3, 3), np.nan))
    spectra.analyze(tmp_path / "m.npz", epsilons=(1e-2, 1e-1), progress=lambda d, t: calls.append((d, t)))
    total = 2 * (1 + 3 + 2)
    assert all(t == total for _, t in calls) and calls[-1][0] == total
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(set(done)) == len(done) and len(calls) >= 7
