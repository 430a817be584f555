"""``spectra stabilize`` (write a spectrally normalised copy) and ``spectra compare`` (before vs after)."""

from __future__ import annotations

import warnings

import click
from spectra_cli._common import (
    FiniteFloatRange,
    binary_output_option,
    check_figure_path,
    dinst_floor,
    echo_json,
    eps_list,
    fmt,
    fmt_floor,
    fmt_rho,
    grouped_notes,
    matrix_option,
    quiet_write_option,
    refuse_existing,
    refuse_input,
    rho_error,
    schur_floor,
    table,
    trust_option,
    use_agg,
    warn,
    warn_unused,
)

METHOD_NAMES = ["power", "exact", "svd-clip", "spectral-norm"]
CRITERION_NAMES = ["distance_to_instability", "kreiss", "transient_peak", "henrici_relative"]

METHOD_HELP = (
    "power: the second paper's Algorithm 1 (Rayleigh quotient after --iterations power steps; "
    "scales only when the estimate exceeds --target); exact: divide by the spectral radius "
    "when it exceeds --target; "
    "svd-clip: clip singular values at --target (first paper); spectral-norm: W*target/sigma_max "
    "always (torch's spectral_norm)."
)

STABILIZE_EPILOG = """\b
Exit codes:
  0  the file was written
  2  usage error (bad option or argument)
  3  unreadable input, or a file not written back in its format (a whole
     pickled model: stabilize its state_dict), 4 unsafe input (needs
     --trust-pickle), 5 no recurrent matrix, 6 unknown --matrix id, 7 not a
     square matrix, 8 OUTPUT is the input, exists (use --force) or could not be
     written, 9 a matrix cannot be written back (spectral_norm or weight_norm
     wrapper, LSTM projection; orthogonal parametrization, quantized, pruned
     with svd-clip: these are left out of the default selection with a
     warning, and refused when named with --matrix or when no other matrix
     is left); nothing is written then
"""

COMPARE_EPILOG = """\b
Exit codes:
  0  no matrix got less robust (by --criterion)
  1  some matrix got less robust
  2  usage error (bad option or argument; give AFTER or --stabilize, not both)
  3-9  as for the other commands (unreadable file, unknown --matrix id, ...)

\b
Criteria (a matrix "got less robust" when, by more than 1e-6 relative):
  distance_to_instability  min over |z|=1 of sigma_min(zI - A) fell (default)
  kreiss                   the Kreiss constant rose
  transient_peak           max_k ||A^k|| rose
  henrici_relative         dep_F(A)/||A||_F rose
"""


def _common_stabilize_options(f):
    f = click.option(
        "--seed",
        type=click.IntRange(0, 2**63 - 1),
        default=0,
        show_default=True,
        help="Seed of the power method's start vector (0 to 2^63-1).",
    )(f)
    f = click.option(
        "--stacked",
        is_flag=True,
        help="One factor per stored tensor (all gates of weight_hh together) instead of per gate.",
    )(f)
    f = click.option(
        "--target",
        type=FiniteFloatRange(min=0, min_open=True),
        default=1.0,
        show_default=True,
        help="Radius to normalise to (1 = the unit disk).",
    )(f)
    f = click.option(
        "--iterations",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Power steps (method power; the paper uses 1).",
    )(f)
    return f


