"""``spectra transient`` and ``spectra kreiss``: transient growth and Kreiss bounds."""

from __future__ import annotations

import math
import os
import sys
import warnings

import click
from spectra_cli._common import (
    FiniteFloatRange,
    echo_json,
    figure_output_option,
    fmt_bound,
    fmt_bracketed,
    fmt_rho,
    fmt_with_error,
    matrix_option,
    nothing_usable,
    quiet_option,
    refuse_input,
    rho_error,
    table,
    trust_option,
    warn,
)

from spectra._json import jsonable

SCHEMA_VERSION = 1


def _peak_cells(d: dict) -> list[str]:
    """The table's ``peak`` and ``k*`` cells.

    A peak the powers stopped short of proving is a lower bound on ``sup_k ||A^k||`` (less what
    rounding may have moved it by), and so is the Kreiss constant's lower bound
    (``sup_k ||A^k|| >= K``): the larger is shown, with ``k*`` as "-" when it comes from K.
    """
    t, k_lo = d["transient"], d["kreiss"]["lower"]
    kstar = "-" if t["peak_k"] is None else str(t["peak_k"])
    err = t.get("peak_error")
    if not t.get("peak_is_lower_bound"):
        # rounding may move the norms of strongly non-normal powers: the digits it leaves
        return [fmt_with_error(t["peak"], err), kstar]
    low = t.get("peak_lower", t["peak"])  # each norm less its band; ||A^0|| = 1 exactly
    if isinstance(k_lo, float) and isinstance(low, float) and k_lo > low:
        return ["≥" + fmt_bound(k_lo, up=False), "-"]
    return ["≥" + fmt_bound(low, up=False), kstar]


def _chosen(checkpoint: str, matrices, trust: bool, *, keep: bool = False):
    """Load, select, and drop (with a warning) matrices holding NaN/Inf or out of the float range.

    With `keep`, the dropped ones are returned too, as ``(matrix, usable)`` pairs: ``kreiss``
    lists them with ``finite: false``, as ``analyze`` does.
    """
    import spectra

    ckpt = spectra.load(checkpoint, trust=trust)
    out = []
    from spectra._validate import unusable

    for m in ckpt.select(list(matrices) or None):
        why = unusable(m.matrix, m.finite)
        if why:
            warn(
                f"{m.id}: {why}; " + ("not analysed" if keep else "skipped (nothing can be computed from it)")
            )
            if keep:
                out.append((m, False))
            continue
        out.append((m, True) if keep else m)
    return ckpt, out


def _not_analysed(m) -> dict:
    """The ``kreiss --json`` entry of a matrix holding NaN/Inf: its identity, every figure null."""
    return {
        "id": m.id,
        "n": m.n,
        "finite": False,
        "spectral_radius": None,
        "norm_2": None,
        "kreiss": {
            "value": None,
            "lower": None,
            "upper": None,
            "certified": False,
            "z": None,
            "message": None,
        },
        "bracket": [None, None],
        "transient": {
            "peak": None,
            "peak_k": None,
            "peak_is_lower_bound": None,
            "kmax": None,
            "position_in_bracket": None,
        },
        "numerical_radius": None,
        "numerical_radius_upper": None,
    }


def _num(x: float):
    """JSON-safe number: inf spelled as the string "inf", NaN as null."""
    if x is None or math.isnan(float(x)):
        return None
    return jsonable(float(x))


#: most matrices ``transient`` draws on one axes by default (more get a panel each)
ONE_AXES_MAX = 4


