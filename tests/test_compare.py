"""Tests of spectra.compare and the `spectra stabilize` / `spectra compare` commands.

Oracles: closed forms for the 2x2 Jordan-like matrix ``[[a, b], [0, a]]``
(NUMERICS.md): ``sigma_min(zI - A) = (sqrt(b^2 + 4|z - a|^2) - b) / 2``, so for
``0 < a < 1`` the distance to instability is ``(sqrt(b^2 + 4(1 - a)^2) - b) / 2``
(attained at z = 1), and ``A^k = [[a^k, k a^(k-1) b], [0, a^k]]``; for normal
matrices the distance is ``1 - rho``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from spectra_cli.main import main

from spectra.checkpoint import Checkpoint, RecurrentMatrix
from spectra.compare import (
    CRITERIA,
    StructureMismatchError,
    compare_checkpoints,
    compare_matrices,
    compare_stabilized,
)

os.environ.setdefault("OMP_NUM_THREADS", "1")


def jordan(a: float, b: float) -> np.ndarray:
    return np.array([[a, b], [0.0, a]])


def d_inst_jordan(a: float, b: float) -> float:
    return (np.sqrt(b * b + 4 * (1 - a) ** 2) - b) / 2


def peak_jordan(a: float, b: float, kmax: int = 400) -> float:
    return max(np.linalg.norm(np.array([[a**k, k * a ** (k - 1) * b], [0, a**k]]), 2) for k in range(kmax))


def ckpt(path: str, mats: dict[str, np.ndarray]) -> Checkpoint:
    return Checkpoint(
        path=path,
        format="npz",
        matrices=[RecurrentMatrix(id=k, matrix=v, layer=k, source=k) for k, v in mats.items()],
    )


# ------------------------------------------------------------------ library


def test_spectral_norm_scaling_up_makes_jordan_less_robust():
    a, b = 0.5, 0.2
    A = jordan(a, b)
    s = np.linalg.svd(A, compute_uv=False)[0]  # < 1: spectral-norm scales it *up*
    assert s < 1
    res = compare_stabilized(ckpt("mem", {"W": A}), method="spectral-norm")
    (m,) = res.matrices
    d = m.figures["distance_to_instability"]
    assert d.before == pytest.approx(d_inst_jordan(a, b), abs=1e-9)
    assert d.after == pytest.approx(d_inst_jordan(a / s, b / s), abs=1e-9)
    assert d.change == pytest.approx(d.after - d.before) and d.change < 0
    assert d.relative == pytest.approx(d.change / d.before)
    assert m.figures["spectral_radius"].after == pytest.approx(a / s, rel=1e-12)
    assert m.figures["norm_2"].after == pytest.approx(1.0, rel=1e-12)
    assert m.figures["henrici"].before == pytest.approx(b, rel=1e-9)  # dep_F = |b|
    assert m.figures["henrici"].after == pytest.approx(b / s, rel=1e-9)
    assert m.figures["transient_peak"].before == pytest.approx(peak_jordan(a, b), rel=1e-8)
    assert m.figures["transient_peak"].after == pytest.approx(peak_jordan(a / s, b / s), rel=1e-8)
    assert m.less_robust is True
    assert res.less_robust == ["W"] and res.exit_code == 1
    assert m.stabilize["method"] == "spectral-norm" and m.stabilize["scale"] == pytest.approx(1 / s)
    # ||A||_2 <= 1 before and after: K = 1 and max_k ||A^k|| = ||A^0|| = 1 both times, and
    # dep_F/||A||_F is scale-invariant: only the distance to instability sees the loss
    assert m.figures["kreiss"].before == pytest.approx(1.0, abs=1e-6)
    assert m.figures["kreiss"].after == pytest.approx(1.0, abs=1e-6)
    for crit, expected in [("kreiss", False), ("transient_peak", False), ("henrici_relative", False)]:
        r = compare_matrices([("W", A, m.after)], criterion=crit)
        assert r.matrices[0].less_robust is expected, crit


def test_power_leaves_stable_matrix_alone_exit_0():
    A = np.diag([0.5, -0.3, 0.2])  # normal, rho = 0.5: distance 0.5
    res = compare_stabilized(ckpt("mem", {"W": A}), method="power", iterations=3)
    (m,) = res.matrices
    assert m.stabilize["changed"] is False
    d = m.figures["distance_to_instability"]
    assert d.before == pytest.approx(0.5, abs=1e-9) and d.after == pytest.approx(0.5, abs=1e-9)
    assert d.change == 0.0
    assert m.less_robust is False and res.exit_code == 0
    for eps in (1e-2, 1e-1):  # normal: rho_eps = rho + eps
        fc = m.figures[f"pseudospectral_radius[{eps:g}]"]
        assert fc.before == pytest.approx(0.5 + eps, abs=1e-9)


def test_exact_on_unstable_matrix_distance_stays_zero():
    # rho > 1 before: distance 0; exact puts the dominant eigenvalue on the circle: still 0.
    # The paper's point: the spectrum is "stabilised" but the matrix is on the edge of instability.
    A = jordan(1.5, 0.3)
    res = compare_stabilized(ckpt("mem", {"W": A}), method="exact")
    (m,) = res.matrices
    d = m.figures["distance_to_instability"]
    assert d.before == pytest.approx(0.0, abs=1e-12) and d.after == pytest.approx(0.0, abs=1e-9)
    assert m.figures["spectral_radius"].after == pytest.approx(1.0, abs=1e-12)
    assert m.figures["kreiss"].before == np.inf and m.figures["kreiss"].after == np.inf
    assert m.less_robust is False and res.exit_code == 0
    assert compare_matrices([("W", A, m.after)], criterion="kreiss").exit_code == 0


def test_svd_clip_makes_nonnormal_matrix_more_robust():
    a, b = 0.5, 3.0
    A = jordan(a, b)
    res = compare_stabilized(ckpt("mem", {"W": A}), method="svd-clip", criterion="transient_peak")
    (m,) = res.matrices
    assert m.figures["norm_2"].after == pytest.approx(1.0, abs=1e-12)
    assert m.figures["transient_peak"].before == pytest.approx(peak_jordan(a, b), rel=1e-8)
    assert m.figures["transient_peak"].after <= 1.0 + 1e-9 < m.figures["transient_peak"].before
    assert m.figures["distance_to_instability"].after > m.figures["distance_to_instability"].before
    assert res.exit_code == 0


def test_compare_checkpoints_matches_by_id_and_reports_mismatch():
    A, B = jordan(0.5, 0.2), np.diag([0.9, 0.1])
    before = ckpt("b", {"x": A, "y": B})
    after = ckpt("a", {"y": B * 0.5, "x": A})  # same ids, another order
    res = compare_checkpoints(before, after, criterion="distance_to_instability")
    assert [m.id for m in res.matrices] == ["x", "y"]
    assert res.matrices[0].figures["distance_to_instability"].change == 0.0
    assert res.matrices[1].figures["spectral_radius"].after == pytest.approx(0.45)
    assert res.exit_code == 0
    with pytest.raises(StructureMismatchError) as info:
        compare_checkpoints(before, ckpt("c", {"x": A, "z": B}))
    assert "y" in str(info.value) and "z" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(StructureMismatchError, match="shape"):
        compare_checkpoints(ckpt("b", {"x": A}), ckpt("a", {"x": np.eye(3)}))
    only = compare_checkpoints(before, after, matrices=["y"])
    assert [m.id for m in only.matrices] == ["y"]


def test_json_document():
    res = compare_matrices([("W", jordan(1.5, 0.3), jordan(1.0, 0.2))], criterion="kreiss")
    doc = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert doc["schema_version"] == 1 and doc["criterion"] == "kreiss"
    fig = doc["matrices"][0]["figures"]
    assert fig["kreiss"] == {"before": "inf", "after": "inf", "change": 0.0, "relative": None}
    assert set(fig) >= {
        "spectral_radius",
        "norm_2",
        "henrici",
        "henrici_relative",
        "pseudospectral_radius[0.01]",
        "pseudospectral_radius[0.1]",
        "distance_to_instability",
        "kreiss",
        "transient_peak",
    }
    # a count stays an integer in the JSON (it came out as 2.0)
    res = compare_matrices([("W", jordan(0.5, 0.3), jordan(0.6, 0.2))], criterion="kreiss")
    k = res.to_dict()["matrices"][0]["figures"]["transient_peak_k"]
    assert isinstance(k["before"], int) and isinstance(k["after"], int) and isinstance(k["change"], int)


def test_bad_criterion():
    with pytest.raises(ValueError, match="criterion"):
        compare_matrices([("W", np.eye(2), np.eye(2))], criterion="vibes")
    assert set(CRITERIA) == {"distance_to_instability", "kreiss", "transient_peak", "henrici_relative"}


# ------------------------------------------------------------------ CLI


@pytest.fixture()
def files(tmp_path):
    A = jordan(0.5, 0.2)
    s = np.linalg.svd(A, compute_uv=False)[0]
    np.savez(tmp_path / "before.npz", W_hh=A)
    np.savez(tmp_path / "worse.npz", W_hh=A / s)
    np.savez(tmp_path / "same.npz", W_hh=A)
    return tmp_path


def run(argv, capsys):
    """Through spectra_cli.main.main (library errors -> exit codes)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_click(argv):
    """Through click's own runner (exit codes set with ctx.exit)."""
    from click.testing import CliRunner
    from spectra_cli.main import cli

    r = CliRunner().invoke(cli, [str(a) for a in argv])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, r.stderr


