"""Drawings of transient growth and of the numerical range.

:func:`plot_transient` draws ``||A^k||_2`` against ``k`` (log scale) with the
spectral rate ``rho^k`` and, when Kreiss results are given, the Kreiss bracket
``K <= sup_k ||A^k|| <= e n K``; :func:`plot_numerical_range` overlays the
boundary of the field of values on an existing axes (e.g. a pseudospectra
plot). The numbers come from :mod:`spectra.kreiss` and
:mod:`spectra.numerical_range`; nothing is computed here beyond what those
objects hold (except the boundary of ``W(A)`` when a matrix is passed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["plot_numerical_range", "plot_transient"]


def _new_axes():
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(6.4, 4.2))
    return ax


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
        The axes drawn on. The peak of each curve is marked with a dot.

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
    tiny = 1e-300
    for i, (tg, label) in enumerate(zip(results, labels)):
        k = np.arange(tg.norms.size)
        (line,) = ax.semilogy(k, np.maximum(tg.norms, tiny), "-", lw=1.6, label=f"{label}: ‖A^k‖")
        color = line.get_color()
        if spectral:
            ax.semilogy(k, np.maximum(tg.spectral_bound, tiny), "--", lw=1.0, color=color, alpha=0.7)
        ax.plot([tg.peak_k], [tg.peak], "o", color=color, ms=5)
        ax.annotate(
            f"{tg.peak:.3g} at k={tg.peak_k}",
            (tg.peak_k, tg.peak),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
            color=color,
        )
        kr = kreiss[i] if kreiss is not None else None
        if kr is not None and math.isfinite(kr.value):
            lo, hi = kr.bracket
            ax.axhline(lo, ls=":", lw=1.0, color=color)
            ax.axhline(hi, ls="-.", lw=0.8, color=color, alpha=0.7)
    ax.set_xlabel("k")
    ax.set_ylabel("‖A^k‖₂")
    handles, _ = ax.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    extra = []
    if spectral:
        extra.append(Line2D([], [], ls="--", color="gray", label="ρ(A)^k"))
    if kreiss is not None:
        extra.append(Line2D([], [], ls=":", color="gray", label="Kreiss K"))
        extra.append(Line2D([], [], ls="-.", color="gray", label="e·n·K"))
    ax.legend(handles=handles + extra, fontsize=8, loc="best")
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


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
