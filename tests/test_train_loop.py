"""Training loop: files, metadata, determinism, resume, spectra.load round trip, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from spectra_cli.main import main

import spectra
from spectra.errors import WriteError
from spectra.train.checkpoints import load_trained
from spectra.train.errors import TrainConfigError
from spectra.train.loop import TrainConfig, train
from spectra.train.tasks import load_task

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_task("digits")


def _cfg(**kw):
    base = dict(task="digits", cell="rnn", hidden=12, epochs=2, batch_size=64, lr=0.01, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_files_metadata_and_spectra_load(tmp_path, digits):
    res = train(_cfg(cell="lstm", regime="stable"), tmp_path / "run", task=digits)
    run = tmp_path / "run"
    names = sorted(p.name for p in run.iterdir())
    assert names == [
        "epoch_001.json",
        "epoch_001.pt",
        "epoch_002.json",
        "epoch_002.pt",
        "resume.pt",
        "run.json",
    ]
    state = _state(run / "epoch_002.pt")  # a plain state dict, weights_only
    assert "rnn.weight_hh_l0" in state and state["rnn.weight_hh_l0"].shape == (48, 12)
    meta = json.loads((run / "epoch_002.json").read_text())
    assert meta["task"] == "digits" and meta["cell"] == "lstm" and meta["regime"] == "stable"
    assert meta["regime_options"] == {"clip": 1.0}
    assert meta["epoch"] == 2 and meta["seed"] == 0
    assert len(meta["data"]["sha256"]) == 64
    assert set(meta["metrics"]) == {"train", "val", "test"}
    assert {"python", "torch", "numpy", "rnn-spectra"} <= set(meta["versions"])
    assert meta["config"]["hidden"] == 12
    summary = json.loads((run / "run.json").read_text())
    best = max(summary["history"], key=lambda h: (h["val"]["accuracy"], -h["epoch"]))
    assert summary["best_epoch"] == best["epoch"] == res.best_epoch
    # the loaders of the diagnostics read it, and stable training is visible on each gate
    ckpt = spectra.load(run / "epoch_002.pt")
    ids = [m.id for m in ckpt]
    assert ids == [f"rnn.weight_hh_l0[{g}]" for g in ("input", "forget", "cell", "output")]
    for m in ckpt:
        assert np.linalg.norm(m.matrix, 2) <= 1 + 1e-5
        np.testing.assert_array_equal(
            m.matrix, state["rnn.weight_hh_l0"][m.block[0] : m.block[1]].double().numpy()
        )


def test_metrics_match_a_forward_pass(tmp_path, digits):
    train(_cfg(epochs=1), tmp_path / "r", task=digits)
    model, meta = load_trained(tmp_path / "r" / "epoch_001.pt")
    with torch.no_grad():
        pred = model(torch.from_numpy(digits.test.x)).argmax(-1).numpy()
    assert meta["metrics"]["test"]["accuracy"] == pytest.approx(float(np.mean(pred == digits.test.y)))


def test_deterministic_and_resume_equals_uninterrupted(tmp_path, digits):
    cfg = _cfg(regime="robust-cov+noise", epochs=2)
    train(cfg, tmp_path / "a", task=digits)
    train(cfg, tmp_path / "b", task=digits)
    sa, sb = _state(tmp_path / "a" / "epoch_002.pt"), _state(tmp_path / "b" / "epoch_002.pt")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # the files themselves: the zip's inner folder was named after the random temporary file
    assert (tmp_path / "a" / "epoch_002.pt").read_bytes() == (tmp_path / "b" / "epoch_002.pt").read_bytes()
    other = train(_cfg(regime="robust-cov+noise", epochs=1, seed=1), tmp_path / "c", task=digits)
    assert not torch.equal(
        other.model.rnn.weight_hh_l0.detach(), _state(tmp_path / "a" / "epoch_001.pt")["rnn.weight_hh_l0"]
    )
    # interrupted after one epoch, then resumed
    train(_cfg(regime="robust-cov+noise", epochs=1), tmp_path / "d", task=digits)
    (tmp_path / "d" / "run.json").unlink()  # as if killed before run.json was rewritten
    train(cfg, tmp_path / "d", resume=True, task=digits)
    sd = _state(tmp_path / "d" / "epoch_002.pt")
    assert all(torch.equal(sa[k], sd[k]) for k in sa)
    assert len(json.loads((tmp_path / "d" / "run.json").read_text())["history"]) == 2


def test_refuses_to_overwrite_and_checks_resume_config(tmp_path, digits):
    train(_cfg(epochs=1), tmp_path / "r", task=digits)
    with pytest.raises(WriteError, match="--resume"):
        train(_cfg(epochs=1), tmp_path / "r", task=digits)
    with pytest.raises(TrainConfigError, match="hidden"):
        train(_cfg(epochs=2, hidden=13), tmp_path / "r", resume=True, task=digits)


def test_power_norm_run_and_adding_regression(tmp_path):
    res = train(
        TrainConfig(
            task="adding", cell="gru", hidden=8, epochs=1, regime="power-norm", seq_len=10, n_samples=300
        ),
        tmp_path / "add",
    )
    meta = json.loads((tmp_path / "add" / "epoch_001.json").read_text())
    assert meta["data"]["kind"] == "regression" and "0.04" in meta["data"]["accuracy_definition"]
    info = meta["regime_info"]["power-norm"]["matrices"]
    # one record per GRU gate block, keyed by the ids spectra ls/analyze/track print (were [0], [1], [2])
    assert list(info) == [m.id for m in spectra.load(tmp_path / "add" / "epoch_001.pt").matrices]
    assert len(info) == 3
    assert all(r["scale"] <= 1 and r["estimate"] * r["scale"] <= 1 + 1e-9 for r in info.values())
    with torch.no_grad():
        out = res.model(torch.from_numpy(res.task.test.x))
    mse = float(((out - torch.from_numpy(res.task.test.y)) ** 2).mean())
    assert meta["metrics"]["test"]["mse"] == pytest.approx(mse, rel=1e-5)


def test_cli_train_evaluate_robustness(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["train", "--task", "digits", "--cell", "rnn-relu", "--hidden", "10", "--regime", "robust-cov"]
    argv += ["--epochs", "2", "--lr", "0.01", "--cov-sequences", "3", "--seed", "0", "-o", str(out), "-q"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "val acc" in text and "best (validation)" in text
    assert (
        main(["evaluate", str(out / "epoch_002.pt"), "--noise", "0,0.5,3", "--repeats", "2", "--json"]) == 0
    )
    doc = json.loads(capsys.readouterr().out)
    meta = json.loads((out / "epoch_002.json").read_text())
    assert doc["schema_version"] == 1 and [r["amplitude"] for r in doc["results"]] == [0.0, 0.5, 3.0]
    assert doc["results"][0]["accuracy"] == pytest.approx(meta["metrics"]["test"]["accuracy"])
    assert doc["results"][2]["accuracy"] < doc["results"][0]["accuracy"]  # std 3 noise on std-1 inputs hurts
    assert set(doc["thresholds"]) == {"3%", "5%", "10%"}
    assert (
        main(
            [
                "robustness",
                str(out / "epoch_002.pt"),
                "--sigma",
                "0.01",
                "--sequences",
                "4",
                "--draws",
                "400",
                "--json",
            ]
        )
        == 0
    )
    rob = json.loads(capsys.readouterr().out)["results"][0]
    assert rob["trace_R"] == pytest.approx(rob["monte_carlo"], rel=0.25)
    # errors are one line with a non-zero exit code
    assert main(["train", "--regime", "bogus", "--epochs", "1", "-o", str(tmp_path / "x"), "-q"]) != 0
    assert "valid regimes" in capsys.readouterr().err
    assert main(["train", "--epochs", "1", "-o", str(out), "-q"]) == 8  # WriteError: run exists
    assert main(["evaluate", str(out / "epoch_002.json")]) == 3  # not a state dict: one line, exit 3
    assert "not a PyTorch checkpoint" in capsys.readouterr().err
    (tmp_path / "lone.pt").write_bytes((out / "epoch_001.pt").read_bytes())
    assert main(["evaluate", str(tmp_path / "lone.pt")]) == 3  # no sidecar
    assert "sidecar" in capsys.readouterr().err


def test_public_names_resolve():
    import spectra.train

    assert spectra.train.__all__ == sorted(spectra.train.__all__)
    for name in spectra.train.__all__:
        assert getattr(spectra.train, name) is not None
    with pytest.raises(AttributeError):
        spectra.train.nothing_here  # noqa: B018


def test_divergence_is_reported(tmp_path, digits):
    from spectra.errors import NonFiniteError

    # an absurd learning rate with plain SGD on a ReLU RNN overflows within the first epoch
    with pytest.raises(NonFiniteError, match="diverged"):
        train(_cfg(cell="rnn-relu", optimizer="sgd", lr=1e12, epochs=2), tmp_path / "nan", task=digits)


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--cell", "lstm", "--regime", "robust-bound"], "one-layer basic RNNs"),
        (["--cell", "rnn", "--layers", "2", "--regime", "robust-bound"], "one-layer basic RNNs"),
        (["--cell", "rnn", "--regime", "power-norm", "--target", "inf"], "finite"),
        (["--cell", "rnn", "--regime", "noise", "--noise-std", "inf"], "finite"),
        # exit 9 after loading the data ("sigma = 1e+200", no option named), or an internal OverflowError
        (["--regime", "robust-cov", "--cov-sigma", "1e200"], "--cov-sigma (cov_sigma) = 1e+200: its square"),
        (["--regime", "robust-bound", "--bound-sigma", "1e200"], "--bound-sigma (bound_sigma) = 1e+200"),
        (["--regime", "robust-bound", "--bound-gamma", "1e155"], "--bound-gamma (bound_gamma) = 1e+155"),
    ],
)
def test_cli_train_refuses_bad_combinations_before_any_data(tmp_path, capsys, monkeypatch, extra, needle):
    # these exited 9 after loading the data (robust-bound with an LSTM), or trained a whole
    # epoch first (--target inf), or ended in "training diverged" (--noise-std inf)
    import spectra.train.loop as loop

    def no_data(*a, **k):
        raise AssertionError("data loaded before the options were checked")

    monkeypatch.setattr(loop, "load_task", no_data)
    argv = ["train", "--task", "digits", "--epochs", "1", "-o", str(tmp_path / "r"), "-q", *extra]
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_cli_train_says_when_power_norm_left_a_matrix_above_the_target(tmp_path, capsys):
    # the table said nothing while the one-step estimate (0.93) left rho = 1.26 untouched
    out = tmp_path / "pn"
    argv = ["train", "--task", "digits", "--cell", "rnn", "--hidden", "8", "--regime", "power-norm"]
    assert main([*argv, "--epochs", "1", "--lr", "0.05", "--seed", "0", "-o", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    info = json.loads((out / "epoch_001.json").read_text())["regime_info"]["power-norm"]["matrices"]
    above = [b for b in info.values() if b["spectral_radius_after"] > 1]
    assert above, "this seed should leave a matrix above the target"
    assert f"{len(above)} still have rho > 1" in err


def test_resume_without_a_run_says_it_starts_a_new_one(tmp_path):
    import warnings

    from spectra.train.loop import TrainConfig, train

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(TrainConfig(epochs=0), tmp_path / "none", resume=True)
    assert any("no run to resume" in str(c.message) for c in caught)


def test_resume_compares_effective_regime_options(tmp_path, digits):
    # --clip 1 spelled out is the default: resuming with or without it is the same run
    from spectra.train.regimes import Stable

    default = Stable().clip
    train(_cfg(epochs=1, regime="stable"), tmp_path / "a", task=digits)
    res = train(
        _cfg(regime="stable", regime_options={"clip": default}), tmp_path / "a", resume=True, task=digits
    )
    assert [h["epoch"] for h in res.history] == [1, 2]
    train(_cfg(epochs=1, regime="stable", regime_options={"clip": default}), tmp_path / "b", task=digits)
    res = train(_cfg(regime="stable"), tmp_path / "b", resume=True, task=digits)
    assert [h["epoch"] for h in res.history] == [1, 2]
    # a real difference names the option and both values
    with pytest.raises(TrainConfigError) as err:
        train(
            _cfg(epochs=3, hidden=13, regime="stable", regime_options={"clip": default / 2}),
            tmp_path / "a",
            resume=True,
            task=digits,
        )
    msg = str(err.value)
    assert f"--clip (run: {default}, now: {default / 2})" in msg and "--hidden (run: 12, now: 13)" in msg


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999", str(2**63)])
@pytest.mark.parametrize("command", ["train", "evaluate", "robustness"])
def test_seed_out_of_range_is_a_usage_error(tmp_path, capsys, command, seed):
    # -1 gave "internal error" in train and evaluate (numpy's SeedSequence) and was accepted by
    # robustness; a 20-digit seed overflowed torch.manual_seed
    ckpt = str(Path(spectra.__file__).parents[1] / "data" / "digits_rnn_stable.pt")
    target = {
        "train": ["--hidden", "4", "--epochs", "1", "-o", str(tmp_path / "r"), "-q"],
        "evaluate": [ckpt, "--noise", "0.1", "--repeats", "1"],
        "robustness": [ckpt, "--sequences", "1", "--draws", "2"],
    }[command]
    assert main([command, *target, "--seed", seed]) == 2
    err = capsys.readouterr().err
    assert "--seed" in err and "internal error" not in err
    assert not (tmp_path / "r").exists()


def test_largest_seed_trains_and_library_checks_the_range(tmp_path, digits, capsys):
    from spectra.train.loop import SEED_MAX

    argv = [
        "train",
        "--hidden",
        "4",
        "--epochs",
        "1",
        "--seed",
        str(SEED_MAX),
        "-o",
        str(tmp_path / "r"),
        "-q",
    ]
    assert main(argv) == 0
    for bad in (-1, SEED_MAX + 1):
        with pytest.raises(TrainConfigError, match="seed"):
            train(_cfg(seed=bad), tmp_path / "lib", task=digits)
    assert not (tmp_path / "lib").exists()


def test_resume_with_its_epoch_checkpoint_missing_is_one_line(tmp_path, digits, capsys):
    out = tmp_path / "r"
    train(_cfg(epochs=1), out, task=digits)
    (out / "epoch_001.pt").unlink()
    with pytest.raises(TrainConfigError, match="epoch_001.pt: the checkpoint of epoch 1 .* missing"):
        train(_cfg(epochs=2), out, resume=True, task=digits)
    argv = ["train", "--hidden", "12", "--epochs", "2", "--lr", "0.01", "-o", str(out), "--resume", "-q"]
    assert main(argv) == 9
    err = capsys.readouterr().err.strip()
    assert "missing" in err and "internal error" not in err and len(err.splitlines()) == 1


def test_divergence_in_the_first_epoch_says_nothing_was_kept(tmp_path, digits):
    from spectra.errors import NonFiniteError

    out = tmp_path / "nan"
    with pytest.raises(NonFiniteError) as err:
        train(_cfg(cell="rnn-relu", optimizer="sgd", lr=1e12, epochs=2), out, task=digits)
    assert "no epoch finished" in str(err.value) and "up to epoch 0" not in str(err.value)
    assert not out.exists()  # the folder made for the run is not left behind empty


def test_a_failed_run_never_removes_a_folder_it_did_not_create(tmp_path, digits, monkeypatch):
    # -o new/../existing_empty: the folder walk was lexical, so the clean-up after a failure
    # removed the user's existing (empty) folder and left a stray "new"
    from spectra.errors import NonFiniteError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing_empty").mkdir()
    with pytest.raises(NonFiniteError):
        train(
            _cfg(cell="rnn-relu", optimizer="sgd", lr=1e12, epochs=1),
            Path("new/../existing_empty"),
            task=digits,
        )
    assert (tmp_path / "existing_empty").is_dir() and not (tmp_path / "new").exists()


def test_numpy_integer_seed_reaches_the_sidecar_as_an_int(tmp_path, digits):
    # np.int64 passed the seed check and then failed to serialise after the first epoch
    res = train(_cfg(epochs=1, seed=np.int64(3)), tmp_path / "run", task=digits)
    assert res is not None
    side = json.loads(next((tmp_path / "run").glob("epoch_001.json")).read_text())
    assert side["seed"] == 3


def test_unwritable_run_folder_fails_before_any_data_or_epoch(tmp_path, capsys, monkeypatch):
    import spectra.train.loop as loop

    def no_data(*a, **k):
        raise AssertionError("data loaded before the run folder was checked")

    monkeypatch.setattr(loop, "load_task", no_data)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(WriteError, match="cannot write the run folder"):
        train(_cfg(epochs=1), tmp_path / "file" / "run")
    assert main(["train", "--epochs", "1", "-o", str(tmp_path / "file" / "run"), "-q"]) == 8
    assert "cannot write" in capsys.readouterr().err


def _shipped(tmp_path, name="digits_rnn_regular"):
    """A copy of a shipped checkpoint and its sidecar in `tmp_path`: (pt, json)."""
    src = Path(spectra.__file__).parents[1] / "data"
    pt, side = tmp_path / f"{name}.pt", tmp_path / f"{name}.json"
    pt.write_bytes((src / f"{name}.pt").read_bytes())
    side.write_text((src / f"{name}.json").read_text())
    return pt, side


@pytest.mark.parametrize("command", ["evaluate", "robustness"])
def test_sidecar_missing_a_key_names_it(tmp_path, capsys, command):
    # a sidecar of an older schema or edited by hand: was "internal error: KeyError: 'cell'"
    pt, side = _shipped(tmp_path)
    meta = json.loads(side.read_text())
    del meta["model"]["cell"]
    side.write_text(json.dumps(meta))
    assert main([command, str(pt)]) == 3
    err = capsys.readouterr().err.strip()
    assert "model.cell" in err and "internal error" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("command", ["evaluate", "robustness"])
@pytest.mark.parametrize("which", ["the json", "garbage", "a pickle"])
def test_a_file_that_is_not_the_runs_checkpoint(tmp_path, capsys, command, which):
    # torch's message advised weights_only=False (unsafe); the .json was called its own sidecar
    pt, side = _shipped(tmp_path)
    if which == "garbage":
        pt.write_bytes(b"garbage\n")
    elif which == "a pickle":
        import argparse

        torch.save(argparse.Namespace(a=1), pt)  # a pickle torch's safe loader refuses
    target = side if which == "the json" else pt
    assert main([command, str(target)]) == 3
    err = capsys.readouterr().err.strip()
    assert "not a PyTorch checkpoint" in err and len(err.splitlines()) == 1
    assert "weights_only=False" not in err and "set to `False`" not in err
    if which == "the json":
        assert "sidecar" not in err


@pytest.mark.parametrize("weights", ["digits_gru_regular", "a renamed key"])
def test_a_state_dict_of_another_model_says_what_does_not_fit(tmp_path, capsys, weights):
    # review11: the message was cut at the first line of torch's, "(Error(s) in loading state_dict
    # for SequenceModel:)", losing which tensors are missing, unexpected or of another size
    pt, _ = _shipped(tmp_path)  # an RNN's sidecar (hidden 24)
    if weights == "a renamed key":
        sd = torch.load(pt, weights_only=True)
        sd["rnn.weight_hh_l9"] = sd.pop("rnn.weight_hh_l0")
        torch.save(sd, pt)
    else:
        pt.write_bytes((Path(spectra.__file__).parents[1] / "data" / f"{weights}.pt").read_bytes())
    assert main(["evaluate", str(pt)]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a state dict of the model its sidecar" in err
    if weights == "a renamed key":
        assert "missing rnn.weight_hh_l0; unexpected rnn.weight_hh_l9)" in err
    else:  # a GRU's weights: three gates' rows
        assert (
            "(size mismatch (file vs model): rnn.weight_ih_l0 72x8 vs 24x8, rnn.weight_hh_l0 72x24 vs 24x24,"
            in err
        )
        assert err.endswith("rnn.bias_ih_l0 72 vs 24 (and 1 more))")


def test_cli_train_says_when_power_norm_rescaled_nothing(tmp_path, capsys):
    out = tmp_path / "pn"
    argv = ["train", "--task", "digits", "--cell", "gru", "--hidden", "24", "--regime", "power-norm"]
    assert main([*argv, "--epochs", "3", "--lr", "0.01", "--seed", "0", "-o", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    sides = [
        json.loads((out / f"epoch_{e:03d}.json").read_text())["regime_info"]["power-norm"] for e in (1, 2, 3)
    ]
    counted = [sum(b["scale"] != 1 for b in s["matrices"].values()) for s in sides]
    assert [s["rescaled"] for s in sides] == counted  # the per-epoch count in the sidecar
    assert sum(counted) == 0, "this seed should leave every gate matrix untouched"
    assert "power-norm rescaled no gate matrix in 3 epoch(s)" in err and "--power-scale always" in err


def test_cli_train_power_scale_always(tmp_path, capsys):
    out = tmp_path / "pn"
    argv = ["train", "--task", "digits", "--cell", "lstm", "--hidden", "8", "--regime", "power-norm"]
    argv += ["--power-scale", "always", "--epochs", "1", "--seed", "0", "-o", str(out), "-q"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    pn = json.loads((out / "epoch_001.json").read_text())["regime_info"]["power-norm"]
    assert pn["power_scale"] == "always" and pn["rescaled"] == pn["blocks"] == 4
    assert all(b["scale"] == pytest.approx(1 / b["estimate"]) for b in pn["matrices"].values())
    assert "rescaled no" not in err and "only" not in err
    assert main(["train", "--help"]) == 0
    assert "--power-scale" in capsys.readouterr().out


def test_power_norm_note_reads_old_sidecars():
    # sidecars written before the ids and the 'matrices' level: {"rnn.weight_hh_l0[0]": {...}, ...}
    from spectra_cli.cmd_train import _power_norm_note

    old = {"scale": 1.0, "spectral_radius_after": 1.5, "estimate": 0.3}
    history = [{"regime_info": {"power-norm": {f"rnn.weight_hh_l0[{g}]": dict(old) for g in range(3)}}}]
    note = _power_norm_note(history, TrainConfig(regime="power-norm"))
    assert "rescaled no gate matrix in 1 epoch(s) (3 matrices)" in note and "3 still have rho > 1" in note


def test_cli_train_empty_out_is_a_usage_error(tmp_path, capsys, monkeypatch, digits):
    # -o "" trained into the current folder and printed "best (validation): epoch 1 -> /epoch_001.pt"
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--hidden", "4", "--epochs", "1", "-o", "", "-q"]) == 2
    assert "--out" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TrainConfigError, match="out_dir"):
        train(_cfg(epochs=1), "", task=digits)
    assert list(tmp_path.iterdir()) == []
    # a trailing slash: the summary printed runs/x//epoch_001.pt
    assert main(["train", "--hidden", "4", "--epochs", "1", "-o", "runs/x/", "-q"]) == 0
    assert "-> runs/x/epoch_001.pt" in capsys.readouterr().out


def test_cli_resume_with_another_configuration_is_a_usage_error(tmp_path, capsys, monkeypatch, digits):
    # exited 9, and only after the data was loaded
    import spectra.train.loop as loop

    out = tmp_path / "r"
    base = ["train", "--hidden", "4", "--epochs", "2", "-o", str(out), "-q"]
    assert main(base) == 0
    capsys.readouterr()

    def no_data(*a, **k):
        raise AssertionError("data loaded before --resume was checked")

    monkeypatch.setattr(loop, "load_task", no_data)
    assert main([*base, "--resume", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "--resume with a different configuration" in err and "--seed (run: 0, now: 1)" in err
    assert len(err.strip().splitlines()) == 1


def test_resume_with_fewer_epochs_than_done_says_so(tmp_path, capsys, digits):
    # --epochs 1 on a run of 2 epochs printed the 2-epoch table and exited 0, --epochs ignored
    out = tmp_path / "r"
    train(_cfg(epochs=2), out, task=digits)
    with pytest.raises(TrainConfigError, match=r"--epochs \(epochs\) 1 is below the 2 epochs"):
        train(_cfg(epochs=1), out, resume=True, task=digits)
    argv = ["train", "--hidden", "12", "--lr", "0.01", "-o", str(out), "--resume", "-q"]
    assert main([*argv, "--epochs", "1"]) == 2
    assert "--epochs" in capsys.readouterr().err
    assert main([*argv, "--epochs", "2"]) == 0  # as many as done: the run as it is
    assert [h["epoch"] for h in train(_cfg(epochs=2), out, resume=True, task=digits).history] == [1, 2]


def test_unreadable_resume_file_is_an_unreadable_file(tmp_path, capsys, digits):
    from spectra.errors import UnsupportedFormatError

    out = tmp_path / "r"
    train(_cfg(epochs=1), out, task=digits)
    (out / "resume.pt").write_bytes(b"not a resume file")
    with pytest.raises(UnsupportedFormatError, match="not a resume file"):
        train(_cfg(epochs=2), out, resume=True, task=digits)
    argv = ["train", "--hidden", "12", "--epochs", "2", "--lr", "0.01", "-o", str(out), "--resume", "-q"]
    assert main(argv) == 3
    assert "not a resume file" in capsys.readouterr().err


def test_resume_with_another_thread_count_warns(tmp_path, digits):
    # resuming equals an uninterrupted run only with the same --threads (1 vs 2 differed by 3e-8)
    import warnings

    train(_cfg(epochs=1), tmp_path / "r", task=digits)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(_cfg(epochs=2, threads=2), tmp_path / "r", resume=True, task=digits)
    finally:
        torch.set_num_threads(1)
    assert any("--threads 2, the run was last trained with --threads 1" in str(c.message) for c in caught)
    try:  # the thread count of the run's last segment is the one compared
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(_cfg(epochs=3, threads=2), tmp_path / "r", resume=True, task=digits)
    finally:
        torch.set_num_threads(1)
    assert not [c for c in caught if "--threads" in str(c.message)]


def test_cli_robustness_sigma_whose_square_overflows_is_a_usage_error(capsys, monkeypatch):
    # exit 9 from the library, after the model and the data were loaded
    import spectra.train.checkpoints as checkpoints

    def no_model(*a, **k):
        raise AssertionError("checkpoint loaded before --sigma was checked")

    monkeypatch.setattr(checkpoints, "load_trained", no_model)
    ckpt = str(Path(spectra.__file__).parents[1] / "data" / "digits_rnn_stable.pt")
    assert main(["robustness", ckpt, "--sigma", "0.1,1e200"]) == 2
    err = capsys.readouterr().err
    assert "--sigma" in err and "1e+200: its square overflows" in err


@pytest.mark.parametrize(
    "command, extra, needle",
    [
        ("evaluate", ["--data", "."], "--data"),
        ("robustness", ["--data", "."], "--data"),
        ("robustness", ["--task", "mnist"], "--task mnist (task) has 28 inputs/10 outputs"),
        ("robustness", ["--task", "adding"], "--task adding (task) has 2 inputs/1 outputs"),
        (
            "robustness",
            ["--task", "sentiment"],
            "--task sentiment (task) has ? inputs/2 outputs per step (tokens)",
        ),
    ],
)
def test_cli_rerun_with_data_or_task_that_does_not_fit_is_a_usage_error(
    capsys, monkeypatch, command, extra, needle
):
    # exit 9, and --task mnist read all of MNIST before comparing 28 with the model's 8 inputs
    import spectra.train.tasks as tasks

    def no_data(*a, **k):
        raise AssertionError("data loaded before --data/--task were checked")

    monkeypatch.setattr(tasks, "load_task", no_data)
    ckpt = str(Path(spectra.__file__).parents[1] / "data" / "digits_rnn_stable.pt")
    assert main([command, ckpt, *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_task_shapes_match_the_loaded_tasks():
    from spectra.train.tasks import TASK_SHAPES

    for name in ("adding", "digits"):
        t = load_task(name, n_samples=20)
        assert TASK_SHAPES[name] == (t.n_inputs, t.n_outputs, t.tokens)


def test_cli_divergence_exits_with_the_code_the_readme_gives_it(tmp_path, capsys):
    # exit 7 was documented only for matrices holding NaN/Inf
    argv = ["train", "--cell", "rnn-relu", "--optimizer", "sgd", "--lr", "1e12", "--hidden", "4"]
    code = main([*argv, "--epochs", "1", "-o", str(tmp_path / "r"), "-q"])
    assert "training diverged" in capsys.readouterr().err
    readme = (Path(spectra.__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith(f"| {code} |")]
    assert len(rows) == 1 and "`train`: training diverged" in rows[0]
