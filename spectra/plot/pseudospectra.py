"""Drawings of epsilon-pseudospectra grids (:class:`~spectra.pseudospectra.PseudospectrumGrid`).

EigTool's conventions (Wright, EigTool 2002; Trefethen & Embree 2005, the
figures throughout): contour lines of ``log10(eps)`` at the chosen levels, a
colorbar of those lines labelled ``log10(eps)``, eigenvalues as black dots, the unit circle
dashed grey (the stability boundary of ``h_t = A h_{t-1}``), equal aspect, the
matrix id and size in the title. Levels the grid does not resolve (their
contours would be specks, or miss eigenvalues; see
:func:`spectra.pseudospectra.resolved_floor`) are dropped or noted under the
axes, and so is a panel left without any contour. Nothing here computes
``sigma_min``: that is :func:`spectra.pseudospectra.pseudospectra`. No
function calls ``plt.show()`` or selects a backend.
"""

from __future__ import annotations

import math
import os
import textwrap
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np

from spectra.errors import InvalidArgumentError, WriteError
from spectra.pseudospectra import frame_min, resolved_floor

__all__ = [
    "add_note",
    "colorbar_beside",
    "default_cmap",
    "level_colorbar",
    "panel_bounds",
    "plot_pseudospectra",
    "plot_pseudospectra_panel",
    "save_figure",
    "share_row_limits",
    "shared_levels",
]

Overlay = Sequence[tuple[np.ndarray, np.ndarray, str]]

#: file extensions :func:`save_figure` writes
FIGURE_FORMATS = ("png", "svg", "pdf")

#: the top of viridis kept by the default colormap: its last yellows are faint on white, and the
#: outermost contour (the largest eps) is the one a reader looks for first
VIRIDIS_TOP = 0.85

#: panels of one row share axis limits unless their windows differ more than this in size
SHARE_RATIO = 100.0