@click.command(epilog=STABILIZE_EPILOG)
@click.argument("checkpoint", type=click.Path(readable=False))
@binary_output_option("File to write (same format).")
@click.option(
    "--method", type=click.Choice(METHOD_NAMES), default="power", show_default=True, help=METHOD_HELP
)
@_common_stabilize_options
@matrix_option
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout (schema_version 1).")
@trust_option
@quiet_write_option
def stabilize(
    checkpoint, output, method, iterations, target, seed, stacked, matrices, force, as_json, trust, quiet
):
    """Write a spectrally normalised copy of CHECKPOINT to OUTPUT, in the same format.

    Only the recurrent weights change (cast back to their stored dtype);
    everything else in the file is kept. The input is never modified and
    OUTPUT is written atomically. Prints, per matrix, the method's estimate,
    the factor every weight was multiplied by (scale; '-' for svd-clip, which
    clips the singular values above --target instead: no one factor), and the
    spectral radius before and after.
    """
    from spectra.stabilize import StabilizeWarning, stabilize_checkpoint

    if method != "power":
        warn_unused(["iterations", "seed"], f"with --method {method}: only the power method iterates")
    refuse_input(output, [checkpoint])
    refuse_existing(output, force)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StabilizeWarning)
        changes = stabilize_checkpoint(
            checkpoint,
            output,
            method=method,
            iterations=iterations,
            target=target,
            seed=seed,
            matrices=list(matrices) or None,
            stacked=stacked,
            force=force,
            trust=trust,
        )
    pairs = []  # (matrix id, note) of the stabilisation notes; other warnings as they are
    for w in caught:
        parts = str(w.message).split(": ", 1)
        if issubclass(w.category, StabilizeWarning) and len(parts) == 2:
            pairs.append((parts[0], parts[1]))
        else:
            warn(str(w.message))
    for line in grouped_notes(pairs, len(changes)):
        warn(line)
    if as_json:
        echo_json(
            {
                "schema_version": 1,
                "input": str(checkpoint),
                "output": str(output),
                "method": method,
                "iterations": iterations,
                "target": target,
                "stacked": stacked,
                "matrices": [
                    {
                        "id": c.id,
                        "source": c.source,
                        "estimate": _j(c.estimate),
                        "scale": None if method == "svd-clip" else _j(c.scale),
                        "changed": c.changed,
                        "spectral_radius_before": _j(c.spectral_radius_before),
                        "spectral_radius_after": _j(c.spectral_radius_after),
                        "warnings": list(c.warnings),
                    }
                    for c in changes
                ],
            }
        )
    else:
        rows = [
            [
                c.id,
                fmt(c.estimate),
                "-" if method == "svd-clip" else fmt(c.scale),
                fmt(c.spectral_radius_before),
                fmt(c.spectral_radius_after),
                "yes" if c.changed else "no",
            ]
            for c in changes
        ]
        click.echo(table(rows, ["id", "estimate", "scale", "rho before", "rho after", "changed"]))
        if method == "svd-clip":
            click.echo(
                "scale -: svd-clip multiplies by no single factor; it clips the singular values above "
                "--target (estimate: sigma_max" + (", of the whole stored tensor)" if stacked else ")")
            )
    n = sum(c.changed for c in changes)
    if not quiet:
        click.echo(f"wrote {output} ({n} of {len(changes)} matrices changed, method {method})", err=True)


def _j(x):
    import math

    if x is None:
        return None
    x = float(x)
    if math.isfinite(x):
        return x
    return "inf" if x > 0 else ("-inf" if x < 0 else "nan")


COMPARE_COLUMNS = [
    ("rho", "spectral_radius"),
    ("|A|_2", "norm_2"),
    ("dep_F", "henrici"),
    ("dep_F/|A|_F", "henrici_relative"),
]
ROBUST_COLUMNS = [
    ("d_inst", "distance_to_instability"),
    ("K", "kreiss"),
    ("peak", "transient_peak"),
]


def _arrow(fc, key: str = "", lower: tuple[bool, bool] = (False, False), m=None) -> str:
    """``before -> after`` as ``spectra analyze`` prints each figure.

    A side that is only a lower bound (a capped transient peak, K beyond rounding) shows as
    ``≥x``; a figure below its rounding level as ``<x``; a spectral radius with the digits
    that tell it from 1 (0.9999998, not 1.00) that rounding resolves.
    """
    if fc is None:
        return "-"
    mats = (m.before, m.after) if m is not None else (None, None)

    def show(v, A):
        import numpy as np

        if A is None or not isinstance(v, float):
            return fmt(v, 3)
        A = np.asarray(A)
        n = A.shape[0]
        if key == "spectral_radius":
            return fmt_rho(v, rho_error(A) if abs(v - 1) < 5e-4 else 0.0)
        if key in ("henrici", "henrici_relative"):
            return fmt_floor(v, schur_floor(n, float(np.linalg.norm(A)) if key == "henrici" else 1.0), 3)
        if key == "distance_to_instability":
            return fmt_floor(v, dinst_floor(n, float(np.linalg.norm(A, 2))), 3)
        return fmt(v, 3)

    b, a = (("≥" if lo else "") + show(v, A) for v, lo, A in zip((fc.before, fc.after), lower, mats))
    return f"{b} -> {a}"


def _render(result) -> str:
    from spectra.normality import eps_label

    eps_keys = [f"pseudospectral_radius[{eps_label(e)}]" for e in result.epsilons]
    header = ["id"] + [c[0] for c in COMPARE_COLUMNS] + [f"rho_eps({eps_label(e)})" for e in result.epsilons]
    header += [c[0] for c in ROBUST_COLUMNS] + ["verdict"]
    keys = [c[1] for c in COMPARE_COLUMNS] + eps_keys + [c[1] for c in ROBUST_COLUMNS]
    rows = []
    for m in result.matrices:
        verdict = {True: "LESS ROBUST", False: "ok", None: "n/a"}[m.less_robust]
        cells = [_arrow(m.figures.get(k), k, m.lower_bounds.get(k, (False, False)), m) for k in keys]
        rows.append([m.id, *cells, verdict])
    lines = [table(rows, header)]
    bad = result.less_robust
    lines.append("")
    lines.append(
        f"criterion {result.criterion}: "
        + (
            f"{len(bad)} of {len(result.matrices)} matrices got less robust"
            if bad
            else "none got less robust"
        )
    )
    return "\n".join(lines)


