"""Drawings of transient growth and of the numerical range (Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from spectra.kreiss import kreiss_constant, transient_growth  # noqa: E402
from spectra.numerical_range import numerical_range  # noqa: E402
from spectra.plot.transient import plot_numerical_range, plot_transient  # noqa: E402

J = np.array([[0.9, 3.0], [0.0, 0.9]])
N = np.diag([0.5, -0.3])


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_plot_transient_draws_data_on_given_axes():
    tg = [transient_growth(J, kmax=50), transient_growth(N, kmax=50)]
    kr = [kreiss_constant(J), kreiss_constant(N)]
    fig, ax = plt.subplots()
    out = plot_transient(tg, labels=["J", "N"], kreiss=kr, ax=ax, title="t")
    assert out is ax and ax.get_yscale() == "log" and ax.get_title() == "t"
    curves = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 51]
    # two norm curves and two rho^k curves, with the data unchanged
    ys = [np.asarray(ln.get_ydata()) for ln in curves]
    assert any(np.allclose(y, tg[0].norms) for y in ys)
    assert any(np.allclose(y, 0.9 ** np.arange(51)) for y in ys)
    # the Kreiss bracket lines are horizontal at K and e n K
    hlines = {round(float(ln.get_ydata()[0]), 9) for ln in ax.get_lines() if len(set(ln.get_ydata())) == 1}
    lo, hi = kr[0].bracket
    assert round(lo, 9) in hlines and round(hi, 9) in hlines
    # peak marker
    peaks = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 1 and ln.get_marker() == "o"]
    assert any(ln.get_xdata()[0] == tg[0].peak_k and ln.get_ydata()[0] == tg[0].peak for ln in peaks)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("J" in s for s in labels) and r"$e\,n\,K$" in labels


def test_plot_transient_single_and_new_figure():
    ax = plot_transient(transient_growth(J, kmax=10))
    assert ax.figure is not None and len(ax.get_lines()) >= 2


def test_plot_transient_skips_infinite_kreiss():
    A = np.array([[1.0, 1.0], [0.0, 0.2]])
    ax = plot_transient([transient_growth(A, kmax=20)], kreiss=[kreiss_constant(A)])
    assert all(np.all(np.isfinite(ln.get_ydata())) for ln in ax.get_lines())


def test_plot_transient_overflowing_norms_stay_on_the_axes():
    A = np.diag([3.0e6, 0.5])  # ||A^k|| = 3e6^k overflows to inf at k = 48
    tg = transient_growth(A)
    k_over = int(np.ceil(np.log(np.finfo(float).max) / np.log(3.0e6)))
    k_cap = int(np.ceil(250 / np.log10(3.0e6)))  # first k with ||A^k|| > 1e250
    fig, ax = plt.subplots()
    plot_transient([tg, transient_growth(J, kmax=100)], labels=["big", "J"], ax=ax)
    fig.canvas.draw()  # the log scale must not overflow while autoscaling
    lo, hi = ax.get_ylim()
    assert np.isfinite(lo) and np.isfinite(hi) and hi >= 1e250
    # the curve stops at the cap (a gap, not a flat line that would look like data)
    (big,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("big")]
    y = np.asarray(big.get_ydata(), dtype=float)
    assert np.all(np.isfinite(y[:k_cap])) and np.all(np.isnan(y[k_cap:]))
    np.testing.assert_allclose(y[:k_cap], tg.norms[:k_cap])
    assert all(np.nanmax(ln.get_ydata()) <= 1e250 for ln in ax.get_lines())
    marks = [ln for ln in ax.get_lines() if ln.get_marker() == "^"]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == k_cap
    # where the norms overflow is said in the legend (free notes beside the peaks collided)
    notes = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"inf from k={k_over}" in t for t in notes) and not ax.texts


def test_plot_transient_zero_powers_leave_a_gap():
    # nilpotent: ||A^k|| = 0 from k = 2 on; a log axis cannot show 0, and clipping it to a
    # tiny value stretched the axis down to 1e-262
    A = np.array([[0.0, 5.0], [0.0, 0.0]])
    tg = transient_growth(A, kmax=10)
    ax = plot_transient(tg)
    ax.figure.canvas.draw()
    (curve,) = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 11 and ln.get_linestyle() == "-"]
    y = np.asarray(curve.get_ydata(), dtype=float)
    np.testing.assert_allclose(y[:2], [1.0, 5.0])
    assert np.all(np.isnan(y[2:]))
    assert ax.get_ylim()[0] >= 0.05


def test_plot_transient_many_matrices_distinct_colours_legend_outside():
    mats = [np.array([[0.5 + 0.03 * i, 1.0 + i], [0.0, 0.3]]) for i in range(14)]
    tg = [transient_growth(A, kmax=30) for A in mats]
    kr = [kreiss_constant(A) for A in mats]
    ax = plot_transient(tg, labels=[f"m{i}" for i in range(14)], kreiss=kr)
    curves = [ln for ln in ax.get_lines() if ln.get_label().startswith("m")]
    assert len(curves) == 14
    assert len({tuple(np.round(matplotlib.colors.to_rgba(ln.get_color()), 6)) for ln in curves}) == 14
    leg = ax.get_legend()
    assert leg.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # beside the axes
    # peaks go into the legend labels (notes beside 14 peaks would pile up)
    assert not ax.texts
    assert all("peak" in ln.get_label() and f"k={t.peak_k}" in ln.get_label() for ln, t in zip(curves, tg))


def test_plot_transient_no_kreiss_legend_when_nothing_drawn():
    A = np.array([[1.1, 1.0], [0.0, 0.2]])  # rho > 1: K infinite, no bracket lines
    ax = plot_transient([transient_growth(A, kmax=20)], kreiss=[kreiss_constant(A)])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Kreiss K" not in labels and "e·n·K" not in labels


def test_plot_transient_length_mismatch():
    tg = transient_growth(J, kmax=5)
    with pytest.raises(ValueError, match="labels"):
        plot_transient([tg], labels=["a", "b"])
    with pytest.raises(ValueError, match="kreiss"):
        plot_transient([tg], kreiss=[None, None])


def test_plot_numerical_range_overlay():
    fig, ax = plt.subplots()
    ax.plot([0], [0], "k.")
    out = plot_numerical_range(J, ax=ax, npts=40, color="r")
    assert out is ax
    ln = ax.get_lines()[-1]
    x, y = np.asarray(ln.get_xdata()), np.asarray(ln.get_ydata())
    assert len(x) == 41 and x[0] == x[-1] and y[0] == y[-1]  # closed curve
    np.testing.assert_allclose(np.hypot(x - 0.9, y), 1.5, rtol=1e-12)  # disc(0.9, |b|/2)
    pts = numerical_range(J, npts=10)
    ax2 = plot_numerical_range(pts)
    assert len(ax2.get_lines()[-1].get_xdata()) == 11
    with pytest.raises(ValueError, match="shape"):
        plot_numerical_range(np.zeros((2, 2, 2)))


def test_plot_transient_panels_one_panel_per_matrix():
    from spectra.plot.transient import plot_transient_panels

    mats = {"J": J, "N": N, "J2": np.array([[-0.6, 1.5], [0.0, -0.6]])}
    tg = [transient_growth(A, kmax=40) for A in mats.values()]
    kr = [kreiss_constant(A) for A in mats.values()]
    kr[2] = None  # a panel without the Kreiss lines
    axes = plot_transient_panels(tg, labels=list(mats), kreiss=kr, title="gates")
    fig = axes[0].figure
    assert len(axes) == 3 and len(fig.axes) == 3
    # the panel's title: its id, then its peak (a lower bound, "≥", where not proved)
    assert [ax.get_title().split("\n")[0] for ax in axes] == ["J", "N", "J2"]
    assert all("peak" in ax.get_title().split("\n")[1] for ax in axes)
    assert all(ax.get_yscale() == "log" for ax in axes)
    assert len({ax.get_xlim() for ax in axes}) == 1  # series of one length: one k range
    for ax, t, K in zip(axes, tg, kr):
        lines = ax.get_lines()
        # ||A^k||, rho^k, the peak marker, and K and e n K when given
        assert len(lines) == (5 if K is not None else 3)
        ys = [np.asarray(ln.get_ydata()) for ln in lines if len(ln.get_xdata()) == 41]
        assert any(np.allclose(y, t.norms) for y in ys)
        assert any(np.allclose(y, t.spectral_radius ** np.arange(41)) for y in ys)
        if K is not None:
            flat = {round(float(ln.get_ydata()[0]), 9) for ln in lines if len(set(ln.get_ydata())) == 1}
            assert {round(K.bracket[0], 9), round(K.bracket[1], 9)} <= flat
    assert fig._suptitle.get_text() == "gates"


def test_plot_transient_panels_grid_and_errors():
    from spectra.plot.transient import plot_transient_panels

    tg = [transient_growth(J, kmax=10)] * 4
    axes = plot_transient_panels(tg, ncols=3)
    assert len(axes) == 4 and len(axes[0].figure.axes) == 4  # 2 x 3 grid, two cells removed
    assert [ax.get_title().split("\n")[0] for ax in axes] == ["A1", "A2", "A3", "A4"]
    single = plot_transient_panels(transient_growth(N, kmax=5))
    assert len(single) == 1
    with pytest.raises(ValueError, match="labels"):
        plot_transient_panels(tg, labels=["a"])
    with pytest.raises(ValueError, match="kreiss"):
        plot_transient_panels(tg, kreiss=[None])
    with pytest.raises(ValueError, match="ncols"):
        plot_transient_panels(tg, ncols=0)
    with pytest.raises(ValueError, match="no results"):
        plot_transient_panels([])


def test_cli_transient_panels_writes_png(tmp_path):
    from click.testing import CliRunner
    from spectra_cli.main import cli

    p = tmp_path / "gates.npz"
    np.savez(p, i=J, f=N, g=np.array([[0.5, 1.0], [0.0, -0.4]]))
    out = tmp_path / "gates.png"
    res = CliRunner().invoke(
        cli, ["transient", str(p), "--panels", "--kmax", "30", "-o", str(out), "-q"], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_transient_growing_curve_is_not_called_a_peak():
    A = np.array([[1.2, 1.0], [0.0, 0.5]])  # rho > 1: the last norm computed is no peak
    ax = plot_transient(transient_growth(A, kmax=30))
    notes = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("at k=30 (still growing)" in t for t in notes)
    ax = plot_transient(transient_growth(J, kmax=30))
    assert not any("still growing" in t.get_text() for t in ax.get_legend().get_texts())


def _inside(fig, artist, ax) -> bool:
    r = fig.canvas.get_renderer()
    a, b = artist.get_window_extent(r), ax.get_window_extent(r)
    return a.x0 >= b.x0 - 1 and a.x1 <= b.x1 + 1 and a.y0 >= b.y0 - 1 and a.y1 <= b.y1 + 1


def test_peaks_are_in_the_legend_not_in_notes_over_the_curves():
    # notes beside the peaks ran across the frame, then were drawn under other curves, unreadable
    G = np.array([[1.05, 1.0], [0.0, 0.5]])  # still growing at kmax
    fig, ax = plt.subplots(figsize=(5, 3.5))
    plot_transient([transient_growth(G, kmax=60), transient_growth(J, kmax=60)], ["G", "J"], ax=ax)
    assert not ax.texts
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lab.startswith("G: peak ≥") for lab in labels) and any(
        lab.startswith("J: peak") for lab in labels
    )


def test_infinite_kreiss_is_said_in_the_legend():
    G = np.array([[1.05, 1.0], [0.0, 0.5]])
    ax = plot_transient([transient_growth(G, kmax=30)], ["G"], kreiss=[kreiss_constant(G)])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lab.startswith(r"$K = \infty$") for lab in labels)
    assert not any(lab == r"Kreiss $K$" for lab in labels)


def test_nilpotent_says_where_the_powers_vanish_and_short_series_have_integer_ticks():
    Z = np.diag([2.0, 2.0], 1)  # A^3 = 0
    fig, ax = plt.subplots()
    plot_transient([transient_growth(Z)], ["Z"], ax=ax)
    (curve,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("Z")]
    assert curve.get_label() == "Z: peak 4 at k=2, = 0 from k=3" and curve.get_marker() == "o"
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_panels_one_figure_legend_and_a_row_per_tensor():
    from spectra.plot.transient import plot_transient_panels

    Ms = [J, N, 0.5 * J, 0.9 * N]
    labels = [f"w[{g}]" for g in ("input", "forget", "cell", "output")]
    axes = plot_transient_panels([transient_growth(M, kmax=40) for M in Ms], labels, title="t")
    fig = axes[0].figure
    rows = {round(ax.get_position().y0, 3) for ax in axes}
    assert len(rows) == 1  # the four gates of one tensor side by side
    assert all(ax.get_legend() is None for ax in axes) and len(fig.legends) == 1
    fig.canvas.draw()
    assert all(_inside(fig, t, ax) for ax in axes for t in ax.texts)


def test_panels_of_unlike_lengths_get_their_own_k_range_and_wrap_long_titles():
    # the shared k axis ended where the last panel's series ended, cutting off the others' peaks;
    # then it spanned the longest, and a short series sat in its first 4 %
    from spectra.plot.transient import plot_transient_panels

    long_ = transient_growth(np.array([[0.95, 5.0], [0.0, 0.95]]))
    short = transient_growth(np.diag([0.3, 0.1]))
    assert long_.kmax > 3 * short.kmax
    labels = ["model_state_dict/very_long_encoder_module_name.weight_hh_l0[forget]", "s"]
    axes = plot_transient_panels([long_, short], labels)
    for ax, t in zip(axes, [long_, short], strict=True):
        lo, hi = ax.get_xlim()
        assert lo < 0 and t.kmax < hi <= 1.1 * t.kmax + 1  # its own range, padded
    assert "\n" in axes[0].get_title()
    fig = axes[0].figure
    fig.canvas.draw()
    assert all(_inside(fig, t, ax) for ax in axes for t in ax.texts)


def test_many_curves_legend_has_no_nested_brackets_and_no_grey_curve():
    tgs = [transient_growth(np.array([[0.9, 0.5 * j], [0.0, 0.5]]), kmax=30) for j in range(9)]
    tgs.append(transient_growth(np.array([[1.05, 1.0], [0.0, 0.5]]), kmax=30))  # still growing
    ax = plot_transient(tgs, [f"M{j}" for j in range(10)])
    curves = [ln for ln in ax.get_lines() if ln.get_label().startswith("M")]
    assert not any("))" in ln.get_label() for ln in curves)
    assert any("still growing" in ln.get_label() for ln in curves)
    import matplotlib.colors as mcolors

    for ln in curves:
        r, g, b, _ = mcolors.to_rgba(ln.get_color())
        assert max(r, g, b) - min(r, g, b) > 0.05  # not a grey


def test_legend_is_mathtext_and_lists_only_lines_drawn():
    # the legend said "‖A^k‖", "ρ(A)^k", "e·n·K" beside an axis in mathtext, and listed rho(A)^k
    # for a nilpotent matrix, where no rho^k line can be drawn (rho = 0)
    Z = np.diag([2.0, 2.0], 1)
    ax = plot_transient([transient_growth(Z)], ["Z"], kreiss=[kreiss_constant(Z)])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert r"$\rho(A)^k$" not in labels
    assert r"Kreiss $K$" in labels and r"$e\,n\,K$" in labels
    assert not any(c in lab for lab in labels for c in "‖ρ·")
    ax = plot_transient([transient_growth(J, kmax=30)], ["J"])
    assert r"$\rho(A)^k$" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_legend_sits_beside_the_axes_and_peak_markers_are_whole():
    G = np.array([[1.05, 1.0], [0.0, 0.5]])  # peak at k = kmax
    fig, ax = plt.subplots()
    plot_transient([transient_growth(G, kmax=40), transient_growth(J, kmax=40)], ["G", "J"], ax=ax)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    assert ax.get_legend().get_window_extent(r).x0 >= ax.get_window_extent(r).x1
    lo, hi = ax.get_xlim()
    assert lo < 0 and hi > 40  # a marker at k = 0 or k = kmax is not cut by the frame


def test_curves_differ_by_marker_and_okabe_ito_colour_and_many_brackets_are_grey_once():
    from spectra.plot.transient import OKABE_ITO

    mats = [np.array([[0.5, 0.1 * j], [0.0, 0.4]]) for j in range(6)]
    tgs = [transient_growth(A, kmax=30) for A in mats]
    krs = [kreiss_constant(A) for A in mats]
    ax = plot_transient(tgs, [f"M{j}" for j in range(6)], kreiss=krs)
    curves = [ln for ln in ax.get_lines() if ln.get_label().startswith("M")]
    assert len({ln.get_marker() for ln in curves}) == 6
    assert [ln.get_color() for ln in curves] == list(OKABE_ITO[:6])
    flat = [ln for ln in ax.get_lines() if len(set(ln.get_ydata())) == 1 and len(ln.get_ydata()) == 2]
    values = sorted({v for kr in krs for v in kr.bracket})
    distinct = [v for j, v in enumerate(values) if j == 0 or v > values[j - 1] * (1 + 1e-3)]
    assert len(flat) == len(distinct)  # once per distinct value
    assert all(ln.get_color() == "0.35" for ln in flat)


def test_log_ticks_step_by_1_2_5_10_decades():
    A = np.diag([3.0e6, 0.5])  # norms up to 1e250: 250 decades
    ax = plot_transient([transient_growth(A), transient_growth(J, kmax=60)], ["big", "J"])
    ax.figure.canvas.draw()
    lo, hi = ax.get_ylim()
    ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
    steps = set(np.round(np.diff(np.log10(ticks)), 6))
    assert len(steps) == 1 and steps.pop() in {1, 2, 5, 10, 20, 50, 100}


def test_cli_transient_draws_panels_by_default_for_many_matrices(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from spectra_cli.main import cli

    import spectra.plot.transient as pt

    calls = []
    monkeypatch.setattr(
        pt, "plot_transient_panels", lambda *a, **k: calls.append("panels") or [plt.figure().gca()]
    )
    p = tmp_path / "m.npz"
    np.savez(p, **{f"a{j}": 0.1 * j * np.eye(2) + np.diag([0.5], 1) for j in range(5)})
    runner = CliRunner()
    out = str(tmp_path / "f.png")
    assert runner.invoke(cli, ["transient", str(p), "-o", out, "-q"]).exit_code == 0
    assert calls == ["panels"]
    assert runner.invoke(cli, ["transient", str(p), "--one-axes", "-o", out, "-q"]).exit_code == 0
    assert calls == ["panels"]


def _slow(rho: float = 0.999, b: float = 2.0, n: int = 40) -> np.ndarray:
    """A hump at small k that decays slowly: a normal part near 1 and a non-normal block."""
    A = np.diag(np.full(n, 0.3))
    A[0, 0] = rho
    A[1, 2] = b
    A[2, 2] = 0.5
    A[1, 1] = 0.5
    return A


def test_k_axis_is_symlog_when_the_powers_run_far_past_the_peaks():
    # humps at k = 2 and 39 sat in the first 2 % of a linear axis to k = 2000
    tg = transient_growth(_slow(), kmax=2000)
    assert tg.peak_k < 20
    ax = plot_transient([tg], ["slow"])
    assert ax.get_xscale() == "symlog"
    lo, hi = ax.get_xlim()
    assert lo < 0 and 2000 < hi <= 2200
    ax = plot_transient([transient_growth(J, kmax=50)], ["J"])
    assert ax.get_xscale() == "linear"
    ax = plot_transient([tg], ["slow"], kscale="linear")
    assert ax.get_xscale() == "linear"
    with pytest.raises(ValueError, match="kscale"):
        plot_transient([tg], kscale="log2")


def test_y_range_fits_the_curves_and_e_n_K_far_above_is_marked_not_drawn():
    # e n K ~ 1000 against a peak of 2.6 set the range: six decades shown, the data in the bottom 0.4
    A = _slow()
    tg, kr = transient_growth(A, kmax=200), kreiss_constant(A)
    lo_K, hi_K = kr.bracket
    assert hi_K > 10 * max(tg.peak, lo_K)
    fig, ax = plt.subplots()
    plot_transient([tg], ["slow"], kreiss=[kr], ax=ax)
    y0, y1 = ax.get_ylim()
    assert y1 < hi_K and y1 >= max(tg.peak, lo_K) and y0 <= np.min(tg.norms)
    assert np.log10(y1 / y0) < 2.5  # the data fill the axes
    flat = {float(ln.get_ydata()[0]) for ln in ax.get_lines() if len(ln.get_ydata()) == 2}
    assert lo_K in flat and hi_K not in flat
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(r"$e\,n\,K = " in lab and "above" in lab for lab in labels)
    assert r"$e\,n\,K$" not in labels  # no line of that style drawn
    arrows = [ln for ln in ax.get_lines() if ln.get_marker() == r"$\uparrow$"]
    assert len(arrows) == 1


def test_unproved_peak_is_a_lower_bound_in_the_legend():
    tg = transient_growth(J, kmax=15)  # ||J^15|| > 1: the powers stopped before proving the peak
    assert not tg.sup_proved
    ax = plot_transient([tg], ["J"])
    (label,) = [t.get_text() for t in ax.get_legend().get_texts() if t.get_text().startswith("J")]
    assert label.startswith("J: peak ≥")
    proved = transient_growth(J, kmax=200)
    assert proved.sup_proved
    ax = plot_transient([proved], ["J"])
    (label,) = [t.get_text() for t in ax.get_legend().get_texts() if t.get_text().startswith("J")]
    assert "≥" not in label and f"at k={proved.peak_k}" in label


def test_peak_prints_only_the_digits_rounding_settles():
    from dataclasses import replace

    tg = transient_growth(J, kmax=200)  # peak 11.6355 at k = 9, proved
    assert tg.sup_proved and tg.peak_error < 1e-9

    def label(err):
        fuzzy = replace(tg, norm_errors=np.full(tg.norms.shape, err))
        ax = plot_transient([fuzzy], ["J"])
        return next(t.get_text() for t in ax.get_legend().get_texts() if t.get_text().startswith("J"))

    assert label(0.0) == "J: peak 11.6 at k=9"
    assert label(0.05) == "J: peak 12 at k=9"  # 11.59 .. 11.69: the third digit is not settled
    assert label(0.3) == "J: peak ~12 at k=9"  # not even the second


def test_shared_bracket_levels_are_drawn_once_in_grey():
    # K = 1 for every gate: three coloured lines on top of each other looked like one gate's
    mats = [np.diag([0.5, 0.3]), np.diag([0.4, -0.2]), J]
    tgs = [transient_growth(A, kmax=60) for A in mats]
    krs = [kreiss_constant(A) for A in mats]
    ax = plot_transient(tgs, ["a", "b", "J"], kreiss=krs)
    flat = [ln for ln in ax.get_lines() if len(ln.get_ydata()) == 2 and len(set(ln.get_ydata())) == 1]
    ones = [ln for ln in flat if abs(ln.get_ydata()[0] - 1.0) < 1e-9]
    assert len(ones) == 1 and ones[0].get_color() == "0.35"
    jK = [ln for ln in flat if abs(ln.get_ydata()[0] - krs[2].bracket[0]) < 1e-9]
    assert len(jK) == 1 and jK[0].get_color() != "0.35"  # J's own K: its colour


def test_one_tensor_in_the_title_and_gates_in_the_legend():
    tgs = [transient_growth(A, kmax=40) for A in (J, N)]
    ax = plot_transient(tgs, ["rnn.weight_hh_l0[forget]", "rnn.weight_hh_l0[cell]"], title="t")
    assert ax.get_title() == "t\nrnn.weight_hh_l0"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lab.startswith("forget: peak") for lab in labels)
    assert not any("weight_hh" in lab for lab in labels)


def test_panels_of_one_tensor_share_y_and_x():
    from spectra.plot.transient import plot_transient_panels

    mats = [J, N, 0.5 * J, np.diag([0.2, 0.1])]
    labels = [f"w[{g}]" for g in ("input", "forget", "cell", "output")] + ["other"]
    tgs = [transient_growth(A, kmax=40) for A in mats] + [transient_growth(2 * J, kmax=40)]
    axes = plot_transient_panels(tgs, labels)
    first = axes[0]
    assert all(first.get_shared_y_axes().joined(first, ax) for ax in axes[1:4])
    assert not first.get_shared_y_axes().joined(first, axes[4])  # another tensor: its own range
    assert all(first.get_shared_x_axes().joined(first, ax) for ax in axes[1:])
    assert len({ax.get_ylim() for ax in axes[:4]}) == 1
    y0, y1 = first.get_ylim()
    assert y1 >= max(t.peak for t in tgs[:4]) and y0 <= min(np.min(t.norms) for t in tgs[:4])


def test_prefer_panels_for_peaks_far_apart(tmp_path, monkeypatch):
    from spectra.plot.transient import prefer_panels

    big = transient_growth(np.diag([3.0e6, 0.5]))
    small = transient_growth(J, kmax=60)
    assert prefer_panels([big, small]) and not prefer_panels([small, transient_growth(N, kmax=60)])
    assert not prefer_panels([big])

    from click.testing import CliRunner
    from spectra_cli.main import cli

    import spectra.plot.transient as pt

    calls = []
    monkeypatch.setattr(
        pt, "plot_transient_panels", lambda *a, **k: calls.append("panels") or [plt.figure().gca()]
    )
    p = tmp_path / "m.npz"
    np.savez(p, big=np.diag([3.0e6, 0.5]), J=J)
    out = str(tmp_path / "f.png")
    assert CliRunner().invoke(cli, ["transient", str(p), "--no-kreiss", "-o", out, "-q"]).exit_code == 0
    assert calls == ["panels"]
    res = CliRunner().invoke(cli, ["transient", str(p), "--no-kreiss", "--one-axes", "-o", out, "-q"])
    assert res.exit_code == 0 and calls == ["panels"]
