"""Noise curves, Table I thresholds and the robustness measure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectra.train.errors import TrainConfigError
from spectra.train.evaluate import evaluate_noise, noise_thresholds, robustness
from spectra.train.models import build_model
from spectra.train.tasks import load_task

torch.set_num_threads(1)


def test_thresholds_interpolate_linearly():
    a = [0.0, 0.5, 1.0, 2.0]
    e = [0.01, 0.02, 0.06, 0.30]
    thr = noise_thresholds(a, e)
    assert thr[0.03] == pytest.approx(0.5 + 0.5 * (0.03 - 0.02) / 0.04)
    assert thr[0.05] == pytest.approx(0.5 + 0.5 * (0.05 - 0.02) / 0.04)
    assert thr[0.10] == pytest.approx(1.0 + 1.0 * (0.10 - 0.06) / 0.24)
    # unsorted input, a level never reached, and one already reached at the smallest amplitude
    thr = noise_thresholds([1.0, 0.0], [0.04, 0.035], levels=(0.03, 0.5))
    assert thr == {0.03: 0.0, 0.5: None}
    with pytest.raises(TrainConfigError):
        noise_thresholds([0, 1], [0.1])


def test_noise_curve_against_a_hand_computed_forward_pass():
    task = load_task("digits")
    model = build_model("gru", 8, 10, 12, 1, seed=0)
    curve = evaluate_noise(model, task, [0.0, 0.4], split="val", repeats=2, seed=3, batch_size=100)
    x = torch.from_numpy(task.val.x)
    with torch.no_grad():
        clean = (model(x).argmax(-1).numpy() == task.val.y).mean()
        # repeat r draws N(0, I) of the whole split in batches of 100 from a generator seeded by (seed, r)
        accs = []
        for r in range(2):
            g = torch.Generator().manual_seed(int(np.random.SeedSequence([3, r]).generate_state(1)[0]))
            w = torch.cat([torch.randn(x[i : i + 100].shape, generator=g) for i in range(0, len(x), 100)])
            accs.append((model(x + 0.4 * w).argmax(-1).numpy() == task.val.y).mean())
    assert curve.accuracy[0] == pytest.approx(clean) and curve.accuracy_std[0] == 0
    assert curve.accuracy[1] == pytest.approx(np.mean(accs))
    assert curve.misclassification[1] == pytest.approx(1 - np.mean(accs))
    assert curve.n == len(task.val) and curve.mse is None
    with pytest.raises(TrainConfigError):
        evaluate_noise(model, task, [-0.1])


def test_regression_curve_reports_mse():
    task = load_task("adding", seq_len=6, n_samples=100)
    model = build_model("rnn", 2, 1, 4, 1, seed=1)
    curve = evaluate_noise(model, task, [0.0], repeats=1)
    with torch.no_grad():
        err = model(torch.from_numpy(task.test.x)).numpy() - task.test.y
    assert curve.mse[0] == pytest.approx(float((err**2).mean()), rel=1e-5)
    assert curve.accuracy[0] == pytest.approx(float((np.abs(err[:, 0]) < 0.04).mean()))


def test_robustness_estimate_next_to_monte_carlo_on_tokens():
    # token inputs: the noise enters after the embedding
    model = build_model("lstm", 20, 2, 6, 1, tokens=True, embed_dim=4, seed=2)
    x = np.random.default_rng(0).integers(0, 20, size=(3, 7))
    rep = robustness(model, x, 1e-3, draws=2000, seed=1)
    assert rep.estimate.shape == (3,) and np.all(rep.estimate > 0)
    assert np.all(np.abs(rep.estimate - rep.monte_carlo) < 4 * rep.monte_carlo_stderr)
    assert rep.mean_estimate == pytest.approx(rep.estimate.mean())
