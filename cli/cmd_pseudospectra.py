"""``spectra pseudospectra``: contour plots of the ε-pseudospectra of recurrent matrices."""

from __future__ import annotations

import math
import re

import click
from spectra_cli._common import (
    FiniteFloatRange,
    figure_output_option,
    fmt,
    matrix_option,
    nothing_usable,
    progress_bar,
    quiet_option,
    refuse_input,
    trust_option,
    use_agg,
    warn,
    warn_unused,
)


def _parse_levels(ctx, param, value):
    if value is None:
        return None
    try:
        levels = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected log10(ε) values like -3,-2,-1") from None
    if not levels or not all(math.isfinite(v) for v in levels):
        raise click.BadParameter(f"{value!r}: expected finite log10(ε) values like -3,-2,-1")
    return sorted(set(levels))


def _check_bounds(ctx, param, value):
    if not value:
        return None
    xmin, xmax, ymin, ymax = value
    if not all(math.isfinite(v) for v in value):
        raise click.BadParameter("XMIN XMAX YMIN YMAX must be finite numbers")
    if not (xmin < xmax and ymin < ymax):
        raise click.BadParameter(f"need XMIN < XMAX and YMIN < YMAX, got {xmin:g} {xmax:g} {ymin:g} {ymax:g}")
    return value


def _check_device(ctx, param, value):
    if value is None:
        return None
    if not re.fullmatch(r"\s*(cpu|cuda(:\d+)?)\s*", value):
        raise click.BadParameter(f"{value!r}: expected cpu, cuda or cuda:K")
    from spectra._torch_engine import resolve_device

    return str(resolve_device(value))  # fails early, before any matrix is loaded


def _check_grid_path(ctx, param, value):
    if value is not None and not value.lower().endswith(".npz"):
        raise click.BadParameter(f"{value!r}: the grid is saved as .npz (the name must end in .npz)")
    return value


#: matrices from this size up have their grid shared among --jobs threads (spectra.pseudospectra)
_THREADS_FROM_N = 200


def _grid_paths(save_grid: str | None, count: int) -> list[str]:
    """The files ``--save-grid NAME.npz`` writes: NAME.npz for one grid, NAME.0.npz, ... for several."""
    if not save_grid:
        return []
    if count == 1:
        return [save_grid]
    stem = save_grid[: -len(".npz")]
    return [f"{stem}.{k}.npz" for k in range(count)]