@click.command(
    "transient",
    epilog="""\b
Examples:
  spectra transient lstm.pt -o growth.png
  spectra transient lstm.pt -m 'lstm.weight_hh_l0[forget]' --kmax 200 -o forget.svg
  spectra transient A.npy --no-kreiss -o A.pdf
  spectra transient lstm.pt --panels -o gates.png
""",
)
@click.argument("checkpoint", metavar="CKPT_OR_ARRAY", type=click.Path(readable=False))
@matrix_option
@click.option(
    "--kmax",
    type=click.IntRange(min=1, max=100_000),
    default=None,
    help="Last power k. Default: the first k past the peak where ||A^k|| is below both 1 and 1% of "
    "the peak (or is 0), at most 2000; 100 when rho >= 1.",
)
@click.option(
    "--kreiss/--no-kreiss",
    default=True,
    show_default=True,
    help="Draw the Kreiss bracket K <= sup ||A^k|| <= e n K (computing K takes longer for large n).",
)
@click.option(
    "--panels/--one-axes",
    default=None,
    help="One panel per matrix (e.g. per gate) or all curves on one axes (default: panels for more "
    f"than {ONE_AXES_MAX} matrices, or when their peaks differ by more than a factor 1e6).",
)
@figure_output_option
@quiet_option
@trust_option
def transient(checkpoint, matrices, kmax, kreiss, panels, output, quiet, trust):
    """Plot the transient growth ||A^k||_2 against k for recurrent weight matrices.

    The norms are the 2-norms of the powers of A to rounding (dense SVDs; for
    n >= 96 Lanczos, checked against SVDs) (the A of
    h_t = f(A h_{t-1} + B x_t + b)): how much a perturbation of the hidden
    state of a linearised network can grow over k steps before the spectral
    radius rho(A) (dashed rho^k) takes over. With --kreiss, dotted and
    dash-dot lines show where the Kreiss matrix theorem puts the peak:
    K(A) <= sup_k ||A^k|| <= e n K(A). --panels draws one panel per matrix
    (per gate), the default for more than four or for peaks more than 1e6
    apart; the gates of one tensor share the y axis.
    """
    from spectra_cli._common import use_agg

    use_agg()
    import matplotlib.pyplot as plt

    from spectra.kreiss import kreiss_constant, transient_growth
    from spectra.plot.pseudospectra import save_figure
    from spectra.plot.transient import plot_transient, plot_transient_panels, prefer_panels

    refuse_input(output, [checkpoint])
    _, chosen = _chosen(checkpoint, matrices, trust)
    if not chosen:
        raise nothing_usable(checkpoint, "plot")
    results, krs = [], []
    for m in chosen:
        if not quiet and sys.stderr.isatty():
            click.echo(f"{m.id}: powers ...", err=True)
        tg = transient_growth(m.matrix, kmax=kmax)
        results.append(tg)
        krs.append(kreiss_constant(m.matrix, transient=tg, stored_dtype=m.dtype) if kreiss else None)
    title = f"transient growth: {os.path.basename(checkpoint)}"
    labels = [m.id for m in chosen]
    if panels is None:
        # many matrices, or peaks too far apart for one log axis (1e250 beside 19): a panel each
        panels = len(chosen) > ONE_AXES_MAX or prefer_panels(results)
    if panels:
        fig = None
        try:
            axes = plot_transient_panels(results, labels, kreiss=krs if kreiss else None, title=title)
            fig = axes[0].figure
            save_figure(fig, output)
        finally:
            if fig is not None:
                plt.close(fig)
    else:
        fig, ax = plt.subplots(figsize=(7.0, 4.5))
        try:
            plot_transient(results, labels=labels, kreiss=krs if kreiss else None, ax=ax, title=title)
            save_figure(fig, output)
        finally:
            plt.close(fig)
    click.echo(f"wrote {output}", err=True)


