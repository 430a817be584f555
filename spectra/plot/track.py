"""Figures of training runs against epoch: :func:`plot_track`.

One panel per figure (spectral radius, relative departure from normality,
distance to instability, Kreiss constant, transient peak); in each, one line
per run and matrix. A matrix keeps its colour across runs and panels; a run
keeps its line style and marker, and its regime names it in the legend. The
numbers come from :func:`spectra.track.track`; nothing is computed here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["PANELS", "plot_track"]

#: (row key, axis label, log scale) of each panel, in drawing order.
PANELS: tuple[tuple[str, str, bool], ...] = (
    ("spectral_radius", r"spectral radius $\rho(A)$", False),
    ("henrici_relative", r"$\mathrm{dep}_F(A)\,/\,\|A\|_F$", False),
    ("distance_to_instability", "distance to instability", True),
    ("kreiss", r"Kreiss constant $K(A)$", True),
    ("transient_peak", r"transient peak $\max_k \|A^k\|_2$", True),
)

_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _short_id(mid: str) -> str:
    """The gate of ``tensor[gate]`` ids (the note of identical series has little room), else the id."""
    return mid[mid.index("[") + 1 : -1] if "[" in mid and mid.endswith("]") else mid


def _short_ids(ids: Sequence[str]) -> dict[str, str]:
    """:func:`_short_id` of each id where that names one matrix only, else the whole id.

    ``rnn.weight_hh_l0[reset]`` and ``gru/recurrent_kernel[reset]`` (a PyTorch file and its
    Keras copy) are both ``reset``: a note saying ``reset = reset`` would not tell them apart.
    """
    short = {m: _short_id(m) for m in ids}
    count: dict[str, int] = {}
    for v in short.values():
        count[v] = count.get(v, 0) + 1
    return {m: v if count[v] == 1 else m for m, v in short.items()}


#: significant digits to which two series count as drawn on top of each other
_SAME_DIGITS = 6

#: most lines of a panel's note of coinciding series (the rest is cut, with how many were left)
_NOTE_LINES = 3


def _wrap_note(text: str, width: int) -> list[str]:
    """`text` in lines of about `width` characters, broken after ``:``, ``=`` or ``;``.

    A series' name (``reset | regular``) stays on one line where it fits; one longer than a
    line is broken at its spaces.
    """
    import re
    import textwrap

    lines: list[str] = []
    for part in re.split(r"(?<=[:;=]) ", text):
        if lines and len(lines[-1]) + 1 + len(part) <= width:
            lines[-1] += " " + part
        else:
            lines.extend(textwrap.wrap(part, width=width, break_on_hyphens=False) or [part])
    return lines


def _fit_note(ax, text, renderer, max_lines: int = _NOTE_LINES) -> None:
    """Wrap the note `text` (a Text on `ax`) to the axes' width, in at most `max_lines` lines.

    Matplotlib's own ``wrap=True`` wraps at the figure's edge, not the panel's: notes ran over
    the next panel. The width is measured with `renderer`, so any font and figure size fit.
    """
    import re

    full = text.get_text()
    room = 0.96 * ax.get_window_extent(renderer).width
    width = max(20, len(full))
    while True:
        lines = _wrap_note(full, width)
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            shown = "\n".join(lines)
            # series not begun in the lines kept (names are separated by " = " and "; ")
            sep = re.compile(r"[=;](?=\s|$)")
            rest = len(sep.findall(full)) - len(sep.findall(shown)) + bool(sep.search(shown[-1:]))
            lines[-1] = lines[-1].rstrip(";=").rstrip() + " ..." + (f" ({rest} more series)" if rest else "")
        text.set_text("\n".join(lines))
        if text.get_window_extent(renderer).width <= room or width <= 20:
            return
        width = max(20, int(width * 0.9))


def _room_under(ax, note, renderer) -> None:
    """Raise the top of `ax`'s y range so that no data point lies under `note` (at the top)."""
    frac = note.get_window_extent(renderer).height / ax.get_window_extent(renderer).height + 0.06
    if frac >= 0.6:  # a note that tall (a tiny panel): leave the range alone
        return
    ys = [
        float(y)
        for line in ax.get_lines()
        if not line.get_label().startswith(_EDGE)  # drawn in axes fractions, not data
        for y in line.get_ydata()
        if y == y
    ]
    lo, hi = ax.get_ylim()
    log = ax.get_yscale() == "log"
    ys = [y for y in ys if lo <= y <= hi and (y > 0 or not log)]
    if not ys:
        return
    f = (lambda v: math.log10(v)) if log else (lambda v: v)
    top = f(max(ys))
    if (top - f(lo)) / (f(hi) - f(lo)) <= 1 - frac:
        return  # the data already stay below the note
    new = f(lo) + (top - f(lo)) / (1 - frac)
    ax.set_ylim(lo, 10**new if log else new)


