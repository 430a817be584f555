"""Pseudospectra figures (spectra.plot.pseudospectra) and the ``spectra pseudospectra`` command."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.contour import ContourSet
from matplotlib.path import Path
from spectra_cli.main import main

from spectra.plot.pseudospectra import (
    plot_pseudospectra,
    plot_pseudospectra_panel,
    save_figure,
    shared_levels,
)
from spectra.pseudospectra import load_grid, pseudospectra


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def contour_sets(ax):
    return [c for c in ax.collections if isinstance(c, ContourSet)]


def level_vertices(cs, k):
    """Vertices of the k-th level's contour lines (CLOSEPOLY placeholders dropped)."""
    path = cs.get_paths()[k]
    v = path.vertices
    if path.codes is not None:
        v = v[path.codes != Path.CLOSEPOLY]
    return v


def normal_matrix(lam, seed=0):
    n = lam.size
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
    return Q @ np.diag(lam) @ Q.conj().T


def png_pixels(fig, tmp_path, name="f.png"):
    p = tmp_path / name
    save_figure(fig, p)
    return plt.imread(p)


def test_normal_matrix_contours_are_unions_of_eps_discs(tmp_path):
    lam = np.array([0.0, 0.6, -0.5 + 0.5j, 0.3 - 0.6j, -0.7 - 0.2j, 0.62 + 0.25j])
    A = normal_matrix(lam)
    x = np.linspace(-1.5, 1.5, 151)
    y = np.linspace(-1.5, 1.5, 151)
    h = x[1] - x[0]
    g = pseudospectra(A, x=x, y=y, levels=[-1.0, -0.75])
    ax = g.plot()
    (cs,) = contour_sets(ax)
    np.testing.assert_allclose(cs.levels, [-1.0, -0.75])
    for k, level in enumerate([-1.0, -0.75]):
        eps = 10**level
        v = level_vertices(cs, k)
        assert len(v) > 50
        d = np.min(np.abs((v[:, 0] + 1j * v[:, 1])[:, None] - lam[None, :]), axis=1)
        # every vertex lies on the boundary of the union of eps-discs, within the grid's resolution
        assert np.max(np.abs(d - eps)) <= h / 2
        # and every exposed arc of every disc is traced
        t = np.linspace(0, 2 * np.pi, 90, endpoint=False)
        for mu in lam:
            pts = mu + eps * np.exp(1j * t)
            others = np.min(np.abs(pts[:, None] - lam[None, :]), axis=1)
            exposed = pts[others >= eps - 1e-12 + 2 * h]
            near = np.min(np.abs(exposed[:, None] - (v[:, 0] + 1j * v[:, 1])[None, :]), axis=1)
            assert np.all(near <= 2 * h)
    pix = png_pixels(ax.figure, tmp_path)
    assert pix.std() > 0.05


def test_figure_is_not_blank_and_has_eigenvalues_circle_colorbar_title(tmp_path):
    rng = np.random.default_rng(1)
    A = 0.9 * rng.standard_normal((60, 60)) / np.sqrt(60) + 0.2 * np.triu(rng.standard_normal((60, 60)), 1)
    g = pseudospectra(A, npts=50, matrix_id="rnn.weight_hh_l0")
    ax = plot_pseudospectra(g)
    fig = ax.figure
    assert len(fig.axes) == 2  # the plot and its colorbar
    assert fig.axes[1].get_ylabel() == "log10(ε)"
    assert "rnn.weight_hh_l0" in ax.get_title() and "60×60" in ax.get_title()
    lines = ax.get_lines()
    dots = [ln for ln in lines if ln.get_marker() == "."]
    assert len(dots) == 1 and len(dots[0].get_xdata()) == 60
    circle = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert len(circle) == 1
    np.testing.assert_allclose(np.hypot(circle[0].get_xdata(), circle[0].get_ydata()), 1.0)
    assert ax.get_aspect() == 1.0
    (cs,) = contour_sets(ax)
    np.testing.assert_allclose(cs.levels, g.levels)
    pix = png_pixels(fig, tmp_path)
    assert pix.shape[0] > 100 and pix.std() > 0.05
    blank = plt.figure()
    assert png_pixels(blank, tmp_path, "blank.png").std() < 1e-6  # the check can fail


