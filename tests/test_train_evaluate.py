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


def test_amplitude_units_say_which_inputs_are_standardised():
    # the docstrings and evaluate --json said "normalised inputs" for every task; adding is raw
    from spectra.train.evaluate import amplitude_units

    adding = load_task("adding", seq_len=10, n_samples=400)
    digits = load_task("digits")
    value, marker = adding.train.x[..., 0], adding.train.x[..., 1]
    assert value.min() >= 0 and value.max() <= 1 and set(np.unique(marker)) <= {0.0, 1.0}
    assert abs(value.std() - 1) > 0.5  # raw U(0, 1) values: far from unit std
    assert abs(digits.train.x.mean()) < 1e-5 and abs(digits.train.x.std() - 1) < 1e-5
    assert "not standardised" in amplitude_units(adding) and "raw" in amplitude_units(adding)
    assert "standardised inputs (mean 0, std 1)" in amplitude_units(digits)


def _run(tmp_path, task, *extra):
    from spectra_cli.main import main

    out = tmp_path / task
    argv = ["train", "--task", task, "--cell", "gru", "--hidden", "6", "--epochs", "1", "--seed", "0"]
    assert main([*argv, *extra, "-o", str(out), "-q"]) == 0
    return main, out / "epoch_001.pt"


def test_evaluate_labels_the_regression_error_as_a_miss_rate(tmp_path, capsys):
    import json

    from spectra.train.tasks import ADDING_TOLERANCE

    main, ckpt = _run(tmp_path, "adding", "--seq-len", "10", "--n-samples", "300")
    capsys.readouterr()
    assert main(["evaluate", str(ckpt), "--noise", "0,0.1", "--repeats", "2"]) == 0
    text = capsys.readouterr().out
    assert "misclass" not in text and f"miss |err|>={ADDING_TOLERANCE:g}" in text
    assert main(["evaluate", str(ckpt), "--noise", "0,0.1", "--repeats", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # the schema's key stays (consumers of schema_version 1 read it for every task)
    assert all(r["misclassification"] == r["miss_rate"] == 1 - r["accuracy"] for r in doc["results"])
    assert str(ADDING_TOLERANCE) in doc["error"] and "not standardised" in doc["amplitude"]
    assert "normalised" not in doc["amplitude"]


def test_evaluate_classification_keeps_misclassification(tmp_path, capsys):
    import json

    main, ckpt = _run(tmp_path, "digits")
    capsys.readouterr()
    assert main(["evaluate", str(ckpt), "--noise", "0,0.1", "--repeats", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert all(r["misclassification"] == 1 - r["accuracy"] for r in doc["results"])
    assert "standardised inputs" in doc["amplitude"] and "misclassification" in doc["error"]


def test_robustness_sigma_zero_has_no_ratio(tmp_path, capsys):
    # 0/0 printed "nan"
    import json

    main, ckpt = _run(tmp_path, "digits")
    capsys.readouterr()
    args = ["robustness", str(ckpt), "--sigma", "0,0.1", "--sequences", "2", "--draws", "20"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "nan" not in text
    zero_row = next(line for line in text.splitlines() if line.split()[:1] == ["0"])
    assert zero_row.split()[-1] == "-"
    assert main([*args, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert res[0]["ratio"] is None
    assert res[1]["ratio"] == pytest.approx(res[1]["trace_R"] / res[1]["monte_carlo"])


@pytest.mark.parametrize("cell", ["rnn-relu", "gru"])
def test_outputs_that_overflow_are_no_prediction(cell):
    # at amplitude 1e39 every logit was NaN and argmax counted them all as class 0: the
    # "accuracy" was the share of class 0 in the split (0.1259 for digits' test split)
    task = load_task("digits")
    model = build_model(cell, 8, 10, 6, 1, seed=0)
    with pytest.warns(RuntimeWarning, match=r"overflowed to NaN/Inf \(float32\) at noise amplitude 1e\+39"):
        curve = evaluate_noise(model, task, [0.0, 0.5, 1e39], repeats=2)
    assert np.all(np.isfinite(curve.accuracy[:2])) and list(curve.nonfinite) == [0.0, 0.0, 1.0]
    assert np.isnan(curve.accuracy[2]) and np.isnan(curve.misclassification[2])
    # the thresholds leave the NaN amplitude out (a level not reached below it stays None)
    thr = noise_thresholds(curve.amplitudes, curve.misclassification, levels=(1.0,))
    assert thr == {1.0: None}
    adding = load_task("adding", seq_len=6, n_samples=100)
    with pytest.warns(RuntimeWarning, match="overflowed"):
        curve = evaluate_noise(build_model(cell, 2, 1, 4, 1, seed=1), adding, [0.0, 1e39], repeats=1)
    assert np.isnan(curve.mse[1]) and np.isnan(curve.accuracy[1]) and np.isfinite(curve.mse[0])


def test_thresholds_leave_nan_amplitudes_out():
    assert noise_thresholds([0.0, 1.0, 2.0], [0.01, np.nan, 0.09], levels=(0.05,)) == {0.05: 1.0}
    assert noise_thresholds([0.0, 1.0], [np.nan, np.nan]) == {0.03: None, 0.05: None, 0.1: None}


def test_cli_evaluate_json_has_null_where_the_outputs_overflowed(capsys):
    import json
    from pathlib import Path

    from spectra_cli.main import main

    import spectra

    ckpt = str(Path(spectra.__file__).parents[1] / "data" / "digits_rnn_stable.pt")
    assert main(["evaluate", ckpt, "--noise", "0.1,1e39", "--repeats", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)["results"]
    assert rows[2]["accuracy"] is None and rows[2]["misclassification"] is None
    assert rows[1]["accuracy"] > 0.5 and "overflowed" in err


def test_one_draw_has_no_standard_deviation(capsys):
    # review11: --repeats 1 printed std 0.0000 (JSON accuracy_std 0.0), which reads as "no spread"
    import json
    from pathlib import Path

    from spectra_cli.main import main

    import spectra

    task = load_task("digits")
    model = build_model("gru", 8, 10, 6, 1, seed=0)
    curve = evaluate_noise(model, task, [0.0, 0.4], repeats=1)
    assert curve.accuracy_std[0] == 0 and np.isnan(curve.accuracy_std[1])  # amplitude 0 is exact
    assert np.all(np.isfinite(curve.accuracy))
    assert np.all(np.isfinite(evaluate_noise(model, task, [0.0, 0.4], repeats=2).accuracy_std))

    ckpt = str(Path(spectra.__file__).parents[1] / "data" / "digits_rnn_stable.pt")
    assert main(["evaluate", ckpt, "--noise", "0,0.1", "--repeats", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    row = next(r for r in rows if r[:1] == ["0.1000"])
    assert row[2] == "-" and "nan" not in row
    assert next(r for r in rows if r[:1] == ["0"])[2] == "0.0000"
    assert main(["evaluate", ckpt, "--noise", "0,0.1", "--repeats", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert res[0]["accuracy_std"] == 0.0 and res[1]["accuracy_std"] is None
    assert res[1]["accuracy"] is not None


def test_robustness_says_when_sequences_exceed_the_split(capsys):
    # review11: --sequences 100000 was silently clamped to the 270 test sequences
    from pathlib import Path

    from spectra_cli.main import main

    import spectra

    ckpt = str(Path(spectra.__file__).parents[1] / "data" / "digits_rnn_stable.pt")
    args = ["robustness", ckpt, "--sequences", "100000", "--draws", "2", "--sigma", "0"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if "warning" in line]
    assert lines == [
        "spectra: warning: --sequences 100000: the test split holds 270 sequences; using all 270"
    ]
    assert "270 test sequences" in out
    assert main([*args[:3], "20", *args[4:]]) == 0
    assert "warning" not in capsys.readouterr().err


def test_evaluate_reports_progress_per_batch():
    # evaluate and robustness had no progress bar and refused -q
    from pathlib import Path

    from spectra_cli.main import main

    import spectra
    from spectra.train.evaluate import evaluate_noise

    calls = []
    task = load_task("digits")
    model = build_model("gru", 8, 10, 6, 1, seed=0)
    evaluate_noise(
        model, task, [0.0, 0.5], repeats=2, batch_size=100, progress=lambda d, t: calls.append((d, t))
    )
    total = 2 * -(-len(task.test) // 100)
    assert calls == [(k, total) for k in range(1, total + 1)]
    ckpt = str(Path(spectra.__file__).parents[1] / "data" / "digits_rnn_stable.pt")
    assert main(["evaluate", ckpt, "--noise", "0,0.1", "--repeats", "1", "-q"]) == 0
    assert main(["robustness", ckpt, "--draws", "2", "--sigma", "0", "-q"]) == 0
