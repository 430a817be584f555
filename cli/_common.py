"""Options and formatting shared by the sub-commands (no mathematics here)."""

from __future__ import annotations

import json
import math
import os
import re
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


class FiniteFloatRange(click.FloatRange):
    """A :class:`click.FloatRange` that also refuses nan and inf (a usage error, exit 2)."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return v


def nothing_usable(checkpoint, what: str):
    """The error when every selected matrix was dropped (NaN/Inf, or out of the float range)."""
    from spectra.errors import NonFiniteError

    return NonFiniteError(
        f"{checkpoint}: every selected matrix holds NaN or Inf, or entries out of the float range "
        f"(see the warnings above); nothing to {what}"
    )


def plural(n: int, one: str, many: str | None = None) -> str:
    """``"1 matrix"``, ``"3 matrices"``: a count with its noun."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


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
        # '#' keeps trailing zeros (1.000); with few digits 'g' may switch to an exponent: "4.e+04"
        return f"{x:#.{digits}g}".rstrip(".").replace(".e", "e")
    return f"{x:.{digits - 1}e}"


def fmt_bound(x, digits: int = 4, *, up: bool) -> str:
    """:func:`fmt` rounded towards +inf (`up`, an upper bound) or -inf: a bound stays a bound.

    Rounding a lower bound 35.7212857 to nearest prints 35.72129, above the quantity it bounds.
    """
    if not isinstance(x, float) or not math.isfinite(x) or x == 0:
        return fmt(x, digits)
    from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

    d = Decimal(x)  # the double's exact value
    q = Decimal(1).scaleb(d.adjusted() - digits + 1)
    r = d.quantize(q, rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return fmt(float(r), digits)


def fmt_bracketed(x, lower, upper, digits: int = 4, *, extra: int = 4) -> str:
    """:func:`fmt` of `x` known to lie in ``[lower, upper]``, with digits enough to be right.

    Rounded to `digits`, 19.42532 <= K <= 19.42535 prints 19.43 from either end; but
    2.499999 <= K <= 2.500001 prints 2.500 or 2.500 and 3.0449999 <= K <= 3.0450001 prints
    3.045 or 3.045 -- and 1.23449 <= K <= 1.23451 would print 1.234 or 1.235. Digits are added
    (up to `extra` more) until both ends round alike, and that common figure is shown; a
    bracket too wide for `digits` is shown with fewer (down to one), and one too wide for any
    as ``~`` and `x` to two digits.
    """
    ok = all(isinstance(v, float) and math.isfinite(v) and v != 0 for v in (x, lower, upper))
    if ok and lower <= x <= upper:
        for d in [*range(digits, digits + extra + 1), *range(digits - 1, 0, -1)]:
            a, b = fmt(lower, d), fmt(upper, d)
            if a == b:
                return a
        return "~" + fmt(x, 2)
    return fmt(x, digits)


def fmt_with_error(x, err, digits: int = 4) -> str:
    """:func:`fmt` of `x`, known to within `err` (absolute): the digits ``[x - err, x + err]`` settle."""
    if isinstance(x, float) and isinstance(err, float) and err > 0 and math.isfinite(x):
        if math.isfinite(err):
            for d in range(digits, 1, -1):  # the most digits both ends share, at least two
                if fmt(x - err, d) == fmt(x + err, d):
                    return fmt(x - err, d)
        return "~" + fmt(x, 2)  # fewer than two digits settled: "~12", not "1e+01"
    return fmt(x, digits)


def fmt_kreiss(m: dict, digits: int = 4) -> str:
    """The Kreiss constant of a JSON row (``kreiss``, ``kreiss_lower``, ...) as tables print it.

    A certified K with the digits both ends of its bracket share; an uncertified one (found by
    search: the cells gave up and n > 64, or rho = 1 to rounding) or one beyond what double
    precision resolves as
    ``≥`` its proved lower bound; inf as ``inf``.
    """
    v = m.get("kreiss")
    if not isinstance(v, float) or not math.isfinite(v):
        return fmt(v, digits)
    lo, hi = m.get("kreiss_lower"), m.get("kreiss_certified_upper")
    lo = lo if isinstance(lo, float) else None
    if m.get("kreiss_resolved") is False:
        # K beyond what double precision resolves: the proved lower bound, not the estimate
        return "≥" + fmt_bound(lo if lo is not None else v, digits, up=False)
    if lo is not None and isinstance(hi, float) and hi <= lo * (1 + 1e-5):
        return fmt_bracketed(v, lo, hi, digits)  # certified
    if lo is not None:
        # attained, so a lower bound; a higher maximum may have been missed
        return "≥" + fmt_bound(lo, digits, up=False)
    return fmt(v, digits)


def fmt_rho(x, err: float = 0.0) -> str:
    """The spectral radius with enough digits to tell it from 1 (1.0001 is not "1.000").

    `err` bounds its rounding error (``kappa(V) n u ||A||``, or the measured sensitivity of
    ill-conditioned eigenvalues): no digit below it is shown, and when it reaches ``|x - 1|``
    the relation to 1 is not resolved. Away from 1 an `err` beyond the fourth digit leaves
    fewer digits (:func:`fmt_floor`; a nearly defective matrix printed 0.5762 for 0.5684).
    """
    finite_err = isinstance(err, float) and math.isfinite(err) and err > 0
    if isinstance(x, float) and math.isfinite(x) and x != 1.0 and abs(x - 1) < 5e-4:
        if not (err < 0.5 * abs(x - 1)):
            return fmt_floor(x, err) if finite_err else fmt(x)
        # down to the first digit where x differs from 1 (no trailing zeros: 1.0001, not 1.00010),
        # and no further than the error allows
        need = math.floor(-math.log10(abs(x - 1))) + 2
        can = math.floor(-math.log10(err)) + 1 if err > 0 else 17
        return f"{x:.{max(4, min(17, need, can))}g}"
    return fmt_floor(x, err) if finite_err else fmt(x)


def fmt_kappa(kappa, n: int, digits: int = 3) -> str:
    """The eigenvector condition number with the digits rounding leaves it.

    Computed eigenvectors of a nearly defective matrix are off by about ``u kappa`` in angle while
    their angle is about ``1/kappa``: ``kappa(V)`` carries a relative error of about ``n u kappa^2``
    (a rotated 2x2 Jordan block gave 1.90e8 for 7.75e8). Past ``n u kappa^2 = 1/4`` no digit is
    right, but the true value is at least ``1/(2 sqrt(n u))`` (below that the computed one would
    be within 25%): shown as ``≥`` that, to one digit.
    """
    if not (isinstance(kappa, float) and math.isfinite(kappa) and kappa > 0 and n > 0):
        return fmt(kappa, digits)
    rel = n * U * kappa * kappa
    if rel >= 0.25:
        return "≥" + fmt_bound(0.5 / math.sqrt(n * U), 1, up=False)
    return fmt_floor(kappa, kappa * rel, digits)


#: unit roundoff of float64
U = 2.0**-53


def eig_error(kappa: float, n: int, norm_2: float) -> float:
    """``kappa(V) n u ||A||_2``: how far rounding can move the eigenvalues (Bauer-Fike); inf if defective."""
    return kappa * n * U * norm_2


def schur_floor(n: int, norm_fro: float) -> float:
    """Rounding level of dep_F = ||N||_F: the Schur form's backward error ``10 n u ||A||_F``."""
    return 10 * n * U * norm_fro


def dinst_floor(n: int, norm_2: float) -> float:
    """Rounding level of the distance to instability: the SVDs of ``zI - A``, ``|z| = 1``."""
    return 10 * n * U * (norm_2 + 1)


def rho_error(A) -> float:
    """:func:`eig_error` of a matrix (computes its eigenvector condition number)."""
    from spectra.normality import analyze_matrix

    r = analyze_matrix(A)
    return eig_error(float(r.kappa_eigvec), r.shape[0], float(r.norm_2))


def fmt_floor(x, floor: float, digits: int = 4) -> str:
    """`x` to the digits its rounding error `floor` leaves, or ``<floor`` below it.

    Below the floor: ``<floor`` (one digit, rounded up). Above it, as many significant digits
    as ``x/floor`` resolves (9.98e-15 with an error of 5e-15 is "1e-14", not "9.983e-15").
    """
    if isinstance(x, float) and math.isfinite(x) and floor > 0:
        if 0 < x < floor:
            return "<" + fmt_bound(float(floor), 1, up=True)
        if 0 < x < 10.0**digits * floor:
            return fmt(x, max(1, min(digits, math.floor(math.log10(x / floor)))))
    return fmt(x, digits)


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


#: the library's messages name its Python keywords beside the options (``--force (force=True)``);
#: on the command line only the option is named, and no keyword a command does not take
_API_WORDS: tuple[tuple[str, str], ...] = (
    (" (force=True)", ""),
    ("pass trust=True (--trust-pickle)", "pass --trust-pickle"),
    (
        "(pass kmax, or spectra transient --kmax, to go further)",
        "(spectra kreiss --kmax N, or transient --kmax N, goes further)",
    ),
)


def cli_text(msg: str) -> str:
    """A library message as the command line says it: :data:`_API_WORDS` replaced."""
    for api, cli in _API_WORDS:
        msg = msg.replace(api, cli)
    return msg


def warn(msg: str) -> None:
    """One warning line on stderr."""
    click.echo(f"spectra: warning: {cli_text(str(msg))}", err=True)


def load_one(checkpoint: str, trust: bool):
    """:func:`spectra.load` for the commands that take one file; a folder gets a pointer to ``track``."""
    import spectra

    if os.path.isdir(checkpoint):
        from spectra.errors import UnsupportedFormatError

        raise UnsupportedFormatError(
            f"{checkpoint}: is a directory, not a checkpoint file "
            f"(spectra track {checkpoint} analyses every checkpoint in it)"
        )
    return spectra.load(checkpoint, trust=trust)


def refuse_existing(out: str, force: bool) -> None:
    """Refuse (exit 8) to replace an existing `out` without ``--force``, in the command line's words."""
    if os.path.exists(out) and not os.path.isdir(out) and not force:
        from spectra.errors import WriteError

        raise WriteError(f"output {out!r} exists; pass --force to overwrite it")


_POWER_NOTE = re.compile(
    r"^power method not converged after (?P<it>\d+) iteration\(s\): the estimate changed by "
    r"(?P<change>\S+) \(relative\) in the last step \(> (?P<tol>\S+)\)"
)


def grouped_notes(pairs: list[tuple[str, str]], total: int) -> list[str]:
    """Warning lines for ``(matrix id, note)`` pairs: each distinct note once, with its ids.

    The power method's per-matrix "not converged" notes (one number each) become one line:
    with the paper's single iteration most matrices of a checkpoint get one.
    """
    by_note: dict[str, list[str]] = {}
    power: dict[str, list[tuple[str, float]]] = {}
    for mid, note in pairs:
        hit = _POWER_NOTE.match(note)
        if hit:
            power.setdefault(f"{hit['it']}|{hit['tol']}", []).append((mid, float(hit["change"])))
        else:
            by_note.setdefault(note, []).append(mid)
    lines = [f"{', '.join(ids)}: {note}" for note, ids in sorted(by_note.items())]
    for key, hits in power.items():
        it, tol = key.split("|")
        ids = [mid for mid, _ in hits]
        lo, hi = min(c for _, c in hits), max(c for _, c in hits)
        span = f"{lo:.3g}" if lo == hi else f"{lo:.3g} to {hi:.3g}"
        which = (
            f"all {plural(total, 'matrix', 'matrices')}"
            if len(ids) == total
            else f"{len(ids)} of {total} matrices"
        )
        lines.append(
            f"power method not converged after {it} iteration(s) for {which} "
            f"(the estimate changed by {span}, relative, in the last step; > {tol})"
            + ("" if len(ids) == total else f": {', '.join(ids)}")
            + "; --iterations N runs more (the second paper uses 1)"
        )
    return lines


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
    if value is not None:
        # said before the grids are computed (minutes for a large matrix), not after
        from spectra.errors import WriteError

        parent = os.path.dirname(os.path.abspath(value))
        if os.path.isdir(value):
            raise WriteError(f"output {value!r} is a directory; give a file name")
        if not os.path.isdir(parent):
            what = "is not a folder" if os.path.exists(parent) else "does not exist"
            raise WriteError(f"output {value!r}: {parent!r} {what}")
        if not os.access(parent, os.W_OK):
            raise WriteError(f"output {value!r}: folder {parent!r} is not writable")
    return value


def file_not_stdout(ctx, param, value):
    """Click callback: ``-o -`` is refused for binary files (a checkpoint or an .npz) -- a usage error.

    Without it the file would be written under the name '-' in the working folder.
    """
    if value == "-":
        raise click.BadParameter("'-' (standard output) cannot take a binary file; give a file name")
    return value


def binary_output_option(help: str):
    """``-o/--output FILE`` for a checkpoint or an .npz: required, not a folder, not ``-``."""
    return click.option(
        "-o", "--output", required=True, type=click.Path(dir_okay=False), callback=file_not_stdout, help=help
    )


#: ``-q`` of the commands whose only stderr line besides warnings is "wrote ..."
quiet_write_option = click.option(
    "--quiet", "-q", is_flag=True, help="Nothing on stderr but warnings and errors (no 'wrote ...')."
)


def given(name: str) -> bool:
    """Whether the current command's option `name` (its parameter name) was on the command line."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def warn_unused(names: Sequence[str], why: str) -> None:
    """One warning for options given on the command line that have no effect: ``--a, --b: no effect ...``."""
    shown = [f"--{n.replace('_', '-')}" for n in names if given(n)]
    if shown:
        warn(f"{', '.join(shown)}: no effect {why}")


def refuse_input(out: str | None, inputs: Sequence[str]) -> None:
    """Refuse (exit 8) to write `out` over one of the `inputs`, also through a link.

    Every output of a command that reads a checkpoint goes through this check
    (:func:`spectra.writeback.check_output`, as ``stabilize`` and ``extract`` use): a figure,
    a grid, a CSV file or a plot folder's figure named like its input would have replaced the
    checkpoint. Figures, grids and CSV files that are not an input are replaced when they exist
    (they are made from the input again); ``stabilize`` and ``extract`` need ``--force``.
    """
    if out is None or out == "-":
        return
    from spectra.writeback import check_output

    for inp in inputs:
        check_output(inp, out, force=True)


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