def test_options_levels_filled_overlay_no_colorbar():
    A = np.array([[0.5, 1.0], [0.0, 0.5]])
    g = pseudospectra(A, npts=40)
    fig, ax = plt.subplots()
    t = np.linspace(0, 2 * np.pi, 100)
    out = plot_pseudospectra(
        g,
        ax=ax,
        levels=[-2, -1],
        colorbar=False,
        unit_circle=False,
        filled=True,
        title="custom",
        overlay=[(0.5 + 0.5 * np.cos(t), 0.5 * np.sin(t), "field of values")],
    )
    assert out is ax and len(fig.axes) == 1 and ax.get_title() == "custom"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["field of values"]
    assert all(ln.get_linestyle() != "--" for ln in ax.get_lines())
    sets = contour_sets(ax)
    assert len(sets) == 2 and any(cs.filled for cs in sets)
    lines = next(cs for cs in sets if not cs.filled)
    np.testing.assert_allclose(lines.levels, [-2, -1])
    # [[a, b], [0, a]]: the eps-pseudospectrum is the disc of radius sqrt(eps (eps + |b|)) about a
    for k, level in enumerate([-2, -1]):
        eps = 10.0**level
        v = level_vertices(lines, k)
        r = np.hypot(v[:, 0] - 0.5, v[:, 1])
        h = g.x[1] - g.x[0]
        np.testing.assert_allclose(r, np.sqrt(eps * (eps + 1.0)), atol=h / 2)
    with pytest.raises(ValueError, match="levels"):
        plot_pseudospectra(g, levels=[])


def test_panel_shares_levels_and_one_colorbar(tmp_path):
    rng = np.random.default_rng(2)
    grids = []
    for k, gate in enumerate(["reset", "update", "new"] * 2):
        A = rng.standard_normal((40, 40)) / np.sqrt(40) + 0.1 * k * np.triu(rng.standard_normal((40, 40)), 1)
        # 40 points (was 30): the smallest contour drawn is now ~5 grid spacings across, not 3
        grids.append(pseudospectra(A, npts=40, matrix_id=f"gru.weight_hh_l{k // 3}[{gate}]"))
    fig = plot_pseudospectra_panel(grids)
    panels = [a for a in fig.axes if contour_sets(a)]
    assert len(panels) == 6 and len(fig.axes) == 7  # six panels, one colorbar
    lev = shared_levels(grids)
    for a in panels:
        np.testing.assert_allclose(contour_sets(a)[0].levels, lev)
    # rows: tensors, columns: gates
    where = {
        a.get_title().split("  ")[0]: (a.get_subplotspec().rowspan.start, a.get_subplotspec().colspan.start)
        for a in panels
    }
    assert where["gru.weight_hh_l0[reset]"] == (0, 0) and where["gru.weight_hh_l0[new]"] == (0, 2)
    assert where["gru.weight_hh_l1[reset]"] == (1, 0) and where["gru.weight_hh_l1[new]"] == (1, 2)
    assert fig.axes[-1].get_ylabel() == "log10(ε)"
    assert png_pixels(fig, tmp_path).std() > 0.05
    fig2 = plot_pseudospectra_panel(grids[:5], ncols=2, levels=[-2, -1])
    assert len([a for a in fig2.axes if a.get_visible() and contour_sets(a)]) == 5
    with pytest.raises(ValueError):
        plot_pseudospectra_panel([])