def default_cmap():
    """Viridis up to :data:`VIRIDIS_TOP`: every level, the outermost included, visible on white."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    return ListedColormap(colormaps["viridis"](np.linspace(0.0, VIRIDIS_TOP, 256)), name="viridis_85")


def _cmap(cmap):
    return default_cmap() if cmap is None else cmap


def add_note(ax, text: str, *, width: int = 46) -> None:
    """Write `text` under the x axis of `ax` (never over the data), wrapped to `width` characters."""
    lines = [textwrap.fill(t, width) for t in text.split("\n")]
    ax.annotate(
        "\n".join(lines),
        xy=(0.5, 0.0),
        xycoords="axes fraction",
        xytext=(0, -30),
        textcoords="offset points",
        ha="center",
        va="top",
        fontsize="x-small",
        color="0.25",
        annotation_clip=False,
    )


def _finer(grid, floor: float, want: float) -> str:
    """What resolves level `want`: more points along the longer side (the floor ~ the spacing)."""
    side = max(np.asarray(grid.x).size, np.asarray(grid.y).size)
    npts = math.ceil(1.25 * side * 10.0 ** (floor - want) / 10.0) * 10
    return f"npts ≥ {npts}" if npts <= 2000 else "narrower bounds"


def _default_title(grid) -> str:
    name = grid.title or grid.matrix_id or "A"
    return f"{name}  ({grid.n}×{grid.n})" if grid.n else str(name)


def _wrap(text: str, width: int) -> str:
    """Break a long matrix id over lines (after ``/ . [`` or a space) so panel titles do not collide."""
    lines, rest = [], text
    while len(rest) > width:
        cut = max(rest.rfind(c, 0, width) for c in "/.[ ")
        cut = cut if cut > width // 3 else width - 1
        if rest[cut] in "/.":
            cut += 1  # "/" and "." end the first line; "[" and a space start the next
        lines.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return "\n".join([*lines, rest])


def plot_pseudospectra(
    grid,
    *,
    ax=None,
    levels: Sequence[float] | np.ndarray | None = None,
    colorbar: bool = True,
    unit_circle: bool = True,
    title: str | None = None,
    filled: bool = False,
    overlay: Overlay | None = None,
    cmap=None,
    norm=None,
    unresolved: Literal["note", "drop"] = "note",
):
    """Draw the boundaries of the epsilon-pseudospectra held by `grid`.

    The contour at level ``l`` is the curve ``sigma_min(zI - A) = 10**l``,
    the boundary of ``{z : ||(zI - A)^{-1}|| > 10**-l}`` (Trefethen & Embree
    2005, eq. (2.2)).

    Parameters
    ----------
    grid : PseudospectrumGrid
        Output of :func:`spectra.pseudospectra`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.
    levels : sequence of float, optional
        ``log10(eps)`` levels; default ``grid.levels``.
    colorbar : bool
        Add a colorbar labelled ``log10(ε)``.
    unit_circle : bool
        Draw ``|z| = 1`` dashed grey.
    title : str, optional
        Default: the matrix id and size.
    filled : bool
        Also fill between the levels (light, below the lines).
    overlay : sequence of (xs, ys, label), optional
        Extra curves, e.g. a field-of-values boundary; a legend is added.
    cmap : str or matplotlib.colors.Colormap, optional
        Colormap of the levels; default :func:`default_cmap`.
    norm : matplotlib.colors.Normalize, optional
        Colour scale (to share one between panels); default spans `levels`.
    unresolved : {"note", "drop"}
        What to do with levels at or below the grid's resolved floor
        (:func:`spectra.pseudospectra.resolved_floor`: their contours would
        be specks or miss eigenvalues): draw them and say so under the axes
        (``"note"``, for levels a user chose), or leave them out
        (``"drop"``, for levels chosen automatically; said under the axes too
        when some were dropped). A panel left without any contour says why.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on; the contour set is ``ax.collections`` entry of type
        :class:`matplotlib.contour.ContourSet`; notes are ``ax.texts``.

    Raises
    ------
    ValueError
        If `levels` is empty or not finite.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.8))
    lev = np.unique(np.asarray(grid.levels if levels is None else levels, dtype=np.float64).ravel())
    if lev.size == 0 or not np.all(np.isfinite(lev)):
        raise InvalidArgumentError(
            f"levels must be a non-empty list of finite log10(eps) values, got {levels!r}"
        )
    if unresolved not in ("note", "drop"):
        raise InvalidArgumentError(f"unresolved must be 'note' or 'drop', got {unresolved!r}")
    cmap = _cmap(cmap)
    if norm is None:
        lo, hi = float(lev.min()), float(lev.max())
        norm = Normalize(vmin=lo - 0.5 if lo == hi else lo, vmax=hi + 0.5 if lo == hi else hi)
    tiny = np.finfo(np.float64).tiny
    logs = np.log10(np.maximum(np.asarray(grid.sigma_min, dtype=np.float64), tiny))
    x, y = np.asarray(grid.x), np.asarray(grid.y)
    floor = resolved_floor(x, y, grid.sigma_min, grid.eigenvalues)
    notes = []
    if logs.min() > lev.max() or logs.max() < lev.min():
        # a matrix on another scale than the levels (||A|| ~ 1e6 among gates of norm ~1)
        notes.append(
            f"no contour: log10 σ_min here runs from {logs.min():.3g} to {logs.max():.3g}, the levels "
            f"from {lev.min():g} to {lev.max():g}; draw it on its own, or with levels in its range"
        )
    elif np.any(lev <= floor):
        coarse = lev[lev <= floor]
        more = _finer(grid, floor, float(coarse.min()))
        if unresolved == "note":
            notes.append(
                f"log10 ε ≤ {coarse.max():g} not resolved by this {x.size}×{y.size} grid: those "
                f"contours may miss eigenvalues (try {more})"
            )
        elif coarse.size < lev.size:
            lev = lev[lev > floor]
            notes.append(f"log10 ε ≤ {coarse.max():g} not drawn: finer than this grid resolves")
        else:
            lev = lev[:0]
            notes.append(
                f"no contour: every level is finer than this {x.size}×{y.size} grid resolves "
                f"(log10 ε > {floor:.2g} would be); draw it on its own, or with {more}"
            )
    no_contour = any(n.startswith("no contour") for n in notes)
    if x.size >= 2 and y.size >= 2 and lev.size and not no_contour:
        edge = frame_min(logs)
        cut = lev[(lev > edge) & (lev >= logs.min()) & (lev <= logs.max())]
        if cut.size:  # a level that reaches the frame is not the boundary of the whole pseudospectrum
            notes.append(
                f"log10 ε ≥ {cut.min():g} reaches the frame: cut by this window, not the whole "
                "ε-pseudospectrum (widen the bounds)"
            )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No contour levels were found")
        if filled and x.size >= 2 and y.size >= 2 and lev.size:
            edges = np.concatenate([[min(logs.min(), lev[0]) - 1], lev])
            ax.contourf(x, y, logs, levels=edges, cmap=cmap, norm=norm, alpha=0.25, extend="neither")
        if x.size >= 2 and y.size >= 2 and lev.size:
            ax.contour(x, y, logs, levels=lev, cmap=cmap, norm=norm, linewidths=1.2)
    ev = np.asarray(grid.eigenvalues)
    ax.plot(ev.real, ev.imag, "k.", markersize=4, label="_eigenvalues", zorder=3)
    if unit_circle:
        t = np.linspace(0, 2 * np.pi, 361)
        # above the contours: an eps = 1 contour of a tiny matrix lies right on it
        ax.plot(np.cos(t), np.sin(t), "--", color="0.45", linewidth=0.9, label="_unit circle", zorder=2.5)
    if x.size >= 2:
        ax.set_xlim(x[0], x[-1])
    if y.size >= 2:
        ax.set_ylim(y[0], y[-1])
    if unit_circle and x.size >= 2 and y.size >= 2 and not _circle_in_window(x, y):
        # a window fitted to a matrix of tiny norm (auto_bounds): say where the stability boundary is
        r = math.hypot(max(abs(x[0]), abs(x[-1])), max(abs(y[0]), abs(y[-1])))
        where = "around this window" if r < 1 else "outside this window"
        notes.append(f"unit circle |z| = 1 (the stability boundary) lies {where}")
    shown = False
    styles = ["-.", ":", "--"]
    for j, (xs, ys, label) in enumerate(overlay or ()):
        xs, ys = np.asarray(xs), np.asarray(ys)
        # black, dash-dot (EigTool's field of values): apart from the coloured contours
        ax.plot(xs, ys, styles[j % 3], color="k", linewidth=1.1, label=label, zorder=2)
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        shown |= bool(np.any((xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)))
    if shown:  # no legend entry for a curve wholly outside the window
        ax.legend(loc="upper right", fontsize="small")
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("Re z")
    ax.set_ylabel("Im z")
    ax.set_title(_default_title(grid) if title is None else title, fontsize="medium")
    if colorbar:
        from matplotlib.cm import ScalarMappable
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        # a bar as tall as the (equal-aspect) axes themselves, however wide the window
        cax = make_axes_locatable(ax).append_axes("right", size="4%", pad=0.12)
        if lev.size:  # a line at each level drawn, in its colour: the contours are lines, not bands
            level_colorbar(cax, lev, cmap=cmap, norm=norm)
        else:
            cb = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax)
            cb.set_label("log10(ε)")
    if notes:
        add_note(ax, "\n".join(notes))
    return ax


