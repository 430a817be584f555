"""Drawings of transient growth and of the numerical range.

:func:`plot_transient` draws ``||A^k||_2`` against ``k`` (log scale) with the
spectral rate ``rho^k`` and, when Kreiss results are given, the Kreiss bracket
``K <= sup_k ||A^k|| <= e n K``, several matrices on one axes;
:func:`plot_transient_panels` draws the same with one panel per matrix (e.g.
per gate); :func:`plot_numerical_range` overlays the
boundary of the field of values on an existing axes (e.g. a pseudospectra
plot). The numbers come from :mod:`spectra.kreiss` and
:mod:`spectra.numerical_range`; nothing is computed here beyond what those
objects hold (except the boundary of ``W(A)`` when a matrix is passed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["plot_numerical_range", "plot_transient", "plot_transient_panels", "prefer_panels"]


def _new_axes():
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(6.4, 4.2))
    return ax


#: Okabe & Ito's colour-blind-safe palette (Wong, Nature Methods 8, 441 (2011)), less black (the
#: eigenvalues' and notes' colour) and with the yellow, faint on white, last
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")

#: markers of the curves, so that they differ by more than colour (in greyscale, for colour-blind readers)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

#: the colour of the lines that are no one matrix's (rho^k, K and e n K of many curves, legend keys)
NEUTRAL = "0.35"

#: panels get their own k range when the longest series is this many times the shortest
OWN_K_RATIO = 3.0


def _colors(m: int) -> list:
    """`m` distinguishable colours: Okabe-Ito up to 7, tab20 or a colormap beyond."""
    import matplotlib as mpl

    # no greys: grey is the legend's colour for the line styles (rho^k, K, e n K)
    if m <= len(OKABE_ITO):
        return list(OKABE_ITO[:m])
    if m <= 18:
        return [mpl.colormaps["tab20"](i) for i in range(20) if i not in (14, 15)][:m]
    return [mpl.colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, m)]


def _decade_ticks(ax) -> None:
    """Major ticks of a log y axis every 1, 2, 5, 10, 20, 50 ... decades (at most about 7 of them).

    Under a decade and a half: ticks at 1, 2, 5 times powers of ten, labelled as plain numbers.
    """
    from matplotlib.ticker import LogLocator, NullLocator

    lo, hi = ax.get_ylim()
    if not (0 < lo < hi and math.isfinite(hi)):
        return
    span = math.log10(hi) - math.log10(lo)
    if span < 1.5:
        # a range fitted to the curves may span less than two decades: ticks at 1, 2, 5 (and 1.5, 3,
        # 7 for less than one) with plain numbers, not "3 x 10^0" on minor ticks
        from matplotlib.ticker import FuncFormatter, NullFormatter

        subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0) if span < 0.7 else (1.0, 2.0, 5.0)
        ax.yaxis.set_major_locator(LogLocator(base=10.0, subs=subs, numticks=12))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        return
    stride = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500) if span / s <= 7)
    if stride > 1:
        ax.yaxis.set_major_locator(LogLocator(base=10.0**stride, numticks=12))
        ax.yaxis.set_minor_locator(NullLocator())


#: the k axis turns symlog (linear up to :data:`SYMLOG_LINTHRESH`) when the powers run this many
#: times past the latest peak: humps at k = 2 and 39 sat in the first 2 % of a linear axis to 2000
SYMLOG_RATIO = 20.0

#: the linear part of a symlog k axis
SYMLOG_LINTHRESH = 10.0

#: peaks this many times apart do not share one log axis well: :func:`prefer_panels` says so
PANELS_PEAK_RATIO = 1e6

#: e n K more than this many times the highest curve (or K) is marked at the top edge, not drawn
#: (e n K ~ 1000 against a peak of 2.6 flattened every curve into the bottom 5 % of the axes)
UPPER_HEADROOM = 10.0

#: brackets of two matrices this close (relative) are one line
SAME_LEVEL = 1e-3


def _fmt(x: float, digits: int) -> str:
    """`x` to `digits` significant figures, as ``%g`` writes it."""
    return f"{x:.{digits}g}"


def _fmt_floor(x: float, digits: int, *, up: bool = False) -> str:
    """`x` rounded down (up, with `up`) to `digits` significant figures: a bound stays a bound."""
    if not math.isfinite(x) or x <= 0:
        return _fmt(x, digits)
    from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

    d = Decimal(x)
    q = Decimal(1).scaleb(d.adjusted() - digits + 1)
    return _fmt(float(d.quantize(q, rounding=ROUND_CEILING if up else ROUND_FLOOR)), digits)


def _fmt_ceil(x: float, digits: int) -> str:
    """`x` rounded up to `digits` significant figures (an upper bound such as ``e n K``)."""
    return _fmt_floor(x, digits, up=True)


def _fmt_settled(x: float, err: float, digits: int = 3) -> str:
    """`x` known to within `err`: the digits (at most `digits`) both ends of ``x -+ err`` share."""
    if not (err > 0 and math.isfinite(err)):
        return _fmt(x, digits)
    for d in range(digits, 0, -1):
        if _fmt(x - err, d) == _fmt(x + err, d):
            text = _fmt(x, d)
            # "1e+01" for 11.6 +- 0.3 says less than "~12"
            return text if "e" not in text or "e" in _fmt(x, digits) else "~" + _fmt(x, 2)
    return "~" + _fmt(x, 2)


def _peak_text(tg, big: float) -> tuple[str, int, str]:
    """The legend's words for the peak of `tg`, the k of its marker and the marker.

    ``peak 2.17 at k=2`` when the powers prove it the supremum (to the digits rounding
    settles, :attr:`TransientGrowth.peak_error`); ``peak ≥2.17`` rounded down when they were
    stopped first (``sup_proved`` False: a lower bound, as the tables print it); beyond `big`
    (what a log axis can show), where the curve stops.
    """
    err = float(getattr(tg, "peak_error", 0.0) or 0.0)
    if tg.peak > big:
        k_mark = int(np.argmax(tg.norms > big))
        text = f"> {big:.0e} from k={k_mark}"
        if not math.isfinite(tg.peak):
            text += f", inf from k={tg.peak_k}"
        return text, k_mark, "^"
    if getattr(tg, "sup_proved", True):
        text = f"peak {_fmt_settled(float(tg.peak), err)} at k={tg.peak_k}"
    else:
        low = float(getattr(tg, "peak_lower", float(tg.peak) - err))  # bands per k, 1 at k = 0
        text = f"peak ≥{_fmt_floor(low, 3)} at k={tg.peak_k}"
    if tg.peak_k == tg.kmax and tg.kmax > 0 and tg.norms[-1] > tg.norms[-2]:
        text += " (still growing)"  # where the powers were stopped, not a peak
    return text, int(tg.peak_k), "o"


def _auto_kscale(results) -> str:
    """``"symlog"`` when the powers run over :data:`SYMLOG_RATIO` times past the latest peak."""
    kmax = max(int(tg.kmax) for tg in results)
    last = max(max(int(tg.peak_k), 1) for tg in results)
    return "symlog" if kmax > SYMLOG_RATIO * max(last, SYMLOG_LINTHRESH / 2) else "linear"


def _peak_range(results, big: float = 1e250) -> float:
    """The ratio of the highest peak to the lowest (peaks beyond `big` count as `big`)."""
    peaks = [min(float(tg.peak), big) for tg in results if tg.peak > 0]
    return max(peaks) / min(peaks) if peaks else 1.0


def prefer_panels(results) -> bool:
    """Whether `results` are better drawn a panel each than on one axes.

    Parameters
    ----------
    results : sequence of TransientGrowth
        From :func:`spectra.kreiss.transient_growth`.

    Returns
    -------
    bool
        True when their peaks differ by more than :data:`PANELS_PEAK_RATIO`
        (a curve reaching 1e250 beside one peaking at 19: the second is a flat
        line at the bottom of 250 decades).
    """
    return len(results) > 1 and _peak_range(results) > PANELS_PEAK_RATIO


def _one_tensor(labels: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(tensor, gates)`` when every label is ``tensor[gate]`` of one tensor (and there are two or more)."""
    if len(labels) < 2 or not all(lab.endswith("]") and "[" in lab for lab in labels):
        return None
    heads = {lab.rsplit("[", 1)[0] for lab in labels}
    if len(heads) != 1:
        return None
    return heads.pop(), [lab.rsplit("[", 1)[1][:-1] for lab in labels]