@click.command(
    "kreiss",
    epilog="""\b
Examples:
  spectra kreiss lstm.pt
  spectra kreiss lstm.pt -m 'lstm.weight_hh_l0[forget]' --json
  spectra kreiss slow.npy --kmax 20000      # rho near 1: powers far enough to prove the peak
""",
)
@click.argument("checkpoint", metavar="CKPT_OR_ARRAY", type=click.Path(readable=False))
@matrix_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@click.option(
    "--certify",
    type=click.Choice(["auto", "yes", "no"]),
    default="auto",
    show_default=True,
    help="Prove the upper bound on K: square cells by concave interpolation (about one pseudospectra "
    "grid of work), then, where they give up, circle level sets (O(n^3) each; auto: those only for "
    "n <= 64). no: the search alone, with sup_k ||A^k|| as the upper bound.",
)
@click.option(
    "--rtol",
    type=FiniteFloatRange(min=1e-12, max=1.0, min_open=False),
    default=1e-6,
    show_default=True,
    help="Relative gap between the lower and the certified upper bound on K.",
)
@click.option(
    "--kmax",
    type=click.IntRange(min=1, max=100_000),
    default=None,
    help="Last power k of the transient (peak, k*). Default: the first k past the peak where "
    "||A^k|| is below both 1 and 1% of the peak (or is 0), at most 2000; 100 when rho >= 1. "
    "A slowly decaying matrix (rho near 1) needs more to prove its peak.",
)
@quiet_option
@trust_option
def kreiss(checkpoint, matrices, as_json, certify, rtol, kmax, quiet, trust):
    """Kreiss constants and transient growth of recurrent weight matrices.

    K(A) = sup_{|z|>1} (|z| - 1) ||(zI - A)^-1||, infinite when rho(A) > 1
    or when an eigenvalue on the unit circle is defective (rho(A) = 1 with
    semisimple unimodular eigenvalues gives a finite K, computed just inside).
    The Kreiss matrix theorem brackets the worst transient growth of the
    powers: K <= sup_k ||A^k|| <= e n K. Columns: rho(A); a lower bound on K
    attained at an explicit point and a proved upper bound; e n K; the
    measured peak of ||A^k||_2 and the k where it occurs; the numerical
    radius w(A) (when w <= 1, ||A^k|| <= 2 for every k).
    """
    from spectra.kreiss import kreiss_constant, transient_growth
    from spectra.numerical_range import radius_bracket

    ckpt, selected = _chosen(checkpoint, matrices, trust, keep=True)
    if not any(ok for _, ok in selected):
        raise nothing_usable(checkpoint, "compute")
    cert = {"auto": "auto", "yes": True, "no": False}[certify]
    docs = []
    for m, ok in selected:
        if not ok:  # listed, as analyze lists it, so ids match across commands
            docs.append(_not_analysed(m))
            continue
        if not quiet and not as_json and sys.stderr.isatty():
            click.echo(f"{m.id}: ...", err=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tg = transient_growth(m.matrix, kmax=kmax)
            kr = kreiss_constant(m.matrix, rtol=rtol, certify=cert, transient=tg, stored_dtype=m.dtype)
            # spectra.numerical_radius is the lower end; the upper end says which digits are right
            w, w_hi = radius_bracket(m.matrix)
        for c in caught:  # said once per matrix, with its id
            warn(f"{m.id}: {c.message}")
        lo, hi = kr.bracket
        # K infinite (rho >= 1, not a contraction): sup_k ||A^k|| is infinite too; the
        # largest norm computed would only say where the powers were stopped
        unbounded = math.isinf(kr.value)
        docs.append(
            {
                "id": m.id,
                "n": m.n,
                "finite": True,
                "spectral_radius": _num(kr.spectral_radius),
                "norm_2": _num(kr.norm),
                "kreiss": {
                    "value": _num(kr.value),
                    "lower": _num(kr.lower),
                    "upper": _num(kr.upper),
                    "certified": kr.certified,
                    "z": None if kr.z is None else [kr.z.real, kr.z.imag],
                    "message": kr.message,
                },
                "bracket": [_num(lo), _num(hi)],
                "transient": {
                    "peak": "inf" if unbounded else _num(tg.peak),
                    "peak_k": None if unbounded else tg.peak_k,
                    "peak_is_lower_bound": False if unbounded else not tg.sup_proved,
                    # how far rounding may have moved the peak (an estimate; 0 where negligible)
                    "peak_error": None if unbounded else _num(tg.peak_error),
                    # a lower bound on the largest norm computed: each norm less its band, >= 1
                    "peak_lower": None if unbounded else _num(tg.peak_lower),
                    "kmax": tg.kmax,
                    # only a proved peak has a place in the bracket (a capped one is a lower bound)
                    "position_in_bracket": (
                        _num(kr.where_in_bracket(tg.peak)) if tg.sup_proved and not unbounded else None
                    ),
                },
                "numerical_radius": _num(w),
                "numerical_radius_upper": _num(w_hi),
            }
        )
    if as_json:
        echo_json({"schema_version": SCHEMA_VERSION, "source": ckpt.path, "matrices": docs})
        return
    for d, (m, _) in zip(docs, selected):
        # near 1, rho is printed to the digits that tell it from 1: only those rounding resolves
        near = isinstance(d["spectral_radius"], float) and abs(d["spectral_radius"] - 1) < 5e-4
        d["_rho_error"] = rho_error(m.matrix) if near else 0.0
    header = ["id", "n", "rho", "K lower", "K upper", "e*n*K", "peak", "k*", "w(A)"]
    rows = []
    for d in docs:
        if not d["finite"]:
            rows.append([d["id"], str(d["n"])] + ["-"] * (len(header) - 2))
            continue
        k = d["kreiss"]
        rows.append(
            [
                d["id"],
                str(d["n"]),
                fmt_rho(d["spectral_radius"], d["_rho_error"]),
                fmt_bound(k["lower"], 7, up=False),  # bounds rounded outwards: still bounds
                fmt_bound(k["upper"], 7, up=True) + ("" if k["certified"] or k["lower"] == "inf" else "*"),
                fmt_bound(d["bracket"][1], up=True),
                *_peak_cells(d),
                fmt_bracketed(d["numerical_radius"], d["numerical_radius"], d["numerical_radius_upper"]),
            ]
        )
    click.echo(table(rows, header))
    if any(r[4].endswith("*") for r in rows):  # part of the table: on stdout with it
        click.echo("* upper bound not certified to --rtol (see --json 'message')")
    if not all(d["finite"] for d in docs):
        click.echo("-: not analysed (NaN/Inf, or out of the float range)")
