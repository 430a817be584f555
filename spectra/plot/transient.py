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

import numpy as np

__all__ = ["plot_numerical_range", "plot_transient", "plot_transient_panels"]


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
    """Major ticks of a log y axis every 1, 2, 5, 10, 20, 50 ... decades (at most about 7 of them)."""
    from matplotlib.ticker import LogLocator, NullLocator

    lo, hi = ax.get_ylim()
    if not (0 < lo < hi and math.isfinite(hi)):
        return
    span = math.log10(hi) - math.log10(lo)
    stride = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500) if span / s <= 7)
    if stride > 1:
        ax.yaxis.set_major_locator(LogLocator(base=10.0**stride, numticks=12))
        ax.yaxis.set_minor_locator(NullLocator())


def _k_limits(ax, kmax: int) -> None:
    """``k`` from 0 to `kmax`, padded so a marker at either end is not cut by the frame; few ticks."""
    from matplotlib.ticker import MaxNLocator

    pad = max(0.4, 0.03 * kmax)
    ax.set_xlim(-pad, max(kmax, 1) + pad)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True, min_n_ticks=2))


def _visible(values: np.ndarray, tiny: float, big: float) -> np.ndarray:
    """`values` with what a log axis cannot show (0, below `tiny`, above `big`) as NaN (a gap)."""
    y = np.array(values, dtype=float)
    y[~((y >= tiny) & (y <= big))] = np.nan
    return y


