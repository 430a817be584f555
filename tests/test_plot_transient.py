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
    assert any("J" in s for s in labels) and "e·n·K" in labels


def test_plot_transient_single_and_new_figure():
    ax = plot_transient(transient_growth(J, kmax=10))
    assert ax.figure is not None and len(ax.get_lines()) >= 2


def test_plot_transient_skips_infinite_kreiss():
    A = np.array([[1.0, 1.0], [0.0, 0.2]])
    ax = plot_transient([transient_growth(A, kmax=20)], kreiss=[kreiss_constant(A)])
    assert all(np.all(np.isfinite(ln.get_ydata())) for ln in ax.get_lines())


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