@pytest.mark.parametrize("ext,magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_save_figure_by_extension(tmp_path, ext, magic):
    g = pseudospectra(np.diag([0.3, -0.4 + 0.2j]), npts=20)
    ax = g.plot()
    p = tmp_path / f"f.{ext}"
    save_figure(ax.figure, p)
    assert p.read_bytes()[:5].startswith(magic)


def test_save_figure_refuses_unknown_extension(tmp_path):
    fig = plt.figure()
    with pytest.raises(ValueError, match="png"):
        save_figure(fig, tmp_path / "f.jpg")


# ----------------------------------------------------------------------------- the command


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_one_matrix_figure_and_grid(tmp_path, capsys):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((60, 60)) / np.sqrt(60)
    src = tmp_path / "A.npy"
    np.save(src, A)
    fig, grid = tmp_path / "ps.png", tmp_path / "g.npz"
    code, out, err = run(
        [
            "pseudospectra",
            src,
            "--levels",
            "-2,-1.5,-1",
            "--npts",
            "40",
            "--bounds",
            "-1.5",
            "1.5",
            "-1.5",
            "1.5",
            "-o",
            fig,
            "--save-grid",
            grid,
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    assert fig.read_bytes()[:4] == b"\x89PNG"
    g = load_grid(grid)
    np.testing.assert_allclose(g.levels, [-2, -1.5, -1])
    assert g.options["bounds"] == [-1.5, 1.5, -1.5, 1.5] and g.sigma_min.shape == (40, 40)
    ref = pseudospectra(A, x=g.x, y=g.y)
    np.testing.assert_allclose(g.sigma_min, ref.sigma_min, rtol=1e-12)
    assert "n=60" in out and "levels=-2,-1.5,-1" in out
    assert "\r" not in err  # no progress bar when stderr is not a terminal


def test_cli_several_matrices_make_a_panel(tmp_path, capsys):
    rng = np.random.default_rng(4)
    src = tmp_path / "mats.npz"
    np.savez(src, **{f"W{k}": rng.standard_normal((30, 30)) / np.sqrt(30) for k in range(3)})
    fig, grid = tmp_path / "panel.svg", tmp_path / "g.npz"
    code, out, err = run(["pseudospectra", src, "--npts", "25", "-o", fig, "--save-grid", grid], capsys)
    assert code == 0, err
    assert b"<svg" in fig.read_bytes()[:2000]
    assert len(out.strip().splitlines()) == 3
    grids = [load_grid(tmp_path / f"g.{k}.npz") for k in range(3)]
    assert len({g.matrix_id for g in grids}) == 3


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--levels", "a,b"], "--levels"),
        (["--levels", ""], "--levels"),
        (["--npts", "1"], "--npts"),
        (["--bounds", "1", "0", "0", "1"], "--bounds"),
        (["-o", "f.jpg"], "--output"),
        (["--save-grid", "g.txt"], "--save-grid"),
    ],
)
def test_cli_bad_options_are_usage_errors(tmp_path, capsys, extra, needle):
    src = tmp_path / "A.npy"
    np.save(src, np.eye(3))
    args = ["pseudospectra", src, *extra]
    if "-o" not in extra:
        args += ["-o", tmp_path / "f.png"]
    code, _, err = run(args, capsys)
    assert code == 2 and needle in err


def test_cli_unknown_matrix_and_bad_file(tmp_path, capsys):
    src = tmp_path / "A.npy"
    np.save(src, np.eye(3))
    code, _, err = run(["pseudospectra", src, "-m", "nope", "-o", tmp_path / "f.png"], capsys)
    assert code == 6 and "nope" in err and len(err.strip().splitlines()) == 1
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(2000))
    code, _, err = run(["pseudospectra", junk, "-o", tmp_path / "f.png"], capsys)
    assert code == 3 and "Traceback" not in err


def test_cli_help_teaches(capsys):
    code, out, _ = run(["pseudospectra", "--help"], capsys)
    assert code == 0
    for needle in ("ε-pseudospectrum", "log10", "unit", "eigenvalues", "--levels", "--save-grid"):
        assert needle in out


