"""Smoke runs of the example scripts (``examples/robust_rnn.py``, ``examples/how_robust.py``).

Each script runs once in ``--smoke`` mode (digits / short adding problem, one
epoch of a few batches) in a subprocess writing into a temporary folder; the
tests check the shape of its tables, JSON and figures, and check the numbers
they report against independent oracles: the checkpoint's weights read back
with ``torch.load``, numpy's eigenvalues and norms, and the model's own
forward pass. The full runs are not part of CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run(script: str, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    cmd = [
        sys.executable,
        str(EXAMPLES / script),
        "--smoke",
        "--out",
        str(out),
        "--figures",
        str(out / "fig"),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def robust_rnn(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("robust_rnn")
    proc = _run("robust_rnn.py", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "total run time" in proc.stdout
    return out


@pytest.fixture(scope="module")
def how_robust(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("how_robust")
    proc = _run("how_robust.py", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "total run time" in proc.stdout
    return out


def _tables(md: str) -> list[list[list[str]]]:
    """Markdown tables in `md`: each a list of rows (header first, separator dropped) of cells."""
    tables, cur = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= {"-"} and c for c in cells):
                cur.append(cells)
        elif cur:
            tables.append(cur)
            cur = []
    return tables


def _check_png(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.exists(), path
    assert path.stat().st_size < 200_000, f"{path} is {path.stat().st_size} bytes"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.01, f"{path} looks blank"


def _weights(ckpt: str) -> dict:
    import torch

    torch.set_num_threads(1)
    return torch.load(ckpt, map_location="cpu", weights_only=True)


def _forward_accuracy(ckpt: str, task_name: str, **task_options) -> float:
    """Test accuracy from a freshly built torch model (nn.RNN/LSTM/GRU forward) and argmax."""
    import torch

    from spectra.train import load_task, load_trained

    torch.set_num_threads(1)
    model, _ = load_trained(ckpt)
    task = load_task(task_name, **task_options)
    with torch.no_grad():
        out = model(torch.from_numpy(task.test.x))
    if task.kind == "regression":
        return float(((out - torch.from_numpy(task.test.y)).abs() < 0.04).all(-1).float().mean())
    return float((out.argmax(-1).numpy() == task.test.y).mean())


# --------------------------------------------------------------------------- robust_rnn


def test_robust_rnn_tables(robust_rnn: Path) -> None:
    md = (robust_rnn / "robust_rnn.md").read_text(encoding="utf-8")
    tables = _tables(md)
    assert len(tables) == 3
    table1, rise, diag = tables
    assert rise[0] == ["misclassification above clean", "stable", "regular", "robust-bound", "robust-cov"]
    assert [r[0] for r in rise[1:]] == ["+3%", "+5%", "+10%"]
    assert table1[0][0] == "misclassification"
    assert len(table1[0]) == 1 + 2 * 4
    assert [r[0] for r in table1[1:]] == ["3%", "5%", "10%", "‖A‖₂", "clean test accuracy"]
    # the paper's values stand beside ours
    assert table1[1][2] == "0.09" and table1[4][4] == "3.959" and table1[3][8] == "1.83"
    assert [r[0] for r in diag[1:]] == ["stable", "regular", "robust-bound", "robust-cov"]
    assert all(len(r) == 11 for r in diag)
    assert "standard deviation" in md and "paper's ordering" in md


def test_robust_rnn_json(robust_rnn: Path) -> None:
    data = json.loads((robust_rnn / "robust_rnn.json").read_text(encoding="utf-8"))
    assert data["schema_version"] == 1
    assert data["settings"]["task"] == "digits" and data["settings"]["smoke"] is True
    amps = data["amplitudes"]
    assert amps[0] == 0 and np.all(np.diff(amps) > 0)
    assert set(data["summary"]) == {"stable", "regular", "robust-bound", "robust-cov"}
    for regime, runs in data["runs"].items():
        assert len(runs) == 2
        for run in runs:
            e = np.asarray(run["misclassification"])
            assert e.shape == (len(amps),) and np.all((e >= 0) & (e <= 1))
            thr = [run["thresholds"][k] for k in ("0.03", "0.05", "0.1")]
            rise = [run["thresholds_above_clean"][k] for k in ("0.03", "0.05", "0.1")]
            for t3 in (thr, rise):
                reached = [t for t in t3 if t is not None]
                assert all(amps[0] <= t <= amps[-1] for t in reached)
                assert reached == sorted(reached)  # a higher level is reached at a larger amplitude
            # measured from the clean error, a level is reached no earlier than in absolute terms
            assert all(r is None or (a is not None and r >= a) for a, r in zip(thr, rise))
            # ||A||_2, rho and the clean accuracy against independent oracles
            sd = _weights(run["checkpoint"])
            A = sd["rnn.weight_hh_l0"].double().numpy()
            d = run["diagnostics"]
            assert d["norm_2"] == pytest.approx(np.linalg.svd(A, compute_uv=False)[0], rel=1e-9)
            assert d["spectral_radius"] == pytest.approx(np.abs(np.linalg.eigvals(A)).max(), rel=1e-9)
            assert d["accuracy"] == pytest.approx(1 - e[0], abs=1e-12)
            if regime == "stable":
                assert d["norm_2"] <= 1 + 1e-6
            if d["spectral_radius"] < 1:
                assert d["kreiss"] != "inf" and d["distance_to_instability"] > 0
    run0 = data["runs"]["regular"][0]
    assert run0["diagnostics"]["accuracy"] == pytest.approx(_forward_accuracy(run0["checkpoint"], "digits"))


def test_robust_rnn_robustness_measure(robust_rnn: Path) -> None:
    """The reported Monte-Carlo rho_T agrees with our own sampling through the torch forward pass."""
    import torch

    from spectra.train import load_task, load_trained

    data = json.loads((robust_rnn / "robust_rnn.json").read_text(encoding="utf-8"))
    d = data["runs"]["regular"][0]["diagnostics"]
    assert d["robustness_linearised"] > 0 and d["robustness_monte_carlo"] > 0
    torch.set_num_threads(1)
    model, _ = load_trained(data["runs"]["regular"][0]["checkpoint"])
    model = model.double()
    x = torch.from_numpy(load_task("digits").test.x[:100]).double()
    gen = torch.Generator().manual_seed(12345)
    draws = 400
    with torch.no_grad():
        y = model(x)
        noisy = model(
            (x[None] + 0.5 * torch.randn((draws, *x.shape), generator=gen, dtype=x.dtype)).flatten(0, 1)
        )
        err = ((noisy.view(draws, *y.shape) - y) ** 2).sum(-1)  # (draws, sequences)
    ours = float(err.mean())
    ours_se = float(err.mean(1).std() / np.sqrt(draws))
    tol = 5 * np.hypot(ours_se, d["robustness_monte_carlo_stderr"])
    assert abs(ours - d["robustness_monte_carlo"]) < tol


def test_robust_rnn_figures(robust_rnn: Path) -> None:
    for name in ("robust_rnn_noise.png", "robust_rnn_pseudospectra.png"):
        _check_png(robust_rnn / "fig" / name)


def test_robust_rnn_resumes(robust_rnn: Path) -> None:
    """A second invocation reuses the finished runs (no retraining) and gives the same tables."""
    before = (robust_rnn / "robust_rnn.json").read_text(encoding="utf-8")
    proc = _run("robust_rnn.py", robust_rnn)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reusing" in proc.stderr and "training " not in proc.stderr
    a, b = json.loads(before), json.loads((robust_rnn / "robust_rnn.json").read_text(encoding="utf-8"))
    assert a["runs"] == b["runs"]


# --------------------------------------------------------------------------- how_robust


def test_how_robust_tables(how_robust: Path) -> None:
    md = (how_robust / "how_robust.md").read_text(encoding="utf-8")
    table1, table2, table3 = _tables(md)
    assert table1[0][:5] == ["task", "cell", "hidden", "epochs", "test accuracy"]
    assert [(r[0], r[1]) for r in table1[1:]] == [
        (t, c) for t in ("adding", "digits") for c in ("rnn", "lstm", "gru")
    ]
    assert table1[1][-1] == "99.73%"  # the paper's value beside ours
    assert [r[0] for r in table2[1:]] == ["adding", "digits"] and len(table2[0]) == 7
    # per gate: RNN one value, LSTM four, GRU three
    for row in table2[1:]:
        assert [len(row[k].split(",")) for k in (1, 2, 3)] == [1, 4, 3]
    assert len(table3) == 1 + 2 * (1 + 4 + 3)
    assert "0.04" in md  # the adding problem's tolerance is stated


def test_how_robust_json(how_robust: Path) -> None:
    data = json.loads((how_robust / "how_robust.json").read_text(encoding="utf-8"))
    assert data["schema_version"] == 1 and data["settings"]["smoke"] is True
    assert set(data["results"]) == {"adding", "digits"}
    gates = {"rnn": 1, "lstm": 4, "gru": 3}
    for per_cell in data["results"].values():
        assert set(per_cell) == set(gates)
        for cell, runs in per_cell.items():
            (run,) = runs
            assert len(run["matrices"]) == gates[cell]
            for k in ("test_accuracy", "test_accuracy_after_power", "test_accuracy_after_exact"):
                assert 0 <= run[k] <= 1
            W = _weights(run["checkpoint"])["rnn.weight_hh_l0"].double().numpy()
            n = W.shape[1]
            for g, m in enumerate(run["matrices"]):
                A = W[g * n : (g + 1) * n]
                lam = np.linalg.eigvals(A)
                dep = np.sqrt(max(0.0, np.linalg.norm(A, "fro") ** 2 - np.sum(np.abs(lam) ** 2)))
                assert m["henrici"] == pytest.approx(dep, rel=1e-6, abs=1e-9)
                f = m["figures"]
                assert f["spectral_radius"]["before"] == pytest.approx(np.abs(lam).max(), rel=1e-9)
                assert set(f) >= {"distance_to_instability", "kreiss", "transient_peak"}
                # Algorithm 1 only scales: rho(after) = rho(before) * scale
                scale = m["stabilize"]["scale"]
                assert 0 < scale <= 1
                assert f["spectral_radius"]["after"] == pytest.approx(np.abs(lam).max() * scale, rel=1e-9)
                # exact normalisation: rho -> min(rho, 1)
                fe = m["figures_exact"]
                rho = np.abs(lam).max()
                assert fe["spectral_radius"]["after"] == pytest.approx(min(rho, 1.0), rel=1e-9)
    s = data["summary"]
    assert s["matrices"] == 16 and 0 <= s["power"]["rho_at_most_1_after"] <= 16
    assert s["exact"]["rho_at_most_1_after"] == 16
    run = data["results"]["digits"]["gru"][0]
    assert run["test_accuracy"] == pytest.approx(_forward_accuracy(run["checkpoint"], "digits"))
    run = data["results"]["adding"]["lstm"][0]
    acc = _forward_accuracy(run["checkpoint"], "adding", seq_len=10, n_samples=400)
    assert run["test_accuracy"] == pytest.approx(acc)


def test_how_robust_figures(how_robust: Path) -> None:
    for name in ("how_robust_adding.png", "how_robust_digits.png"):
        _check_png(how_robust / "fig" / name)


# --------------------------------------------------------------------------- options


def _module(name: str):
    import importlib.util

    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(EXAMPLES))
    return mod


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("robust_rnn", ["--regimes", "regular,bogus"]),
        ("robust_rnn", ["--seeds", "0"]),
        ("how_robust", ["--tasks", "imagenet"]),
        ("how_robust", ["--cells", "transformer"]),
        ("how_robust", ["--task-epochs", "adding=0"]),
    ],
)
def test_bad_options_exit_2(name: str, argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        _module(name).parse_args(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_options() -> None:
    rr = _module("robust_rnn")
    a = rr.parse_args(["--regimes", "robust-cov,stable", "--amplitudes", "0:1:0.25"])
    assert a.regime_list == ["robust-cov", "stable"] and a.epochs == 10 and a.seeds == 3
    assert rr.amplitude_grid(a.amplitudes) == [0.0, 0.25, 0.5, 0.75, 1.0]
    hr = _module("how_robust")
    b = hr.parse_args(["--epochs", "3", "--task-epochs", "adding=7"])
    assert b.epochs_of == {"adding": 7, "sentiment": 3, "mnist": 3}