def shared_levels(grids: Sequence, *, max_levels: int = 8) -> np.ndarray:
    """Common ``log10(eps)`` levels for several grids.

    From the lowest of the grids' own levels up to the lowest of their top
    levels (each grid's top contour is the largest closed inside its window,
    so every contour drawn is closed in every panel: none is cut by a panel's
    edge), and strictly above every grid's resolved floor
    (:func:`spectra.pseudospectra.resolved_floor`) that lies below that top
    (a grid whose floor lies above it, a matrix on another scale, gets none
    of the levels and says so), on multiples of the first step among 0.25,
    0.5, 1, 2 that gives at most `max_levels`.

    Parameters
    ----------
    grids : sequence of PseudospectrumGrid
        At least one.
    max_levels : int
        Most levels returned.

    Returns
    -------
    (L,) ndarray
    """
    if not len(grids):
        raise InvalidArgumentError("grids must hold at least one PseudospectrumGrid")
    lo = min(float(np.min(g.levels)) for g in grids)
    hi = min(float(np.max(g.levels)) for g in grids)
    floors = [resolved_floor(g.x, g.y, g.sigma_min, g.eigenvalues) for g in grids]
    floor = max([f for f in floors if f < hi], default=-math.inf)
    for step in (0.25, 0.5, 1.0, 2.0):
        a, b = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if floor > -math.inf:
            a = max(a, math.floor(floor / step) + 1)  # strictly above the floor
        if b - a + 1 <= max_levels:
            break
    a = max(a, b - max_levels + 1)
    return step * np.arange(a, b + 1, dtype=np.float64) if b >= a else np.array([step * b])