def test_cli_field_of_values_overlay(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from spectra_cli.main import main

    a = np.array([[0.5, 2.0], [0.0, 0.5]])  # W(A) is the disc about 0.5 of radius 1
    src = tmp_path / "a.npy"
    np.save(src, a)
    out = tmp_path / "fov.png"
    assert main(["pseudospectra", str(src), "-o", str(out), "--field-of-values", "-q"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def _edge_min(g) -> float:
    s = g.sigma_min
    return float(min(s[0].min(), s[-1].min(), s[:, 0].min(), s[:, -1].min()))


def test_shared_levels_close_inside_every_panel():
    # levels ran up to the highest grid's top: the outer contours of the other panels were cut
    # by their edges (the forget and cell gates of the shipped LSTM)
    rng = np.random.default_rng(4)
    mats = [
        np.diag([0.5, -0.3, 0.2j]),  # normal: a tight window
        rng.standard_normal((12, 12)) / np.sqrt(12) + 3.0 * np.triu(rng.standard_normal((12, 12)), 1),
    ]
    grids = [pseudospectra(A, npts=40) for A in mats]
    assert max(g.levels.max() for g in grids) > min(g.levels.max() for g in grids)
    lev = shared_levels(grids)
    for g in grids:
        assert _edge_min(g) > 10.0 ** lev.max()  # the top contour closes inside the window


@pytest.mark.parametrize("A", [np.array([[-1.5]]), 1.4j * np.eye(3)], ids=["1x1", "multiple of I"])
def test_point_like_numerical_range_leaves_room_around_the_eigenvalue(A):
    # W(A) a single point: the box was padded by 1e-4 and the eigenvalue sat on the frame,
    # with no contour drawn
    from spectra.pseudospectra import auto_bounds

    lam = complex(np.linalg.eigvals(A)[0])
    x0, x1, y0, y1 = auto_bounds(A)
    assert min(lam.real - x0, x1 - lam.real, lam.imag - y0, y1 - lam.imag) >= 0.1 - 1e-12
    g = pseudospectra(A, npts=40)
    logs = np.log10(g.sigma_min)
    assert any(logs.min() <= v <= logs.max() for v in g.levels)


def test_default_level_lies_in_the_data_when_the_eigenvalues_are_outside():
    g = pseudospectra(np.diag([0.5, 0.2]), bounds=(5, 6, 5, 6), npts=12)
    logs = np.log10(g.sigma_min)
    assert len(g.levels) == 1 and logs.min() < g.levels[0] < logs.max()


def test_pdf_embeds_truetype_fonts_not_type3(tmp_path):
    g = pseudospectra(np.diag([0.3, -0.4 + 0.2j]), npts=20)
    p = tmp_path / "f.pdf"
    save_figure(g.plot().figure, p)
    raw = p.read_bytes()
    assert b"/Subtype /Type3" not in raw
    assert b"/Subtype /TrueType" in raw or b"/Subtype /CIDFontType2" in raw  # Type 42: TrueType glyphs


def test_overlay_black_dash_dot_one_legend_and_none_when_outside():
    A = np.array([[0.5, 2.0], [0.0, 0.5]])
    w = np.array([0.5 + np.exp(1j * t) for t in np.linspace(0, 2 * np.pi, 50)])
    ov = [(w.real, w.imag, "W(A)")]
    grids = [pseudospectra(A, npts=20, matrix_id=f"t[{g}]") for g in ("a", "b", "c")]
    fig = plot_pseudospectra_panel(grids, overlay=[ov, ov, ov])
    lines = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label() == "W(A)"]
    assert len(lines) == 3 and all(ln.get_linestyle() == "-." and ln.get_color() == "k" for ln in lines)
    assert sum(ax.get_legend() is not None for ax in fig.axes) == 1
    far = pseudospectra(A, bounds=(5, 6, 5, 6), npts=10)
    ax = plot_pseudospectra(far, overlay=ov)
    assert ax.get_legend() is None


def test_colorbar_is_as_tall_as_a_wide_window():
    # an equal-aspect axes of a wide window is short; the bar kept the full height (twice the axes')
    g = pseudospectra(np.array([[1.2, 0.3], [0.0, 0.4]]), bounds=(0.5, 1.5, -0.25, 0.25), npts=20)
    ax = g.plot()
    fig = ax.figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    cax = [a for a in fig.axes if a is not ax][0]
    h_ax, h_cb = ax.get_window_extent(r).height, cax.get_window_extent(r).height
    assert abs(h_cb - h_ax) <= 0.05 * h_ax


def test_panel_on_another_scale_says_why_it_has_no_contour():
    grids = [pseudospectra(np.diag([0.5, 0.2]), npts=30), pseudospectra(1e6 * np.diag([0.5, 0.2]), npts=30)]
    fig = plot_pseudospectra_panel(grids, levels=[-2, -1])
    small, big = (a for a in fig.axes if a.get_title())
    (note,) = big.texts
    # says why and what to do; the levels were the user's, so it does not call them shared
    assert note.get_text().startswith("no contour: log10 σ_min here runs from ")
    text = " ".join(note.get_text().split())
    assert "on its own" in text and "shared" not in text
    # under the axes, never over the unit circle or the eigenvalues
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    assert note.get_window_extent(r).y1 < big.get_window_extent(r).y0
    assert all("no contour" not in t.get_text() for t in small.texts)


def test_panel_rows_are_tensors_even_with_different_gate_counts():
    # an LSTM (4 gates) and a GRU (3) in one file: the GRU's gates flowed into the LSTM's row
    ids = [f"enc.weight_hh_l0[{g}]" for g in ("input", "forget", "cell", "output")]
    ids += [f"dec.weight_hh_l0[{g}]" for g in ("reset", "update", "new")]
    grids = [pseudospectra(np.diag([0.5, 0.1 * k]), npts=16, matrix_id=i) for k, i in enumerate(ids)]
    fig = plot_pseudospectra_panel(grids)
    where = {
        a.get_title().split("  ")[0]: (a.get_subplotspec().rowspan.start, a.get_subplotspec().colspan.start)
        for a in fig.axes
        if a.get_visible() and a.get_title()
    }
    assert where["enc.weight_hh_l0[output]"] == (0, 3)
    assert where["dec.weight_hh_l0[reset]"] == (1, 0) and where["dec.weight_hh_l0[new]"] == (1, 2)
    assert sum(a.get_visible() for a in fig.axes) == 7 + 1  # seven panels and the colour bar


def test_cli_field_of_values_of_a_multiple_of_identity_is_named(tmp_path, monkeypatch):
    # W(2I) = {2}: the legend said "W(A)" for a curve hidden under the eigenvalue's dot
    import matplotlib

    matplotlib.use("Agg")
    from spectra_cli.main import main

    import spectra.plot.pseudospectra as pp

    seen = []
    real = pp.plot_pseudospectra

    def spy(grid, **kw):
        seen.extend(label for _, _, label in (kw.get("overlay") or ()))
        return real(grid, **kw)

    monkeypatch.setattr(pp, "plot_pseudospectra", spy)
    np.save(tmp_path / "i.npy", 2.0 * np.eye(3))
    assert (
        main(
            [
                "pseudospectra",
                str(tmp_path / "i.npy"),
                "-o",
                str(tmp_path / "f.png"),
                "--field-of-values",
                "-q",
            ]
        )
        == 0
    )
    assert seen == ["W(A) = {2} (A = λI)"]


# ----------------------------------------------------------------------------- resolved levels


def enclosed(ax, eigenvalues) -> dict[float, int]:
    """For each drawn level, how many eigenvalues its contour lines enclose (as chk7.py counts)."""
    (cs,) = contour_sets(ax)
    pts = np.column_stack([np.real(eigenvalues), np.imag(eigenvalues)])
    out = {}
    for level, path in zip(cs.levels, cs.get_paths(), strict=True):
        inside = np.zeros(len(pts), dtype=bool)
        for poly in path.to_polygons(closed_only=False):
            if len(poly) > 2:
                inside |= Path(poly).contains_points(pts)
        out[float(level)] = int(inside.sum())
    return out


def _jordan(n=12, lam=0.9):
    return lam * np.eye(n) + np.eye(n, k=1)


def _shipped(name, gate=0):
    import spectra

    here = os.path.join(os.path.dirname(__file__), "..", "data", name)
    return spectra.load(here).select([])[gate].matrix


RESOLUTION_CASES = {
    "normal": lambda: normal_matrix(np.linspace(-0.8, 0.8, 10) + 0.1j * np.sin(np.arange(10))),
    "jordan 12": _jordan,
    "grcar 32": lambda: (np.eye(32, k=-1) * -1 + sum(np.eye(32, k=j) for j in range(4))) / 4,
    "random rho > 1": lambda: 1.3 * np.random.default_rng(0).standard_normal((10, 10)) / np.sqrt(10),
    "rnn regular": lambda: _shipped("digits_rnn_regular.pt"),
    "gru regular [new]": lambda: _shipped("digits_gru_regular.pt", 2),
    "lstm regular [cell]": lambda: _shipped("digits_lstm_regular.pt", 2),
}


@pytest.mark.parametrize("case", list(RESOLUTION_CASES))
def test_every_default_level_encloses_every_eigenvalue(case):
    # every eigenvalue lies in every eps-pseudospectrum; the default levels went below what the
    # grid resolves, and the -3 curve of the shipped RNN enclosed 0 of its 24 eigenvalues
    A = RESOLUTION_CASES[case]()
    g = pseudospectra(A)
    ax = plot_pseudospectra(g)
    counts = enclosed(ax, g.eigenvalues)
    assert len(counts) >= 2, counts
    assert all(c == len(g.eigenvalues) for c in counts.values()), counts
    assert not ax.texts  # nothing to say: every level is resolved


def test_every_shared_level_of_a_panel_encloses_every_eigenvalue():
    import spectra

    here = os.path.join(os.path.dirname(__file__), "..", "data", "digits_lstm_regular.pt")
    grids = [pseudospectra(m) for m in spectra.load(here).select([])]
    fig = plot_pseudospectra_panel(grids)
    panels = [a for a in fig.axes if contour_sets(a)]
    assert len(panels) == 4
    for ax, g in zip(panels, grids, strict=True):
        counts = enclosed(ax, g.eigenvalues)
        assert len(counts) >= 2 and all(c == len(g.eigenvalues) for c in counts.values()), counts


def test_resolved_floor_of_a_normal_matrix_is_two_and_a_half_grid_spacings():
    # was 1.5 spacings: a Jordan block's innermost level at --npts 60 was a 2.5-spacing polygon
    from spectra.pseudospectra import resolved_floor

    lam = np.array([0.3, -0.4 + 0.2j])
    x = np.linspace(-1, 1, 81)
    g = pseudospectra(normal_matrix(lam), x=x, y=x)
    h = x[1] - x[0]
    # sigma_min is the distance to the spectrum, and the eigenvalues sit on grid points: the
    # farthest grid points within 2.5 h are the knight's-move neighbours, at sqrt(5) h
    floor = resolved_floor(g.x, g.y, g.sigma_min, g.eigenvalues)
    assert 10**floor == pytest.approx(np.sqrt(5) * h, rel=1e-6)
    assert resolved_floor(g.x, g.y, g.sigma_min, g.eigenvalues, cells=3) > floor
    assert resolved_floor(g.x, g.y, g.sigma_min, [5.0 + 5j]) == -np.inf  # outside the window


def test_given_unresolved_levels_are_drawn_and_noted():
    g = pseudospectra(normal_matrix(np.array([0.3, -0.4])), npts=60)
    ax = plot_pseudospectra(g, levels=[-3, -1])
    (cs,) = contour_sets(ax)
    np.testing.assert_allclose(cs.levels, [-3, -1])  # kept: the user chose them
    (note,) = ax.texts
    assert "log10 ε ≤ -3 not resolved" in note.get_text()
    assert len(plot_pseudospectra(g, levels=[-1]).texts) == 0


def test_cli_warns_of_given_levels_finer_than_the_grid(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.diag([0.3, -0.4]))
    args = ["pseudospectra", str(tmp_path / "a.npy"), "-o", str(tmp_path / "f.png"), "-q"]
    assert main([*args, "--levels", "-4,-1"]) == 0
    err = capsys.readouterr().err
    assert "--levels -4 finer than the" in err and "raise --npts" in err
    assert main([*args, "--levels", "-1"]) == 0
    assert "finer than" not in capsys.readouterr().err


def test_gate_panels_of_a_row_share_limits_and_the_unit_circle_is_one_size():
    # each gate had its own box: panels of different sizes, the unit circle a different size in
    # each, and "Re z" hidden above a panel with other limits
    from spectra.plot.pseudospectra import panel_bounds

    rng = np.random.default_rng(7)
    mats = [rng.standard_normal((12, 12)) / np.sqrt(12) * s for s in (0.5, 1.0, 2.5)]
    mats += [np.diag([0.5, -0.2]), np.diag([0.1, 0.3]), 3e4 * np.diag([0.5, -0.2])]
    ids = [f"gru.weight_hh_l0[{g}]" for g in ("reset", "update", "new")]
    ids += [f"gru.weight_hh_l1[{g}]" for g in ("reset", "update", "new")]
    boxes = panel_bounds(mats, ids)
    assert boxes[0] == boxes[1] == boxes[2] is not None
    assert boxes[3:] == [None] * 3  # scales 1e4 apart: each its own box
    grids = [pseudospectra(A, npts=30, matrix_id=i) for A, i in zip(mats, ids, strict=True)]
    fig = plot_pseudospectra_panel(grids)
    top, bottom = [a for a in fig.axes[:3]], [a for a in fig.axes[3:6]]
    assert len({a.get_xlim() for a in top}) == 1 and len({a.get_ylim() for a in top}) == 1
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    widths = [a.get_window_extent(r).width for a in top]
    assert max(widths) - min(widths) < 1.0  # the same box on the same panel: one circle size
    assert [a.get_ylabel() for a in top] == ["Im z", "", ""]
    # the bottom row keeps its own limits, so a panel with other limits than its left neighbour
    # keeps its labels
    assert bottom[2].get_xlim()[1] > 1e4 * bottom[1].get_xlim()[1]
    assert bottom[2].get_ylabel() == "Im z" and all(a.get_xlabel() == "Re z" for a in bottom)
    assert all(a.get_xlabel() == "Re z" for a in top)  # the panel below has other limits


def test_panel_colorbar_is_no_taller_than_its_panel():
    ids = [f"t{j}[g{k}]" for j in range(4) for k in range(3)]
    grids = [pseudospectra(np.diag([0.5, 0.1 * k]), npts=16, matrix_id=i) for k, i in enumerate(ids)]
    fig = plot_pseudospectra_panel(grids)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    cax = fig.axes[-1]
    assert cax.get_ylabel() == "log10(ε)"
    host = fig.axes[2]  # top right panel
    h_cb, h_ax = cax.get_window_extent(r).height, host.get_window_extent(r).height
    assert abs(h_cb - h_ax) <= 0.02 * h_ax


def test_a_thin_spectrum_far_out_gets_a_box_not_a_strip_and_cut_levels_are_noted():
    # diag(100, 101): the box was [-1.1, 101.1] x [-1.1, 1.1], a 100 x 3 grid with an eigenvalue
    # 0.1 from the frame, and the one fallback level enclosed no eigenvalue, without a note
    from spectra.pseudospectra import auto_bounds

    x0, x1, y0, y1 = auto_bounds(np.diag([100.0, 101.0]))
    assert y1 - y0 >= (x1 - x0) / 3 - 1e-12 and x1 - 101.0 >= 0.04 * (x1 - x0)
    g = pseudospectra(np.diag([100.0, 101.0]), npts=60)
    ax = plot_pseudospectra(g)
    counts = enclosed(ax, g.eigenvalues)
    assert counts and all(c == 2 for c in counts.values()), counts
    plt.close(ax.figure)
    # a window whose minimum lies on its frame: the level drawn is cut, and the figure says so
    g = pseudospectra(np.linalg.qr(np.random.default_rng(0).standard_normal((7, 7)))[0] * 1.5, npts=6)
    fig, ax = plt.subplots()
    g.plot(ax=ax)
    assert any("reaches the frame" in t.get_text() for t in ax.texts)
    plt.close(fig)
    # a zoom where every value lies below the one level: "no contour", not also "reaches the frame"
    J = np.diag(np.ones(99), 1) + 0.5 * np.eye(100)
    g = pseudospectra(J, x=np.linspace(0.49, 0.51, 20), y=np.linspace(-0.01, 0.01, 20))
    ax = plot_pseudospectra(g)
    text = " ".join(t.get_text() for t in ax.texts)
    assert "no contour" in text and "reaches the frame" not in text
    plt.close(ax.figure)


def _capture_figures(monkeypatch):
    """Patch save_figure so the CLI's figures are kept (titles read) instead of written."""
    import spectra.plot.pseudospectra as pp

    seen = []
    monkeypatch.setattr(pp, "save_figure", lambda fig, path, **kw: seen.append(fig.get_suptitle()))
    return seen


def test_cli_figures_are_titled_with_the_checkpoint_file_name(tmp_path, monkeypatch):
    # the title was only "rnn.weight_hh_l0 (24×24)", the same for every checkpoint of a run
    rng = np.random.default_rng(0)
    one = tmp_path / "run_regular.npy"
    np.save(one, rng.standard_normal((6, 6)) / 3)
    seen = _capture_figures(monkeypatch)
    assert main(["pseudospectra", str(one), "--npts", "30", "-o", str(tmp_path / "a.png"), "-q"]) == 0
    many = tmp_path / "gates_stable.npz"
    np.savez(many, **{f"w{k}": rng.standard_normal((6, 6)) / 3 for k in range(3)})
    assert main(["pseudospectra", str(many), "--npts", "30", "-o", str(tmp_path / "b.png"), "-q"]) == 0
    assert main(["analyze", str(one), "--fast", "--plots", str(tmp_path / "p"), "-q"]) == 0
    assert seen == ["run_regular.npy", "gates_stable.npz", "run_regular.npy"]
    grids = [pseudospectra(rng.standard_normal((4, 4)), npts=20) for _ in range(2)]
    assert plot_pseudospectra_panel(grids, title="x.pt").get_suptitle() == "x.pt"
    assert plot_pseudospectra_panel(grids).get_suptitle() == ""


def test_smallest_automatic_contour_is_about_five_grid_spacings_across():
    # a Jordan block at 60 points: the innermost level (-2.5) was 2.5 spacings across
    A = np.array([[0.9, 1.0], [0.0, 0.9]])
    g = pseudospectra(A, npts=60)
    ax = plot_pseudospectra(g)
    (cs,) = contour_sets(ax)
    h = max(g.x[1] - g.x[0], g.y[1] - g.y[0])
    v = level_vertices(cs, 0)
    across = min(np.ptp(v[:, 0]), np.ptp(v[:, 1])) / h
    assert across >= 4.5, across


def test_colorbar_shows_the_levels_as_lines_not_a_gradient():
    A = np.array([[0.9, 1.0], [0.0, 0.9]])
    g = pseudospectra(A, npts=40)
    for lev in ([-1.0], [-1.0, -0.5, 0.0]):
        ax = plot_pseudospectra(g, levels=lev)
        cax = ax.figure.axes[1]
        cb = cax._colorbar
        np.testing.assert_allclose(cb.get_ticks(), lev)
        (lines,) = cb.lines
        assert len(lines.get_segments()) == len(lev)  # one line per level
        assert not lines.get_in_layout()  # unclipped, they doubled a panel figure's height in blank
        assert cb.cmap.N == 1  # a blank bar: no colours between the levels
        assert cb.ax.get_ylabel() == "log10(ε)"
        lo, hi = cax.get_ylim()
        assert lo < min(lev) and max(lev) < hi  # the end levels are inside the bar, not on its edge
    grids = [pseudospectra(np.diag([0.5, -0.5 + k * 0.1]), npts=30) for k in range(2)]
    fig = plot_pseudospectra_panel(grids, levels=[-1.0, -0.5])
    (cb,) = [a._colorbar for a in fig.axes if getattr(a, "_colorbar", None) is not None]
    assert len(cb.lines) == 1 and cb.cmap.N == 1


def test_a_tiny_matrix_is_not_drawn_in_the_unit_box():
    # ||A|| ~ 0.05: the window was joined with [-1.1, 1.1]^2 and the content filled 5% of it
    from spectra.pseudospectra import auto_bounds

    A = 0.05 * normal_matrix(np.exp(2j * np.pi * np.arange(5) / 5))
    x0, x1, y0, y1 = auto_bounds(A)
    assert x1 - x0 < 0.3 and y1 - y0 < 0.3 and x0 < -0.05 and x1 > 0.05
    assert auto_bounds(A, unit_box=True)[1] >= 1.1  # asked for (the track's grid bound needs it)
    assert auto_bounds(A, levels=[-0.5])[1] >= 1.1  # eps = 0.3 reaches the unit circle's scale
    assert auto_bounds(0.5 * A / 0.05)[1] >= 1.1  # rho = 0.5: the unit circle stays in view
    ax = plot_pseudospectra(pseudospectra(A, npts=40))
    assert any("unit circle" in t.get_text() and "around this window" in t.get_text() for t in ax.texts)
    ax = plot_pseudospectra(pseudospectra(10 * A, npts=40))
    assert not any("unit circle" in t.get_text() for t in ax.texts)
