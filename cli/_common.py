"""Options and formatting shared by the sub-commands (no mathematics here)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence

import click

trust_option = click.option(
    "--trust-pickle",
    "trust",
    is_flag=True,
    help="Allow pickled Python objects (runs code from the file: only for files you made or trust).",
)
matrix_option = click.option(
    "--matrix",
    "-m",
    "matrices",
    multiple=True,
    metavar="ID",
    help="Only this matrix id (repeatable). A tensor name such as "
    "'rnn.weight_hh_l0' selects all its gates. See 'spectra ls'.",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar on stderr.")


def fmt(x, digits: int = 4) -> str:
    """Format a figure with `digits` significant digits; inf/None spelled out."""
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if math.isnan(x):
        return "nan"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:#.{digits}g}".rstrip(".")
    return f"{x:.{digits - 1}e}"


def table(rows: Sequence[Sequence[str]], header: Sequence[str], right: Sequence[bool] | None = None) -> str:
    """A plain-text table with aligned columns."""
    cols = len(header)
    right = right or [False] + [True] * (cols - 1)
    widths = [max([len(str(header[c]))] + [len(str(r[c])) for r in rows]) for c in range(cols)]

    def line(cells):
        return "  ".join(
            str(v).rjust(w) if r else str(v).ljust(w) for v, w, r in zip(cells, widths, right)
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def echo_json(doc) -> None:
    """Write `doc` as indented JSON on stdout."""
    click.echo(json.dumps(doc, indent=2, allow_nan=False))


def warn(msg: str) -> None:
    """One warning line on stderr."""
    click.echo(f"spectra: warning: {msg}", err=True)


def progress_bar(label: str, quiet: bool):
    """A progress callback on stderr, or None (quiet, or stderr not a terminal)."""
    if quiet:
        return None
    from spectra._progress import bar

    return bar(label, stream=sys.stderr)


def use_agg() -> None:
    """Select matplotlib's file-only backend (the CLI never opens windows)."""
    import matplotlib

    matplotlib.use("Agg")


#: figure formats the commands write, chosen by the extension of ``-o``
FIGURE_EXTS = (".png", ".svg", ".pdf")


def check_figure_path(ctx, param, value):
    """Click callback: a figure path must end in .png, .svg or .pdf."""
    if value is not None and os.path.splitext(value)[1].lower() not in FIGURE_EXTS:
        raise click.BadParameter(f"{value!r}: the figure format comes from the extension: .png, .svg or .pdf")
    return value


def eps_list(default: tuple[float, ...] | None):
    """Click callback factory: parse ``1e-3,1e-2`` into positive floats (`default` when absent)."""

    def parse(ctx, param, value):
        if value is None:
            return default
        try:
            eps = tuple(float(v) for v in value.split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"{value!r}: expected numbers like 1e-2,1e-1") from None
        if not eps or any(not (e > 0 and math.isfinite(e)) for e in eps):
            raise click.BadParameter(f"{value!r}: every ε must be a positive number")
        return eps

    return parse


figure_output_option = click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    callback=check_figure_path,
    help="Figure file: .png, .svg or .pdf (by the extension).",
)