def test_cli_compare_exit_codes_and_json(files, capsys):
    code, out, _ = run_click(["compare", files / "before.npz", files / "worse.npz", "--json"])
    assert code == 1
    doc = json.loads(out)
    assert doc["schema_version"] == 1 and doc["less_robust"] == ["W_hh"]
    code, out, _ = run_click(["compare", files / "before.npz", files / "same.npz"])
    assert code == 0 and "W_hh" in out and "none got less robust" in out
    code, out, _ = run_click(["compare", files / "before.npz", "--stabilize", "spectral-norm", "--json"])
    assert code == 1 and json.loads(out)["matrices"][0]["stabilize"]["method"] == "spectral-norm"
    code, out, _ = run_click(["compare", files / "before.npz", "--stabilize", "power"])
    assert code == 0
    code, _, err = run(["compare", files / "before.npz"], capsys)  # neither AFTER nor --stabilize
    assert code == 2 and "exactly one" in err
    code, _, _ = run(["compare", files / "before.npz", "--stabilize", "nope"], capsys)
    assert code == 2
    code, out, _ = run(["compare", "--help"], capsys)
    assert code == 0 and "Exit codes" in out and "less robust" in out
    code, _, err = run(["compare", files / "before.npz", files / "missing.npz"], capsys)
    assert code != 0 and "missing.npz" in err