@click.command(
    "pseudospectra",
    epilog="""\b
Examples:
  spectra pseudospectra lstm.pt -o ps.png
  spectra pseudospectra lstm.pt -m 'lstm.weight_hh_l0[forget]' --levels -3,-2,-1 -o forget.svg
  spectra pseudospectra A.npy --bounds -1.5 1.5 -1.5 1.5 --npts 150 -o A.pdf --save-grid A.npz
""",
)
@click.argument("checkpoint", metavar="CKPT_OR_ARRAY", type=click.Path(readable=False))
@matrix_option
@click.option(
    "--levels",
    callback=_parse_levels,
    metavar="L1,L2,...",
    help="Contour levels as log10(ε), comma-separated, e.g. -3,-2,-1 (default: chosen from the data, "
    "EigTool-like; shared by all panels).",
)
@click.option(
    "--npts",
    type=click.IntRange(min=2, max=2000),
    default=None,
    help="Grid points along the longer side (default 100; 60 for n > 512, 40 for n > 1024).",
)
@click.option(
    "--bounds",
    nargs=4,
    type=float,
    default=None,
    callback=_check_bounds,
    metavar="XMIN XMAX YMIN YMAX",
    help="Region of the complex plane (default: the numerical range, padded, joined with the unit box).",
)
@figure_output_option
@click.option(
    "--save-grid",
    type=click.Path(dir_okay=False),
    default=None,
    callback=_check_grid_path,
    help="Also save the computed grid(s) as .npz for redrawing (spectra.load_grid); with several "
    "matrices, NAME.npz becomes NAME.0.npz, NAME.1.npz, ...",
)
@click.option(
    "--tol",
    type=FiniteFloatRange(min=1e-12, max=1e-1),
    default=1e-8,
    show_default=True,
    help="Relative accuracy of every grid value (against a dense SVD; matrices below n = 55 get the "
    "dense SVD itself).",
)
@click.option(
    "--field-of-values",
    "fov",
    is_flag=True,
    help="Overlay the boundary of the numerical range W(A) (Johnson's algorithm): "
    "||A^k|| <= 2 w(A)^k, and the eps-pseudospectrum lies within eps of W(A).",
)
@click.option(
    "--device",
    metavar="DEVICE",
    default=None,
    callback=_check_device,
    help="Run the Lanczos engine in torch on this device: cuda, cuda:K or cpu (complex128, batched "
    "to fit the device memory; needs torch; matrices below n = 55 get a dense SVD on the CPU instead). "
    "Default: the numpy engine on the CPU.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help=f"Worker threads sharing each grid, used for matrices from n = {_THREADS_FROM_N} up on the "
    "CPU engine (default: the usable cores). Wall time only: "
    "the values do not depend on it beyond rounding.",
)
@quiet_option
@trust_option
def pseudospectra(
    checkpoint, matrices, levels, npts, bounds, output, save_grid, tol, fov, device, jobs, quiet, trust
):
    """Draw the ε-pseudospectra of recurrent weight matrices.

    The ε-pseudospectrum of A is the set of points z where ‖(zI − A)⁻¹‖ > 1/ε,
    i.e. where some perturbation E with ‖E‖ < ε moves an eigenvalue of A + E
    to z (Trefethen & Embree, Spectra and Pseudospectra, 2005).

    \b
    Reading the plot:
      black dots      eigenvalues of A
      coloured lines  boundaries of the ε-pseudospectra, labelled log10(ε)
                      on the colorbar (−2 means ε = 0.01)
      dashed circle   |z| = 1: the stability boundary of h_t = A h_{t-1}
    For a normal matrix each contour is a union of discs of radius ε around
    the eigenvalues. Contours that reach far beyond those discs, or cross
    the unit circle for tiny ε although every eigenvalue is inside, mark a
    non-normal matrix: small weight perturbations can move its spectrum far,
    and ‖A^k‖ can grow transiently before it decays.

    CKPT_OR_ARRAY is any file 'spectra ls' reads (PyTorch, Keras,
    safetensors, HDF5, .npy/.npz). One matrix gives one figure; several give a
    panel figure (rows: tensors, columns: gates) with shared levels.
    """
    import os

    import numpy as np

    import spectra
    from spectra.plot.pseudospectra import panel_bounds, plot_pseudospectra_panel, save_figure
    from spectra.pseudospectra import resolved_floor

    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    refuse_input(output, [checkpoint])  # before the grids (minutes), as the folder checks
    ckpt = spectra.load(checkpoint, trust=trust)
    chosen = ckpt.select(list(matrices))
    if not chosen:
        from spectra.errors import NoRecurrentWeightsError

        raise NoRecurrentWeightsError(f"{checkpoint}: no recurrent matrix to draw")
    grids, overlays = [], []
    from spectra._validate import unusable

    usable = []
    for m in chosen:
        why = unusable(m.matrix, m.finite)
        if why:
            warn(f"{m.id}: {why}; skipped")
        else:
            usable.append(m)
    for path in _grid_paths(save_grid, len(usable)):
        refuse_input(path, [checkpoint])
    # a panel row (a tensor's gates) is computed and drawn on one box, unless --bounds gives one
    boxes = [bounds] * len(usable)
    if bounds is None:
        boxes = panel_bounds([m.matrix for m in usable], [m.id for m in usable], levels=levels)
    for k, m in enumerate(usable):
        label = f"{m.id} ({k + 1}/{len(usable)})"
        g = spectra.pseudospectra(
            m,
            levels=levels,
            npts=npts,
            bounds=boxes[k],
            tol=tol,
            device=device,
            workers=jobs,
            progress=progress_bar(label, quiet),
        )
        grids.append(g)
        logs = np.log10(np.maximum(g.sigma_min, np.finfo(float).tiny))
        lo, hi = float(np.min(logs)), float(np.max(logs))
        if not any(lo <= v <= hi for v in g.levels):
            warn(
                f"{m.id}: no contour to draw: log10(sigma_min) over the region runs from {lo:.3g} to "
                f"{hi:.3g}, the levels from {min(g.levels):.3g} to {max(g.levels):.3g} "
                "(widen --bounds, or change --levels)"
            )
        elif levels is not None:
            floor = resolved_floor(g.x, g.y, g.sigma_min, g.eigenvalues)
            coarse = [v for v in levels if v <= floor]
            if coarse:
                warn(
                    f"{m.id}: --levels {','.join(f'{v:g}' for v in coarse)} finer than the "
                    f"{g.options['nx']}x{g.options['ny']} grid resolves (below {floor:.3g}): drawn, but "
                    "those contours may miss eigenvalues (raise --npts, or narrow --bounds)"
                )
        if fov:
            w = spectra.numerical_range(m.matrix)
            label = "W(A)"
            if np.max(np.abs(w - w[0])) <= 1e-12 * (1 + abs(w[0])):
                # a point (A = lambda I): the curve would hide under the eigenvalue's dot
                z = complex(w[0])
                label = f"W(A) = {{{z.real:.4g}{'' if z.imag == 0 else f'{z.imag:+.4g}i'}}} (A = λI)"
            overlays.append([(np.append(w.real, w.real[0]), np.append(w.imag, w.imag[0]), label)])
    if not grids:
        raise nothing_usable(checkpoint, "draw")
    if all(g.options["method"] == "svd" for g in grids):
        below = grids[0].options["dense_below"]
        warn_unused(
            ["device", "tol", "jobs"],
            f"here: below n = {below} every grid point is a dense SVD, exact to rounding",
        )
    elif device is not None or all(g.n < _THREADS_FROM_N for g in grids):
        warn_unused(["jobs"], f"here: threads share a grid on the CPU engine from n = {_THREADS_FROM_N} up")

    # the levels drawn: a panel shares one set (given, or chosen from all the grids)
    drawn = None
    if len(grids) > 1:
        from spectra.plot.pseudospectra import shared_levels

        drawn = shared_levels(grids) if levels is None else np.unique(np.asarray(levels, dtype=np.float64))
    summary = []  # printed after the files are written: a closed pipe (| head) must not lose them
    for g in grids:
        o = g.options
        lv = g.levels if drawn is None else drawn
        summary.append(
            f"{g.matrix_id}\tn={g.n}\tgrid={o['nx']}x{o['ny']}\tmethod={o['method']}\t"
            f"levels={','.join(f'{v:.3g}' for v in lv)}\tmin_sigma={fmt(float(g.sigma_min.min()))}\t"
            f"seconds={o['seconds']:.2f}"
        )

    use_agg()
    import matplotlib.pyplot as plt

    name = os.path.basename(os.path.normpath(checkpoint))  # which file: the ids are alike across runs
    if len(grids) == 1:
        fig, ax = plt.subplots(figsize=(5.5, 4.8))
        grids[0].plot(ax=ax, levels=levels, overlay=overlays[0] if fov else None)
        fig.suptitle(name)
    else:
        fig = plot_pseudospectra_panel(grids, levels=levels, overlay=overlays if fov else None, title=name)
    try:
        save_figure(fig, output)
    finally:
        plt.close(fig)
    click.echo(f"wrote {output}", err=True)
    for path, g in zip(_grid_paths(save_grid, len(grids)), grids):
        g.save(path)
        click.echo(f"wrote {path} ({g.matrix_id})", err=True)
    for line in summary:
        click.echo(line)