def plot_transient(
    results,
    labels: Sequence[str] | None = None,
    *,
    kreiss=None,
    ax=None,
    spectral: bool = True,
    title: str | None = None,
):
    """Draw ``||A^k||_2`` against ``k`` for one or several matrices.

    Parameters
    ----------
    results : TransientGrowth or sequence of TransientGrowth
        From :func:`spectra.kreiss.transient_growth`.
    labels : sequence of str, optional
        One legend label per result (default ``A1, A2, ...``).
    kreiss : KreissResult or sequence of (KreissResult or None), optional
        Same length as `results`; draws the Kreiss lower bound ``K`` (dotted)
        and the upper end ``e n K`` (dash-dot) of the bracket for
        ``sup_k ||A^k||`` (Kreiss matrix theorem, Trefethen & Embree 2005,
        Thm 18.1) in the colour of the curve (grey for more than three
        curves). Infinite ``K`` is not drawn.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    spectral : bool
        Also draw ``rho(A)^k`` (dashed), the asymptotic rate.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib Axes
        The axes drawn on. The peak of each curve is marked with a dot and
        its value noted beside it (for more than three curves, in the legend
        instead). Norms a log axis cannot show are left out, as a gap: zeros
        (nilpotent matrices) and norms beyond 1e250 (the curve stops at a
        triangle; the note says from which k the norms overflow). Curves
        differ by colour (Okabe-Ito up to seven, then tab20 or a colormap)
        and by marker; with more than three curves the Kreiss lines are grey,
        one per distinct value. The legend, in the axis labels' notation,
        sits beside the axes (it covered curves inside them) and lists only
        lines drawn. ``k`` is padded so a marker at either end is whole; the
        log axis is ticked every 1, 2, 5, 10, 20 ... decades.

    Raises
    ------
    ValueError
        If `labels` or `kreiss` do not have one entry per result.
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
    if ax is None:
        ax = _new_axes()
    # norms beyond the largest float are inf, and matplotlib's log scale overflows near
    # it: curves stop at `big` (a triangle marks where, the note says from which k);
    # zeros (nilpotent matrices) and values below `tiny` are not drawn either
    tiny, big = 1e-250, 1e250
    many = len(results) > 3  # peak notes would collide: they go into the legend instead
    colors = _colors(len(results))
    brackets: list[tuple[float, float, object]] = []
    infinite_k = False
    spectral_shown = False
    lowest = math.inf
    kmax_all = max(int(tg.kmax) for tg in results)
    notes = []
    for i, (tg, label) in enumerate(zip(results, labels)):
        k = np.arange(tg.norms.size)
        y = _visible(tg.norms, tiny, big)
        if np.any(np.isfinite(y)):
            lowest = min(lowest, float(np.nanmin(y)))
        tail = ""
        if tg.peak <= big:
            note, k_mark, marker = f"{tg.peak:.4g} at k={tg.peak_k}", tg.peak_k, "o"
            if tg.peak_k == tg.kmax and tg.kmax > 0 and tg.norms[-1] > tg.norms[-2]:
                tail = "still growing"  # where the powers were stopped, not a peak
        else:
            k_mark, marker = int(np.argmax(tg.norms > big)), "^"
            tail = f"inf from k={tg.peak_k}" if not math.isfinite(tg.peak) else ""
            note = f"> {big:.0e} from k={k_mark}"
        zero = np.flatnonzero(tg.norms == 0)
        parts = [f"peak {note}" + (f", {tail}" if tail else "")] if many else []
        note += f" ({tail})" if tail else ""
        if zero.size:  # nilpotent: nothing a log axis can draw from there on
            parts.append(f"= 0 from k={int(zero[0])}")
        name = rf"{label}: $\|A^k\|_2$" + (f" ({', '.join(parts)})" if parts else "")
        # each curve its own marker as well as its colour; short series (a few powers): every point
        every = 1 if kmax_all <= 20 else max(1, k.size // 8)
        (line,) = ax.semilogy(
            k,
            y,
            "-",
            marker=MARKERS[i % len(MARKERS)],
            markevery=(min(i * max(1, every // max(1, len(results))), k.size - 1), every),
            lw=1.6,
            ms=3.5,
            label=name,
            color=colors[i],
        )
        color = line.get_color()
        if spectral:
            rate = _visible(tg.spectral_bound, tiny, big)
            ax.semilogy(k, rate, "--", lw=1.0, color=color, alpha=0.7)
            spectral_shown |= int(np.count_nonzero(np.isfinite(rate))) >= 2  # a line, not a point
        ax.plot([k_mark], [min(tg.peak, big)], marker, color=color, ms=6, mec="k", mew=0.6)
        if not many:
            notes.append((note, k_mark, min(tg.peak, big), color, i, marker == "^"))
        kr = kreiss[i] if kreiss is not None else None
        if kr is not None and math.isfinite(kr.value):
            brackets.append((*kr.bracket, color))
        elif kr is not None:
            infinite_k = True
    # the bracket lines: in the curve's colour for a few curves; for many, once per distinct value
    # in a neutral grey (a dozen K of about 1 in a dozen colours piled up into one muddy line)
    seen: list[float] = []
    for lo, hi, color in brackets:
        for value, ls, lw in ((lo, ":", 1.0), (hi, "-.", 0.8)):
            if many and any(abs(value - v) <= 1e-3 * max(abs(v), 1e-300) for v in seen):
                continue
            seen.append(value)
            ax.axhline(value, ls=ls, lw=lw, color=NEUTRAL if many else color, alpha=0.8)
    _k_limits(ax, kmax_all)
    if math.isfinite(lowest):
        # the rho^k lines may fall far below every ||A^k|| curve: do not let them squash it
        bottom = ax.get_ylim()[0]
        ax.set_ylim(bottom=max(bottom, lowest / 10))
    bottom, top = ax.get_ylim()
    if notes and top > bottom > 0:
        # headroom above the highest peak for its note (log axis: a fraction of the decades shown)
        lt, lb = math.log10(top), math.log10(bottom)
        ax.set_ylim(top=10.0 ** max(lt, min(lt + (lt - lb) * (0.08 + 0.06 * len(notes)), 255.0)))
    _decade_ticks(ax)
    x0, x1 = ax.get_xlim()
    for note, k_mark, y_mark, color, i, over in notes:
        # notes of peaks in the right part of the axes run leftwards, so none crosses the frame;
        # an overflow marker sits at the top of the axis: its note goes below it
        right = k_mark > x0 + 0.55 * (x1 - x0)
        ax.annotate(
            note,
            (k_mark, y_mark),
            textcoords="offset points",
            xytext=(-6 if right else 6, -8 - 11 * i if over else 6 + 11 * i),  # staggered
            ha="right" if right else "left",
            va="top" if over else "baseline",
            fontsize=8,
            color=color,
            annotation_clip=True,
        )
    ax.set_xlabel("k")
    ax.set_ylabel(r"$\|A^k\|_2$")
    handles, _ = ax.get_legend_handles_labels()
    extra = _style_handles(spectral_shown, bool(brackets), infinite_k)
    # beside the axes: a legend inside covered curves (or the e n K line) wherever it went
    ax.legend(
        handles=handles + extra,
        fontsize=7 if len(handles) + len(extra) > 8 else 8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
    )
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


def _style_handles(spectral: bool, kreiss: bool, infinite_k: bool, *, curve: bool = False) -> list:
    """Legend keys of the line styles, in mathtext like the axis labels; only for lines drawn."""
    from matplotlib.lines import Line2D

    out = []
    if curve:
        out.append(Line2D([], [], ls="-", color=NEUTRAL, label=r"$\|A^k\|_2$ (peak marked)"))
    if spectral:
        out.append(Line2D([], [], ls="--", color=NEUTRAL, label=r"$\rho(A)^k$"))
    if kreiss:
        out.append(Line2D([], [], ls=":", color=NEUTRAL, label=r"Kreiss $K$"))
        out.append(Line2D([], [], ls="-.", color=NEUTRAL, label=r"$e\,n\,K$"))
    if infinite_k:
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
    log ``y`` axis. The panels share the ``k`` range when the longest series
    is at most :data:`OWN_K_RATIO` times the shortest; else each has its own.

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
        fig = plt.figure(figsize=(3.6 * ncols + 0.6, 2.8 * nrows + 1.0), layout="constrained")
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
    spectral_shown = kreiss_shown = infinite_k = False
    for i, (ax, tg, label) in enumerate(zip(axes, results, labels)):
        plot_transient(
            [tg],
            [label],
            kreiss=[kreiss[i]] if kreiss is not None else None,
            ax=ax,
            spectral=spectral,
            title=_wrap(label, 34 if ncols > 2 else 48),  # long ids on several lines, not into the next title
        )
        ax.title.set_fontsize(9)
        keys = [t.get_text() for t in ax.get_legend().get_texts()]
        spectral_shown |= r"$\rho(A)^k$" in keys
        kreiss_shown |= r"Kreiss $K$" in keys
        infinite_k |= any(t.startswith(r"$K = \infty$") for t in keys)
        ax.get_legend().remove()  # one legend for the figure explains the line styles
        if shared:
            _k_limits(ax, max(kmaxes))  # the notes were placed for the panel's own range: re-place
            _replace_notes(ax)
        below = i + ncols < m
        if shared and below:
            ax.set_xlabel("")
            ax.tick_params(labelbottom=False)
        if i % ncols:
            ax.set_ylabel("")
    styles = _style_handles(spectral_shown, kreiss_shown, infinite_k, curve=True)
    fig.legend(handles=styles, loc="outside lower center", ncols=len(styles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return axes


def _replace_notes(ax) -> None:
    """Put each peak note on the side of its marker that keeps it inside the (new) x range."""
    x0, x1 = ax.get_xlim()
    for t in ax.texts:
        right = t.xy[0] > x0 + 0.55 * (x1 - x0)
        dx, dy = t.xyann
        t.xyann = (-abs(dx) if right else abs(dx), dy)
        t.set_horizontalalignment("right" if right else "left")


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
