"""Drawings of epsilon-pseudospectra grids (:class:`~spectra.pseudospectra.PseudospectrumGrid`).

EigTool's conventions (Wright, EigTool 2002; Trefethen & Embree 2005, the
figures throughout): contour lines of ``log10(eps)`` at the chosen levels, a
colorbar labelled ``log10(eps)``, eigenvalues as black dots, the unit circle
dashed grey (the stability boundary of ``h_t = A h_{t-1}``), equal aspect, the
matrix id and size in the title. Nothing here computes ``sigma_min``: that is
:func:`spectra.pseudospectra.pseudospectra`. No function calls ``plt.show()``
or selects a backend.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import numpy as np

from spectra.errors import InvalidArgumentError, WriteError

__all__ = ["plot_pseudospectra", "plot_pseudospectra_panel", "save_figure", "shared_levels"]

Overlay = Sequence[tuple[np.ndarray, np.ndarray, str]]

#: file extensions :func:`save_figure` writes
FIGURE_FORMATS = ("png", "svg", "pdf")


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
    cmap: str = "viridis",
    norm=None,
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
    cmap : str
        Colormap of the levels.
    norm : matplotlib.colors.Normalize, optional
        Colour scale (to share one between panels); default spans `levels`.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on; the contour set is ``ax.collections`` entry of type
        :class:`matplotlib.contour.ContourSet`.

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
    if norm is None:
        lo, hi = float(lev.min()), float(lev.max())
        norm = Normalize(vmin=lo - 0.5 if lo == hi else lo, vmax=hi + 0.5 if lo == hi else hi)
    floor = np.finfo(np.float64).tiny
    logs = np.log10(np.maximum(np.asarray(grid.sigma_min, dtype=np.float64), floor))
    x, y = np.asarray(grid.x), np.asarray(grid.y)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No contour levels were found")
        if filled and x.size >= 2 and y.size >= 2:
            edges = np.concatenate([[min(logs.min(), lev[0]) - 1], lev])
            ax.contourf(x, y, logs, levels=edges, cmap=cmap, norm=norm, alpha=0.25, extend="neither")
        cs = None
        if x.size >= 2 and y.size >= 2:
            cs = ax.contour(x, y, logs, levels=lev, cmap=cmap, norm=norm, linewidths=1.2)
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

        sm = ScalarMappable(norm=norm, cmap=cs.cmap if cs is not None else cmap)
        # a bar as tall as the (equal-aspect) axes themselves, however wide the window
        cax = make_axes_locatable(ax).append_axes("right", size="4%", pad=0.12)
        cb = ax.figure.colorbar(sm, cax=cax, ticks=lev)
        cb.set_label("log10(ε)")
    return ax


def shared_levels(grids: Sequence, *, max_levels: int = 8) -> np.ndarray:
    """Common ``log10(eps)`` levels for several grids.

    From the lowest of the grids' own levels up to the lowest of their top
    levels (each grid's top contour is the largest closed inside its window,
    so every contour drawn is closed in every panel: none is cut by a panel's
    edge), on multiples of the first step among 0.25, 0.5, 1, 2 that gives
    at most `max_levels`.

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
    for step in (0.25, 0.5, 1.0, 2.0):
        a, b = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if b - a + 1 <= max_levels:
            break
    a = max(a, b - max_levels + 1)
    return step * np.arange(a, b + 1, dtype=np.float64) if b >= a else np.array([lo])


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


def plot_pseudospectra_panel(
    grids: Sequence,
    *,
    ncols: int | None = None,
    levels: Sequence[float] | np.ndarray | None = None,
    fig=None,
    unit_circle: bool = True,
    overlay: Sequence[Overlay | None] | None = None,
    cmap: str = "viridis",
):
    """Several pseudospectra side by side with shared levels and one colorbar.

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
    cmap : str
        Colormap.

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
    lo, hi = float(lev.min()), float(lev.max())
    norm = Normalize(vmin=lo - 0.5 if lo == hi else lo, vmax=hi + 0.5 if lo == hi else hi)
    if fig is None:
        fig = plt.figure(figsize=(3.3 * ncols + 1.0, 3.1 * nrows + 0.4), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, g in enumerate(grids):
        cell = cells[k]
        ax = axes[cell // ncols][cell % ncols]
        ov = overlay[k] if overlay is not None and k < len(overlay) else None
        plot_pseudospectra(
            g, ax=ax, levels=lev, colorbar=False, unit_circle=unit_circle, overlay=ov, cmap=cmap, norm=norm
        )
        ax.set_title(_wrap(_default_title(g), 40), fontsize="small")
        logs = np.log10(np.maximum(g.sigma_min, np.finfo(float).tiny))
        lo_g, hi_g = float(logs.min()), float(logs.max())
        if not any(lo_g <= v <= hi_g for v in lev):
            # a matrix on another scale (||A|| ~ 1e6 among gates of norm ~1): say why it is bare
            ax.text(
                0.5,
                0.03,
                f"no shared level here: log10 σ_min from {lo_g:.2g} to {hi_g:.2g}",
                transform=ax.transAxes,
                ha="center",
                va="bottom",
                fontsize="x-small",
                color="0.3",
            )
        if cell % ncols:
            ax.set_ylabel("")
        if cell + ncols in cells:  # another panel below: one x label per column
            ax.set_xlabel("")
    for cell in set(range(nrows * ncols)) - set(cells):
        axes[cell // ncols][cell % ncols].set_visible(False)
    legends = [ax for ax in axes.ravel() if ax.get_legend() is not None]
    for ax in legends[1:]:  # the overlay's style is the same in every panel: one legend says it
        ax.get_legend().remove()
    cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes.ravel().tolist(), ticks=lev, shrink=0.9)
    cb.set_label("log10(ε)")
    return fig


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
