"""Drawings of transient growth and of the numerical range.

:func:`plot_transient` draws ``||A^k||_2`` against ``k`` (log scale) with the
spectral rate ``rho^k`` and, when Kreiss results are given, the Kreiss bracket
``K <= sup_k ||A^k|| <= e n K``, several matrices on one axes;
:func:`plot_transient_panels` draws the same with one panel per matrix (e.g.
per gate), sharing the ``k`` axis; :func:`plot_numerical_range` overlays the
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


def _colors(m: int) -> list:
    """`m` distinguishable colours: matplotlib's default cycle, tab20 or a colormap beyond."""
    import matplotlib as mpl

    # no greys: grey is the legend's colour for the line styles (rho^k, K, e n K)
    if m <= 9:
        return [f"C{i}" for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)[:m]]
    if m <= 18:
        return [mpl.colormaps["tab20"](i) for i in range(20) if i not in (14, 15)][:m]
    return [mpl.colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, m)]


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
        Thm 18.1) in the colour of the curve. Infinite ``K`` is not drawn.
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
        triangle; the note says from which k the norms overflow). With more
        than ten curves the colours come from tab20 (or a colormap), and a
        legend of more than eight entries goes beside the axes.

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
    drawn_kreiss = False
    infinite_k = False
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
        name = f"{label}: ‖A^k‖" + (f" ({', '.join(parts)})" if parts else "")
        # short series (a few powers): the points themselves, not only a line between them
        style = "-o" if kmax_all <= 20 else "-"
        (line,) = ax.semilogy(k, y, style, lw=1.6, ms=3, label=name, color=colors[i])
        color = line.get_color()
        if spectral:
            ax.semilogy(k, _visible(tg.spectral_bound, tiny, big), "--", lw=1.0, color=color, alpha=0.7)
        ax.plot([k_mark], [min(tg.peak, big)], marker, color=color, ms=5)
        if not many:
            notes.append((note, k_mark, min(tg.peak, big), color, i, marker == "^"))
        kr = kreiss[i] if kreiss is not None else None
        if kr is not None and math.isfinite(kr.value):
            lo, hi = kr.bracket
            ax.axhline(lo, ls=":", lw=1.0, color=color)
            ax.axhline(hi, ls="-.", lw=0.8, color=color, alpha=0.7)
            drawn_kreiss = True
        elif kr is not None:
            infinite_k = True
    ax.set_xlim(0, max(kmax_all, 1))
    if kmax_all <= 20:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if math.isfinite(lowest):
        # the rho^k lines may fall far below every ||A^k|| curve: do not let them squash it
        bottom = ax.get_ylim()[0]
        ax.set_ylim(bottom=max(bottom, lowest / 10))
    bottom, top = ax.get_ylim()
    if notes and top > bottom > 0:
        # headroom above the highest peak for its note (log axis: a fraction of the decades shown)
        lt, lb = math.log10(top), math.log10(bottom)
        ax.set_ylim(top=10.0 ** max(lt, min(lt + (lt - lb) * (0.08 + 0.06 * len(notes)), 255.0)))
    for note, k_mark, y_mark, color, i, over in notes:
        # notes of peaks in the right part of the axes run leftwards, so none crosses the frame;
        # an overflow marker sits at the top of the axis: its note goes below it
        right = k_mark > 0.55 * max(kmax_all, 1)
        ax.annotate(
            note,
            (k_mark, y_mark),
            textcoords="offset points",
            xytext=(-6 if right else 6, -8 - 11 * i if over else 6 + 11 * i),  # staggered
            ha="right" if right else "left",
            va="top" if over else "baseline",
            fontsize=8,
            color=color,
        )
    ax.set_xlabel("k")
    ax.set_ylabel(r"$\|A^k\|_2$")
    handles, _ = ax.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    extra = []
    if spectral:
        extra.append(Line2D([], [], ls="--", color="gray", label="ρ(A)^k"))
    if drawn_kreiss:
        extra.append(Line2D([], [], ls=":", color="gray", label="Kreiss K"))
        extra.append(Line2D([], [], ls="-.", color="gray", label="e·n·K"))
    if infinite_k:
        extra.append(Line2D([], [], ls="none", label="K = ∞ where ρ(A) ≥ 1: no Kreiss bracket"))
    if len(handles) + len(extra) > 8:
        # a long legend would cover the curves: beside the axes instead
        ax.legend(handles=handles + extra, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(handles=handles + extra, fontsize=8, loc="best")
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


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
    ``e n K`` (dash-dot) when `kreiss` is given, and the peak marked; all
    panels share the ``k`` axis and have a log ``y`` axis.

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
    grid = fig.subplots(nrows, ncols, sharex=True, squeeze=False)
    axes = list(grid.ravel())
    for ax in axes[m:]:
        ax.remove()
    axes = axes[:m]
    from spectra.plot.pseudospectra import _wrap

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
        if ax.get_legend() is not None:
            ax.get_legend().remove()  # one legend for the figure explains the line styles
        if i < m - ncols:
            ax.set_xlabel("")
            ax.tick_params(labelbottom=False)
        else:
            ax.tick_params(labelbottom=True)
        if i % ncols:
            ax.set_ylabel("")
    # the shared k axis spans the longest series (each panel had set it to its own)
    for ax in axes:
        ax.set_xlim(0, max(max(int(tg.kmax) for tg in results), 1))
    from matplotlib.lines import Line2D

    styles = [Line2D([], [], ls="-", color="gray", label="‖A^k‖₂ (peak marked)")]
    if spectral:
        styles.append(Line2D([], [], ls="--", color="gray", label="ρ(A)^k"))
    drawn = [kr for kr in (kreiss or []) if kr is not None]
    if any(math.isfinite(kr.value) for kr in drawn):
        styles += [
            Line2D([], [], ls=":", color="gray", label="Kreiss K"),
            Line2D([], [], ls="-.", color="gray", label="e·n·K"),
        ]
    if any(not math.isfinite(kr.value) for kr in drawn):
        styles.append(Line2D([], [], ls="none", label="K = ∞ where ρ(A) ≥ 1: no Kreiss bracket"))
    fig.legend(handles=styles, loc="outside lower center", ncols=len(styles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return axes


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