def _infer_ncols(grids) -> int:
    """Columns = gates per tensor when ids look like ``tensor[gate]``, else ~sqrt(N)."""
    rows = tensor_rows([g.matrix_id or "" for g in grids])
    if rows is not None:
        return max(len(r) for r in rows)
    return max(1, math.ceil(math.sqrt(len(grids))))


def tensor_rows(ids: Sequence[str]) -> list[list[int]] | None:
    """Panel indices grouped a row per tensor, or None (then rows are filled in order).

    Only when every id is ``tensor[gate]``, each tensor's gates are contiguous, and a
    tensor has 2 to 4 gates (an LSTM's 4 and a GRU's 3 in one figure: rows of 4 and 3).
    """
    if not ids or not all("[" in i for i in ids):
        return None
    heads = [i.split("[", 1)[0] for i in ids]
    rows: list[list[int]] = []
    for k, head in enumerate(heads):
        if rows and heads[rows[-1][0]] == head:
            rows[-1].append(k)
        else:
            rows.append([k])
    widest = max(len(r) for r in rows)
    if len(rows) != len(set(heads)) or not 2 <= widest <= 4:  # a tensor split apart, or no gates
        return None
    return rows


def panel_bounds(
    matrices: Sequence[np.ndarray],
    ids: Sequence[str],
    *,
    levels: Sequence[float] | np.ndarray | None = None,
) -> list[tuple[float, float, float, float] | None]:
    """Grid boxes for the panels of :func:`plot_pseudospectra_panel`: one box per row.

    The rows are those the panel figure makes of `ids` (a row per tensor, or
    ``ceil(sqrt(N))`` panels a row); each row gets the union of its matrices'
    :func:`~spectra.pseudospectra.auto_bounds`, so its panels are computed
    and drawn on one box (the unit circle one size, every contour closed in
    every panel of the row). A row whose boxes differ more than
    :data:`SHARE_RATIO` in size gets None for each matrix (its own box).

    Parameters
    ----------
    matrices : sequence of (n, n) array_like
        The matrices, in panel order.
    ids : sequence of str
        Their ids (``tensor[gate]`` groups the rows).
    levels : sequence of float, optional
        Given ``log10(eps)`` levels (the boxes then enclose the largest).

    Returns
    -------
    list of (xmin, xmax, ymin, ymax) or None
        One entry per matrix; None means "its own automatic box".
    """
    from spectra.pseudospectra import auto_bounds

    if len(matrices) != len(ids):
        raise InvalidArgumentError(f"got {len(matrices)} matrices but {len(ids)} ids")
    if len(matrices) < 2:
        return [None] * len(matrices)
    rows = tensor_rows(list(ids))
    if rows is None:
        ncols = max(1, math.ceil(math.sqrt(len(matrices))))
        rows = [list(range(k, min(k + ncols, len(matrices)))) for k in range(0, len(matrices), ncols)]
    lev = None if levels is None else np.asarray(levels, dtype=np.float64)
    own = [auto_bounds(A, levels=lev) for A in matrices]
    out: list[tuple[float, float, float, float] | None] = [None] * len(matrices)
    for row in rows:
        b = np.array([own[k] for k in row])
        sides = np.maximum(b[:, 1] - b[:, 0], b[:, 3] - b[:, 2])
        if len(row) < 2 or sides.max() > SHARE_RATIO * sides.min():
            continue
        box = (float(b[:, 0].min()), float(b[:, 1].max()), float(b[:, 2].min()), float(b[:, 3].max()))
        for k in row:
            out[k] = box
    return out