@click.command(epilog=COMPARE_EPILOG)
@click.argument("before", type=click.Path(readable=False))
@click.argument("after", type=click.Path(readable=False), required=False)
@click.option(
    "--stabilize",
    "method",
    type=click.Choice(METHOD_NAMES),
    default=None,
    help="Compare BEFORE with its stabilised version (nothing written) instead of a second file.",
)
@_common_stabilize_options
@matrix_option
@click.option(
    "--criterion",
    type=click.Choice(CRITERION_NAMES),
    default="distance_to_instability",
    show_default=True,
    help="What 'less robust' means (see below).",
)
@click.option(
    "--eps",
    callback=eps_list((1e-2, 1e-1)),
    metavar="LIST",
    help="ε of the pseudospectral radii (default 1e-2,1e-1).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout (schema_version 1).")
@click.option(
    "-o",
    "--output",
    "figure",
    type=click.Path(dir_okay=False),
    default=None,
    callback=check_figure_path,
    help="Also draw the pseudospectra before/after side by side (one row per matrix) to this image "
    "(.png, .svg or .pdf).",
)
@click.option(
    "--npts", type=click.IntRange(min=8), default=120, show_default=True, help="Grid points per side (-o)."
)
@trust_option
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Nothing on stderr but warnings and errors (compare shows no progress bar; as in analyze).",
)
@click.pass_context
def compare(
    ctx,
    before,
    after,
    method,
    iterations,
    target,
    seed,
    stacked,
    matrices,
    criterion,
    eps,
    as_json,
    figure,
    npts,
    trust,
    quiet,
):
    """Compare the robustness of each recurrent matrix before and after.

    Either two checkpoints of the same network (matched by matrix id), or one
    checkpoint and --stabilize METHOD (before vs after stabilisation, no file
    written; --iterations, --target, --seed and --stacked apply only then).
    Per matrix: spectral radius, ||A||_2, Henrici departure, pseudospectral
    radii, distance to instability, Kreiss constant and transient peak,
    before -> after.

    Note: stabilising by the dominant eigenvalue's modulus (power, exact) puts
    that eigenvalue on the unit circle when it was outside (both only scale
    down, when the estimate exceeds --target), where the distance to
    instability is 0:
    the spectrum is "stable" while an arbitrarily small perturbation makes it
    unstable (the second paper's point).
    """
    from spectra.compare import compare_checkpoints, compare_stabilized

    if (after is None) == (method is None):
        raise click.UsageError("give either AFTER or --stabilize METHOD (exactly one)")
    if after is not None:
        # options of the stabilisation mean nothing between two files: refused, not ignored
        from click.core import ParameterSource

        given = [
            "--" + name
            for name in ("iterations", "target", "seed", "stacked")
            if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(
                f"{', '.join(given)}: stabilisation options; they apply only with --stabilize METHOD, "
                "not when comparing with AFTER"
            )
    if method is not None and method != "power":
        warn_unused(["iterations", "seed"], f"with --stabilize {method}: only the power method iterates")
    if figure is None:
        warn_unused(["npts"], "without -o (it sets the figure's grid)")
    refuse_input(figure, [before] if after is None else [before, after])
    sel = list(matrices) or None
    if method is None:
        result = compare_checkpoints(
            before, after, matrices=sel, criterion=criterion, epsilons=eps, trust=trust
        )
    else:
        result = compare_stabilized(
            before,
            method=method,
            iterations=iterations,
            target=target,
            seed=seed,
            matrices=sel,
            stacked=stacked,
            criterion=criterion,
            epsilons=eps,
            trust=trust,
        )
    # each note once, with the matrices it concerns (a note alone does not say which gate)
    for line in grouped_notes([(m.id, n) for m in result.matrices for n in m.notes], len(result.matrices)):
        warn(line)
    from spectra_cli import main as _main

    _main.EXIT_ON_BROKEN_PIPE = result.exit_code  # the finding stands if the reader goes away
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(_render(result))
    if figure:
        use_agg()
        import matplotlib.pyplot as plt

        from spectra.plot.compare import plot_compare
        from spectra.plot.pseudospectra import save_figure

        fig = plot_compare(result, npts=npts).flat[0].figure
        try:
            save_figure(fig, figure, dpi=120)  # TrueType fonts in PDF, as every figure
        finally:
            plt.close(fig)
        if not quiet:
            click.echo(f"wrote {figure}", err=True)
    ctx.exit(result.exit_code)
