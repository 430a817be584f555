"""Pseudospectra before and after, side by side: :func:`plot_compare`.

One row per matrix, "before" on the left and "after" on the right, both drawn
on the **same** axis limits and with the **same** contour levels, so a
spectral portrait that grew towards the unit circle is visible at a glance
(the second paper's Figs. 4-6 against Figs. 1-3). The grids come from
:func:`spectra.pseudospectra.pseudospectra`, the drawing of each panel from
:func:`spectra.plot.pseudospectra.plot_pseudospectra`; the comparison data
from :mod:`spectra.compare`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from spectra.errors import InvalidArgumentError

__all__ = ["DEFAULT_LEVELS", "common_bounds", "plot_compare"]

#: log10 epsilon of the contour lines drawn by default (those finer than a panel's grid resolves are
#: left out there)
DEFAULT_LEVELS: tuple[float, ...] = (-2.0, -1.75, -1.5, -1.25, -1.0, -0.75, -0.5)


def common_bounds(
    matrices: Sequence[np.ndarray], eps_max: float, *, unit_circle: bool = True
) -> tuple[float, float, float, float]:
    """Return one box ``(xmin, xmax, ymin, ymax)`` enclosing the eps_max-pseudospectra of all `matrices`.

    The epsilon-pseudospectrum lies in the numerical range widened by epsilon
    (Trefethen & Embree, *Spectra and Pseudospectra*, Thm. 17.2), and the
    numerical range lies in the box ``[lmin(H), lmax(H)] x [lmin(K), lmax(K)]``
    with ``H = (A + A*)/2``, ``K = (A - A*)/(2i)`` (Horn & Johnson, *Topics in
    Matrix Analysis*, 1.2). The union over the matrices of those boxes,
    widened by `eps_max`, and (by default) the box ``[-1.1, 1.1]^2`` around
    the unit circle.

    Parameters
    ----------
    matrices : sequence of (n, n) array_like
        The matrices (sizes may differ).
    eps_max : float
        Largest epsilon drawn.
    unit_circle : bool
        Include ``[-1.1, 1.1]^2``.

    Returns
    -------
    tuple of 4 floats
    """
    lo_x, hi_x, lo_y, hi_y = ([-1.1], [1.1], [-1.1], [1.1]) if unit_circle else ([], [], [], [])
    for A in matrices:
        a = np.asarray(A, dtype=np.complex128)
        H = (a + a.conj().T) / 2
        K = (a - a.conj().T) / 2j
        h = np.linalg.eigvalsh(H)
        k = np.linalg.eigvalsh(K)
        lo_x.append(h[0] - eps_max)
        hi_x.append(h[-1] + eps_max)
        lo_y.append(k[0] - eps_max)
        hi_y.append(k[-1] + eps_max)
    return float(min(lo_x)), float(max(hi_x)), float(min(lo_y)), float(max(hi_y))


def plot_compare(
    comparison,
    *,
    levels: Sequence[float] | None = None,
    npts: int = 120,
    fig=None,
):
    """Draw the pseudospectra of each matrix before and after, one row per matrix.

    Parameters
    ----------
    comparison : Comparison or sequence of (id, (n, n) ndarray, (n, n) ndarray)
        From :func:`spectra.compare.compare_checkpoints` /
        :func:`~spectra.compare.compare_stabilized` (uses each
        ``MatrixComparison.before`` / ``.after``), or the pairs themselves.
    levels : sequence of float, optional
        log10 epsilon of the contour lines, shared by every panel (default
        :data:`DEFAULT_LEVELS`, less those a panel's grid does not resolve:
        left out there and said under it). Given levels are all drawn; those
        a panel does not resolve are noted under it, as is a panel with no
        contour at all.
    npts : int
        Grid points per side of each panel.
    fig : matplotlib.figure.Figure, optional
        Figure to draw into (a new one sized to the rows by default).

    Returns
    -------
    (rows, 2) ndarray of matplotlib.axes.Axes
        Column 0 "before", column 1 "after"; same limits within a row, unless
        the two matrices' scales are 100x apart (then each its own, said in
        the titles).
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator

    from spectra.plot.pseudospectra import _wrap, colorbar_beside, default_cmap, plot_pseudospectra
    from spectra.pseudospectra import pseudospectra, resolved_floor

    if hasattr(comparison, "matrices"):
        pairs = [(m.id, m.before, m.after) for m in comparison.matrices if m.before is not None]
        pairs = [(k, b, a) for k, b, a in pairs if np.all(np.isfinite(b)) and np.all(np.isfinite(a))]
    else:
        pairs = list(comparison)
    if not pairs:
        raise InvalidArgumentError("nothing to draw: no finite matrix pairs")
    lv = tuple(float(v) for v in (levels if levels is not None else DEFAULT_LEVELS))
    if not lv or not all(np.isfinite(lv)):
        raise InvalidArgumentError(f"levels must be finite log10(eps) values, got {levels!r}")
    rows = len(pairs)
    changed = {}
    if hasattr(comparison, "matrices"):
        for m in comparison.matrices:
            st = m.stabilize or {}
            if "changed" in st:
                changed[m.id] = (bool(st["changed"]), st.get("scale"), st.get("method"), st.get("target"))
    panels = []
    for r, (key, before, after) in enumerate(pairs):
        box = common_bounds([before, after], 10.0 ** max(lv))
        boxes = [box, box]
        own = [common_bounds([A], 10.0 ** max(lv)) for A in (before, after)]
        sides = [max(b[1] - b[0], b[3] - b[2]) for b in own]
        if max(sides) > 100 * min(sides):
            # scales 100x apart (spectral-norm of a matrix of norm 1e6): on shared limits the
            # smaller one is a dot; each panel gets its own, and its title says so
            boxes = own
        after_title = "after"
        if key in changed:
            done, scale, method, target = changed[key]
            if not done:
                after_title = "after (unchanged)"
            elif method == "svd-clip":  # not a uniform scaling: the singular values above target are cut
                after_title = "after (σ clipped" + (f" to {target:g})" if target is not None else ")")
            else:
                after_title = f"after (×{scale:.4g})" if scale is not None else "after"
        for c, (label, A) in enumerate((("before", before), (after_title, after))):
            xmin, xmax, ymin, ymax = boxes[c]
            x = np.linspace(xmin, xmax, npts)
            y = np.linspace(ymin, ymax, npts)
            title = _wrap(f"{key}: {label}" + (" (own limits)" if boxes is own else ""), 48)
            panels.append(((r, c), pseudospectra(np.asarray(A), x=x, y=y), title, boxes[c], boxes is own))
    if levels is None:  # the default levels no panel resolves are left out (and off the colour bar)
        floors = [resolved_floor(g.x, g.y, g.sigma_min, g.eigenvalues) for _, g, *_ in panels]
        lv = tuple(v for v in lv if v > min(floors)) or lv[-1:]
    norm = Normalize(vmin=min(lv), vmax=max(lv)) if min(lv) < max(lv) else Normalize(lv[0] - 0.5, lv[0] + 0.5)
    cmap = default_cmap()
    # each row as tall as its (equal-aspect) panels, so a wide window leaves no white bands
    heights = []
    for k in range(rows):
        tall = max((b[3] - b[2]) / (b[1] - b[0]) for (r, _), _, _, b, _ in panels if r == k)
        heights.append(min(max(3.9 * tall, 1.6), 3.9) + 0.9)
    if fig is None:
        fig = plt.figure(figsize=(9.0, sum(heights) + 0.8), layout="constrained")
    axes = np.asarray(fig.subplots(rows, 2, squeeze=False, height_ratios=heights))
    for (r, c), grid, title, (xmin, xmax, ymin, ymax), alone in panels:
        ax = axes[r, c]
        plot_pseudospectra(
            grid,
            ax=ax,
            levels=lv,
            colorbar=False,
            title=title,
            norm=norm,
            cmap=cmap,
            unresolved="drop" if levels is None else "note",
        )
        ax.title.set_fontsize("small")
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        # the default locator put 9 ticks at steps of 0.25 on [-1, 1]: "-1.00-0.75-0.50" ran together
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10]))
        if c == 1 and not alone:
            ax.set_ylabel("")  # same axis as on the left; the label touched the left panel
    # one colour bar for all panels, beside the first row's "after" and as tall as it
    colorbar_beside(axes[0, 1], ScalarMappable(norm=norm, cmap=cmap), ticks=lv)
    if hasattr(comparison, "matrices"):
        fig.suptitle(
            f"before: {_short(comparison.before)}\nafter: {_short(comparison.after)}", fontsize="medium"
        )
    return axes


def _short(label: str) -> str:
    """A comparison's label with its file named, not its whole path (``/a/b/w.pt --x`` -> ``w.pt --x``)."""
    path, sep, rest = str(label).partition(" --")
    return os.path.basename(path.rstrip("/" + os.sep)) + sep + rest