def plot_pseudospectra_panel(
    grids: Sequence,
    *,
    ncols: int | None = None,
    levels: Sequence[float] | np.ndarray | None = None,
    fig=None,
    unit_circle: bool = True,
    overlay: Sequence[Overlay | None] | None = None,
    cmap=None,
    title: str | None = None,
):
    """Several pseudospectra side by side with shared levels and one colorbar.

    The panels of a row share their axis limits (a row per tensor: its gates
    on one box, the unit circle one size), unless their windows differ more
    than :data:`SHARE_RATIO` in size; axis labels are left out only where the
    neighbouring panel has the same limits. Automatic levels a panel does not
    resolve are left out there; given ones are kept; either way, and for a
    panel with no contour at all, a note under the panel says so.

    Parameters
    ----------
    grids : sequence of PseudospectrumGrid
        One panel each, in order (row-major).
    ncols : int, optional
        Panels per row. Default: the number of gates when every id looks like
        ``tensor[gate]`` with the same count per tensor (a layers x gates
        table), else ``ceil(sqrt(len(grids)))``.
    levels : sequence of float, optional
        Shared ``log10(eps)`` levels; default :func:`shared_levels`.
    fig : matplotlib.figure.Figure, optional
        Figure to draw in (cleared first); a new one when None.
    unit_circle : bool
        Draw the unit circle in every panel.
    overlay : sequence, optional
        Per-panel overlays (see :func:`plot_pseudospectra`), None entries allowed.
    cmap : str or matplotlib.colors.Colormap, optional
        Colormap; default :func:`default_cmap`.
    title : str, optional
        Overall title of the figure (``fig.suptitle``), e.g. the checkpoint's file name.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If `grids` is empty or `ncols` is not a positive integer.
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    grids = list(grids)
    if not grids:
        raise InvalidArgumentError("grids must hold at least one PseudospectrumGrid")
    by_tensor = tensor_rows([g.matrix_id or "" for g in grids]) if ncols is None else None
    if ncols is None:
        ncols = _infer_ncols(grids)
    if not (isinstance(ncols, int) and ncols >= 1):
        raise InvalidArgumentError(f"ncols must be a positive integer, got {ncols!r}")
    ncols = min(ncols, len(grids))
    if by_tensor is not None:  # a row per tensor, its gates in columns (an LSTM's 4, a GRU's 3)
        cells = [r * ncols + c for r, row in enumerate(by_tensor) for c in range(len(row))]
        nrows = len(by_tensor)
    else:
        cells = list(range(len(grids)))
        nrows = math.ceil(len(grids) / ncols)
    lev = shared_levels(grids) if levels is None else np.unique(np.asarray(levels, dtype=np.float64))
    cmap = _cmap(cmap)
    lo, hi = float(lev.min()), float(lev.max())
    norm = Normalize(vmin=lo - 0.5 if lo == hi else lo, vmax=hi + 0.5 if lo == hi else hi)
    if fig is None:
        fig = plt.figure(figsize=(3.3 * ncols + 0.6, 3.3 * nrows + 0.4), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(nrows, ncols, squeeze=False)
    where = {}
    for k, g in enumerate(grids):
        cell = cells[k]
        ax = axes[cell // ncols][cell % ncols]
        where[cell] = ax
        ov = overlay[k] if overlay is not None and k < len(overlay) else None
        plot_pseudospectra(
            g,
            ax=ax,
            levels=lev,
            colorbar=False,
            unit_circle=unit_circle,
            overlay=ov,
            cmap=cmap,
            norm=norm,
            # levels chosen here are dropped where a panel cannot resolve them; chosen ones are kept
            unresolved="drop" if levels is None else "note",
        )
        ax.set_title(_wrap(_default_title(g), 40), fontsize="small")
    share_row_limits([[where[c] for c in sorted(where) if c // ncols == r] for r in range(nrows)])
    for cell, ax in where.items():
        left, below = where.get(cell - 1) if cell % ncols else None, where.get(cell + ncols)
        if left is not None and left.get_ylim() == ax.get_ylim():
            ax.set_ylabel("")  # the panel on the left says it
        if below is not None and below.get_xlim() == ax.get_xlim():
            ax.set_xlabel("")  # the panel below says it
    for cell in set(range(nrows * ncols)) - set(cells):
        axes[cell // ncols][cell % ncols].set_visible(False)
    legends = [ax for ax in axes.ravel() if ax.get_legend() is not None]
    for ax in legends[1:]:  # the overlay's style is the same in every panel: one legend says it
        ax.get_legend().remove()
    # beside the top panel of the last column, as tall as that panel
    host = next(where[c] for c in sorted(where, key=lambda c: (-(c % ncols), c // ncols)))
    colorbar_beside(host, ScalarMappable(norm=norm, cmap=cmap), ticks=lev)
    if title:
        fig.suptitle(title)
    return fig


def share_row_limits(rows: Sequence[Sequence]) -> None:
    """Give the panels of each row one box: the union of their limits (the unit circle one size).

    A row whose panels' windows differ more than :data:`SHARE_RATIO` in size
    keeps each panel's own limits (on one box the smaller would be a dot).

    Parameters
    ----------
    rows : sequence of sequence of matplotlib.axes.Axes
        The panels, a row at a time.
    """
    for row in rows:
        if len(row) < 2:
            continue
        boxes = np.array([[*ax.get_xlim(), *ax.get_ylim()] for ax in row])
        sides = np.maximum(boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2])
        if sides.max() > SHARE_RATIO * sides.min():
            continue
        for ax in row:
            ax.set_xlim(boxes[:, 0].min(), boxes[:, 1].max())
            ax.set_ylim(boxes[:, 2].min(), boxes[:, 3].max())


def _circle_in_window(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether some of the unit circle lies in the window ``[x0, x1] x [y0, y1]``."""
    t = np.linspace(0.0, 2.0 * np.pi, 721)
    c, s = np.cos(t), np.sin(t)
    return bool(np.any((c >= x[0]) & (c <= x[-1]) & (s >= y[0]) & (s <= y[-1])))