def _value(v, log: bool) -> float:
    """A plottable float: None, non-finite (and non-positive on a log axis) become NaN (a gap)."""
    if v is None or isinstance(v, str):
        return math.nan
    x = float(v)
    if not math.isfinite(x) or (log and x <= 0):
        return math.nan
    return x


#: smallest marker size (points): with many runs each later run's marker shrank to ~2 px
_MIN_MARKER = 4.0

#: label of the markers on a panel's edge (values a log axis cannot show); data lines never start with "_"
_EDGE = "_edge"


def _marker_size(run_index: int) -> float:
    """Marker size of the `run_index`-th run: smaller for each later run, never below :data:`_MIN_MARKER`."""
    return max(_MIN_MARKER, 6.5 - 1.0 * run_index)


def _edge(v, log: bool) -> str | None:
    """The panel edge where `v` is marked, or None (drawn as data, or missing).

    ``"top"`` for an infinite value (K, the peak of an unstable matrix), ``"bottom"`` for 0 on a
    log panel (its distance to instability).
    """
    if v is None:
        return None
    if isinstance(v, str):
        return "top" if v.strip().lower() in ("inf", "+inf", "infinity") else None
    x = float(v)
    if x == math.inf:
        return "top"
    if log and x == 0.0:
        return "bottom"
    return None


def _draw_edges(ax, edges, colour) -> None:
    """Filled markers on `ax`'s bottom (0) or top (inf) edge at the epochs of `edges`, each edge labelled.

    A log axis has no 0 and no axis has inf: the event (``rho >= 1``) was a gap and went unseen.
    The markers sit in axes fractions (y = 0 or 1, unclipped), so no later change of limits moves them.
    """
    from matplotlib.transforms import blended_transform_factory

    if not edges:
        return
    where = blended_transform_factory(ax.transData, ax.transAxes)
    for side, xs, ri, mj in edges:
        ax.plot(
            xs,
            [0.0 if side == "bottom" else 1.0] * len(xs),
            transform=where,
            linestyle="none",
            marker="v" if side == "bottom" else "^",
            markersize=_marker_size(ri) + 1.0,
            color=colour(mj),
            markeredgecolor="0.15",
            markeredgewidth=0.5,
            clip_on=False,
            zorder=4,
            label=f"{_EDGE} {side}",
        )
    for side in sorted({e[0] for e in edges}):
        bottom = side == "bottom"
        ax.text(
            0.99,
            0.03 if bottom else 0.97,
            "▼ 0 (ρ ≥ 1)" if bottom else "▲ inf (ρ ≥ 1)",
            transform=ax.transAxes,
            ha="right",
            va="bottom" if bottom else "top",
            fontsize="x-small",
            color="0.25",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0},
        )


