"""The ``spectra`` command: exit codes, one-line errors, table/JSON/CSV output."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from spectra_cli.main import main


def run(args, capsys):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_commands_and_exit_codes(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for name in ("analyze", "ls", "extract"):
        assert name in out
    assert "Exit codes" in out and "unsafe" in out


@pytest.mark.parametrize(
    "make,code,pattern",
    [
        (lambda p: p.write_bytes(b""), 3, "empty file"),
        (lambda p: p.write_bytes(os.urandom(4096)), 3, "unreadable"),
        (lambda p: p.mkdir(), 3, "directory"),
        (lambda p: None, 3, "no such file"),
    ],
)
def test_bad_input_one_line_no_traceback(tmp_path, capsys, make, code, pattern):
    p = tmp_path / "ckpt.pt"
    make(p)
    rc, out, err = run(["analyze", str(p)], capsys)
    assert rc == code
    assert out == ""
    assert pattern in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert str(p) in err


def test_usage_error_is_2(capsys):
    rc, _, err = run(["analyze"], capsys)
    assert rc == 2
    rc, _, err = run(["analyze", "x.pt", "--eps", "abc"], capsys)
    assert rc == 2


def _npy(tmp_path, a, name="A.npy"):
    p = tmp_path / name
    np.save(p, a)
    return p


def test_analyze_table_json_csv_on_npy(tmp_path, capsys):
    a = np.array([[0.5, 2.0], [0.0, 0.5]])
    p = _npy(tmp_path, a)
    rc, out, _ = run(["analyze", str(p), "--fast"], capsys)
    assert rc == 0
    assert "dep_F" in out and "stable" in out
    rc, out, _ = run(["analyze", str(p), "--fast", "--json"], capsys)
    doc = json.loads(out)
    assert doc["schema_version"] == 1 and doc["format"] == "npy"
    (m,) = doc["matrices"]
    for key in (
        "id",
        "layer",
        "direction",
        "gate",
        "shape",
        "finite",
        "spectral_radius",
        "norm_2",
        "norm_fro",
        "henrici",
        "henrici_relative",
        "schur_nonnormal_fro",
        "kappa_eigvec",
        "eigenvalues",
    ):
        assert key in m
    assert m["henrici"] == pytest.approx(2.0)
    assert m["kappa_eigvec"] == "inf"
    rc, out, _ = run(["analyze", str(p), "--fast", "--csv"], capsys)
    lines = out.strip().splitlines()
    assert lines[0].startswith("id,") and len(lines) == 2


def test_verdict_marginal_when_rho_is_one_to_rounding(tmp_path, capsys):
    # the identity has rho = 1 exactly, a rotation by pi/2 gets rho = 1 - 1e-16 from
    # rounding: both are "marginal", not one stable and one unstable
    p = tmp_path / "m.npz"
    np.savez(
        p,
        eye=np.eye(3),
        rot=np.array([[0.0, -1.0], [1.0, 0.0]]),
        up=np.diag([1.01, 0.2]),
        down=0.5 * np.eye(2),
    )
    rc, out, _ = run(["analyze", str(p), "--fast"], capsys)
    assert rc == 0
    verdict = {line.split()[0]: line.split("  ")[-1].strip() for line in out.splitlines()[4:8]}
    assert verdict == {
        "eye": "marginal (rho = 1)",
        "rot": "marginal (rho = 1)",
        "up": "UNSTABLE (rho > 1)",
        "down": "stable",
    }
    rc, out, _ = run(["analyze", str(p), "--fast", "--json"], capsys)
    flags = {m["id"]: (m["stable"], m["marginal"]) for m in json.loads(out)["matrices"]}
    assert flags["eye"][1] and flags["rot"][1] and not flags["up"][1] and not flags["down"][1]
    assert flags["down"][0] and not flags["up"][0]


def test_nonsquare_npy_exit_code(tmp_path, capsys):
    p = _npy(tmp_path, np.ones((2, 3)))
    rc, out, err = run(["analyze", str(p)], capsys)
    assert rc == 7 and "square" in err and "Traceback" not in err


def test_nonfinite_matrix_listed_not_analysed(tmp_path, capsys):
    p = _npy(tmp_path, np.array([[np.nan, 0.0], [0.0, 1.0]]))
    rc, out, err = run(["analyze", str(p), "--json"], capsys)
    assert rc == 0
    doc = json.loads(out)
    assert doc["matrices"][0]["finite"] is False
    assert "NaN or Inf" in err


def test_extract_roundtrip_and_no_overwrite(tmp_path, capsys):
    a = np.random.default_rng(0).standard_normal((4, 4))
    p = _npy(tmp_path, a)
    out = tmp_path / "mats.npz"
    rc, _, _ = run(["extract", str(p), "-o", str(out)], capsys)
    assert rc == 0
    with np.load(out) as z:
        (key,) = z.files
        np.testing.assert_array_equal(z[key], a)
    rc, _, err = run(["extract", str(p), "-o", str(out)], capsys)
    assert rc == 8 and "--force" in err
    rc, _, _ = run(["extract", str(p), "-o", str(out), "--force"], capsys)
    assert rc == 0


def test_unknown_matrix_id(tmp_path, capsys):
    p = _npy(tmp_path, np.eye(3))
    rc, _, err = run(["analyze", str(p), "--matrix", "nope"], capsys)
    assert rc == 6 and "valid ids" in err


def test_console_script_runs_in_subprocess(tmp_path):
    p = _npy(tmp_path, np.eye(2) * 0.5)
    exe = os.path.join(os.path.dirname(sys.executable), "spectra")
    r = subprocess.run([exe, "analyze", str(p), "--fast", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["matrices"][0]["spectral_radius"] == pytest.approx(0.5)


def test_analyze_plots_one_figure_per_matrix(tmp_path, capsys):
    z = tmp_path / "two.npz"
    np.savez(z, a=np.diag([0.5, 0.2]), b=np.array([[0.5, 3.0], [0.0, 0.4]]))
    rc, out, _ = run(["analyze", str(z), "--fast", "--plots", str(tmp_path / "figs")], capsys)
    assert rc == 0
    pngs = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert pngs == ["a.png", "b.png"]
    for p in (tmp_path / "figs").iterdir():
        assert p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000


def test_analyze_plots_names_and_looks_like_pseudospectra(tmp_path, capsys):
    # gate ids gave names ending in "_" ("w_input_.png"), and smaller figures titled unlike
    # those of `spectra pseudospectra`
    import matplotlib.image

    z = tmp_path / "g.npz"
    np.savez(z, **{"w": np.array([[0.5, 3.0], [0.0, 0.4]])})
    assert run(["analyze", "-q", str(z), "--fast", "--plots", str(tmp_path / "figs")], capsys)[0] == 0
    assert run(["pseudospectra", "-q", str(z), "-o", str(tmp_path / "ps.png")], capsys)[0] == 0
    a = matplotlib.image.imread(tmp_path / "figs" / "w.png")
    b = matplotlib.image.imread(tmp_path / "ps.png")
    assert a.shape == b.shape
    import torch

    torch.manual_seed(0)
    torch.save(torch.nn.GRU(2, 3).state_dict(), tmp_path / "gru.pt")
    assert (
        run(["analyze", "-q", str(tmp_path / "gru.pt"), "--fast", "--plots", str(tmp_path / "g")], capsys)[0]
        == 0
    )
    names = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert names == [f"weight_hh_l0_{g}.png" for g in ("new", "reset", "update")]


GOLDEN = Path(__file__).resolve().parent / "golden"
DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize(
    "args,golden",
    [
        (["analyze", "data/digits_gru_stable.pt", "--fast"], "analyze_fast_digits_gru_stable.txt"),
        (["ls", "data/digits_lstm_regular.keras"], "ls_digits_lstm_regular_keras.txt"),
    ],
)
def test_output_matches_golden_file(args, golden, capsys, monkeypatch):
    """Layout regressions: the table a user sees (numbers checked elsewhere against oracles)."""
    monkeypatch.chdir(DATA.parent)
    rc, out, _ = run(args, capsys)
    assert rc == 0
    assert out == (GOLDEN / golden).read_text()


@pytest.mark.parametrize(
    "cmd",
    [
        ["kreiss"],
        ["kreiss", "--json"],
        ["transient", "-o", "{tmp}/t.png"],
        ["pseudospectra", "-o", "{tmp}/p.png"],
    ],
)
def test_every_matrix_nonfinite_is_one_error_line_exit_7(tmp_path, capsys, cmd):
    # kreiss used to crash on an empty table (and print "matrices": [] with exit 0 as JSON),
    # pseudospectra to exit 1 with a click-style "Error:" line
    p = _npy(tmp_path, np.array([[np.nan, 0.0], [0.0, 1.0]]))
    args = [c.format(tmp=tmp_path) for c in cmd]
    rc, out, err = run([args[0], "-q", str(p), *args[1:]], capsys)
    assert rc == 7, err
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[-1].startswith("spectra: error:") and "NaN or Inf" in lines[-1]
    assert "Traceback" not in err and "internal error" not in err


def test_analyze_plots_folder_that_cannot_be_made_exit_8(tmp_path, capsys):
    p = _npy(tmp_path, np.diag([0.5, 0.2]))
    rc, out, err = run(["analyze", "-q", "--fast", "--plots", str(p / "sub"), str(p)], capsys)
    assert rc == 8, err
    assert err.startswith("spectra: error: --plots") and "internal error" not in err


def test_analyze_csv_has_every_json_figure(tmp_path, capsys):
    p = tmp_path / "two.npz"
    np.savez(p, a=np.array([[0.5, 2.0], [0.0, 0.3]]), bad=np.array([[np.inf, 0.0], [0.0, 0.1]]))
    rc, out, _ = run(["analyze", "-q", "--json", str(p)], capsys)
    assert rc == 0
    doc = {m["id"]: m for m in json.loads(out)["matrices"]}
    rc, out, _ = run(["analyze", "-q", "--csv", str(p)], capsys)
    header, *rows = [line.split(",") for line in out.strip().splitlines()]
    csv_rows = {r[0]: dict(zip(header, r)) for r in rows}
    figures = (
        "distance_to_instability",
        "kreiss",
        "kreiss_lower",
        "kreiss_upper",
        "kreiss_certified_upper",
        "transient_peak",
        "transient_peak_k",
        "numerical_radius",
    )
    for key in figures:
        assert key in header
        assert float(csv_rows["a"][key]) == pytest.approx(float(doc["a"][key]), rel=1e-15)
        # a matrix with NaN/Inf weights has every figure, as null (documented), not missing keys
        assert key in doc["bad"] and doc["bad"][key] is None and csv_rows["bad"][key] == ""
    assert doc["bad"]["pseudospectral_radius"] is None


def test_device_name_is_a_usage_error(tmp_path, capsys):
    p = _npy(tmp_path, np.diag([0.5, 0.2]))
    rc, _, err = run(["pseudospectra", str(p), "--device", "tpu", "-o", str(tmp_path / "x.png")], capsys)
    assert rc == 2 and "cpu, cuda or cuda:K" in err


def test_empty_array_says_empty(tmp_path, capsys):
    p = _npy(tmp_path, np.zeros((0, 0)))
    rc, _, err = run(["analyze", str(p)], capsys)
    assert rc != 0 and "empty" in err and "not square" not in err


def test_pseudospectra_warns_when_no_contour_lies_in_the_region(tmp_path, capsys):
    p = _npy(tmp_path, np.diag([0.5, 0.2]))
    fig = tmp_path / "far.png"
    args = ["pseudospectra", "-q", str(p), "--bounds", "5", "6", "5", "6", "--npts", "12", "-o", str(fig)]
    rc, _, err = run([*args, "--levels", "-3,-2"], capsys)
    assert rc == 0 and fig.exists()
    assert "no contour to draw" in err
    # default levels far from the eigenvalues: one level inside the data (it was below it)
    rc, _, err = run(args, capsys)
    assert rc == 0 and "no contour" not in err
    rc, _, err = run(["pseudospectra", "-q", str(p), "--npts", "24", "-o", str(fig)], capsys)
    assert rc == 0 and "no contour" not in err


def test_stabilize_nonfinite_matrix_warns_on_the_table_run(tmp_path, capsys):
    p = _npy(tmp_path, np.array([[np.nan, 0.0], [0.0, 2.0]]))
    rc, out, err = run(["stabilize", str(p), "-o", str(tmp_path / "o.npy"), "--method", "exact"], capsys)
    assert rc == 0 and "spectra: warning: A: holds NaN or Inf" in err


def test_compare_notes_name_their_matrices(tmp_path, capsys):
    z = tmp_path / "two.npz"
    np.savez(z, good=np.diag([2.0, 0.5]), bad=np.array([[np.inf, 0.0], [0.0, 0.1]]))
    rc, _, err = run(["compare", str(z), "--stabilize", "exact"], capsys)
    assert "spectra: warning: bad: holds NaN or Inf" in err


def test_robustness_on_a_keras_file_says_what_it_needs(capsys):
    rc, _, err = run(["robustness", str(DATA / "digits_lstm_regular.keras")], capsys)
    assert rc == 3 and "Keras file" in err and "spectra train" in err and "enforce" not in err


@pytest.mark.parametrize(
    "args", [["--regime", "bogus"], ["--regime", "power-norm", "--target", "-1"], ["--lr", "nan"]]
)
def test_train_bad_option_values_are_usage_errors(tmp_path, capsys, args):
    rc, _, err = run(["train", *args, "--epochs", "1", "-o", str(tmp_path / "run")], capsys)
    assert rc == 2 and "internal error" not in err
    assert not (tmp_path / "run").exists()  # nothing started


def _jordan2_kreiss(lam: float, b: float) -> float:
    """K of [[lam, b], [0, lam]]: sigma_min = (sqrt(b^2 + 4 t^2) - b)/2 at |z - lam| = t (NUMERICS.md)."""
    from scipy.optimize import minimize_scalar

    def negf(t):
        return -(lam + t - 1) / ((math.sqrt(b * b + 4 * t * t) - b) / 2)

    lo = 1 - lam
    return max(
        -minimize_scalar(negf, bounds=(lo * (1 + 1e-9), hi), method="bounded", options={"xatol": 1e-14}).fun
        for hi in (lo + 0.1, lo + 1, lo + 10, lo + 100, lo + 1000)
    )


def test_kreiss_table_rounds_bounds_outwards(tmp_path, capsys):
    # "K lower" was rounded to nearest: 35.72129 for K = 35.7212857..., above the K it bounds
    truth = _jordan2_kreiss(0.3, 100.0)
    p = _npy(tmp_path, np.array([[0.3, 100.0], [0.0, 0.3]]))
    rc, out, _ = run(["kreiss", str(p)], capsys)
    assert rc == 0
    row = out.splitlines()[-1].split()
    lower, upper = float(row[3]), float(row[4].rstrip("*"))
    assert lower <= truth <= upper
    assert row[3] == "35.72128"


def test_analyze_marks_lower_bounds_and_rounding_level_figures(tmp_path, capsys):
    import scipy.linalg as sla

    # a first hump of 1000 hid the later peak 8792 (k = 399), printed as the maximum with no warning
    hump = sla.block_diag(
        np.array([[0.1, 1000.0], [0.0, 0.1]]), 0.995 * np.eye(3) + 0.9 * np.diag([1.0, 1.0], 1)
    )
    sym = np.random.default_rng(3).standard_normal((12, 12))
    z = tmp_path / "m.npz"
    np.savez(z, hump=hump, sym=0.4 * (sym + sym.T) / 12, near1=np.diag([1.0001, 0.5]))
    rc, out, err = run(["analyze", str(z)], capsys)
    assert rc == 0
    rows = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.startswith(("hump", "sym", "near1"))
    }
    header = next(line.split() for line in out.splitlines() if line.startswith("id"))
    col = {h: i for i, h in enumerate(header)}
    assert rows["hump"][col["peak"]].startswith("≥8791") and rows["hump"][col["k*"]] == "399"
    assert "hump: transient_growth" in err and "only a lower bound" in err
    # an exactly symmetric matrix: dep_F is rounding noise, printed as below the rounding level
    assert rows["sym"][col["dep_F"]].startswith("<") and rows["sym"][col["dep_F/|A|_F"]].startswith("<")
    assert rows["near1"][col["rho"]] == "1.0001"
    rc, out, _ = run(["analyze", str(z), "--json"], capsys)
    doc = {m["id"]: m for m in json.loads(out)["matrices"]}
    assert doc["hump"]["transient_peak_is_lower_bound"] is True
    assert doc["sym"]["transient_peak_is_lower_bound"] is False and doc["sym"]["kreiss_resolved"] is True


def test_analyze_and_kreiss_agree_on_rho_and_warn_when_eigenvalues_are_ill_conditioned(tmp_path, capsys):
    # a rotated 8x8 Jordan block: rho printed 0.9062 by analyze, 0.9057 by kreiss (true 0.9047),
    # with nothing saying the 4 digits are not resolved
    Q = np.linalg.qr(np.random.default_rng(1).standard_normal((8, 8)))[0]
    J = 0.9 * np.eye(8) + 0.5 * np.diag(np.ones(7), 1)
    p = _npy(tmp_path, Q @ J @ Q.T)
    rc, out, err = run(["analyze", str(p), "--json"], capsys)
    rho_a = json.loads(out)["matrices"][0]["spectral_radius"]
    assert "ill-conditioned" in err or "singular to working precision" in err
    rc, out, _ = run(["kreiss", str(p), "--json"], capsys)
    assert json.loads(out)["matrices"][0]["spectral_radius"] == rho_a
    # a well-conditioned matrix says nothing of the kind
    rc, out, err = run(["analyze", str(_npy(tmp_path, np.diag([0.5, 0.2])))], capsys)
    assert "ill-conditioned" not in err and "singular to working" not in err
    # nor does an orthogonal one (kappa(V) = 1), whose rho = 1 is only rounding away from 1
    orth = np.linalg.qr(np.random.default_rng(2).standard_normal((24, 24)))[0]
    rc, out, err = run(["analyze", str(_npy(tmp_path, orth))], capsys)
    assert rc == 0 and "ill-conditioned" not in err and "marginal (rho = 1)" in out


def test_eps_keys_do_not_collide(tmp_path, capsys):
    # %g labels made --eps 0.001,0.0010000001 one key (holding the second's radius)
    p = _npy(tmp_path, np.array([[0.5, 1.0], [0.0, 0.3]]))
    rc, out, _ = run(["analyze", str(p), "--json", "--eps", "0.001,0.0010000001,1.23456789e-3"], capsys)
    pr = json.loads(out)["matrices"][0]["pseudospectral_radius"]
    assert set(pr) == {"0.001", "0.0010000001", "0.00123456789"}
    from spectra.crisscross import pseudospectral_radius

    for key, v in pr.items():
        assert v == float(pseudospectral_radius(np.array([[0.5, 1.0], [0.0, 0.3]]), float(key)))


def _digits_ok(printed: str, truth: float) -> bool:
    """`printed` agrees with `truth` to its last digit (half a unit of it, and a hair of slack)."""
    s = printed.lstrip("<≥")
    mant = s.split("e")[0]
    places = len(mant.split(".")[1]) if "." in mant else 0
    exp = int(s.split("e")[1]) if "e" in s else 0
    return abs(float(s) - truth) <= 0.5 * 10.0 ** (exp - places) * (1 + 1e-9)


def test_near_one_rho_and_near_floor_figures_show_only_resolved_digits(tmp_path, capsys):
    # rho 0.9999999966 was printed for 0.99999999188 (kappa(V) 4e7: ten digits, four of them wrong);
    # a symmetric rho of 1 - 1e-15 printed as 1.0000000000000009 with d_inst "0"; dep_F 9.983e-15
    # for 9.995e-15 (a rounding error of 5e-15)
    import mpmath

    rng = np.random.default_rng(0)
    V = np.eye(6) + 30 * np.triu(rng.standard_normal((6, 6)), 1)
    lam = np.array([1 - 8e-9, 0.5, 0.4, -0.3, 0.2, 0.1])
    P = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    # (rotated: V D V^-1 itself is upper triangular, its eigenvalues then exact -- its diagonal)
    ill = P @ V @ np.diag(lam) @ np.linalg.inv(V) @ P.T
    Q = np.linalg.qr(rng.standard_normal((30, 30)))[0]
    sym = Q @ np.diag(np.r_[1 - 1e-15, np.linspace(-0.9, 0.9, 29)]) @ Q.T
    sym = (sym + sym.T) / 2
    tri = np.diag([0.5, 0.4, 0.3, 0.2]) + 1e-14 * np.eye(4, k=1)  # dep_F = sqrt(3) 1e-14 exactly
    np.savez(tmp_path / "m.npz", ill=ill, sym=sym, tri=tri)
    rc, out, err = run(["analyze", str(tmp_path / "m.npz")], capsys)
    header = next(line.split() for line in out.splitlines() if line.startswith("id"))
    col = {h: i for i, h in enumerate(header)}
    rows = {
        line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("ill", "sym", "tri"))
    }
    mpmath.mp.dps = 50
    true_rho = max(abs(x) for x in mpmath.eig(mpmath.matrix(ill.tolist()))[0])
    assert _digits_ok(rows["ill"][col["rho"]], float(true_rho)), rows["ill"][col["rho"]]
    assert "ill: the eigenvalues are ill-conditioned" in err
    assert rows["sym"][col["rho"]] == "1.000" and rows["sym"][col["d_inst"]].startswith("<")
    assert _digits_ok(rows["tri"][col["dep_F"]], math.sqrt(3) * 1e-14), rows["tri"][col["dep_F"]]


def test_kreiss_of_orthogonal_weights_stored_in_float32_is_finite(tmp_path, capsys):
    # rounding to float32 put rho at 1 + 5e-8: the stored dtype's rounding is part of "rho = 1 to
    # rounding" (kreiss printed K inf for every orthogonal float32 matrix)
    for seed in range(50):
        Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((16, 16)))[0].astype(np.float32)
        if np.max(np.abs(np.linalg.eigvals(Q.astype(np.float64)))) > 1 + 1e-9:
            break
    np.save(tmp_path / "q.npy", Q)
    rc, out, _ = run(["kreiss", str(tmp_path / "q.npy"), "--json"], capsys)
    (m,) = json.loads(out)["matrices"]
    assert rc == 0 and m["kreiss"]["value"] == pytest.approx(1.0, abs=1e-3)
    assert "float32" in m["kreiss"]["message"]


def test_compare_prints_figures_as_analyze_does(tmp_path, capsys):
    # compare printed dep_F 1.25e-16 for an exactly symmetric matrix (analyze: "<4e-15")
    rng = np.random.default_rng(1)
    S = rng.standard_normal((5, 5))
    S = (S + S.T) / 10
    np.savez(tmp_path / "b.npz", s=S)
    np.savez(tmp_path / "a.npz", s=0.5 * S)
    rc, out, _ = run(["compare", str(tmp_path / "b.npz"), str(tmp_path / "a.npz")], capsys)
    row = next(line for line in out.splitlines() if line.startswith("s "))
    assert row.count("<") >= 2  # dep_F before and after


def test_unresolved_kreiss_shows_the_proved_lower_bound_and_no_false_sup(tmp_path, capsys):
    # 0.99 I + 1000 N (3x3): sigma_min at the maximiser is down at the rounding level. analyze
    # printed the estimate 1.481e9 as "≥", the proved bound being 4.98e8; kreiss said
    # "K <= sup_k ||A^k|| = inf" although rho < 1 makes the supremum finite (2000 powers did
    # not reach it)
    A = 0.99 * np.eye(3) + 1000 * np.eye(3, k=1)
    p = _npy(tmp_path, A)
    rc, out, _ = run(["analyze", str(p), "--json"], capsys)
    m = json.loads(out)["matrices"][0]
    assert m["kreiss_resolved"] is False and m["kreiss_lower"] < m["kreiss"]
    rc, out, _ = run(["analyze", str(p)], capsys)
    header = next(line.split() for line in out.splitlines() if line.startswith("id"))
    row = next(line.split() for line in out.splitlines() if line.startswith("A "))
    k_cell = row[header.index("K")]
    assert k_cell.startswith("≥") and float(k_cell[1:]) <= m["kreiss_lower"]
    # the true K: sup_r (r - 1) ||(r - A)^-1|| on the real axis (the resolvent's norm is largest
    # there), in 50-digit arithmetic
    import mpmath

    mpmath.mp.dps = 50

    def f(r):
        B = mpmath.matrix(3, 3)
        for i in range(3):
            B[i, i] = r - mpmath.mpf("0.99")
            if i < 2:
                B[i, i + 1] = -1000
        return (r - 1) / min(mpmath.svd_r(B, compute_uv=False))

    true_k = max(f(mpmath.mpf(1) + mpmath.mpf(t) / 10000) for t in range(30, 80))
    assert float(k_cell[1:]) <= true_k
    rc, out, _ = run(["kreiss", str(p), "--json"], capsys)
    msg = json.loads(out)["matrices"][0]["kreiss"]["message"]
    assert "= inf" not in msg and "no upper bound was proved" in msg


def test_certified_k_is_shown_with_digits_both_ends_of_its_bracket_agree_on():
    from spectra_cli._common import fmt_bracketed

    assert fmt_bracketed(19.42533, 19.42532, 19.42535) == "19.43"
    # 1.23449 .. 1.23451 rounds to 1.234 or 1.235 at 4 digits: one more digit settles it
    assert fmt_bracketed(1.2345, 1.23449, 1.23451) == "1.2345"
    assert fmt_bracketed(2.5, 2.4999999, 2.5000001) == "2.500"
    # a bracket too wide for 4 digits shows the digits it settles, never one it does not
    assert fmt_bracketed(1.2346, 1.2344, 1.2349) == "1.23"
    assert fmt_bracketed(0.99995, 0.99991, 1.00001) == "1.00"
    # too wide to settle any digit: "~" and two digits (it printed 1.500)
    assert fmt_bracketed(1.5, 1.0, 2.0) == "~1.5"


def test_extract_keeps_complex_matrices_and_writes_with_the_umask_mode(tmp_path, capsys):
    import os
    import stat

    C = np.random.default_rng(0).standard_normal((5, 5)) + 1j * np.random.default_rng(1).standard_normal(
        (5, 5)
    )
    p = _npy(tmp_path, C)
    out = tmp_path / "m.npz"
    rc, _, err = run(["extract", str(p), "-o", str(out)], capsys)
    assert rc == 0 and "wrote 1 matrix to" in err and "warning" not in err
    got = np.load(out)["A"]
    assert got.dtype == np.complex128 and np.array_equal(got, C)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    # the input itself is never the output, even with --force
    rc, _, err = run(["extract", str(p), "-o", str(p), "--force"], capsys)
    assert rc == 8 and "is the input file" in err and np.array_equal(np.load(p), C)


def test_unwritable_outputs_exit_8_with_one_line(tmp_path, capsys, monkeypatch):
    p = _npy(tmp_path, np.diag([0.5, 0.2]))
    afile = tmp_path / "afile"
    afile.write_text("x")
    # a path through a regular file: "is not a folder", not "does not exist"
    for cmd in (
        ["extract", str(p), "-o", str(afile / "x.npz")],
        ["stabilize", str(p), "-o", str(afile / "x.npy")],
    ):
        rc, _, err = run(cmd, capsys)
        assert rc == 8 and "is not a folder" in err and "internal error" not in err, err
    # the file system refusing the temporary file (as /sys or a read-only folder does) was an
    # "internal error", exit 1
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    for cmd in (
        ["extract", str(p), "-o", str(tmp_path / "x.npz")],
        ["stabilize", str(p), "-o", str(tmp_path / "x.npy")],
    ):
        rc, _, err = run(cmd, capsys)
        assert rc == 8 and "Permission denied" in err and "internal error" not in err, err


def test_usage_errors_are_one_line_and_paths_that_are_not_files_exit_3(tmp_path, capsys):
    rc, _, err = run(["kreiss", "--no-such-option", "x.npy"], capsys)
    assert rc == 2 and err.count("\n") == 1 and err.startswith("spectra kreiss: error: No such option")
    assert "'spectra kreiss --help'" in err
    rc, _, err = run(["track", str(tmp_path), "--scheduler", "bogus"], capsys)
    assert rc == 2 and "--scheduler" in err and err.count("\n") == 1
    # a directory or a missing file: exit 3 from every command that reads a checkpoint
    for cmd in ("kreiss", "transient", "pseudospectra", "stabilize", "evaluate", "robustness"):
        extra = ["-o", str(tmp_path / "o.png")] if cmd in ("transient", "pseudospectra") else []
        extra = ["-o", str(tmp_path / "o.npy")] if cmd == "stabilize" else extra
        rc, _, err = run([cmd, str(tmp_path), *extra], capsys)
        assert rc == 3 and "is a directory" in err, (cmd, rc, err)
        rc, _, err = run([cmd, str(tmp_path / "missing.pt"), *extra], capsys)
        assert rc == 3 and "no such file" in err, (cmd, rc, err)


def test_a_closed_stdout_ends_quietly_with_exit_0(tmp_path):
    # click turned EPIPE into exit 1 (the code of a compare finding), silently
    import subprocess
    import sys

    p = _npy(tmp_path, np.diag([0.5, 0.2]))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from spectra_cli.main import entry; entry()",
            "analyze",
            str(p),
            "--json",
            "--fast",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and b"Traceback" not in err and b"internal error" not in err


def test_evaluate_thresholds_interpolate_from_the_clean_input(capsys):
    # --noise 0.3 printed "3%: 0.300, 5%: 0.300, 10%: 0.300": the first amplitude passed for the
    # threshold of every level already reached there
    ck = str(DATA / "digits_rnn_stable.pt")
    rc, out, _ = run(["evaluate", ck, "--noise", "0.3", "--repeats", "1", "--json"], capsys)
    doc = json.loads(out)
    amps = [r["amplitude"] for r in doc["results"]]
    assert rc == 0 and amps == [0.0, 0.3]
    rc, out0, _ = run(["evaluate", ck, "--noise", "0,0.3", "--repeats", "1", "--json"], capsys)
    assert json.loads(out0)["thresholds"] == doc["thresholds"]


def test_options_out_of_range_are_usage_errors(tmp_path, capsys):
    p = _npy(tmp_path, np.diag([0.5, 0.2]))
    for cmd in (
        ["stabilize", str(p), "-o", str(tmp_path / "o.npy"), "--target", "nan"],
        ["train", "--grad-clip", "-1", "-o", str(tmp_path / "r")],
        ["train", "--grad-clip", "0", "-o", str(tmp_path / "r")],
        ["train", "--lr", "inf", "-o", str(tmp_path / "r")],
    ):
        rc, _, err = run(cmd, capsys)
        assert rc == 2 and err.count("\n") == 1, (cmd, rc, err)
    assert not (tmp_path / "r").exists() and not (tmp_path / "o.npy").exists()
    from spectra.train.errors import TrainConfigError
    from spectra.train.loop import TrainConfig, validate_config

    with pytest.raises(TrainConfigError, match="grad-clip"):
        validate_config(TrainConfig(grad_clip=-1.0))


def test_kreiss_names_the_matrix_in_warnings_and_prints_its_footnote_with_the_table(tmp_path, capsys):
    np.savez(tmp_path / "m.npz", slow=0.99 * np.eye(3) + 1000 * np.eye(3, k=1), fine=np.diag([0.5, 0.2]))
    rc, out, err = run(["kreiss", str(tmp_path / "m.npz")], capsys)
    assert rc == 0 and "spectra: warning: slow: transient_growth" in err
    assert "* upper bound not certified" in out and "* upper bound" not in err


def test_an_uncertified_kreiss_constant_is_shown_as_the_lower_bound_it_is(tmp_path, capsys):
    # f(z) = (|z| - 1)/sigma_min(zI - A) of a scaled shift depends on |z| only: its maximum is a
    # whole circle, where the cells give up, and for n > 64 analyze does not run the circle walk;
    # K is then found by search: attained, so a lower bound, and a higher maximum may have been
    # missed: "≥", not a bare 4-digit figure
    A = 1.05 * np.eye(70, k=1)
    p = _npy(tmp_path, A)
    rc, out, _ = run(["analyze", str(p), "--json"], capsys)
    m = json.loads(out)["matrices"][0]
    assert m["kreiss_certified_upper"] > m["kreiss_lower"] * (1 + 1e-5)  # not certified
    rc, out, _ = run(["analyze", str(p)], capsys)
    header = next(line.split() for line in out.splitlines() if line.startswith("id"))
    row = next(line.split() for line in out.splitlines() if line.startswith("A "))
    assert row[header.index("K")].startswith("≥") and "K not certified" in out


def test_stabilize_refuses_an_output_name_of_another_format(tmp_path, capsys):
    # a .keras input written to -o x.pt was a Keras archive named .pt (torch.load fails on it)
    src = str(DATA / "digits_lstm_regular.keras")
    rc, _, err = run(["stabilize", src, "-o", str(tmp_path / "x.pt"), "--method", "exact"], capsys)
    assert rc == 8 and "name it .keras" in err and not (tmp_path / "x.pt").exists()
    rc, _, err = run(["stabilize", src, "-o", str(tmp_path / "x.keras"), "--method", "exact"], capsys)
    assert rc == 0 and (tmp_path / "x.keras").exists()


def test_pseudospectra_prints_the_levels_it_draws_in_a_panel(tmp_path, capsys):
    # each matrix's own default levels were printed, the panel drew shared ones
    from spectra.plot.pseudospectra import shared_levels

    src = str(DATA / "digits_lstm_regular.pt")
    rc, out, _ = run(
        [
            "pseudospectra",
            src,
            "-o",
            str(tmp_path / "p.png"),
            "--npts",
            "20",
            "--save-grid",
            str(tmp_path / "g.npz"),
        ],
        capsys,
    )
    assert rc == 0
    import spectra

    grids = [spectra.load_grid(str(tmp_path / f"g.{k}.npz")) for k in range(4)]
    want = ",".join(f"{v:.3g}" for v in shared_levels(grids))
    printed = {line.split("\t")[4] for line in out.splitlines() if "\tlevels=" in line}
    assert printed == {f"levels={want}"}


def test_an_unwritable_figure_path_is_refused_before_any_computation(tmp_path, capsys, monkeypatch):
    import spectra

    def boom(*a, **k):  # the grid must not even start
        raise AssertionError("computed before the output was checked")

    monkeypatch.setattr(spectra, "pseudospectra", boom)
    src = str(DATA / "digits_lstm_regular.pt")
    rc, out, err = run(["pseudospectra", src, "-o", str(tmp_path / "missing" / "p.png")], capsys)
    assert rc == 8 and "does not exist" in err and out == ""


def test_fmt_kreiss_says_what_is_proved():
    from spectra_cli._common import fmt_kreiss

    # certified: the digits both ends agree on
    assert (
        fmt_kreiss({"kreiss": 19.42533, "kreiss_lower": 19.42532, "kreiss_certified_upper": 19.42535})
        == "19.43"
    )
    # found by search, upper only from the powers (n > 64): a lower bound, rounded down
    row = {"kreiss": 12.5199, "kreiss_lower": 12.5199, "kreiss_certified_upper": 20.97}
    assert fmt_kreiss(row) == "≥12.51"
    # rho = 1 to rounding: upper "inf" (JSON), still only a lower bound
    assert (
        fmt_kreiss({"kreiss": 250.0009, "kreiss_lower": 250.0009, "kreiss_certified_upper": "inf"})
        == "≥250.0"
    )
    # beyond double precision: the proved lower bound, not the estimate
    row = {
        "kreiss": 1.48e9,
        "kreiss_lower": 4.98e8,
        "kreiss_certified_upper": "inf",
        "kreiss_resolved": False,
    }
    assert fmt_kreiss(row) == "≥4.980e+08"
    assert fmt_kreiss({"kreiss": "inf"}) == "inf"


def test_a_matrix_beyond_the_float_range_is_skipped_like_a_nan_one(tmp_path, capsys):
    # one out-of-range gate made kreiss/transient/pseudospectra/compare exit 7 for the whole file,
    # naming it "A"; analyze's verdict said "NaN/Inf weights" for finite weights
    np.savez(tmp_path / "m.npz", ok=np.diag([0.5, 0.2]), huge=1e130 * np.eye(2, k=1) + 1e130 * np.eye(2))
    p = str(tmp_path / "m.npz")
    for cmd in (
        ["kreiss", p],
        ["transient", p, "-o", str(tmp_path / "t.png")],
        ["pseudospectra", p, "-o", str(tmp_path / "p.png"), "--npts", "10"],
        ["compare", p, "--stabilize", "exact"],
    ):
        rc, _, err = run(cmd, capsys)
        assert rc == 0 and "huge: largest entry" in err, (cmd, rc, err)
    rc, out, _ = run(["analyze", p], capsys)
    assert "not analysed (NaN/Inf, or out of the float range)" in out


def test_compare_keeps_its_finding_exit_code_when_stdout_is_closed(tmp_path):
    import os
    import subprocess
    import sys

    args = ["compare", str(DATA / "digits_rnn_stable.pt"), str(DATA / "digits_rnn_regular.pt")]
    cmd = [sys.executable, "-c", "from spectra_cli.main import entry; entry()", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    proc.stdout.close()
    assert proc.wait(timeout=300) == full.returncode == 1


def test_scheduler_addresses(tmp_path, capsys):
    for good in ("tcp://[::1]:8786", "tcp://10.0.0.5:8786", "localhost:8786"):
        rc, _, err = run(["track", str(tmp_path), "--scheduler", good], capsys)
        assert rc != 2, (good, err)  # past the address check (then: no checkpoint in the folder)
    for bad in ("bogus", "tcp://host", "tcp://[::1]"):
        rc, _, err = run(["track", str(tmp_path), "--scheduler", bad], capsys)
        assert rc == 2 and "--scheduler" in err, (bad, err)


def test_spectra_alone_shows_the_help_not_a_one_line_error(capsys):
    # the one-line usage errors folded click's no-arguments help into one "error" line
    rc, out, err = run([], capsys)
    text = out + err
    assert "Commands:" in text and "spectra: error" not in text and text.count("\n") > 10


def test_rho_eps_near_one_gets_the_digits_that_tell_it_from_one(tmp_path, capsys):
    # a normal matrix: rho_eps = rho + eps exactly (the oracle); 0.99997 was printed "1.000"
    # beside a "stable" verdict and rho = 0.99996
    p = tmp_path / "near.npy"
    np.save(p, np.diag([0.99996, 0.5]))
    code, out, _ = run(["analyze", str(p), "--eps", "1e-5", "-q"], capsys)
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("id")).split()
    row = next(line for line in lines if line.startswith("near")).split()
    cell = row[header.index("rho_eps(1e-05)")]
    assert cell == f"{0.99996 + 1e-5:.5g}" == "0.99997"


def test_compare_accepts_quiet_like_analyze(tmp_path, capsys):
    p = tmp_path / "a.npy"
    np.save(p, np.array([[1.2, 1.0], [0.0, 0.5]]))
    fig = tmp_path / "c.png"
    code, out, err = run(["compare", str(p), "--stabilize", "exact", "-q", "-o", str(fig)], capsys)
    assert code in (0, 1) and fig.exists()
    assert "wrote" not in err and "usage" not in err.lower()


def _analyze_row(path, capsys, *extra):
    rc, out, _ = run(["analyze", str(path), *extra], capsys)
    assert rc == 0
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("id "))
    cols = lines[head].split()
    return dict(zip(cols, lines[head + 2].split())), out


def _mp_kappa(A):
    """kappa(V) of the stored matrix, unit eigenvectors, 80 digits: the oracle."""
    import mpmath  # a test dependency (pyproject: test extra)

    mpmath.mp.dps = 80
    _, V = mpmath.eig(mpmath.matrix(A.tolist()))
    for j in range(V.cols):
        nr = mpmath.sqrt(sum(abs(V[i, j]) ** 2 for i in range(V.rows)))
        for i in range(V.rows):
            V[i, j] /= nr
    s = mpmath.svd_c(V, compute_uv=False)
    return float(max(s) / min(s))


def test_kappa_is_shown_to_the_digits_rounding_leaves(tmp_path, capsys):
    # kappa(V) of a nearly defective matrix carries a relative error of about n u kappa^2: a rotated
    # Jordan block printed 1.90e+08 for 7.75e+08 (found by a review)
    G = np.array([[0.6, -0.8], [0.8, 0.6]])
    J = G @ np.array([[0.5, 1.0], [0.0, 0.5]]) @ G.T
    np.save(tmp_path / "j.npy", J)
    row, out = _analyze_row(tmp_path / "j.npy", capsys, "--fast")
    true_kappa = _mp_kappa(J)
    assert row["kappa(V)"].startswith("≥") and float(row["kappa(V)"][1:]) <= true_kappa
    assert "kappa(V) beyond what rounding resolves" in out
    # nearly defective but resolved to one digit: that digit is the true one
    near = G @ np.array([[0.5, 1.0], [0.0, 0.5 + 1e-7]]) @ G.T
    np.save(tmp_path / "n.npy", near)
    row, _ = _analyze_row(tmp_path / "n.npy", capsys, "--fast")
    shown = row["kappa(V)"]
    digits = len(shown.split("e")[0].replace(".", ""))
    assert digits < 3  # it printed three
    assert f"{_mp_kappa(near):.{digits - 1}e}" == shown


def test_unreliable_rho_eps_is_marked_and_in_the_json(tmp_path, capsys):
    # eps = 1e-3 below 1e-9 ||A||_2: the criss-cross flags the result unreliable; analyze printed
    # 3.302e+04 where the stored matrix's rho_eps is 32310 (2.2% off; found by a review)
    G = np.array([[0.6, -0.8], [0.8, 0.6]])
    A = G @ np.array([[0.5, 1e12], [0.0, 0.5]]) @ G.T
    np.save(tmp_path / "a.npy", A)
    row, out = _analyze_row(tmp_path / "a.npy", capsys)
    assert row["rho_eps(0.001)"] == "~3e+04"  # one digit: 32310 by an 60-digit oracle
    assert "~x: approximate" in out
    rc, out, _ = run(["analyze", str(tmp_path / "a.npy"), "--json"], capsys)
    m = json.loads(out)["matrices"][0]
    assert m["pseudospectral_radius_reliable"] == {"0.001": False, "0.01": False, "0.1": False}
    # unreliable but settled by rho + eps <= rho_eps <= rho + eps kappa(V): a normal matrix at
    # eps = 1e-12 is 0.970000000001, shown 0.9700 (a first fix printed "~1", a review found)
    np.save(tmp_path / "d.npy", np.diag([0.97, 0.5, -0.3]))
    row, out = _analyze_row(tmp_path / "d.npy", capsys, "--eps", "1e-12,1e-3")
    assert row["rho_eps(1e-12)"] == "0.9700" and row["rho_eps(0.001)"] == "0.9710"
    # a matrix of ordinary size: reliable, and printed as before
    np.save(tmp_path / "b.npy", np.array([[0.5, 1.0], [0.0, 0.5]]))
    row, out = _analyze_row(tmp_path / "b.npy", capsys)
    assert not row["rho_eps(0.001)"].startswith("~") and "~x" not in out


def test_fmt_with_few_digits_keeps_no_dot_before_the_exponent():
    from spectra_cli._common import fmt, fmt_floor

    assert fmt(45000.0, 1) == "4e+04" and fmt(45000.0, 2) == "4.5e+04"
    assert fmt_floor(4941.0, 4.4e4) == "<5e+04"  # it printed "<5.e+04"


@pytest.mark.parametrize(
    "args, said",
    [
        (["stabilize", "{rnn}", "--seed", "-1", "-o", "{tmp}/s.pt"], "--seed"),  # was an internal error
        (["kreiss", "{rnn}", "--rtol", "nan"], "--rtol"),  # was exit 9 from the library
        (["pseudospectra", "{rnn}", "--tol", "nan", "-o", "{tmp}/p.png"], "--tol"),
        # options of the stabilisation were silently ignored between two files
        (["compare", "{rnn}", "{rnn}", "--target", "0.5", "--stacked"], "--target, --stacked: stabilisation"),
        # the figure's extension was checked only after every figure was computed
        (["compare", "{rnn}", "--stabilize", "exact", "-o", "{tmp}/c.jpg"], ".png, .svg or .pdf"),
    ],
)
def test_bad_options_are_usage_errors_before_any_work(tmp_path, capsys, args, said):
    rnn = str(DATA / "digits_rnn_stable.pt")
    code, out, err = run([a.format(rnn=rnn, tmp=tmp_path) for a in args], capsys)
    assert code == 2 and said in err and "internal error" not in err
    assert not out  # nothing was computed and printed first


def test_checkpoint_arguments_leave_unreadable_files_to_the_loader():
    # click's readable check made a permission-denied checkpoint a usage error (2) instead of the
    # policy's unreadable file (3), which the loader raises with the reason
    import click
    from spectra_cli.main import cli

    ctx = click.Context(cli)
    paths = [
        (name, p)
        for name in cli.list_commands(ctx)
        for p in cli.get_command(ctx, name).params
        if isinstance(p, click.Argument) and isinstance(p.type, click.Path)
    ]
    assert len(paths) >= 8
    assert [name for name, p in paths if p.type.readable] == []


def test_robustness_with_a_noise_whose_square_overflows_is_a_one_line_error(capsys):
    code, _, err = run(
        ["robustness", str(DATA / "digits_rnn_stable.pt"), "--sigma", "1e300", "--draws", "2"], capsys
    )
    assert code not in (0, 1) and "overflows float64" in err and "internal error" not in err


def test_kreiss_on_out_of_range_entries_says_so(tmp_path, capsys):
    np.save(tmp_path / "huge.npy", np.eye(3) * 1e130)
    code, _, err = run(["kreiss", str(tmp_path / "huge.npy")], capsys)
    assert code == 7 and "out of the float range" in err.splitlines()[-1]


@pytest.mark.parametrize(
    "extra, said", [(["--seq-len", "5"], "--seq-len"), (["--data", "{f}"], "--data")], ids=["seq-len", "data"]
)
def test_train_options_the_task_does_not_take_are_usage_errors(tmp_path, capsys, extra, said):
    # they were found only when the task was made: exit 9 with Python argument names
    (tmp_path / "x.npz").write_bytes(b"")
    args = ["train", "--task", "digits", "--epochs", "1", "-o", str(tmp_path / "run")]
    code, out, err = run([*args, *(a.format(f=tmp_path / "x.npz") for a in extra)], capsys)
    assert code == 2 and said in err and not (tmp_path / "run").exists()


def test_ls_accepts_quiet_like_the_other_commands(capsys):
    code, out, _ = run(["ls", str(DATA / "digits_rnn_stable.pt"), "-q"], capsys)
    assert code == 0 and "rnn.weight_hh_l0" in out


def test_a_closed_stdout_pipe_does_not_lose_the_figure(tmp_path):
    # `spectra pseudospectra ... -o f.png | head -1`: the summary went to stdout before the figure
    # was saved; the closed pipe ended the command (exit 0) and f.png was never written
    import subprocess
    import sys

    fig, grid = tmp_path / "f.png", tmp_path / "g.npz"
    code = "import sys; from spectra_cli.main import main; sys.exit(main(sys.argv[1:]))"
    args = [
        "pseudospectra",
        str(DATA / "digits_lstm_regular.pt"),
        "-o",
        str(fig),
        "--save-grid",
        str(grid),
        "-q",
    ]
    p = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before the first line is written
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()
    assert fig.exists() and fig.stat().st_size > 0
    assert all((tmp_path / f"g.{k}.npz").exists() for k in range(4))


def test_rho_and_dep_of_nearly_defective_matrices_show_only_digits_that_are_right(tmp_path, capsys):
    # eigenvalues of a rotated 16x16 "Jordan-like" triangle are moved ~1e-2 by rounding: analyze
    # printed rho 0.5761 for 0.5684 (a review). dep_F moves less (16.4267 for 16.4281) but its
    # measured sensitivity is 1.7e-2, so it too is shown to the digits that sensitivity leaves
    import mpmath  # a test dependency (pyproject: test extra)

    mpmath.mp.dps = 60
    for n, c in [(12, 2.0), (16, 1.5)]:
        rng = np.random.default_rng(0)
        T = np.diag(np.linspace(0.1, 0.56, n)) + np.triu(c * np.ones((n, n)), 1)
        Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
        A = Q @ T @ Q.T
        np.save(tmp_path / "a.npy", A)
        row, _ = _analyze_row(tmp_path / "a.npy", capsys, "--fast")
        ev = mpmath.eig(mpmath.matrix(A.tolist()), left=False, right=False)
        rho = float(max(abs(e) for e in ev))
        dep = float(mpmath.sqrt(sum(mpmath.mpf(x) ** 2 for x in A.ravel()) - sum(abs(e) ** 2 for e in ev)))
        for cell, true in ((row["rho"], rho), (row["dep_F"], dep)):
            digits = len(cell.replace(".", "").lstrip("0"))
            assert digits < 4 or n == 12  # n = 12: dep_F keeps its four right digits
            assert f"{true:#.{digits}g}".rstrip(".") == cell, (n, cell, true)
    # a well-conditioned matrix: no probe, four digits as before
    np.save(tmp_path / "b.npy", np.diag([0.5, -0.25]) + np.triu(np.ones((2, 2)), 1))
    row, _ = _analyze_row(tmp_path / "b.npy", capsys, "--fast")
    assert row["rho"] == "0.5000" and row["dep_F"] == "1.000"


def test_a_verdict_rounding_cannot_settle_says_so(tmp_path, capsys):
    # a nearly defective 16x16 with true rho 0.96 printed "rho 1 ... stable" (a review): its measured
    # rounding error (0.3) reaches across 1, so neither "stable" nor "UNSTABLE" is resolved
    rng = np.random.default_rng(0)
    n = 16
    rng.standard_normal((n, n))  # the review's second matrix of this stream
    T = np.diag(np.linspace(0.5, 0.96, n)) + np.triu(1.5 * np.ones((n, n)), 1)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    np.save(tmp_path / "a.npy", Q @ T @ Q.T)
    _, out = _analyze_row(tmp_path / "a.npy", capsys, "--fast")
    assert "not resolved (rho within rounding of 1)" in out and " stable" not in out.splitlines()[4]
    np.save(tmp_path / "b.npy", np.diag([0.5, 0.96]))  # well-conditioned: the verdict as before
    _, out = _analyze_row(tmp_path / "b.npy", capsys, "--fast")
    assert out.splitlines()[4].rstrip().endswith("stable") and "not resolved" not in out


@pytest.mark.parametrize(
    "args",
    [
        ["pseudospectra", "{ckpt}", "-o", "{tmp}/p.png", "--save-grid", "{ckpt}"],
        ["pseudospectra", "{ckpt}", "-o", "{tmp}/link.png"],
        ["transient", "{ckpt}", "-o", "{tmp}/link.png"],
        ["compare", "{ckpt}", "--stabilize", "exact", "-o", "{tmp}/link.png"],
        ["track", "{ckpt}", "--fast", "--no-cache", "--csv", "{ckpt}"],
        ["track", "{tmp}", "--fast", "--no-cache", "--csv", "{ckpt}"],
        ["track", "{ckpt}", "--fast", "--no-cache", "-o", "{tmp}/link.png"],
        ["analyze", "{ckpt}", "--fast", "--plots", "{tmp}/figs"],
    ],
)
def test_no_output_replaces_the_input_checkpoint(tmp_path, capsys, args):
    # a review: --save-grid, track --csv and every figure output replaced the checkpoint they read
    # (exit 0); now refused as stabilize and extract refuse it, also through a link (exit 8)
    ckpt = tmp_path / "s.npz"
    np.savez(ckpt, a=np.array([[0.5, 2.0], [0.0, 0.3]]))
    before = ckpt.read_bytes()
    (tmp_path / "link.png").symlink_to(ckpt)
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "a.png").symlink_to(ckpt)  # the name analyze --plots gives matrix 'a'
    argv = [a.format(ckpt=ckpt, tmp=tmp_path) for a in args]
    rc, out, err = run([*argv, "-q"], capsys)
    assert rc == 8, err
    assert "is the input file; the input is never modified" in err and len(err.splitlines()) == 1
    assert ckpt.read_bytes() == before


def test_analyze_plots_names_that_clash_get_a_suffix_and_are_said(tmp_path, capsys):
    # a review: ids 'a/b' and 'a_b' both became a_b.png, the second figure silently replacing the
    # first; names that differ only in case are one file on a case-insensitive file system
    z = tmp_path / "c.npz"
    np.savez(z, **{"a/b": np.eye(2) * 0.5, "a_b": np.eye(2) * 0.3, "A_B": np.eye(2) * 0.2})
    rc, _, err = run(["analyze", str(z), "--fast", "--plots", str(tmp_path / "figs")], capsys)
    assert rc == 0
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert len(names) == 3 and "a_b.png" in names  # the id that is a file name keeps it
    wrote = {
        line.rsplit(" (", 1)[1].rstrip(")"): line.split()[1] for line in err.splitlines() if "wrote" in line
    }
    assert set(wrote) == {"a/b", "a_b", "A_B"} and len(set(wrote.values())) == 3
    assert os.path.basename(wrote["a_b"]) == "a_b.png"
    assert f"a/b: figure written as {wrote['a/b']} (a_b.png is a_b's)" in err


def test_kreiss_lists_a_nonfinite_matrix_as_analyze_does(tmp_path, capsys):
    # a review: kreiss --json dropped a matrix holding Inf (only a warning said so) while analyze
    # and compare kept it with finite: false, so scripts matching ids across commands lost it
    z = tmp_path / "mix.npz"
    np.savez(z, good=np.array([[0.5, 1.0], [0.0, 0.2]]), bad=np.array([[np.inf, 1.0], [0.0, 0.2]]))
    rc, out, err = run(["kreiss", str(z), "--json"], capsys)
    assert rc == 0 and "bad: holds NaN or Inf" in err
    kre = {m["id"]: m for m in json.loads(out)["matrices"]}
    rc, out, _ = run(["analyze", str(z), "--json"], capsys)
    ana = {m["id"]: m for m in json.loads(out)["matrices"]}
    assert list(kre) == list(ana) == ["good", "bad"]
    assert kre["good"]["finite"] is True and kre["bad"]["finite"] is False and kre["bad"]["n"] == 2
    assert kre["bad"]["spectral_radius"] is None and kre["bad"]["kreiss"]["value"] is None
    assert set(kre["bad"]) == set(kre["good"]) and set(kre["bad"]["kreiss"]) == set(kre["good"]["kreiss"])
    rc, out, _ = run(["kreiss", str(z)], capsys)
    row = next(line for line in out.splitlines() if line.startswith("bad"))
    assert rc == 0 and row.split()[2:] == ["-"] * 7 and "not analysed" in out
    # every selected matrix unusable: still the one-line error, exit 7
    rc, out, err = run(["kreiss", str(z), "-m", "bad", "--json"], capsys)
    assert rc == 7 and out == ""


def test_stabilize_shows_no_scale_for_svd_clip(tmp_path, capsys):
    # a review: svd-clip printed 'scale 0.2782' (target/sigma_max) for a gate whose rho went
    # 1.710 -> 0.8731: clipping singular values multiplies by no single factor
    src = str(DATA / "digits_gru_regular.pt")
    for stacked in ([], ["--stacked"]):
        rc, out, _ = run(
            [
                "stabilize",
                src,
                "-o",
                str(tmp_path / "c.pt"),
                "--method",
                "svd-clip",
                "--force",
                *stacked,
                "--json",
            ],
            capsys,
        )
        assert rc == 0 and all(m["scale"] is None for m in json.loads(out)["matrices"])
    rc, out, _ = run(
        ["stabilize", src, "-o", str(tmp_path / "c.pt"), "--method", "svd-clip", "--force"], capsys
    )
    rows = [line.split() for line in out.splitlines() if line.startswith("rnn.")]
    assert rc == 0 and len(rows) == 3 and all(r[2] == "-" for r in rows) and "scale -: svd-clip" in out
    rc, out, _ = run(["compare", src, "--stabilize", "svd-clip", "--json", "--eps", "0.1"], capsys)
    assert all(m["stabilize"]["scale"] is None for m in json.loads(out)["matrices"])
    # a factor that was applied is still shown: the same to every gate of the tensor (--stacked)
    rc, out, _ = run(
        [
            "stabilize",
            src,
            "-o",
            str(tmp_path / "c.pt"),
            "--method",
            "spectral-norm",
            "--stacked",
            "--force",
            "--json",
        ],
        capsys,
    )
    for m in json.loads(out)["matrices"]:
        ratio = m["spectral_radius_after"] / m["spectral_radius_before"]
        assert m["scale"] == pytest.approx(ratio, rel=1e-6)


def test_analyze_csv_header_depends_on_the_options_not_the_data(tmp_path, capsys):
    # a review: a file whose matrices are all NaN got a CSV header without the rho_eps, Kreiss and
    # reliability columns, so CSV files of several checkpoints could not be joined
    nan, ok = (
        _npy(tmp_path, np.full((3, 3), np.nan), "nan.npy"),
        _npy(tmp_path, np.diag([0.5, 0.2, 0.1]), "ok.npy"),
    )
    for extra in ([], ["--fast"], ["--eps", "0.5,1e-2"]):
        rc, out_nan, _ = run(["analyze", str(nan), "--csv", *extra], capsys)
        assert rc == 0
        rc, out_ok, _ = run(["analyze", str(ok), "--csv", *extra], capsys)
        head_nan, row_nan = out_nan.splitlines()
        head_ok, row_ok = out_ok.splitlines()
        assert head_nan == head_ok, extra
        assert len(row_nan.split(",")) == len(row_ok.split(",")) == len(head_ok.split(","))
        cells = dict(zip(head_nan.split(","), row_nan.split(",")))
        assert cells["finite"] == "False" and cells["spectral_radius"] == ""
    assert "pseudospectral_radius_0.5" in head_ok and "pseudospectral_radius_reliable_0.01" in head_ok


def test_help_says_the_exit_codes_these_cases_give(tmp_path, capsys):
    # a review: exit codes that contradicted `spectra --help` -- a file of NaN matrices exits 0
    # (help: 7 = "holds NaN/Inf"), a missing HDF5 dataset 6 (help: "--matrix names an id"), and
    # stabilize of a whole pickled model 3 (stabilize --help: only "unreadable input")
    import h5py
    import torch

    help_text = " ".join(run(["--help"], capsys)[1].split())
    nan = _npy(tmp_path, np.full((2, 2), np.nan))
    assert run(["analyze", str(nan)], capsys)[0] == 0
    assert run(["kreiss", str(nan)], capsys)[0] == 7
    assert "analyze, ls, compare and stabilize list such matrices as finite: false" in help_text
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["W"] = np.eye(2) * 0.5
    rc, _, err = run(["analyze", f"{tmp_path / 'm.h5'}:/nope"], capsys)
    assert rc == 6 and "no dataset" in err and "FILE.h5:/PATH names no dataset" in help_text
    torch.save(torch.nn.Sequential(torch.nn.GRU(2, 3)), tmp_path / "whole.pt")
    rc, _, err = run(
        ["stabilize", str(tmp_path / "whole.pt"), "--trust-pickle", "-o", str(tmp_path / "o.pt")], capsys
    )
    stab_help = " ".join(run(["stabilize", "--help"], capsys)[1].split())
    assert rc == 3 and "whole pickled model" in err
    assert "3 unreadable input, or a file not written back in its format (a whole pickled model" in stab_help


def test_options_without_effect_are_said_in_one_line(tmp_path, capsys):
    # a review: --device/--tol/--jobs on a small matrix, --iterations/--seed with a method other
    # than power, compare --npts without -o and analyze --fast --eps were accepted silently
    p = _npy(tmp_path, np.array([[0.5, 2.0], [0.0, 0.3]]))
    cases = [
        (
            ["pseudospectra", str(p), "-o", str(tmp_path / "p.png"), "--tol", "1e-3", "-j", "2"],
            "--tol, --jobs",
        ),
        (["stabilize", str(p), "-o", str(tmp_path / "s.npy"), "--method", "exact", "--seed", "3"], "--seed"),
        (["compare", str(p), "--stabilize", "svd-clip", "--iterations", "4"], "--iterations"),
        (["compare", str(p), "--stabilize", "exact", "--npts", "50"], "--npts"),
        (["analyze", str(p), "--fast", "--eps", "0.5"], "--eps"),
    ]
    for args, named in cases:
        rc, _, err = run([*args, "-q"] if args[0] != "stabilize" else args, capsys)
        lines = [line for line in err.splitlines() if "no effect" in line]
        assert rc == 0 and len(lines) == 1 and lines[0].startswith(f"spectra: warning: {named}: no effect"), (
            err
        )
    # where they do act, nothing is said
    for args in (
        ["stabilize", str(p), "-o", str(tmp_path / "t.npy"), "--method", "power", "--seed", "3"],
        ["compare", str(p), "--stabilize", "exact", "--npts", "20", "-o", str(tmp_path / "c.png")],
        ["analyze", str(p), "--eps", "0.5"],
    ):
        rc, _, err = run(args, capsys)
        assert rc == 0 and "no effect" not in err, err


def test_messages_name_options_not_python_keywords(tmp_path, capsys):
    # a review: 'pass --force (force=True)', 'pass trust=True (--trust-pickle)' and, in commands
    # with no --kmax, 'pass kmax, or spectra transient --kmax' were CLI messages
    import torch

    p = _npy(tmp_path, np.array([[0.999, 1.0], [0.0, 0.999]]))  # powers still above 1 at the cap
    (tmp_path / "o.npy").write_bytes(b"")
    for cmd in (
        ["extract", str(p), "-o", str(tmp_path / "o.npy")],
        ["stabilize", str(p), "-o", str(tmp_path / "o.npy")],
    ):
        rc, _, err = run(cmd, capsys)
        assert rc == 8 and err.strip().endswith("exists; pass --force to overwrite it"), err
    torch.jit.script(torch.nn.GRU(2, 3)).save(str(tmp_path / "ts.pt"))
    rc, _, err = run(
        ["stabilize", str(tmp_path / "ts.pt"), "-o", str(tmp_path / "ts2.pt"), "--method", "exact"], capsys
    )
    assert rc == 4 and "pass --trust-pickle if you trust it" in err
    for cmd in (["analyze", str(p)], ["compare", str(p), "--stabilize", "exact"], ["kreiss", str(p)]):
        _, _, err = run(cmd, capsys)
        assert "(spectra kreiss --kmax N, or transient --kmax N, goes further)" in err, err
    for cmd in (["extract", str(p), "-o", str(tmp_path / "o.npy")], ["analyze", str(p)], ["kreiss", str(p)]):
        _, _, err = run(cmd, capsys)
        assert "=True" not in err and "pass kmax" not in err


def test_analyze_and_ls_point_to_track_for_several_files_or_a_folder(tmp_path, capsys):
    a, b = _npy(tmp_path, np.eye(2) * 0.5, "a.npy"), _npy(tmp_path, np.eye(2) * 0.4, "b.npy")
    for cmd in ("analyze", "ls"):
        rc, out, err = run([cmd, str(a), str(b)], capsys)
        assert rc == 2 and "spectra track FILES..." in err and len(err.splitlines()) == 1
        rc, out, err = run([cmd, str(tmp_path)], capsys)
        assert rc == 3 and f"spectra track {tmp_path} analyses every checkpoint" in err and out == ""


def test_stabilize_power_on_a_conjugate_pair_does_not_suggest_more_iterations(tmp_path, capsys):
    # review11: "cannot converge" was followed by "--iterations N runs more", which contradicts it
    t = 0.7
    A = np.zeros((3, 3))
    A[:2, :2] = 1.5 * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    A[2, 2] = 0.1
    np.savez(tmp_path / "m.npz", pair=A, slow=np.diag([2.0, 1.9, 0.5]) + np.triu(np.ones((3, 3)), 1))
    args = ["stabilize", str(tmp_path / "m.npz"), "--method", "power", "--iterations", "2"]
    rc, _, err = run([*args, "-o", str(tmp_path / "o.npz")], capsys)
    assert rc == 0
    lines = err.splitlines()
    pair = [line for line in lines if "cannot converge" in line]
    assert len(pair) == 1 and pair[0].startswith("spectra: warning: pair:")
    more = [line for line in lines if "--iterations N runs more" in line]
    # the matrix that merely needs more steps still gets the advice, and alone
    assert (
        len(more) == 1
        and "1 of 2 matrices" in more[0]
        and more[0].endswith(": slow; --iterations N runs more (the second paper uses 1)")
    )
    assert "more iterations do not help" in pair[0]


@pytest.mark.parametrize("command", ["stabilize", "extract"])
def test_binary_output_to_stdout_is_a_usage_error(tmp_path, capsys, monkeypatch, command):
    # '-o -' wrote a checkpoint (or .npz) named '-' into the working folder
    monkeypatch.chdir(tmp_path)
    p = _npy(tmp_path, np.array([[0.5, 2.0], [0.0, 0.5]]))
    rc, out, err = run([command, str(p), "-o", "-"], capsys)
    assert rc == 2 and "standard output" in err and "Traceback" not in err
    assert not (tmp_path / "-").exists()


def test_analyze_says_when_rho_is_within_bfloat16_rounding_of_1(tmp_path, capsys):
    # an orthogonal matrix stored in bfloat16 has rho = 1 +- ~1e-3: "UNSTABLE (rho > 1)" alone,
    # although rounding the weights to 8 bits can carry rho that far (|E|_2 <= u_s |A|_F)
    import torch

    torch.set_num_threads(1)
    found = {}
    for seed in range(50):
        Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((24, 24)))[0]
        Qb = torch.from_numpy(Q).to(torch.bfloat16)
        rho = np.max(np.abs(np.linalg.eigvals(Qb.double().numpy())))
        found.setdefault(rho > 1, Qb)
        if len(found) == 2:
            break
    # a stable non-normal matrix far from 1 gets no such remark
    W = torch.from_numpy(0.5 * np.eye(24) + np.triu(np.ones((24, 24)), 1) / 24).to(torch.bfloat16)
    mats = {"up.weight_hh": found[True], "down.weight_hh": found[False], "far.weight_hh": W}
    torch.save(mats, tmp_path / "b.pt")
    rc, out, _ = run(["analyze", str(tmp_path / "b.pt"), "--fast", "--json"], capsys)
    doc = {m["id"].split(".")[0]: m for m in json.loads(out)["matrices"]}
    assert rc == 0
    assert doc["up"]["rho_within_storage_rounding"] and not doc["up"]["marginal"] and not doc["up"]["stable"]
    assert doc["down"]["rho_within_storage_rounding"] and doc["down"]["stable"]
    assert not doc["far"]["rho_within_storage_rounding"]
    rc, out, _ = run(["analyze", str(tmp_path / "b.pt"), "--fast"], capsys)
    rows = {line.split()[0].split(".")[0]: line for line in out.splitlines() if line.split()}
    assert rows["up"].endswith("UNSTABLE (rho > 1), within bfloat16 rounding of 1")
    assert rows["down"].endswith("stable, within bfloat16 rounding of 1")
    assert rows["far"].endswith("stable")


def test_kreiss_kmax_proves_a_peak_past_the_default_cap(tmp_path, capsys):
    # rho = 0.9995: the default 2000 powers end before the peak is proved; the warning pointed to
    # transient --kmax, which draws a figure only (kreiss had no --kmax for the numbers)
    lam, a = 0.9995, 1.0
    np.save(tmp_path / "slow.npy", np.array([[lam, a], [0.0, lam]]))
    rc, out, err = run(["kreiss", str(tmp_path / "slow.npy"), "--json"], capsys)
    (m,) = json.loads(out)["matrices"]
    assert rc == 0 and m["transient"]["peak_is_lower_bound"] and "spectra kreiss --kmax N" in err
    rc, out, err = run(["kreiss", str(tmp_path / "slow.npy"), "--json", "--kmax", "30000"], capsys)
    (m,) = json.loads(out)["matrices"]
    t = m["transient"]
    assert rc == 0 and t["kmax"] == 30000 and not t["peak_is_lower_bound"]
    # ||[[p, q], [0, p]]||_2 = (|q| + sqrt(q^2 + 4 p^2))/2 with p = lam^k, q = k a lam^(k-1)
    k = np.arange(1, 30001, dtype=float)
    p, q = lam**k, k * a * lam ** (k - 1)
    closed = (np.abs(q) + np.sqrt(q**2 + 4 * p**2)) / 2
    assert t["peak"] == pytest.approx(closed.max(), rel=1e-9) and t["peak_k"] == int(k[np.argmax(closed)])


def _pruned_and_orthogonal(tmp_path):
    """A pruned LSTM (torch.nn.utils.prune) and an orthogonal-parametrized GRU, each alone in a file."""
    import torch
    import torch.nn.utils.prune as prune

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5)
    prune.l1_unstructured(lstm, "weight_hh_l0", amount=0.3)
    torch.save(lstm.state_dict(), tmp_path / "pruned.pt")
    gru = torch.nn.GRU(4, 6)
    torch.nn.utils.parametrizations.orthogonal(gru, "weight_hh_l0")
    torch.save(gru.state_dict(), tmp_path / "orth.pt")
    return tmp_path / "pruned.pt", tmp_path / "orth.pt"


@pytest.mark.parametrize("as_json", [[], ["--json"]], ids=["table", "json"])
def test_stabilize_with_nothing_writable_exits_9_not_0_of_0(tmp_path, capsys, as_json):
    # review finding: an orthogonal-parametrized file (or a pruned one with svd-clip) printed a
    # warning, an empty table and "wrote ... (0 of 0 matrices changed)", exit 0; --json gave
    # "matrices": [] with no reason. Now as the other matrices not written back: exit 9, one line,
    # nothing on stdout, no file
    pruned, orth = _pruned_and_orthogonal(tmp_path)
    for src, method, n, why in (
        (orth, "exact", 3, "orthogonal parametrization"),
        (pruned, "svd-clip", 4, "svd-clip's clipped matrix is nonzero where the mask is 0"),
    ):
        out_file = tmp_path / f"o_{method}.pt"
        rc, out, err = run(["stabilize", str(src), "-o", str(out_file), "--method", method, *as_json], capsys)
        assert rc == 9 and out == "" and not out_file.exists()
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert err.startswith(f"spectra: error: {src}: 0 of {n} recurrent matrices can be written back")
        assert why in err and "0 of 0" not in err and "warning" not in err


def test_stabilize_writes_a_pruned_checkpoint(tmp_path, capsys):
    # review finding: a pruned checkpoint was left out ("0 of 0 matrices changed", exit 0);
    # spectral-norm scales every gate: weight_hh_l0_orig is written scaled, the mask kept
    import torch

    pruned, _ = _pruned_and_orthogonal(tmp_path)
    out_file = tmp_path / "st.pt"
    rc, out, err = run(
        ["stabilize", str(pruned), "-o", str(out_file), "--method", "spectral-norm", "--json"], capsys
    )
    assert rc == 0 and "warning" not in err
    assert f"wrote {out_file} (4 of 4 matrices changed, method spectral-norm)" in err
    rep = json.loads(out)["matrices"]
    assert [m["id"] for m in rep] == [f"weight_hh_l0[{g}]" for g in ("input", "forget", "cell", "output")]
    assert all(m["changed"] and m["source"] == "weight_hh_l0_orig" for m in rep)
    before, after = torch.load(pruned, weights_only=True), torch.load(out_file, weights_only=True)
    assert torch.equal(after["weight_hh_l0_mask"], before["weight_hh_l0_mask"])
    W = (after["weight_hh_l0_orig"] * after["weight_hh_l0_mask"]).double().numpy()
    for g, m in enumerate(rep):  # torch's weight, orig * mask: ||A||_2 = 1 for every gate
        rows = slice(5 * g, 5 * g + 5)
        assert np.linalg.norm(W[rows], 2) == pytest.approx(1.0, abs=1e-6)
        orig = before["weight_hh_l0_orig"][rows].double().numpy()
        np.testing.assert_allclose(after["weight_hh_l0_orig"][rows], m["scale"] * orig, rtol=3e-7)


@pytest.mark.parametrize("command", ["stabilize", "extract"])
def test_quiet_is_taken_by_the_writing_commands(tmp_path, capsys, command):
    # 'ls' took -q "as in the other commands", stabilize and extract refused it (exit 2)
    p = _npy(tmp_path, np.array([[0.5, 2.0], [0.0, 0.5]]))
    out = tmp_path / ("o.npy" if command == "stabilize" else "o.npz")
    rc, _, err = run([command, str(p), "-o", str(out), "-q"], capsys)
    assert rc == 0 and out.exists() and "wrote" not in err


def test_ls_lists_what_a_file_without_recurrent_weights_holds_then_exits_5(tmp_path, capsys):
    # review finding: `spectra ls` on a hand-written recurrence (parameters U, W) printed only the
    # error, so the tensor names were nowhere to be found; the error gave no way to analyse W
    import torch

    torch.manual_seed(0)
    torch.save({"U": torch.randn(6, 3), "W": torch.randn(6, 6) / 3}, tmp_path / "custom.pt")
    code, out, err = run(["ls", str(tmp_path / "custom.pt")], capsys)
    assert code == 5
    assert out.splitlines()[:3] == [f"{tmp_path / 'custom.pt'}: pytorch-zip", "", "recurrent matrices (0)"]
    listed = {ln.split()[0]: ln for ln in out.splitlines()[out.splitlines().index("skipped (2):") + 3 :]}
    assert set(listed) == {"U", "W"} and listed["W"].split()[1] == "6x6"
    assert "Linear" not in listed["W"] and "np.save" in listed["W"]
    assert len(err.strip().splitlines()) == 1 and "no recurrent weight matrix found" in err
    assert "W: (6, 6)" in err and "np.save('W.npy', W)" in err
    code, out, err = run(["ls", str(tmp_path / "custom.pt"), "--json"], capsys)
    doc = json.loads(out)
    assert code == 5 and doc["matrices"] == [] and [s["name"] for s in doc["skipped"]] == ["U", "W"]
    # analyze says the error alone, as before
    code, out, err = run(["analyze", str(tmp_path / "custom.pt")], capsys)
    assert code == 5 and out == "" and "np.save" in err


def test_kreiss_and_analyze_give_the_peak_with_its_rounding(tmp_path, capsys):
    # the computed ||A^17|| of an ill-conditioned matrix is 0.31% off the exact value; the tables
    # printed four digits of it as if exact
    from test_kreiss import _exact_power_norms, _ill_conditioned_powers

    A = _ill_conditioned_powers()
    np.save(tmp_path / "ill.npy", A)
    exact = _exact_power_norms(A, 17).max()
    rc, out, _ = run(["kreiss", str(tmp_path / "ill.npy"), "--json", "--kmax", "17"], capsys)
    t = json.loads(out)["matrices"][0]["transient"]
    assert rc == 0 and abs(t["peak"] - exact) <= t["peak_error"] < 0.1 * t["peak"]
    rc, out, _ = run(["kreiss", str(tmp_path / "ill.npy"), "--kmax", "17"], capsys)
    cell = next(line for line in out.splitlines() if line.startswith("ill")).split()[-3]
    assert cell.startswith("≥") and float(cell[1:]) <= exact
    rc, out, _ = run(["analyze", str(tmp_path / "ill.npy"), "--json"], capsys)
    (m,) = json.loads(out)["matrices"]
    assert abs(m["transient_peak"] - exact) <= m["transient_peak_error"]


def test_peak_digits_and_float32_rounding_remarks():
    # review: a peak known to +-0.3 printed '1e+01'; the bfloat16 remark also fired for float32
    from spectra_cli._common import fmt_with_error

    from spectra.normality import analyze_matrix

    assert fmt_with_error(11.63, 0.3) == "~12" and fmt_with_error(11.63, 0.05) == "12"
    assert fmt_with_error(1.752e11, 1e5) == "1.752e+11"
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((64, 64)))[0] * (1 + 5e-6)
    assert not analyze_matrix(Q, stored_dtype="float32").rho_within_storage_rounding
    assert analyze_matrix(Q, stored_dtype="bfloat16").rho_within_storage_rounding
