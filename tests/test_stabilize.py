"""Tests of spectra.stabilize against hand computations and dense float64 oracles."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from spectra.checkpoint import Checkpoint, RecurrentMatrix
from spectra.errors import MatrixNotFoundError, NonFiniteError, NonSquareError, SpectraError
from spectra.stabilize import (
    METHODS,
    StabilizeWarning,
    UnknownMethodError,
    power_estimate,
    stabilize,
    stabilize_matrices,
)


def rho(A):
    return float(np.max(np.abs(np.linalg.eigvals(A))))


def rand(n, seed):
    return np.random.default_rng(seed).standard_normal((n, n))


# ------------------------------------------------------------------ power (Algorithm 1)


def test_power_one_step_by_hand():
    A = np.array([[3.0, 1.0], [0.5, 2.0]])
    g = np.random.default_rng(7).standard_normal(2)  # the documented start vector
    x, y = g / np.hypot(g[0], g[1])
    # one power step, written out
    w0, w1 = 3.0 * x + 1.0 * y, 0.5 * x + 2.0 * y
    nw = np.hypot(w0, w1)
    v0, v1 = w0 / nw, w1 / nw
    # Rayleigh quotient v^T A v / v^T v with v^T v = 1
    lam = v0 * (3.0 * v0 + 1.0 * v1) + v1 * (0.5 * v0 + 2.0 * v1)
    r = stabilize(A, method="power", iterations=1, target=1.0, seed=7, warn=False)
    assert r.estimate == pytest.approx(abs(lam), rel=1e-14)
    assert r.changed and r.scale == pytest.approx(1.0 / abs(lam), rel=1e-14)
    np.testing.assert_allclose(r.matrix, A / abs(lam), rtol=1e-14)
    assert r.spectral_radius_before == pytest.approx(rho(A), rel=1e-14)
    assert r.spectral_radius_after == pytest.approx(rho(A) / abs(lam), rel=1e-12)
    assert r.method == "power"


def test_power_two_steps_by_hand_and_target():
    A = np.array([[1.0, 2.0], [0.0, 4.0]])
    g = np.random.default_rng(3).standard_normal(2)
    v = g / np.linalg.norm(g)
    for _ in range(2):
        v = np.array([v[0] + 2 * v[1], 4 * v[1]])
        v = v / np.linalg.norm(v)
    lam = v[0] * (v[0] + 2 * v[1]) + v[1] * 4 * v[1]
    r = stabilize(A, "power", iterations=2, target=0.5, seed=3, warn=False)
    assert r.estimate == pytest.approx(abs(lam), rel=1e-14)
    np.testing.assert_allclose(r.matrix, A * 0.5 / abs(lam), rtol=1e-14)
    lam_direct, _ = power_estimate(A, 2, 3)
    assert lam_direct == pytest.approx(lam, rel=1e-14)


def test_power_converges_to_dominant_eigenvalue():
    Q, _ = np.linalg.qr(rand(12, 1))
    lam = np.array([-3.0, 1.5, 1.0, 0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01, 0.0])
    A = Q @ np.diag(lam) @ Q.T
    with warnings.catch_warnings():
        warnings.simplefilter("error", StabilizeWarning)  # converged: no warning
        r = stabilize(A, "power", iterations=80, seed=0)
    assert r.estimate == pytest.approx(3.0, rel=1e-10)
    assert r.spectral_radius_after == pytest.approx(1.0, rel=1e-10)
    assert r.warnings == ()


def test_power_never_scales_up():
    Q, _ = np.linalg.qr(rand(6, 2))
    A = 0.3 * Q  # every eigenvalue has modulus 0.3 < 1
    r = stabilize(A, "power", iterations=1, warn=False)
    assert not r.changed and r.scale == 1.0
    assert r.estimate <= 0.3 + 1e-12
    np.testing.assert_array_equal(r.matrix, A)
    assert r.matrix is not A
    assert r.spectral_radius_after == r.spectral_radius_before


def test_power_warns_on_conjugate_dominant_pair():
    t = 0.7
    R = 0.5 * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    A = np.zeros((3, 3))
    A[:2, :2] = R
    A[2, 2] = 0.1
    with pytest.warns(StabilizeWarning, match="conjugate"):
        r = stabilize(A, "power", iterations=50, target=0.25)
    assert any("conjugate" in w for w in r.warnings)
    # one note: more iterations cannot help, so no "not converged" beside it
    assert len(r.warnings) == 1 and "more iterations do not help" in r.warnings[0]


def test_power_warns_when_not_converged_and_records_quietly():
    A = np.diag([1.0, 0.95, 0.5]) + np.triu(np.ones((3, 3)), 1)
    with pytest.warns(StabilizeWarning, match="not converged"):
        stabilize(A, "power", iterations=1, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = stabilize(A, "power", iterations=1, seed=1, warn=False)
    assert any("not converged" in w for w in r.warnings)


def test_power_nilpotent_gives_zero_estimate():
    A = np.diag([1.0, 1.0], 1)  # 3x3 shift, A^3 = 0
    r = stabilize(A, "power", iterations=5, warn=False)
    assert r.estimate == 0.0 and not r.changed


# ------------------------------------------------------------------ exact, svd-clip, spectral-norm


@pytest.mark.parametrize("target", [1.0, 0.9, 2.5])
def test_exact_puts_rho_on_target(target):
    A = 3.0 * rand(20, 4) / np.sqrt(20)
    r = stabilize(A, "exact", target=target)
    assert r.spectral_radius_after == pytest.approx(target, abs=1e-12)
    assert r.estimate == pytest.approx(rho(A), rel=1e-12)
    np.testing.assert_allclose(r.matrix, A * target / rho(A), rtol=1e-13)


def test_exact_leaves_stable_matrix_alone():
    A = 0.2 * rand(8, 5) / np.sqrt(8)
    r = stabilize(A, "exact")
    assert not r.changed and r.scale == 1.0
    np.testing.assert_array_equal(r.matrix, A)


@pytest.mark.parametrize("target", [1.0, 0.99])
def test_svd_clip(target):
    A = 2.0 * rand(15, 6) / np.sqrt(15)
    s = np.linalg.svd(A, compute_uv=False)
    r = stabilize(A, "svd-clip", target=target)
    s_after = np.linalg.svd(r.matrix, compute_uv=False)
    assert s_after[0] <= target + 1e-12
    np.testing.assert_allclose(s_after, np.minimum(s, target), atol=1e-12)
    assert r.estimate == pytest.approx(s[0], rel=1e-12)
    assert r.scale == pytest.approx(target / s[0], rel=1e-12)
    # below the target nothing changes
    B = 0.5 * A / s[0]
    rb = stabilize(B, "svd-clip", target=target)
    assert not rb.changed
    np.testing.assert_array_equal(rb.matrix, B)


def test_spectral_norm_always_divides_like_torch():
    import torch

    torch.set_num_threads(1)
    for A in (3.0 * rand(7, 8), 0.1 * rand(7, 9)):
        smax = float(torch.linalg.matrix_norm(torch.from_numpy(A), ord=2))
        r = stabilize(A, "spectral-norm", target=1.0)
        assert r.changed and r.estimate == pytest.approx(smax, rel=1e-12)
        np.testing.assert_allclose(r.matrix, A / smax, rtol=1e-12)
        assert np.linalg.norm(r.matrix, 2) == pytest.approx(1.0, abs=1e-12)


def test_complex_input_stays_complex():
    A = rand(5, 10) + 1j * rand(5, 11)
    r = stabilize(A, "exact")
    assert r.matrix.dtype == np.complex128
    assert r.spectral_radius_after == pytest.approx(1.0, abs=1e-12)


def test_float32_input_computed_in_float64():
    A = (2.0 * rand(6, 12)).astype(np.float32)
    r = stabilize(A, "exact")
    assert r.matrix.dtype == np.float64


# ------------------------------------------------------------------ argument errors


def test_unknown_method_lists_valid_ones():
    with pytest.raises(UnknownMethodError) as info:
        stabilize(np.eye(2), method="pwoer")
    assert isinstance(info.value, ValueError) and isinstance(info.value, SpectraError)
    for name in METHODS:
        assert name in str(info.value)
    assert set(METHODS) == {"power", "exact", "svd-clip", "spectral-norm"}


def test_bad_arguments():
    with pytest.raises(TypeError):
        stabilize(np.eye(2), iteration=3)  # typo'd keyword
    with pytest.raises(ValueError, match="iterations"):
        stabilize(np.eye(2), iterations=0)
    with pytest.raises(ValueError, match="target"):
        stabilize(np.eye(2), target=-1.0)
    with pytest.raises(ValueError, match="target"):
        stabilize(np.eye(2), target=float("nan"))
    with pytest.raises(NonSquareError):
        stabilize(np.ones((2, 3)))
    with pytest.raises(NonFiniteError):
        stabilize(np.array([[np.nan, 0], [0, 1.0]]))


def test_result_is_frozen():
    r = stabilize(np.eye(2), "exact")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.scale = 2.0


# ------------------------------------------------------------------ checkpoints (no file)


def _lstm_ckpt(n=5, seed=0, scales=(3.0, 0.5, 2.0, 0.2)):
    rng = np.random.default_rng(seed)
    ms = []
    for k, (gate, s) in enumerate(zip(("input", "forget", "cell", "output"), scales)):
        Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        ms.append(
            RecurrentMatrix(
                id=f"lstm.weight_hh_l0[{gate}]",
                matrix=s * Q,
                layer="lstm",
                cell="lstm",
                gate=gate,
                source="lstm.weight_hh_l0",
                block=(k * n, (k + 1) * n),
            )
        )
    return Checkpoint(path="mem", format="pytorch-zip", matrices=ms)


def test_checkpoint_per_gate_and_stacked():
    ck = _lstm_ckpt()
    per = stabilize_matrices(ck, method="exact")
    assert [c.id for c in per] == ck.ids
    assert [c.changed for c in per] == [True, False, True, False]
    for c, s in zip(per, (3.0, 0.5, 2.0, 0.2)):
        assert c.spectral_radius_before == pytest.approx(s, rel=1e-12)
        assert c.spectral_radius_after == pytest.approx(min(s, 1.0), rel=1e-12)
    st = stabilize_matrices(ck, method="exact", stacked=True)
    for c, m, s in zip(st, ck.matrices, (3.0, 0.5, 2.0, 0.2)):
        assert c.scale == pytest.approx(1 / 3.0, rel=1e-12)
        np.testing.assert_allclose(c.after, m.matrix / 3.0, rtol=1e-12)
        assert c.spectral_radius_after == pytest.approx(s / 3.0, rel=1e-12)
    sn = stabilize_matrices(ck, method="spectral-norm", stacked=True)
    S = np.vstack([c.after for c in sn])
    assert np.linalg.norm(S, 2) == pytest.approx(1.0, abs=1e-12)
    sc = stabilize_matrices(ck, method="svd-clip", stacked=True)
    S = np.vstack([c.after for c in sc])
    assert np.linalg.norm(S, 2) <= 1.0 + 1e-12


def test_checkpoint_selection_and_refusals():
    ck = _lstm_ckpt()
    sel = stabilize_matrices(ck, method="exact", matrices=["lstm.weight_hh_l0[cell]"])
    assert [c.id for c in sel] == ["lstm.weight_hh_l0[cell]"]
    with pytest.raises(MatrixNotFoundError):
        stabilize_matrices(ck, matrices=["nope"])
    bad = dataclasses.replace(ck.matrices[0], spectral_norm=True)
    ck2 = Checkpoint(path="mem", format="pytorch-zip", matrices=[bad, *ck.matrices[1:]])
    with pytest.raises(SpectraError, match="spectral_norm"):
        stabilize_matrices(ck2, check_writable=True)
    proj = dataclasses.replace(ck.matrices[0], notes=("LSTM with projection: W_hr",))
    ck3 = Checkpoint(path="mem", format="pytorch-zip", matrices=[proj])
    with pytest.raises(SpectraError, match="projection"):
        stabilize_matrices(ck3, check_writable=True)
    # the refusals are about writing: computing is fine
    assert len(stabilize_matrices(ck3, method="exact")) == 1


def _pruned_ckpt():
    """The LSTM of :func:`_lstm_ckpt` read through a pruning mask: A = mask * W per gate."""
    ck = _lstm_ckpt()
    rng = np.random.default_rng(3)
    note = "pruned (torch.nn.utils.prune): orig * mask (lstm.weight_hh_l0_orig * lstm.weight_hh_l0_mask)"
    ms = []
    for m in ck.matrices:
        mask = (rng.random(m.matrix.shape) > 0.3).astype(np.float64)
        ms.append(dataclasses.replace(m, matrix=mask * m.matrix, mask=mask, notes=(note,)))
    return Checkpoint(path="mem", format="pytorch-zip", matrices=ms)


def test_checkpoint_pruned_is_written_unless_svd_clip():
    # a scaled pruned matrix c * (mask * W) = mask * (c W) is written back (it was left out, and a
    # file of pruned weights only gave "0 of 0 matrices changed", exit 0); svd-clip's is not
    ck = _pruned_ckpt()
    for method in ("exact", "power", "spectral-norm"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", StabilizeWarning)  # no "left unchanged"
            warnings.filterwarnings("ignore", ".*: power method", StabilizeWarning)
            changes = stabilize_matrices(ck, method=method, check_writable=True)
        assert [c.id for c in changes] == ck.ids
    with pytest.raises(SpectraError, match="0 of 4 recurrent matrices can be written back") as e:
        stabilize_matrices(ck, method="svd-clip", check_writable=True)
    assert "svd-clip's clipped matrix is nonzero where the mask is 0" in str(e.value)
    with pytest.raises(SpectraError, match="svd-clip"):
        stabilize_matrices(ck, method="svd-clip", matrices=["lstm.weight_hh_l0[cell]"], check_writable=True)
    # beside a plain matrix, left out of the default selection with a warning
    plain = dataclasses.replace(_lstm_ckpt().matrices[0], id="rnn.weight_hh_l0", source="rnn.weight_hh_l0")
    ck2 = Checkpoint(path="mem", format="pytorch-zip", matrices=[*ck.matrices, plain])
    with pytest.warns(StabilizeWarning, match="left unchanged"):
        changes = stabilize_matrices(ck2, method="svd-clip", check_writable=True)
    assert [c.id for c in changes] == ["rnn.weight_hh_l0"]
    # computing is fine
    assert len(stabilize_matrices(ck, method="svd-clip")) == 4


def test_checkpoint_with_nothing_writable_is_refused_naming_what_was_found():
    ck = _lstm_ckpt()
    orth = [dataclasses.replace(m, notes=("orthogonal: A = base[:, :k]",)) for m in ck.matrices[:2]]
    quant = dataclasses.replace(ck.matrices[2], notes=("stored quantized (qint8): dequantized",))
    ck2 = Checkpoint(path="mem.pt", format="pytorch-zip", matrices=[*orth, quant])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before warning about each
        with pytest.raises(SpectraError) as e:
            stabilize_matrices(ck2, method="exact", check_writable=True)
    msg = str(e.value)
    assert msg.startswith("mem.pt: 0 of 3 recurrent matrices can be written back, so no file was written")
    both = "lstm.weight_hh_l0[input], lstm.weight_hh_l0[forget]"
    assert f"{both}: each is stored under torch's orthogonal" in msg
    assert "lstm.weight_hh_l0[cell] is stored quantized" in msg and "\n" not in msg


def test_checkpoint_nonfinite_left_unchanged():
    m = RecurrentMatrix(id="w", matrix=np.array([[np.inf, 0.0], [0.0, 2.0]]), layer="w", finite=False)
    ck = Checkpoint(path="mem", format="npy", matrices=[m])
    (c,) = stabilize_matrices(ck, method="exact")
    assert not c.changed and "NaN" in c.warnings[0]