def plot_track(
    result: Any,
    *,
    figures: Sequence[str] | None = None,
    fig=None,
    title: str | None = None,
):
    """Draw the tracked figures of one or several runs against epoch (or checkpoint index).

    Parameters
    ----------
    result : TrackResult or sequence of dict
        From :func:`spectra.track.track` (or its ``rows``).
    figures : sequence of str, optional
        Row keys to draw, a subset of :data:`PANELS`' keys. Default: every
        panel for which some row has a value (``--fast`` results have two).
    fig : matplotlib Figure, optional
        Figure to draw into (cleared first); a new one when None.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib Figure
        Its data panels are ``fig.axes[:len(panels)]``; each holds one line
        per (run, matrix), x the epoch (of the sidecar, else stored in the
        checkpoint) when every file of the run has one, else the position in
        the run ("checkpoint index"). Non-finite values (an infinite Kreiss
        constant of an unstable matrix) and zeros on a log axis are gaps in
        the lines, and marked: a filled marker on the panel's bottom edge
        for 0 (the distance to instability of a matrix with ``rho >= 1``),
        on its top edge for inf (its K and transient peak), each edge
        labelled; these markers' labels start with ``_edge``. Markers are
        hollow, a shape per run and smaller for each later run (down to
        :data:`_MIN_MARKER` points), so identical series stay visible; a panel where some series coincide
        (to six significant digits; series that are all gaps do not count)
        names them in a note ("coincide: ..."), wrapped to the panel's width
        in at most three lines.

    Raises
    ------
    InvalidArgumentError
        No rows, or an unknown figure name.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from spectra.errors import InvalidArgumentError

    rows = list(getattr(result, "rows", result))
    if not rows:
        raise InvalidArgumentError("result: no rows to draw (every checkpoint failed?)")
    known = {k: (label, log) for k, label, log in PANELS}
    if figures is None:
        keys = [k for k, _, _ in PANELS if any(r.get(k) is not None for r in rows)]
    else:
        bad = [k for k in figures if k not in known]
        if bad:
            raise InvalidArgumentError(f"figures: unknown {bad}; valid: {', '.join(known)}")
        keys = list(figures)

    # a series is a run, split by regime when one folder mixes regimes
    runs = list(dict.fromkeys((r["run"], r["regime"]) for r in rows))
    matrices = list(dict.fromkeys(r["matrix"] for r in rows))
    short = _short_ids(matrices)
    notes = []  # (axes, text) of the panels where series coincide: placed once the layout is done
    by_epoch = {
        s: all(r.get("epoch") is not None for r in rows if (r["run"], r["regime"]) == s) for s in runs
    }
    colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    cmap = plt.get_cmap("tab20") if len(matrices) > len(colours) else None

    def colour(j: int):
        return cmap(j % 20) if cmap is not None else colours[j % len(colours)]

    if all(by_epoch.values()):
        xlabel = "epoch"
    elif not any(by_epoch.values()):
        xlabel = "checkpoint index"  # no epochs: the position of the file in its run
    else:
        xlabel = "epoch (runs without epochs: checkpoint index)"
    ncols = min(3, len(keys) + 1)
    nrows = math.ceil((len(keys) + 1) / ncols)
    if fig is None:
        fig = plt.figure(figsize=(4.6 * ncols, 3.4 * nrows))
    else:
        fig.clear()
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(len(keys))]
    for ax, key in zip(axes, keys):
        label, log = known[key]
        series: dict[tuple, list[str]] = {}
        edges = []  # (edge, xs, run index, matrix index): drawn once the axis scale is chosen
        for ri, run in enumerate(runs):
            for mj, mid in enumerate(matrices):
                pts = [r for r in rows if (r["run"], r["regime"]) == run and r["matrix"] == mid]
                if not pts:
                    continue
                pts.sort(key=lambda r: r["step"])
                xs = [r["epoch"] if by_epoch[run] else r["step"] for r in pts]
                ys = [_value(r.get(key), log) for r in pts]
                # hollow markers, a shape per run and smaller for each later run: a series drawn
                # over an identical one leaves the earlier one's outline visible around its own
                ax.plot(
                    xs,
                    ys,
                    linestyle=_STYLES[ri % len(_STYLES)],
                    marker=_MARKERS[ri % len(_MARKERS)],
                    markersize=_marker_size(ri),
                    markerfacecolor="none",
                    markeredgewidth=1.0,
                    linewidth=1.2,
                    color=colour(mj),
                    label=f"{mid} | {run[1]} ({run[0]})",
                )
                for side in ("bottom", "top"):
                    at = [x for x, r in zip(xs, pts) if _edge(r.get(key), log) == side]
                    if at:
                        edges.append((side, at, ri, mj))
                if all(y != y for y in ys):
                    continue  # all gaps (rho >= 1 throughout): nothing drawn, nothing to coincide
                # the same to the eye: equal to _SAME_DIGITS significant digits
                key_ys = tuple(float(f"{y:.{_SAME_DIGITS}g}") if y == y else None for y in ys)
                series.setdefault((tuple(xs), key_ys), []).append((short[mid], run))
        if key == "spectral_radius":
            ax.axhline(1.0, color="0.5", linewidth=0.8, linestyle=(0, (4, 3)), zorder=0)
        finite = [y for line in ax.get_lines() for y in line.get_ydata() if y == y and y > 0]
        if log and finite and max(finite) > 10 * min(finite):  # log only where it spans a decade
            ax.set_yscale("log")
        else:
            ax.ticklabel_format(axis="y", useOffset=False)  # no "1e-8+1" offset labels
            ys = [
                float(y)
                for line in ax.get_lines()
                if not line.get_label().startswith("_")
                for y in line.get_ydata()
            ]
            ys = [y for y in ys if y == y]
            if ys and max(ys) - min(ys) <= 1e-6 * max(abs(max(ys)), abs(min(ys)), 1e-300):
                # flat to rounding (||A|| = 1 clipped every step): ticks like 1.000000017 otherwise
                c = 0.5 * (max(ys) + min(ys))
                half = 0.01 * abs(c) if c else 1.0
                ax.set_ylim(c - half, c + half)
        _draw_edges(ax, edges, colour)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs and positions are whole
        ax.set_ylabel(label)
        ax.set_xlabel(xlabel)
        same = [members for members in series.values() if len(members) > 1]
        if same:  # lines drawn on top of each other: say which, so none is taken for missing
            groups = []
            for members in same:
                names = [f"{m} | {run[1]}" for m, run in members]
                if len(set(names)) < len(names):  # one regime in two runs: name the runs
                    names = [f"{m} | {run[1]} ({run[0]})" for m, run in members]
                groups.append(" = ".join(names))
            note = ax.text(
                0.02,
                0.98,
                "coincide: " + "; ".join(groups),
                transform=ax.transAxes,
                ha="left",
                va="top",
                fontsize="x-small",
                color="0.25",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5},
            )
            notes.append((ax, note))
        ax.grid(True, alpha=0.3)
    # one epoch range for every panel: a panel with a single finite point (K finite at one
    # checkpoint only) would otherwise autoscale around it (ticks 1.900, 1.925...)
    xs = [float(r["epoch"] if by_epoch[(r["run"], r["regime"])] else r["step"]) for r in rows]
    x0, x1 = min(xs), max(xs)
    pad = 1.0 if x1 - x0 < 2 else 0.04 * (x1 - x0)
    for ax in axes:
        ax.set_xlim(x0 - pad, x1 + pad)
    # legends on a blank panel: colour = matrix, style = run (regime)
    lax = fig.add_subplot(nrows, ncols, len(keys) + 1)
    lax.axis("off")
    mat_handles = [Line2D([], [], color=colour(j), linewidth=2, label=m) for j, m in enumerate(matrices)]
    run_handles = [
        Line2D(
            [],
            [],
            color="0.2",
            linestyle=_STYLES[i % len(_STYLES)],
            marker=_MARKERS[i % len(_MARKERS)],
            markersize=_marker_size(i),
            markerfacecolor="none",
            label=f"{run[1]} ({run[0]})",
        )
        for i, run in enumerate(runs)
    ]
    # many matrices: two columns in a smaller font, the runs' legend below the matrices' (not over it)
    many = len(matrices) > 8
    size = "x-small" if many else "small"
    first = lax.legend(
        handles=mat_handles,
        title="matrix",
        loc="upper left",
        fontsize=size,
        ncol=2 if many else 1,
        frameon=False,
    )
    lax.add_artist(first)
    first.set_clip_on(False)  # add_artist clips to the (blank) panel: long ids were cut off
    fig.canvas.draw()  # the first legend's height is known only once drawn
    box = first.get_window_extent().transformed(lax.transAxes.inverted())
    second = lax.legend(
        handles=run_handles,
        title="regime (run)",
        loc="upper left",
        bbox_to_anchor=(0.0, box.y0),
        fontsize=size,
        frameon=False,
    )
    gappy = ("distance_to_instability", "kreiss", "transient_peak")
    gaps = any(
        not (y == y)
        for ax, key in zip(axes, keys)
        if key in gappy
        for line in ax.get_lines()
        if not line.get_label().startswith(_EDGE)
        for y in line.get_ydata()
    )
    if gaps:  # said only where a curve has one
        fig.canvas.draw()
        below = lax.get_legend().get_window_extent().transformed(lax.transAxes.inverted()).y0
        gaps_note = lax.text(
            0.0,
            min(0.02, below - 0.08),
            "gaps: unstable, $\\rho(A) \\geq 1$: distance 0 (▼ on the\n"
            "bottom edge), $K$ and peak $= \\infty$ (▲ on the top edge)",
            transform=lax.transAxes,
            fontsize="small",
            color="0.35",
        )
    if title:
        fig.suptitle(title)
    for _, note in notes:  # laid out without them: a long note must not squeeze its panel
        note.set_in_layout(False)
    fig.tight_layout()
    # the layout resized the legend panel: the runs' legend and the gaps note, placed below the
    # matrices' legend in the panel's fractions, would overlap it now
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = first.get_window_extent(renderer).transformed(lax.transAxes.inverted())
    second.set_bbox_to_anchor((0.0, box.y0), transform=lax.transAxes)
    if gaps:
        fig.canvas.draw()
        below = second.get_window_extent(renderer).transformed(lax.transAxes.inverted()).y0
        gaps_note.set_y(min(0.02, below - 0.08))
    if notes:
        for ax, note in notes:
            _fit_note(ax, note, renderer)
            _room_under(ax, note, renderer)
    return fig
