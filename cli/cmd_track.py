"""``spectra track``: the figures of every checkpoint of one or several training runs."""

from __future__ import annotations

import os
import re

import click
from spectra_cli._common import (
    check_figure_path,
    echo_json,
    fmt,
    fmt_kreiss,
    plural,
    progress_bar,
    quiet_option,
    refuse_input,
    table,
    trust_option,
    warn,
)

#: Exit code when some checkpoints could not be analysed (the others' results are still written).
EXIT_SOME_FAILED = 10

#: (header, row key) of the text table
COLUMNS = (
    ("epoch", "epoch"),
    ("file", "file"),
    ("matrix", "matrix"),
    ("rho", "spectral_radius"),
    ("dep_F/|A|_F", "henrici_relative"),
    ("d_inst", "distance_to_instability"),
    ("K", "kreiss"),
    ("peak", "transient_peak"),
    ("grid d_inst<=", "grid_distance_upper"),
)


def _render_table(result) -> str:
    cols = [
        c
        for c in COLUMNS
        if c[1] in ("epoch", "file", "matrix") or any(r.get(c[1]) is not None for r in result.rows)
    ]
    out = []
    for run in result.runs:
        rows = [r for r in result.rows if r["run"] == run]
        if not rows:
            continue
        regimes = ", ".join(dict.fromkeys(r["regime"] for r in rows))
        nfiles = len({r["file"] for r in rows})
        out.append(f"{run}  (regime {regimes}; {plural(nfiles, 'checkpoint')})")
        cells = []
        for r in rows:
            epoch = r["epoch"] if r["epoch"] is not None else f"#{r['step']}"
            name = os.path.basename(r["file"])
            cells.append(
                [
                    str(epoch),
                    name,
                    r["matrix"],
                    *(fmt_kreiss(r) if k == "kreiss" else fmt(r.get(k)) for _, k in cols[3:]),
                ]
            )
        out.append(table(cells, [h for h, _ in cols], right=[True, False, False] + [True] * (len(cols) - 3)))
        out.append("")
    out.append(
        "rho: spectral radius; dep_F/|A|_F: relative departure from normality; d_inst: distance to "
        "instability; K: Kreiss constant (≥x: a lower bound, not certified); peak: max_k |A^k|_2; "
        "epoch #N: N-th file of the run by name"
    )
    return "\n".join(out)


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="RUN_DIR_OR_GLOB...")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes on this machine (default: the usable cores; 1 runs serially).",
)
@click.option(
    "--scheduler",
    metavar="tcp://HOST:PORT",
    help="Run on a Dask cluster instead (needs rnn-spectra[distributed]; workers must see the files).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout (schema_version 1).")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="Write one CSV line per checkpoint and matrix to FILE ('-' for stdout).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    callback=check_figure_path,
    help="Figure of the figures against epoch: .png, .svg or .pdf.",
)
@click.option(
    "--grid",
    type=click.IntRange(min=2),
    default=None,
    metavar="N",
    help="Also compute a pseudospectra grid of N points along its longer side per matrix (e.g. 60), "
    "for the 'grid d_inst<=' column: the smallest sigma_min(zI - A) over its points with |z| >= 1, "
    "a coarse upper bound on the distance to instability (computed exactly unless --fast). "
    "The grid itself is not kept.",
)
@click.option(
    "--fast", is_flag=True, help="Only rho, norms and dep_F (no d_inst, Kreiss constant, transient peak)."
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Result cache folder (default: $SPECTRA_CACHE_DIR, else $XDG_CACHE_HOME/rnn-spectra/track, "
    "else ~/.cache/rnn-spectra/track).",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@trust_option
@quiet_option
def track(inputs, jobs, scheduler, as_json, csv_path, output, grid, fast, cache_dir, no_cache, trust, quiet):
    """Figures of every checkpoint of one or several training runs, against epoch.

    Each RUN_DIR is a folder of checkpoints (as 'spectra train' writes them:
    epoch_001.pt + epoch_001.json, ...; any format 'spectra analyze' reads).
    A folder holding no checkpoint is searched down to 4 levels (hidden
    folders aside): each folder below it holding checkpoints is a run,
    named by its path from there (lightning_logs/ gives
    version_0/checkpoints, ...). A glob (quote it) picks files; they are
    grouped by folder. Files are ordered by the epoch in their JSON sidecar,
    else the one the checkpoint stores (Lightning's .ckpt), else by name
    (epoch_2 before epoch_10); the regime comes from the sidecar, else the
    folder's name (or path, for a folder found by the search). resume.pt and
    hidden files are skipped. A folder whose sidecars disagree on task, cell,
    regime, hidden size, layers or seed is split into one run per model,
    labelled 'FOLDER [cell=lstm, regime=stable]', with a warning (other
    settings, such as the learning rate, are not told apart: one folder per
    run).

    Per matrix (layer and gate): spectral radius rho, dep_F/|A|_F, distance
    to instability, Kreiss constant K and transient peak max_k |A^k|_2
    (--fast: the first two only). Files are analysed in parallel, and results
    are cached by file content and options, so re-running on a growing run
    only analyses the new checkpoints.

    A file that cannot be read is reported on stderr and skipped; the others
    are still analysed and written, and the exit code is 10.

    \b
    Examples:
      spectra track runs/lstm-regular -o evolution.png
      spectra track runs/regular runs/stable -o compare.svg --csv table.csv
      spectra track 'sweep/*/epoch_*.pt' --jobs 8 --fast --json > sweep.json
      spectra track runs/ --grid 60 --scheduler tcp://10.0.0.5:8786

    \b
    Dask: start a scheduler and workers on machines that see the same files,
      dask scheduler                               # prints tcp://HOST:8786
      dask worker tcp://HOST:8786 --nthreads 1     # on each machine, per core
    then pass --scheduler tcp://HOST:8786.

    \b
    Exit codes: 0 all analysed; 10 some files failed (listed on stderr);
    2 usage error; 3 no such file or folder; 9 bad input (no checkpoint
    found in a folder or by a pattern, scheduler unreachable).
    """
    if scheduler is not None and not re.fullmatch(
        r"(\w+://)?(\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+):\d+/?|inproc://\S+", scheduler.strip()
    ):
        raise click.BadParameter(
            f"expected an address such as tcp://HOST:PORT, got {scheduler!r}", param_hint="'--scheduler'"
        )
    if scheduler and jobs is not None:
        raise click.UsageError(
            "--jobs sets local worker processes; with --scheduler the cluster's workers run"
        )
    if as_json and csv_path == "-":
        raise click.UsageError("--json and --csv - both write to stdout; give --csv a file name")
    from spectra.track import track as run_track

    if output or (csv_path and csv_path != "-"):
        # before the analysis: neither output may replace a checkpoint it reads
        import warnings

        from spectra.track import discover

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # track() says them below
            found = [f.path for f in discover(list(inputs))]
        refuse_input(output, found)
        refuse_input(csv_path, found)
    result = run_track(
        list(inputs),
        fast=fast,
        grid_npts=grid,
        trust=trust,
        jobs=jobs,
        scheduler=scheduler,
        cache=not no_cache,
        cache_dir=cache_dir,
        progress=progress_bar("track", quiet),
    )
    for w in result.warnings:
        warn(w)
    for f in result.failures:
        click.echo(f"spectra: skipped {f.path}: {f.error_type}: {f.error}", err=True)
    if as_json:
        echo_json(result.to_json())
    elif csv_path != "-":
        click.echo(_render_table(result))
    if csv_path:
        text = result.to_csv()
        if csv_path == "-":
            click.echo(text, nl=False)
        else:
            _write_text(csv_path, text)
    if output and result.rows:
        from spectra_cli._common import use_agg

        use_agg()
        import matplotlib.pyplot as plt

        from spectra.plot.pseudospectra import save_figure

        fig = result.plot(title=None)
        try:
            save_figure(fig, output, dpi=120)  # TrueType fonts in PDF, as every figure
        finally:
            plt.close(fig)
        if not quiet:
            click.echo(f"wrote {output}", err=True)
    elif output:  # every checkpoint failed: said, so an older figure at that path is not taken for this one
        warn(f"{output}: not written (no checkpoint could be analysed)")
    if not quiet:
        ncached = sum(f.cached for f in result.files)
        click.echo(
            f"track: {plural(len(result.files), 'checkpoint')}, {ncached} from the cache, "
            f"{len(result.failures)} failed",
            err=True,
        )
    return EXIT_SOME_FAILED if result.failures else 0


def _write_text(path: str, text: str) -> None:
    from spectra.errors import WriteError

    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as exc:
        raise WriteError(f"{path}: cannot write ({exc.strerror or exc})") from None
    if not os.path.exists(path):  # pragma: no cover - defensive
        raise WriteError(f"{path}: not written")