def _k_limits(ax, kmax: int, scale: str = "linear") -> None:
    """``k`` from 0 to `kmax` on a linear or symlog axis, padded so a marker at either end is whole."""
    from matplotlib.ticker import MaxNLocator

    if scale == "symlog":
        ax.set_xscale("symlog", linthresh=SYMLOG_LINTHRESH, linscale=0.5)
        ax.set_xlim(-0.5, max(kmax, 1) * 1.08)
        return
    pad = max(0.4, 0.03 * kmax)
    ax.set_xlim(-pad, max(kmax, 1) + pad)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True, min_n_ticks=2))


def _visible(values: np.ndarray, tiny: float, big: float) -> np.ndarray:
    """`values` with what a log axis cannot show (0, below `tiny`, above `big`) as NaN (a gap)."""
    y = np.array(values, dtype=float)
    y[~((y >= tiny) & (y <= big))] = np.nan
    return y


#: what a log axis shows: zeros and norms below TINY, and those above BIG (matplotlib's log scale
#: overflows near the largest float), are left out as gaps
TINY, BIG = 1e-250, 1e250


def _finite_brackets(kreiss) -> list[tuple[float, float]]:
    return [kr.bracket for kr in (kreiss or []) if kr is not None and math.isfinite(kr.value)]


def _y_limits(results, kreiss) -> tuple[float, float] | None:
    """The y range: the curves and ``K`` with a margin, and ``e n K`` only when it is near them.

    ``e n K`` more than :data:`UPPER_HEADROOM` times above the curves and ``K`` is left out
    (marked at the top edge instead); the ``rho^k`` lines may fall below the bottom.
    """
    lowest, highest = math.inf, 0.0
    for tg in results:
        y = _visible(tg.norms, TINY, BIG)
        if np.any(np.isfinite(y)):
            lowest, highest = min(lowest, float(np.nanmin(y))), max(highest, float(np.nanmax(y)))
    if not math.isfinite(lowest):
        return None
    brackets = _finite_brackets(kreiss)
    ref = max([highest, *(min(lo, BIG) for lo, _ in brackets)])
    top = max([ref, *(hi for _, hi in brackets if hi <= UPPER_HEADROOM * ref)])
    lb, lt = math.log10(lowest), math.log10(top)
    span = lt - lb
    return 10.0 ** (lb - max(0.05 * span, 0.12)), 10.0 ** min(lt + max(0.06 * span, 0.12), max(lt, 255.0))