def level_colorbar(cax, levels, *, cmap, norm, label: str = "log10(ε)"):
    """A colour bar of contour lines in `cax`: a blank bar with a line at each level, in its colour.

    EigTool's bar for line contours (a gradient would show colours no contour has): ticked at
    the levels, half a level step (0.25 for a single level) of blank bar beyond each end.

    Parameters
    ----------
    cax : matplotlib.axes.Axes
        Axes of the bar.
    levels : (L,) array_like
        ``log10(eps)`` levels, at least one.
    cmap, norm
        The colormap and normalisation the contours were drawn with.
    label : str
        Label of the bar.

    Returns
    -------
    matplotlib.colorbar.Colorbar
        Its ``lines`` hold the level lines.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize

    lev = np.unique(np.asarray(levels, dtype=np.float64).ravel())
    half = 0.5 * float(np.min(np.diff(lev))) if lev.size > 1 else 0.25
    blank = ScalarMappable(norm=Normalize(lev[0] - half, lev[-1] + half), cmap=ListedColormap(["white"]))
    cb = cax.figure.colorbar(blank, cax=cax, ticks=lev)
    cb.add_lines(lev, [cmap(norm(v)) for v in lev], [2.5] * lev.size)
    for lines in cb.lines:  # their unclipped extent reaches far past the bar: tight bboxes grew blank
        lines.set_in_layout(False)
    cb.minorticks_off()
    cb.set_label(label)
    return cb


def colorbar_beside(ax, mappable, *, ticks=None, label: str = "log10(ε)"):
    """A colour bar just right of `ax` and exactly as tall as it (after its equal aspect).

    With `ticks` (the contour levels), a bar of lines at the levels (:func:`level_colorbar`,
    in `mappable`'s colormap and norm); without, `mappable`'s gradient.

    Returns
    -------
    matplotlib.colorbar.Colorbar
    """
    from matplotlib.transforms import Bbox

    def locate(cax, renderer):
        ax.apply_aspect()
        b = ax.get_position()
        return Bbox.from_bounds(b.x1 + 0.04 * b.width, b.y0, 0.05 * b.width, b.height)

    fig = ax.figure
    cax = fig.add_axes((0.0, 0.0, 0.01, 0.01))
    cax.set_axes_locator(locate)
    if ticks is not None and len(ticks):
        return level_colorbar(cax, ticks, cmap=mappable.cmap, norm=mappable.norm, label=label)
    cb = fig.colorbar(mappable, cax=cax)
    cb.set_label(label)
    return cb


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 150) -> None:
    """Save `fig` as PNG, SVG or PDF, chosen by the file extension.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or path-like
        Output file, ending in ``.png``, ``.svg`` or ``.pdf``.
    dpi : int
        Resolution of PNG output.

    Raises
    ------
    ValueError
        If the extension is not one of ``png``, ``svg``, ``pdf``.
    WriteError
        If the file cannot be written.
    """
    p = os.fspath(path)
    ext = os.path.splitext(p)[1].lower().lstrip(".")
    if ext not in FIGURE_FORMATS:
        raise InvalidArgumentError(
            f"{p}: figure format must be one of .png, .svg, .pdf (from the extension), got {ext!r}"
        )
    import matplotlib

    try:
        # TrueType (Type 42) fonts in PDF: journals' submission systems refuse Type 3
        with matplotlib.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):
            fig.savefig(p, format=ext, dpi=dpi, bbox_inches="tight")
    except OSError as exc:
        raise WriteError(f"{p}: cannot write the figure ({exc})") from None
