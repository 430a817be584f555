"""Each regime does what it claims (stable, power-norm, robust-cov, robust-bound, noise, registry)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectra.train.errors import TrainConfigError
from spectra.train.models import build_model
from spectra.train.regimes import REGIMES, RobustBound, make_regime, robustness_bound

torch.set_num_threads(1)


def _blocks(model):
    """``(id, block)`` per gate block, the ids being those spectra.load gives the saved state dict."""
    import os
    import tempfile

    import spectra

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.pt")
        torch.save(model.state_dict(), path)
        ids = [m.id for m in spectra.load(path).matrices]
    n = model.hidden
    blocks = []
    for name, p in model.rnn.named_parameters():
        if name.startswith("weight_hh"):
            W = p.detach().double().numpy().copy()
            blocks += [W[g * n : (g + 1) * n] for g in range(W.shape[0] // n)]
    assert len(ids) == len(blocks)
    return list(zip(ids, blocks))


@pytest.mark.parametrize("cell,clip", [("rnn-relu", 1.0), ("lstm", 0.7), ("gru", 1.0)])
def test_stable_clips_after_every_step(cell, clip):
    model = build_model(cell, 4, 3, 8, 2, seed=0)
    with torch.no_grad():
        for name, p in model.rnn.named_parameters():
            if name.startswith("weight_hh"):
                p.mul_(6.0)  # start far outside the bound
    regime = make_regime("stable", {"clip": clip})
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(0)
    before = {k: np.linalg.svd(A, compute_uv=False) for k, A in _blocks(model)}
    assert max(s[0] for s in before.values()) > clip
    for _ in range(5):
        x = torch.randn(16, 5, 4, generator=g)
        loss = model(x).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        regime.after_step(model)
        for k, A in _blocks(model):
            s = np.linalg.svd(A, compute_uv=False)
            assert s[0] <= clip * (1 + 1e-6), (k, s[0])


def test_stable_keeps_singular_vectors_and_small_values():
    model = build_model("rnn", 2, 2, 5, 1, seed=1)
    U, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 5)))
    V, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((5, 5)))
    s = np.array([3.0, 1.5, 0.9, 0.5, 0.1])
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(torch.as_tensor(U @ np.diag(s) @ V.T))
    make_regime("stable").after_step(model)
    expected = U @ np.diag(np.minimum(s, 1.0)) @ V.T
    np.testing.assert_allclose(model.rnn.weight_hh_l0.detach().double().numpy(), expected, atol=1e-6)


def _rayleigh_one_step(A: np.ndarray, seed: int) -> float:
    """Independent oracle: one power step from default_rng(seed) and the Rayleigh quotient."""
    v = np.random.default_rng(seed).standard_normal(A.shape[0])
    v /= np.linalg.norm(v)
    w = A @ v
    v = w / np.linalg.norm(w)
    return abs(float(v @ A @ v))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_power_norm_leaves_estimate_at_most_one(cell):
    model = build_model(cell, 3, 2, 10, 1, seed=2).double()
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(8.0)
    before = dict(_blocks(model))
    regime = make_regime("power-norm")
    for epoch in range(2):
        facts = regime.after_epoch(model, epoch, seed=0)["power-norm"]
        info = facts["matrices"]
        after = dict(_blocks(model))
        assert facts["rescaled"] == sum(not np.array_equal(after[k], before[k]) for k in after)
        assert facts["blocks"] == len(after) and facts["power_scale"] == "above-target"
        assert set(info) == set(after)
        for k, A in after.items():
            rec = info[k]
            assert rec["scale"] <= 1.0
            # a uniform scaling of the block, by exactly the recorded factor (only scaling down)
            np.testing.assert_allclose(A, before[k] * rec["scale"], rtol=1e-12, atol=1e-14)
            # Algorithm 1: the estimate it used equals our own one-step Rayleigh quotient ...
            assert rec["estimate"] == pytest.approx(_rayleigh_one_step(before[k], rec["seed"]), rel=1e-10)
            # ... and the same estimate on the normalised block is at most 1
            assert _rayleigh_one_step(A, rec["seed"]) <= 1.0 + 1e-10
            if epoch == 0 and rec["estimate"] > 1:
                assert rec["scale"] == pytest.approx(1.0 / rec["estimate"])
        before = after


def test_robust_bound_equals_closed_form():
    model = build_model("rnn-relu", 3, 4, 6, 1, seed=3)
    A = model.rnn.weight_hh_l0.detach().double().numpy()
    B = model.rnn.weight_ih_l0.detach().double().numpy()
    C = model.readout.weight.detach().double().numpy()
    T, sigma, gamma = 7, 0.5, 0.2
    a, b, c = (np.linalg.norm(M, 2) for M in (A, B, C))
    tr_sigma, tr_gamma = 3 * sigma**2, 6 * gamma**2
    omega = c**2 * (a ** (2 * T) * tr_gamma + sum(a ** (2 * i) * b**2 * tr_sigma for i in range(T)))
    got = robustness_bound(*(torch.as_tensor(M) for M in (A, B, C)), T, tr_sigma, tr_gamma)
    assert float(got) == pytest.approx(omega, rel=1e-12)
    regime = make_regime("robust-bound", {"bound_mu": 0.015, "bound_sigma": sigma, "bound_gamma": gamma})
    u = torch.zeros(2, T, 3)
    for epoch in (0, 4):
        pen = regime.penalty(model, u, epoch)
        assert float(pen.detach()) == pytest.approx(0.015 / (epoch + 1) * omega, rel=1e-5)
    # differentiable: the gradient pushes ||A|| down
    pen = regime.penalty(model, u, 0)
    pen.backward()
    assert model.rnn.weight_hh_l0.grad is not None and float(model.rnn.weight_hh_l0.grad.norm()) > 0


def test_robust_bound_only_for_one_layer_basic_rnn():
    with pytest.raises(TrainConfigError, match="one-layer basic RNN"):
        RobustBound().check(build_model("lstm", 2, 2, 3, 1))
    with pytest.raises(TrainConfigError):
        make_regime("robust-bound").check(build_model("rnn", 2, 2, 3, 2))


def test_robust_cov_penalty_uses_first_sequences_and_mu():
    n, d, T, sigma, mu = 5, 2, 4, 0.7, 0.02
    model = build_model("rnn-relu", d, 3, n, 1, seed=4).double()
    with torch.no_grad():
        model.rnn.bias_ih_l0.fill_(30.0)  # linear along the trajectory: closed form applies
        model.rnn.weight_hh_l0.mul_(0.3)
    A = model.rnn.weight_hh_l0.detach().numpy()
    B = model.rnn.weight_ih_l0.detach().numpy()
    C = model.readout.weight.detach().numpy()
    P = np.zeros((n, n))
    per_step = []
    for _ in range(T):
        P = A @ P @ A.T + sigma**2 * B @ B.T
        per_step.append(np.trace(C @ P @ C.T))
    u = torch.randn(12, T, d, dtype=torch.float64)
    last = make_regime("robust-cov", {"cov_mu": mu, "cov_sigma": sigma, "cov_sequences": 3})
    assert float(last.penalty(model, u, 0).detach()) == pytest.approx(mu * per_step[-1], rel=1e-10)
    every = make_regime("robust-cov", {"cov_mu": mu, "cov_sigma": sigma, "cov_steps": "all"})
    assert float(every.penalty(model, u, 0).detach()) == pytest.approx(mu * sum(per_step), rel=1e-10)


def test_noise_perturbs_with_the_stated_std():
    regime = make_regime("noise", {"noise_std": 0.25})
    u = torch.zeros(200, 10, 8, dtype=torch.float64)
    v = regime.perturb(u, torch.Generator().manual_seed(0))
    assert float(v.std()) == pytest.approx(0.25, rel=0.02)
    assert float(v.mean()) == pytest.approx(0.0, abs=0.01)  # 5 standard errors
    same = regime.perturb(u, torch.Generator().manual_seed(0))
    assert torch.equal(v, same)


def test_registry_and_combinations():
    assert set(REGIMES) == {"regular", "stable", "power-norm", "robust-cov", "robust-bound", "noise"}
    combo = make_regime("stable+noise", {"clip": 0.9, "noise_std": 0.1})
    assert combo.spec == "stable+noise"
    assert combo.options() == {"clip": 0.9, "noise_std": 0.1}
    with pytest.raises(TrainConfigError, match="valid regimes"):
        make_regime("bogus")
    with pytest.raises(TrainConfigError, match="does not apply"):
        make_regime("stable", {"noise_std": 0.1})
    with pytest.raises(TrainConfigError, match="cannot be combined"):
        make_regime("regular+stable")
    with pytest.raises(TrainConfigError, match="twice"):
        make_regime("stable+stable")
    with pytest.raises(TrainConfigError):
        make_regime("stable", {"clip": -1})


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_power_norm_always_divides_by_the_estimate(cell):
    # the second paper's Algorithm 1 without the "only when above the target" condition
    model = build_model(cell, 3, 2, 10, 1, seed=2).double()
    before = dict(_blocks(model))
    target = 0.9
    facts = make_regime("power-norm", {"power_scale": "always", "target": target}).after_epoch(
        model, 0, seed=0
    )
    facts = facts["power-norm"]
    after = dict(_blocks(model))
    assert facts["power_scale"] == "always" and facts["rescaled"] == facts["blocks"] == len(after)
    for k, A in after.items():
        rec = facts["matrices"][k]
        est = _rayleigh_one_step(before[k], rec["seed"])
        np.testing.assert_allclose(A, before[k] * target / est, rtol=1e-10, atol=1e-14)
        assert rec["rescaled"] and rec["scale"] == pytest.approx(target / est, rel=1e-10)
        assert rec["spectral_radius_after"] == pytest.approx(np.abs(np.linalg.eigvals(A)).max(), rel=1e-9)
    with pytest.raises(TrainConfigError, match="power-scale"):
        make_regime("power-norm", {"power_scale": "sometimes"})


@pytest.mark.parametrize("cell,clip,layers", [("rnn", 1.0, 2), ("lstm", 1.0, 1), ("gru", 0.9, 1)])
def test_stable_bound_holds_for_the_saved_float32_weights(tmp_path, cell, clip, layers):
    """||A||_2 <= clip of every gate block as the checkpoint stores it (float32), not only in float64.

    Clipping in float64 and rounding to float32 left sigma_max above clip by 5e-9..2e-8.
    """
    from spectra.train.loop import TrainConfig, train

    cfg = TrainConfig(
        task="digits",
        cell=cell,
        hidden=10,
        layers=layers,
        regime="stable",
        regime_options={"clip": clip},
        epochs=1,
        lr=0.05,
        seed=0,
        max_batches=6,
    )
    train(cfg, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "epoch_001.pt", map_location="cpu", weights_only=True)
    n, checked = cfg.hidden, 0
    for name, W in state.items():
        if name.startswith("rnn.weight_hh"):
            assert W.dtype == torch.float32
            W64 = W.numpy().astype(np.float64)
            for g in range(W64.shape[0] // n):
                top = np.linalg.norm(W64[g * n : (g + 1) * n], 2)
                assert top <= clip, (name, g, top - clip)
                checked += 1
    assert checked == {"rnn": 1, "lstm": 4, "gru": 3}[cell] * layers


def test_robust_bound_says_it_deviates_from_eq_29():
    # eq. (29) sums the bound over every step; the regime uses the last step's only, and said so nowhere
    from pathlib import Path

    from spectra_cli.cmd_train import train as train_command

    import spectra.train.regimes as regimes

    assert "**Deviation from eq. (29):**" in RobustBound.__doc__
    assert "eq. 29 sums over every step" in " ".join(regimes.__doc__.split())
    help_text = next(p.help for p in train_command.params if p.name == "bound_mu")
    assert "eq. 29 sums Omega_t over every step" in help_text
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert " ".join(readme.split()).count("where eq. 29 sums") == 2