def _draw(ax, results, names, kreiss, *, spectral: bool, kscale: str, ylim) -> dict:
    """The curves, peak markers and Kreiss lines of :func:`plot_transient`; what was drawn."""
    many = len(results) > 3
    colors = _colors(len(results))
    kmax_all = max(int(tg.kmax) for tg in results)
    drawn = {"spectral": False, "K": False, "enK": False, "infinite_k": False, "peaks": [], "off_top": []}
    levels: dict[str, list] = {":": [], "-.": []}
    for i, (tg, name) in enumerate(zip(results, names)):
        k = np.arange(tg.norms.size)
        y = _visible(tg.norms, TINY, BIG)
        text, k_mark, marker = _peak_text(tg, BIG)
        zero = np.flatnonzero(tg.norms == 0)
        if zero.size:  # nilpotent: nothing a log axis can draw from there on
            text += f", = 0 from k={int(zero[0])}"
        drawn["peaks"].append(text)
        if kscale == "symlog":  # evenly spaced on the drawn line, whatever the scale
            every = (0.012 * (i % 8), 0.1)
        else:  # each curve its own marker as well as its colour; short series: every point
            step = 1 if kmax_all <= 20 else max(1, k.size // 8)
            every = (min(i * max(1, step // len(results)), k.size - 1), step)
        (line,) = ax.semilogy(
            k,
            y,
            "-",
            marker=MARKERS[i % len(MARKERS)],
            markevery=every,
            lw=1.6,
            ms=3.5,
            label=f"{name}: {text}",
            color=colors[i],
        )
        color = line.get_color()
        if spectral:
            rate = _visible(tg.spectral_bound, TINY, BIG)
            ax.semilogy(k, rate, "--", lw=1.0, color=color, alpha=0.7)
            drawn["spectral"] |= int(np.count_nonzero(np.isfinite(rate))) >= 2  # a line, not a point
        ax.plot([k_mark], [min(tg.peak, BIG)], marker, color=color, ms=6, mec="k", mew=0.6)
        kr = kreiss[i] if kreiss is not None else None
        if kr is not None and math.isfinite(kr.value):
            levels[":"].append((kr.bracket[0], color))
            levels["-."].append((kr.bracket[1], color))
        elif kr is not None:
            drawn["infinite_k"] = True
    _k_limits(ax, kmax_all, kscale)
    if ylim is not None:
        ax.set_ylim(*ylim)
    top = ax.get_ylim()[1]
    # a level shared by several matrices (K = 1 for every gate) is no one matrix's: drawn once, in
    # grey; so is every level when there are many curves (a dozen colours piled up into mud)
    for ls, lw, key in ((":", 1.0, "K"), ("-.", 0.8, "enK")):
        groups: list[list] = []
        for value, color in levels[ls]:
            g = next((g for g in groups if abs(value - g[0]) <= SAME_LEVEL * max(abs(g[0]), 1e-300)), None)
            if g is None:
                groups.append([value, [color]])
            else:
                g[1].append(color)
        for value, cs in groups:
            color = cs[0] if len(cs) == 1 and not many else NEUTRAL
            if value <= top:
                ax.axhline(value, ls=ls, lw=lw, color=color, alpha=0.8)
                drawn[key] = True
            else:  # e n K far above the curves: an arrow at the top edge, the value in the legend
                drawn["off_top"].append((value, color))
    for j, (_, color) in enumerate(drawn["off_top"]):
        ax.plot(
            [0.975 - 0.04 * j],
            [0.965],
            ls="none",
            marker=r"$\uparrow$",
            ms=10,
            color=color,
            transform=ax.transAxes,
            clip_on=False,
        )
    _decade_ticks(ax)
    ax.set_xlabel(f"k (log scale beyond {SYMLOG_LINTHRESH:g})" if kscale == "symlog" else "k")
    ax.set_ylabel(r"$\|A^k\|_2$")
    ax.grid(True, which="both", alpha=0.3)
    return drawn


def _off_top_label(value: float) -> str:
    return rf"$e\,n\,K = {_fmt_ceil(value, 3)}$ (above the axes)"


def plot_transient(
    results,
    labels: Sequence[str] | None = None,
    *,
    kreiss=None,
    ax=None,
    spectral: bool = True,
    title: str | None = None,
    kscale: Literal["auto", "linear", "symlog"] = "auto",
):
    """Draw ``||A^k||_2`` against ``k`` for one or several matrices.

    Parameters
    ----------
    results : TransientGrowth or sequence of TransientGrowth
        From :func:`spectra.kreiss.transient_growth`.
    labels : sequence of str, optional
        One legend label per result (default ``A1, A2, ...``). When all are
        ``tensor[gate]`` of one tensor, the tensor goes into the title and the
        legend says the gates only.
    kreiss : KreissResult or sequence of (KreissResult or None), optional
        Same length as `results`; draws the Kreiss lower bound ``K`` (dotted)
        and the upper end ``e n K`` (dash-dot) of the bracket for
        ``sup_k ||A^k||`` (Kreiss matrix theorem, Trefethen & Embree 2005,
        Thm 18.1) in the colour of the curve; a level several curves share
        (``K = 1`` for every gate), and every level for more than three
        curves, once in grey. Infinite ``K`` is not drawn. An ``e n K`` more
        than :data:`UPPER_HEADROOM` times above the curves and ``K`` is not
        let stretch the axis: an arrow at the top edge marks it and the
        legend gives its value.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    spectral : bool
        Also draw ``rho(A)^k`` (dashed), the asymptotic rate.
    title : str, optional
        Axes title.
    kscale : {"auto", "linear", "symlog"}
        The ``k`` axis. ``"auto"``: symlog (linear up to
        :data:`SYMLOG_LINTHRESH`) when the powers run more than
        :data:`SYMLOG_RATIO` times past the latest peak, so humps at small
        ``k`` are not squeezed against the left edge; else linear.

    Returns
    -------
    matplotlib Axes
        The axes drawn on. The peak of each curve is marked with a dot and
        its value given in the legend entry: ``peak 2.17 at k=2`` with the
        digits rounding settles (:attr:`TransientGrowth.peak_error`), or
        ``peak ≥2.17`` (rounded down) when the powers were stopped before
        proving it the supremum (``sup_proved`` False). Norms a log axis
        cannot show are left out, as a gap: zeros (nilpotent matrices) and
        norms beyond 1e250 (the curve stops at a triangle; the legend says
        from which k the norms overflow). Curves differ by colour (Okabe-Ito
        up to seven, then tab20 or a colormap) and by marker. The y range
        fits the curves and ``K``; the legend, in the axis labels' notation,
        sits beside the axes and lists only lines drawn. The log axis is
        ticked every 1, 2, 5, 10, 20 ... decades.

    Raises
    ------
    ValueError
        If `labels` or `kreiss` do not have one entry per result, or `kscale`
        is not one of the above.
    """
    if not isinstance(results, (list, tuple)):
        results = [results]
    if kreiss is not None and not isinstance(kreiss, (list, tuple)):
        kreiss = [kreiss]
    labels = list(labels) if labels is not None else [f"A{i + 1}" for i in range(len(results))]
    if len(labels) != len(results):
        raise ValueError(f"labels has {len(labels)} entries for {len(results)} results")
    if kreiss is not None and len(kreiss) != len(results):
        raise ValueError(f"kreiss has {len(kreiss)} entries for {len(results)} results")
    if kscale not in ("auto", "linear", "symlog"):
        raise ValueError(f"kscale must be 'auto', 'linear' or 'symlog', got {kscale!r}")
    if ax is None:
        ax = _new_axes()
    one = _one_tensor(labels)
    names = one[1] if one else labels
    if one:  # one tensor's gates: its name once, in the title, and the gates in the legend
        title = f"{title}\n{one[0]}" if title else one[0]
    scale = _auto_kscale(results) if kscale == "auto" else kscale
    drawn = _draw(
        ax, results, names, kreiss, spectral=spectral, kscale=scale, ylim=_y_limits(results, kreiss)
    )
    handles, _ = ax.get_legend_handles_labels()
    extra = _style_handles(drawn)
    # beside the axes: a legend inside covered curves (or the e n K line) wherever it went
    ax.legend(
        handles=handles + extra,
        fontsize=7 if len(handles) + len(extra) > 8 else 8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
    )
    if title:
        ax.set_title(title)
    return ax


def _style_handles(drawn: dict, *, curve: bool = False, values: bool = True) -> list:
    """Legend keys of the line styles, in mathtext like the axis labels; only for lines drawn.

    An ``e n K`` above the axes is listed with its value (`values`) or, in panels, as the arrow's key.
    """
    from matplotlib.lines import Line2D

    out = []
    if curve:
        out.append(Line2D([], [], ls="-", color=NEUTRAL, label=r"$\|A^k\|_2$ (peak marked)"))
    if drawn["spectral"]:
        out.append(Line2D([], [], ls="--", color=NEUTRAL, label=r"$\rho(A)^k$"))
    if drawn["K"]:
        out.append(Line2D([], [], ls=":", color=NEUTRAL, label=r"Kreiss $K$"))
    if drawn["enK"]:
        out.append(Line2D([], [], ls="-.", color=NEUTRAL, label=r"$e\,n\,K$"))
    if values:
        for value, color in drawn["off_top"]:
            out.append(
                Line2D(
                    [], [], ls="none", marker=r"$\uparrow$", ms=9, color=color, label=_off_top_label(value)
                )
            )
    elif drawn["off_top"]:
        out.append(
            Line2D(
                [],
                [],
                ls="none",
                marker=r"$\uparrow$",
                ms=9,
                color=NEUTRAL,
                label=r"$e\,n\,K$ above the axes",
            )
        )
    if drawn["infinite_k"]:
        out.append(Line2D([], [], ls="none", label=r"$K = \infty$ where $\rho(A) \geq 1$: no Kreiss bracket"))
    return out


def plot_transient_panels(
    results,
    labels: Sequence[str] | None = None,
    *,
    kreiss=None,
    ncols: int | None = None,
    spectral: bool = True,
    title: str | None = None,
    fig=None,
):
    """Draw ``||A^k||_2`` against ``k`` with one panel per matrix (e.g. one per gate).

    Each panel is :func:`plot_transient` for one matrix: its ``||A^k||``
    curve, ``rho^k`` (dashed), the Kreiss lower bound ``K`` (dotted) and
    ``e n K`` (dash-dot) when `kreiss` is given, and the peak marked, on a
    log ``y`` axis; the panel's title gives the peak (and an ``e n K`` above
    the axes). The panels share the ``k`` axis (and its scale) when the
    longest series is at most :data:`OWN_K_RATIO` times the shortest; else
    each has its own. Panels of one tensor (labels ``tensor[gate]``) share
    the ``y`` axis, so that its gates can be compared.

    Parameters
    ----------
    results : TransientGrowth or sequence of TransientGrowth
        From :func:`spectra.kreiss.transient_growth`.
    labels : sequence of str, optional
        One panel title per result (default ``A1, A2, ...``).
    kreiss : KreissResult or sequence of (KreissResult or None), optional
        Same length as `results` (None entries draw no bracket).
    ncols : int, optional
        Panels per row (default: the gates of a tensor, rows the tensors, when
        labels look like ``tensor[gate]``; else up to 3). One legend for the
        figure, below the panels, explains the line styles.
    spectral : bool
        Also draw ``rho(A)^k``.
    title : str, optional
        Figure title.
    fig : matplotlib Figure, optional
        An empty figure to draw in; a new one (sized to the grid) when None.

    Returns
    -------
    list of matplotlib Axes
        One per result, in order (unused grid cells are removed).

    Raises
    ------
    ValueError
        If `labels` or `kreiss` do not have one entry per result, there are
        no results, or `ncols` is not positive.
    """
    import matplotlib.pyplot as plt

    if not isinstance(results, (list, tuple)):
        results = [results]
    if kreiss is not None and not isinstance(kreiss, (list, tuple)):
        kreiss = [kreiss]
    m = len(results)
    if m == 0:
        raise ValueError("no results to draw")
    labels = list(labels) if labels is not None else [f"A{i + 1}" for i in range(m)]
    if len(labels) != m:
        raise ValueError(f"labels has {len(labels)} entries for {m} results")
    if kreiss is not None and len(kreiss) != m:
        raise ValueError(f"kreiss has {len(kreiss)} entries for {m} results")
    if ncols is None:
        ncols = _gates_per_row(labels)
    if ncols < 1:
        raise ValueError(f"ncols must be positive, got {ncols}")
    ncols = min(ncols, m)
    nrows = math.ceil(m / ncols)
    if fig is None:
        fig = plt.figure(figsize=(3.6 * ncols + 0.6, 2.9 * nrows + 1.1), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[m:]:
        ax.remove()
    axes = axes[:m]
    from spectra.plot.pseudospectra import _wrap

    kmaxes = [max(int(tg.kmax), 1) for tg in results]
    # one k range for all when the series are of like length; else each panel its own (a series
    # of 12 powers squeezed into the first 4 % of a shared axis of 300 shows nothing)
    shared = max(kmaxes) <= OWN_K_RATIO * min(kmaxes)
    kscale = _auto_kscale(results) if shared else None
    kr_of = (lambda i: kreiss[i]) if kreiss is not None else (lambda i: None)  # noqa: E731
    # the gates of one tensor share the y axis: one range fitted to all of them
    group = _tensor_groups(labels)
    ylims = {}
    for members in set(group):
        idx = [i for i in range(m) if group[i] == members]
        ylims[members] = _y_limits([results[i] for i in idx], [kr_of(i) for i in idx])
    summary = {"spectral": False, "K": False, "enK": False, "infinite_k": False, "off_top": []}
    for i, (ax, tg, label) in enumerate(zip(axes, results, labels)):
        scale = kscale or _auto_kscale([tg])
        ylim = ylims[group[i]] if group[i] is not None else _y_limits([tg], [kr_of(i)])
        drawn = _draw(ax, [tg], [label], [kr_of(i)], spectral=spectral, kscale=scale, ylim=ylim)
        for key in ("spectral", "K", "enK", "infinite_k"):
            summary[key] |= drawn[key]
        summary["off_top"] += drawn["off_top"]
        head = _wrap(label, 34 if ncols > 2 else 48)  # long ids on several lines, not into the next title
        sub = drawn["peaks"][0]
        if drawn["off_top"]:
            sub += rf", $e\,n\,K$ = {_fmt_ceil(drawn['off_top'][0][0], 3)} $\uparrow$"
        ax.set_title(f"{head}\n{sub}", fontsize=9)
        if i % ncols:
            ax.set_ylabel("")
    for i, ax in enumerate(axes):
        if shared and i:
            ax.sharex(axes[0])
        first = group.index(group[i]) if group[i] is not None else i
        if first != i:
            ax.sharey(axes[first])
            if i % ncols and group[i - 1] == group[i]:  # its left neighbour shows the same y ticks
                ax.tick_params(which="both", labelleft=False)
        if shared and i + ncols < m:
            ax.set_xlabel("")
            ax.tick_params(labelbottom=False)
    styles = _style_handles(summary, curve=True, values=False)
    fig.legend(handles=styles, loc="outside lower center", ncols=len(styles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return axes


def _tensor_groups(labels: Sequence[str]) -> list[str | None]:
    """Each label's tensor (``tensor`` of ``tensor[gate]``) when another gate of it is there, else None."""
    heads = [lab.rsplit("[", 1)[0] if lab.endswith("]") and "[" in lab else None for lab in labels]
    return [h if h is not None and heads.count(h) > 1 else None for h in heads]


def _gates_per_row(labels: Sequence[str]) -> int:
    """Panels per row: the gates of one tensor when labels look like ``tensor[gate]``, else up to 3."""
    from spectra.plot.pseudospectra import tensor_rows

    rows = tensor_rows(list(labels))
    if rows is not None and len({len(r) for r in rows}) == 1:
        return len(rows[0])
    return min(3, len(labels))


def plot_numerical_range(
    A_or_points,
    *,
    ax=None,
    npts: int = 200,
    color: str = "k",
    linestyle: str = "-",
    label: str | None = "W(A)",
):
    """Draw the boundary of the numerical range ``W(A)`` on `ax`.

    Parameters
    ----------
    A_or_points : (n, n) array_like or (m,) complex array_like
        A square matrix (its boundary is computed by
        :func:`spectra.numerical_range.numerical_range` with `npts` angles) or
        boundary points already computed.
    ax : matplotlib Axes, optional
        Where to draw (e.g. a pseudospectra plot); a new figure when None.
    npts : int
        Number of boundary points when a matrix is given.
    color, linestyle : str
        Line style of the closed boundary curve.
    label : str or None
        Legend label.

    Returns
    -------
    matplotlib Axes
        The axes drawn on (aspect ratio left as it was; set it equal for a
        true picture of ``W(A)``).

    Raises
    ------
    ValueError
        If the input is neither a square matrix nor a 1-D array of points.
    """
    arr = np.asarray(A_or_points)
    if arr.ndim == 2:
        from spectra.numerical_range import numerical_range

        pts = numerical_range(arr, npts=npts)
    elif arr.ndim == 1:
        pts = arr.astype(np.complex128)
    else:
        raise ValueError(f"expected a square matrix or 1-D boundary points, got shape {arr.shape}")
    if ax is None:
        ax = _new_axes()
        ax.set_aspect("equal")
    closed = np.concatenate([pts, pts[:1]])
    ax.plot(closed.real, closed.imag, linestyle, color=color, lw=1.2, label=label)
    return ax