def test_cli_stabilize_writes_and_refuses_overwrite(files, capsys):
    out_file = files / "stable.npz"
    code, out, err = run(["stabilize", files / "worse.npz", "-o", out_file, "--method", "exact"], capsys)
    assert code == 0 and "W_hh" in out and "wrote" in err
    with np.load(out_file) as z:
        W = z["W_hh"]
    A = np.load(files / "worse.npz")["W_hh"]
    rho_a = max(abs(np.linalg.eigvals(A)))
    np.testing.assert_allclose(W, A / rho_a if rho_a > 1 else A, rtol=1e-15)
    code, _, err = run(["stabilize", files / "worse.npz", "-o", out_file], capsys)
    assert code == 8 and "exists" in err
    code, out, _ = run(
        ["stabilize", files / "before.npz", "-o", out_file, "--force", "--method", "svd-clip", "--json"],
        capsys,
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["schema_version"] == 1 and doc["matrices"][0]["id"] == "W_hh"
    with np.load(out_file) as z:
        assert np.linalg.norm(z["W_hh"], 2) <= 1.0 + 1e-12
    code, _, _ = run(
        ["stabilize", files / "before.npz", "-o", out_file, "--force", "--matrix", "nope"], capsys
    )
    assert code == 6


def test_cli_compare_figure(files, capsys):
    import matplotlib

    matplotlib.use("Agg")
    fig_path = files / "cmp.png"
    code, _, err = run_click(
        ["compare", files / "before.npz", files / "worse.npz", "-o", fig_path, "--npts", "30"]
    )
    assert code == 1 and fig_path.exists()
    img = matplotlib.image.imread(fig_path)
    assert img.std() > 0.01  # not blank


def test_plot_compare_shares_limits():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spectra.plot.compare import common_bounds, plot_compare

    A = jordan(0.5, 0.2)
    res = compare_matrices([("W", A, 2.5 * A), ("V", np.diag([0.3, 0.2]), np.diag([0.3, 0.2]))])
    axes = plot_compare(res, npts=24)
    try:
        assert axes.shape == (2, 2)
        for row in axes:
            assert row[0].get_xlim() == row[1].get_xlim() and row[0].get_ylim() == row[1].get_ylim()
        # the box encloses the 0.1-pseudospectra of both and the unit circle
        xmin, xmax, ymin, ymax = common_bounds([A, 2.5 * A], 0.1)
        assert xmin <= -1.1 and xmax >= 1.25 + 0.25 + 0.1  # 2.5A: numerical range reaches a + |b|/2
    finally:
        plt.close(axes[0, 0].figure)


@pytest.mark.filterwarnings("ignore:transient_growth:RuntimeWarning")  # rho = 1 - 1e-7 after exact
@pytest.mark.parametrize("method", ["exact", "spectral-norm"])
def test_compare_stabilized_sees_the_weights_stabilize_writes(tmp_path, method):
    # compare --stabilize reported the float64 scaled matrices; the float32 file holds them
    # rounded (rho 1 + ~1e-8 for exact), so its figures differed from those of the written file
    from spectra.stabilize import stabilize_checkpoint

    rng = np.random.default_rng(5)
    W = (1.5 * rng.standard_normal((3, 6, 6)) / np.sqrt(6)).astype(np.float32)
    np.savez(tmp_path / "w.npz", a=W[0], b=W[1], c=W[2])
    stabilize_checkpoint(tmp_path / "w.npz", tmp_path / "out.npz", method=method)
    written = compare_checkpoints(tmp_path / "w.npz", tmp_path / "out.npz")
    seen = compare_stabilized(tmp_path / "w.npz", method=method)
    for mw, ms in zip(written.matrices, seen.matrices, strict=True):
        for key in ("spectral_radius", "norm_2", "henrici"):
            assert ms.figures[key].after == mw.figures[key].after, (mw.id, key)


def test_plot_compare_says_which_matrices_changed_and_by_what(tmp_path):
    # before/after pairs of unchanged matrices looked identical with nothing to say so
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spectra.plot.compare import plot_compare

    np.savez(tmp_path / "w.npz", big=np.diag([2.0, 0.5]), small=np.diag([0.5, 0.2]))
    res = compare_stabilized(tmp_path / "w.npz", method="exact")
    axes = plot_compare(res, npts=16)
    try:
        titles = {ax.get_title() for ax in axes[:, 1]}
        assert titles == {"big: after (×0.5)", "small: after (unchanged)"}
        assert "--stabilize exact" in axes[0, 0].figure.get_suptitle()
    finally:
        plt.close(axes[0, 0].figure)


def test_plot_compare_svd_clip_is_not_called_a_scaling(tmp_path):
    # the title said "after (x0.7714)" (1/||A||) for svd-clip, which is no uniform scaling
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spectra.plot.compare import plot_compare

    np.save(tmp_path / "w.npy", np.array([[0.5, 1.0], [0.0, 0.5]]))
    res = compare_stabilized(tmp_path / "w.npy", method="svd-clip")
    axes = plot_compare(res, npts=16)
    try:
        assert axes[0, 1].get_title().endswith("after (σ clipped to 1)")
    finally:
        plt.close(axes[0, 0].figure)


def test_cli_compare_pdf_has_no_type3_fonts(files, capsys):
    out = files / "cmp.pdf"
    run_click(["compare", files / "before.npz", files / "worse.npz", "-o", out, "--npts", "16"])
    raw = out.read_bytes()
    assert raw[:4] == b"%PDF" and b"/Subtype /Type3" not in raw


def test_cli_compare_marks_lower_bound_peaks_once_and_names_the_side(tmp_path, capsys):
    # the capped peak after exact normalisation was printed as "2.17" (it is only a lower bound)
    # and each transient warning was printed twice, once without the matrix id
    rng = np.random.default_rng(3)
    W = 1.5 * rng.standard_normal((6, 6)) / np.sqrt(6) + np.triu(rng.standard_normal((6, 6)), 1)
    np.save(tmp_path / "w.npy", W.astype(np.float32))  # float32: exact lands just inside, rho = 1 - 1e-7
    code, out, err = run_click(["compare", tmp_path / "w.npy", "--stabilize", "exact"])
    lines = [ln for ln in err.splitlines() if "transient_growth" in ln]
    assert len(lines) == 1 and lines[0].startswith("spectra: warning: w: after: transient_growth"), err
    row = next(ln for ln in out.splitlines() if ln.startswith("w "))
    assert "-> ≥" in row and "-> 0.99999" in row


def test_plot_compare_scales_far_apart_get_their_own_limits():
    # spectral-norm of a matrix of norm 1e6: the after spectrum collapsed to a dot at 0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spectra.plot.compare import plot_compare

    A = 1e6 * np.array([[0.5, 1.0], [0.0, 0.3]])
    axes = plot_compare(
        [("A", A, A / np.linalg.norm(A, 2)), ("B", np.diag([0.5, 0.2]), np.diag([0.4, 0.2]))], npts=16
    )
    try:
        (b0, b1), (a0, a1) = axes[0, 0].get_xlim(), axes[0, 1].get_xlim()
        assert (b1 - b0) > 1e4 * (a1 - a0) and "own limits" in axes[0, 1].get_title()
        assert axes[1, 0].get_xlim() == axes[1, 1].get_xlim() and "own" not in axes[1, 1].get_title()
    finally:
        plt.close(axes[0, 0].figure)


def test_an_uncertified_kreiss_constant_is_marked_as_a_lower_bound():
    # a scaled shift of order 70: f depends on |z| only, the cells give up on its circle of
    # maxima and for n > 64 the circle walk is not run: K comes from a search without a
    # certificate; compare showed it bare
    A = 1.05 * np.eye(70, k=1)
    res = compare_matrices([("W", A, 0.5 * A)], criterion="kreiss")
    assert res.matrices[0].lower_bounds["kreiss"][0] is True
    small = jordan(0.5, 0.3)  # n <= 64: certified
    res = compare_matrices([("W", small, small)], criterion="kreiss")
    assert res.matrices[0].lower_bounds["kreiss"] == (False, False)


def test_an_unreliable_rho_eps_is_noted():
    # eps = 1e-3 below 1e-9 ||A||_2: the criss-cross result is flagged unreliable, and compare
    # printed it like any other figure
    G = np.array([[0.6, -0.8], [0.8, 0.6]])
    A = G @ np.array([[0.5, 1e12], [0.0, 0.5]]) @ G.T
    J = np.array([[0.5, 1.0], [0.0, 0.5]])
    r = compare_matrices([("big", A, 0.5 * A), ("small", J, 0.5 * J)], epsilons=[1e-3])
    big, small = r.matrices
    assert any("rho_eps for eps = 0.001 is approximate" in n for n in big.notes)
    assert not any("approximate" in n for n in small.notes)


def test_plot_compare_empty_panel_says_why_and_titles_name_files_not_paths(tmp_path):
    # the fixed levels left "big: before (own limits)" blank with no word; the suptitle printed
    # whole absolute paths
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spectra.plot.compare import plot_compare

    big = 1e4 * np.array([[0.5, 0.2], [0.0, -0.3]])
    np.savez(tmp_path / "w.npz", big=big)
    res = compare_stabilized(tmp_path / "w.npz", method="exact")
    axes = plot_compare(res, npts=24)
    try:
        (note,) = axes[0, 0].texts
        text = " ".join(note.get_text().split())
        assert text.startswith("no contour: log10 σ_min here runs from") and "on its own" in text
        assert "no contour" not in " ".join(t.get_text() for t in axes[0, 1].texts)
        title = axes[0, 0].figure.get_suptitle()
        assert str(tmp_path) not in title and "before: w.npz" in title
    finally:
        plt.close(axes[0, 0].figure)


def test_plot_compare_default_levels_all_enclose_every_eigenvalue():
    # the fixed levels -3..-1 were far finer than an 80-point grid resolves
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.contour import ContourSet
    from matplotlib.path import Path

    from spectra.plot.compare import plot_compare

    rng = np.random.default_rng(2)
    A = rng.standard_normal((16, 16)) / 4 + 0.3 * np.triu(rng.standard_normal((16, 16)), 1)
    axes = plot_compare([("A", A, 0.5 * A)])
    try:
        for ax, M in zip(axes[0], (A, 0.5 * A), strict=True):
            ev = np.linalg.eigvals(M)
            pts = np.column_stack([ev.real, ev.imag])
            (cs,) = [c for c in ax.collections if isinstance(c, ContourSet)]
            assert len(cs.levels) >= 2
            for path in cs.get_paths():
                inside = np.zeros(len(pts), dtype=bool)
                for poly in path.to_polygons(closed_only=False):
                    inside |= Path(poly).contains_points(pts)
                assert inside.all()
    finally:
        plt.close(axes[0, 0].figure)


def test_plot_compare_tick_labels_do_not_overlap():
    # a review: on the unit box [-1.1, 1.1] the x labels ran together ("-1.00-0.75-0.50-0.25")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spectra.plot.compare import plot_compare

    A = np.diag([0.5, -0.3]) + np.triu(np.full((2, 2), 0.2), 1)
    axes = plot_compare(compare_matrices([("W", A, 0.8 * A)]), npts=16)
    fig = axes[0, 0].figure
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in axes.flat:
            boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
            boxes.sort(key=lambda b: b.x0)
            assert len(boxes) >= 3
            gaps = [b.x0 - a.x1 for a, b in zip(boxes, boxes[1:])]
            assert min(gaps) > 2, gaps  # pixels between neighbouring labels
    finally:
        plt.close(fig)
