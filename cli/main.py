"""Entry point of the ``spectra`` command: a click group whose sub-commands load lazily.

Each sub-command lives in its own module ``cli/cmd_<name>.py`` and only parses
options, calls the library and prints. Errors of the library (``SpectraError``)
become one line on stderr and the exit code of :data:`spectra.errors.EXIT_CODES`.
"""

from __future__ import annotations

import importlib
import os
import sys

#: BLAS thread variables; when the user sets none, the CLI runs BLAS on one
#: thread. The dense eigen/SVD problems here are small (n <= a few thousand);
#: on a shared 2-core machine multithreaded OpenBLAS ran them up to 60x slower
#: (complex Schur + eig + SVD of a 256 x 256 gate: 10.1 s vs 0.16 s).
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
if not any(v in os.environ for v in _THREAD_VARS):
    for _v in _THREAD_VARS:
        os.environ[_v] = "1"

import click  # noqa: E402

#: sub-command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "analyze": "spectra_cli.cmd_analyze:analyze",
    "ls": "spectra_cli.cmd_analyze:ls",
    "extract": "spectra_cli.cmd_analyze:extract",
    "pseudospectra": "spectra_cli.cmd_pseudospectra:pseudospectra",
    "transient": "spectra_cli.cmd_kreiss:transient",
    "kreiss": "spectra_cli.cmd_kreiss:kreiss",
    "stabilize": "spectra_cli.cmd_stabilize:stabilize",
    "compare": "spectra_cli.cmd_stabilize:compare",
    "train": "spectra_cli.cmd_train:train",
    "evaluate": "spectra_cli.cmd_train:evaluate",
    "robustness": "spectra_cli.cmd_train:robustness",
    "track": "spectra_cli.cmd_track:track",
}

EPILOG = """\b
Exit codes:
  0  success
  1  a finding (compare: some matrix got less robust) or an unexpected failure
  2  usage error (bad option or argument)
  3  unreadable file: corrupt, truncated, empty, or not a supported format (stabilize:
     also a format not written back, such as a whole pickled model)
  4  unsafe file: reading it would execute pickled code (opt in: --trust-pickle)
  5  the file holds no recurrent weight matrix
  6  --matrix names an id the file does not hold (or FILE.h5:/PATH names no dataset)
  7  a matrix is not square; or every selected matrix holds NaN/Inf or entries beyond
     1e120 (kreiss, transient, pseudospectra; analyze, ls, compare and stabilize list
     such matrices as finite: false and go on); train: training diverged
  8  an output could not be written, or would replace an input file (stabilize,
     extract: also when it exists; --force overwrites)
  9  any other rnn-spectra error
  10 track: some checkpoints could not be analysed (listed on stderr; the others were written)
"""


class LazyGroup(click.Group):
    """A group that imports a sub-command's module only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._try_get(name) is not None]

    def _try_get(self, name: str):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None

    def get_command(self, ctx: click.Context, name: str):
        return self._try_get(name)


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnn-spectra", prog_name="spectra")
def cli() -> None:
    """Spectral diagnostics of the recurrent weights in PyTorch and Keras checkpoints.

    For every recurrent matrix A (one per layer, direction and gate, in the
    column-vector orientation h_t = f(A h_{t-1} + B x_t + b)): spectrum,
    Henrici departure from normality, pseudospectra, Kreiss bounds on transient
    growth, and what spectral normalisation does to them.

    \b
    Start with:
      spectra ls CKPT          what the file holds and what was skipped
      spectra analyze CKPT     one row of figures per recurrent matrix
    """


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (library errors and warnings become one line on stderr)."""
    import warnings

    from spectra_cli._common import warn

    def one_line(message, category, filename, lineno, file=None, line=None):
        warn(str(message))

    shown = warnings.showwarning
    warnings.showwarning = one_line  # library warnings as one line, not file:line: Category
    try:
        return _run(argv)
    finally:
        warnings.showwarning = shown


#: the exit code when stdout is closed by its reader (`| head`): 0, or a finding a command has
#: already made (compare sets it before printing: "some matrix got less robust" is exit 1)
EXIT_ON_BROKEN_PIPE = 0


def _run(argv: list[str] | None) -> int:
    from spectra.errors import EXIT_CODES, SpectraError

    global EXIT_ON_BROKEN_PIPE
    EXIT_ON_BROKEN_PIPE = 0

    try:
        try:
            rv = cli.main(args=argv, prog_name="spectra", standalone_mode=False)
        except SystemExit as exc:
            # click answers a closed stdout (`spectra analyze X --json | head -c 100`) with
            # sys.exit(1) -- the code of a compare finding -- after wrapping the streams
            if type(sys.stdout).__name__ == "_PacifyFlushWrapper":
                raise BrokenPipeError from exc
            raise
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `spectra` alone: the help, as click shows it
            exc.show()
            return exc.exit_code
        # one line, as every other error (click's own block is four: usage, hint, blank, error)
        where = exc.ctx.command_path if exc.ctx is not None else "spectra"
        msg = " ".join(exc.format_message().split())
        if where in ("spectra analyze", "spectra ls") and "unexpected extra argument" in msg:
            msg += "; it takes one file: 'spectra track FILES...' analyses several, or a folder"
        click.echo(f"{where}: error: {msg} (see '{where} --help')", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except SpectraError as exc:
        code = next(c for cls, c in EXIT_CODES.items() if isinstance(exc, cls))
        from spectra_cli._common import cli_text

        click.echo(f"spectra: error: {cli_text(str(exc))}", err=True)
        return code
    except BrokenPipeError:
        return EXIT_ON_BROKEN_PIPE
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except MemoryError:
        click.echo("spectra: error: out of memory", err=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - last resort: one line, no traceback
        if os.environ.get("SPECTRA_DEBUG"):
            raise
        click.echo(
            f"spectra: internal error: {type(exc).__name__}: {exc} "
            "(please report it; set SPECTRA_DEBUG=1 for a traceback)",
            err=True,
        )
        return 1
    return rv if isinstance(rv, int) else 0


def entry() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
