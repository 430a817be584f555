"""``spectra train``, ``spectra evaluate`` and ``spectra robustness`` (thin front end of spectra.train)."""

from __future__ import annotations

import math
import sys
import time

import click
from spectra_cli._common import FiniteFloatRange, echo_json, fmt, plural, progress_bar, table, warn

TASKS = ("adding", "digits", "mnist", "sentiment")
CELLS = ("rnn", "rnn-tanh", "rnn-relu", "lstm", "gru")
JSON_SCHEMA_VERSION = 1
#: Seeds every command takes: what both numpy's SeedSequence (>= 0) and torch.manual_seed
#: (a signed 64-bit integer) accept; -1 or a 20-digit seed was an internal error.
SEED = click.IntRange(0, 2**63 - 1)


def _floats(ctx, param, value):
    if value is None:
        return None
    try:
        vals = tuple(float(v) for v in str(value).split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated numbers like 0,0.1,0.5") from None
    if not vals or any(not (v >= 0) or v == float("inf") for v in vals):
        raise click.BadParameter(f"{value!r}: every value must be a finite number >= 0")
    return vals


def _sigmas(ctx, param, value):
    vals = _floats(ctx, param, value)
    big = [v for v in vals or () if not v * v < float("inf")]
    if big:  # refused by the library only after the model and the data were loaded (exit 9)
        raise click.BadParameter(f"{big[0]:g}: its square overflows float64 (keep sigma below 1e150)")
    return vals


def _run_folder(ctx, param, value):
    if value is not None and not str(value).strip():
        # Path("") is the current folder: the run was written there and the summary named "/epoch_001.pt"
        raise click.BadParameter("must name a folder, got an empty string")
    return value


def _epoch_bar(epochs: int, quiet: bool):
    stream = sys.stderr
    if quiet or not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    start = time.monotonic()

    def progress(epoch: int, done: int, total: int, stats: dict) -> None:
        width = 24
        filled = int(round(width * done / max(1, total)))
        stream.write(
            f"\repoch {epoch}/{epochs} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
            f"loss {stats['loss']:.4f} acc {stats['accuracy']:.3f} {time.monotonic() - start:6.1f}s"
        )
        if done >= total:
            stream.write("\n")
        stream.flush()

    return progress


@click.command()
@click.option(
    "--task", type=click.Choice(TASKS), default="digits", show_default=True, help="Task to train on."
)
@click.option("--cell", type=click.Choice(CELLS), default="rnn", show_default=True, help="rnn is tanh.")
@click.option("--hidden", type=click.IntRange(min=1), default=32, show_default=True, help="Hidden size.")
@click.option("--layers", type=click.IntRange(min=1), default=1, show_default=True, help="Stacked layers.")
@click.option(
    "--regime",
    default="regular",
    show_default=True,
    help="regular, stable, power-norm, robust-cov, robust-bound, noise; combine with + (stable+noise).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Passes over the training set.",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Sequences per step."
)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Learning rate.")
@click.option(
    "--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True, help="Optimiser."
)
@click.option(
    "--grad-clip",
    type=FiniteFloatRange(min=0, min_open=True),
    default=None,
    help="Clip the gradient norm to this value (> 0; default: no clipping).",
)
@click.option(
    "--seed", type=SEED, default=0, show_default=True, help="Seed of weights, batch order and noise."
)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch threads.")
@click.option(
    "--data",
    type=click.Path(exists=True),
    default=None,
    help="mnist: .npz or IDX folder; sentiment: aclImdb.",
)
@click.option(
    "--seq-len", type=click.IntRange(min=2), default=None, help="adding: steps (50); sentiment: tokens."
)
@click.option(
    "--n-samples", type=click.IntRange(min=10), default=10_000, show_default=True, help="adding: sequences."
)
@click.option("--vocab-size", type=click.IntRange(min=3), default=5000, show_default=True, help="sentiment.")
@click.option("--embed-dim", type=click.IntRange(min=1), default=32, show_default=True, help="sentiment.")
@click.option("--clip", type=float, default=None, help="stable: singular-value bound (default 1).")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="power-norm: power steps (1).")
@click.option("--target", type=float, default=None, help="power-norm: target radius (1).")
@click.option(
    "--power-scale",
    type=click.Choice(["above-target", "always"]),
    default=None,
    help="power-norm: above-target (default) divides by the estimate |lambda| only when it exceeds "
    "--target; always divides every epoch, as the second paper's Algorithm 1. The default differs "
    "from the paper because a one-step estimate far below rho would scale a gate matrix up.",
)
@click.option("--cov-mu", type=float, default=None, help="robust-cov: weight mu (0.01).")
@click.option("--cov-sigma", type=float, default=None, help="robust-cov: noise std, input units (1).")
@click.option(
    "--cov-sequences", type=click.IntRange(min=1), default=None, help="robust-cov: sequences/batch (5)."
)
@click.option(
    "--cov-steps", type=click.Choice(["last", "all"]), default=None, help="robust-cov: Tr(R_T) or sum_t."
)
@click.option(
    "--bound-mu",
    type=float,
    default=None,
    help="robust-bound: mu, divided by epoch+1 (0.015); the penalty is the last step's bound Omega_T "
    "(eq. 29 sums Omega_t over every step).",
)
@click.option("--bound-sigma", type=float, default=None, help="robust-bound: noise std (1).")
@click.option("--bound-gamma", type=float, default=None, help="robust-bound: initial-state std (0).")
@click.option("--noise-std", type=float, default=None, help="noise: training noise std (0.3).")
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(file_okay=False),
    callback=_run_folder,
    required=True,
    help="Run folder.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last epoch.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def train(**kw) -> None:
    """Train a recurrent model and write one checkpoint per epoch into OUT.

    Each epoch_NNN.pt is a plain state dict (readable by 'spectra analyze');
    epoch_NNN.json beside it holds the task, cell, regime and every option,
    seed, data source and sha256, and train/validation/test metrics. The model
    is selected on the validation split. A summary table goes to stdout.

    \b
    Examples:
      spectra train --task digits --cell lstm --regime stable --epochs 5 -o runs/lstm_stable
      spectra train --cell gru --regime robust-cov --cov-mu 0.05 -o runs/gru_cov
      spectra train ... -o runs/lstm_stable --resume      # continue after an interruption
      spectra analyze runs/lstm_stable/epoch_005.pt       # then examine a checkpoint
    """
    from spectra.train.checkpoints import epoch_path
    from spectra.train.loop import TrainConfig
    from spectra.train.loop import train as run_train

    regime_keys = (
        "clip",
        "iterations",
        "target",
        "power_scale",
        "cov_mu",
        "cov_sigma",
        "cov_sequences",
        "cov_steps",
        "bound_mu",
        "bound_sigma",
        "bound_gamma",
        "noise_std",
    )
    options = {k: kw.pop(k) for k in regime_keys}
    options = {k: v for k, v in options.items() if v is not None}
    out, resume, quiet = kw.pop("out"), kw.pop("resume"), kw.pop("quiet")
    from spectra.train.errors import TrainConfigError
    from spectra.train.loop import check_resume, validate_config

    cfg = TrainConfig(**kw, regime_options=options)
    try:
        validate_config(cfg)
        if resume:  # another configuration, or --epochs below the epochs done (before any data)
            check_resume(cfg, out)
    except TrainConfigError as exc:  # an option out of range or unknown: a usage error (exit 2)
        raise click.UsageError(str(exc)) from None
    result = run_train(cfg, out, resume=resume, progress=_epoch_bar(cfg.epochs, quiet))
    rows = []
    for h in result.history:
        mark = "*" if h["epoch"] == result.best_epoch else ""
        rows.append(
            [
                f"{h['epoch']}{mark}",
                fmt(h["train"]["loss"]),
                fmt(h["train"]["accuracy"]),
                fmt(h["val"]["loss"]),
                fmt(h["val"]["accuracy"]),
                fmt(h["test"]["accuracy"]),
                f"{h['seconds']:.2f}",
            ]
        )
    header = ["epoch", "train loss", "train acc", "val loss", "val acc", "test acc", "s"]
    click.echo(table(rows, header) if rows else "(no epochs trained)")
    if result.history:
        best = epoch_path(result.out_dir, result.best_epoch)  # runs/x/ printed runs/x//epoch_001.pt
        click.echo(f"best (validation): epoch {result.best_epoch} -> {best}")
        note = _power_norm_note(result.history, cfg)
        if note:
            warn(note)


def _power_norm_blocks(info: dict) -> dict:
    """Per-matrix power-norm records of one epoch's regime_info (sidecars before and after 'matrices')."""
    pn = (info or {}).get("power-norm") or {}
    blocks = pn.get("matrices", pn) if isinstance(pn.get("matrices"), dict) else pn
    return {k: v for k, v in blocks.items() if isinstance(v, dict)}


def _power_norm_note(history: list[dict], cfg) -> str | None:
    """What power-norm did over the run: how few gate matrices it rescaled, and any left above the target.

    A one-step Rayleigh quotient of a non-normal matrix can lie far below |lambda|: with
    --power-scale above-target the matrix is then not rescaled and its spectral radius stays
    above the target, so the run is close to regular training.
    """
    epochs = [_power_norm_blocks(h.get("regime_info") or {}) for h in history]
    epochs = [e for e in epochs if e]
    if not epochs:
        return None
    from spectra.train.regimes import make_regime

    opts = make_regime(cfg.regime, cfg.regime_options).options()
    target, it = float(opts["target"]), int(opts["iterations"])
    always = opts.get("power_scale") == "always"
    total = sum(len(e) for e in epochs)
    rescaled = sum(1 for e in epochs for b in e.values() if b.get("scale", 1.0) != 1.0)
    last = epochs[-1]
    above = [b for b in last.values() if b.get("spectral_radius_after", 0.0) > target]
    parts = []
    if not always and 2 * rescaled < total:
        how_many = (
            f"no gate matrix in {len(epochs)} epoch(s)"
            if rescaled == 0
            else f"only {rescaled} of {total} gate matrix-epochs"
        )
        parts.append(
            f"power-norm rescaled {how_many} ({len(last)} matrices): the {it}-step estimate of |lambda| "
            f"{'never' if rescaled == 0 else 'seldom'} exceeded the target {target:g}, so this run is "
            "close to regular training (--power-scale always divides every epoch, as Algorithm 1)"
        )
    if above:
        worst = max(b["spectral_radius_after"] for b in above)
        n_last = sum(1 for b in last.values() if b.get("scale", 1.0) != 1.0)
        below = "rho" if always else "the target (only scaling down)"
        hint = "; the second paper's Algorithm 1 uses 1 step, --iterations N estimates better"
        parts.append(
            f"last epoch: {n_last} of {len(last)} gate matrices rescaled; "
            f"{len(above)} still have rho > {target:g} (up to {worst:.4g}): the {it}-step power estimate "
            f"of |lambda| fell below {below}" + (hint if it == 1 else "")
        )
    return "; ".join(parts) or None


def _number(x) -> float | None:
    """`x` as a float, None for NaN (JSON has no NaN: an output that overflowed is no prediction)."""
    return None if math.isnan(x) else float(x)


def _ratio(report) -> float | None:
    """Tr(R_T) / Monte Carlo, or None when the Monte-Carlo mean is 0 (sigma 0: 0/0 printed nan)."""
    return report.mean_estimate / report.mean_monte_carlo if report.mean_monte_carlo > 0 else None


def _task_of(meta: dict, *, data=None, task=None):
    """The checkpoint's task (or --task) with --data; one that does not fit it is a usage error (exit 2)."""
    from spectra.train.checkpoints import task_for
    from spectra.train.errors import TrainConfigError

    try:
        return task_for(meta, data=data, task=task)
    except TrainConfigError as exc:  # --data for digits, --task mnist for a digits model
        raise click.UsageError(str(exc)) from None


def _rerun_options(f):
    """Options shared by evaluate and robustness (both rerun a trained network on noisy inputs)."""
    f = click.option("--quiet", "-q", is_flag=True, help="No progress bar on stderr.")(f)
    f = click.option("--json", "as_json", is_flag=True, help="JSON on stdout.")(f)
    f = click.option(
        "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch threads."
    )(f)
    f = click.option(
        "--data", type=click.Path(exists=True), default=None, help="Override the data path in the metadata."
    )(f)
    f = click.option(
        "--split",
        type=click.Choice(["test", "val", "train"]),
        default="test",
        show_default=True,
        help="Which split of the task's data to use.",
    )(f)
    return click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the noise draws.")(f)


@click.command()
@click.argument("ckpt", type=click.Path(readable=False))
@click.option(
    "--noise",
    callback=_floats,
    default="0,0.1,0.2,0.3,0.5,0.75,1,1.5,2",
    show_default=True,
    help="Noise amplitudes: standard deviations in input units (standardised inputs for digits and "
    "mnist, raw inputs for adding, embeddings for sentiment; 0, the clean input, is always "
    "evaluated: the thresholds interpolate from it).",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Draws per amplitude (1: no std, printed '-').",
)
@_rerun_options
def evaluate(ckpt, noise, repeats, seed, split, data, threads, as_json, quiet) -> None:
    """Accuracy (or MSE) of CKPT under Gaussian input noise of each amplitude.

    The amplitude is the standard deviation of noise added at every step to
    the inputs: standardised ones (mean 0, std 1) for digits and mnist, the
    raw values (U(0,1) and 0/1 markers, not standardised) for adding, the
    embeddings for sentiment. Also prints the first paper's Table I metric:
    the amplitude at which misclassification (adding: the miss rate,
    |error| >= 0.04) reaches 3%, 5% and 10% (linear interpolation; '-' when
    not reached).

    \b
    Examples:
      spectra evaluate runs/lstm_stable/epoch_005.pt
      spectra evaluate data/digits_rnn_stable.pt --noise 0,0.5,1 --repeats 3 --json
    """
    from spectra.train.checkpoints import load_trained
    from spectra.train.evaluate import amplitude_units, error_label, evaluate_noise, noise_thresholds
    from spectra.train.loop import configure_torch

    configure_torch(threads)
    if min(noise) > 0:
        # without the clean input the first amplitude would pass for the threshold of every level
        # already reached there (--noise 0.3 gave 0.300 for 3%, 5% and 10%)
        noise = (0.0, *noise)
    model, meta = load_trained(ckpt)
    task = _task_of(meta, data=data)
    curve = evaluate_noise(
        model,
        task,
        noise,
        split=split,
        repeats=repeats,
        seed=seed,
        progress=progress_bar("evaluate", quiet or as_json),
    )
    thr = noise_thresholds(curve.amplitudes, curve.misclassification)
    short, definition = error_label(task)
    # "misclassification" stays in every result (schema_version 1); adding also names it for what it is
    error_keys = ("misclassification",) if task.kind != "regression" else ("misclassification", "miss_rate")
    if as_json:
        echo_json(
            {
                "schema_version": JSON_SCHEMA_VERSION,
                "checkpoint": ckpt,
                "task": task.name,
                "regime": meta.get("regime"),
                "split": split,
                "n": curve.n,
                "repeats": repeats,
                "seed": seed,
                "amplitude": amplitude_units(task),
                "error": definition,
                "results": [
                    {
                        "amplitude": float(a),
                        "accuracy": _number(acc),
                        "accuracy_std": _number(sd),
                        **{key: _number(e) for key in error_keys},
                        **({"mse": _number(curve.mse[i])} if curve.mse is not None else {}),
                    }
                    for i, (a, acc, sd, e) in enumerate(
                        zip(curve.amplitudes, curve.accuracy, curve.accuracy_std, curve.misclassification)
                    )
                ],
                "thresholds": {f"{int(round(k * 100))}%": v for k, v in thr.items()},
            }
        )
        return
    header = ["amplitude", "accuracy", "std", short] + (["mse"] if curve.mse is not None else [])
    rows = []
    for i, a in enumerate(curve.amplitudes):
        row = [
            fmt(a),
            f"{curve.accuracy[i]:.4f}",
            # one draw (--repeats 1) has no spread: "-", where an overflowed output prints nan
            "-"
            if math.isnan(curve.accuracy_std[i]) and not math.isnan(curve.accuracy[i])
            else f"{curve.accuracy_std[i]:.4f}",
            f"{curve.misclassification[i]:.4f}",
        ]
        if curve.mse is not None:
            row.append(fmt(curve.mse[i]))
        rows.append(row)
    click.echo(
        f"{ckpt}: task {task.name}, regime {meta.get('regime')}, split {split} (n={curve.n}), "
        f"{plural(repeats, 'draw')}, seed {seed}"
    )
    click.echo(table(rows, header))
    click.echo(
        f"noise amplitude at {definition.split(':')[0]} "
        + ", ".join(
            f"{int(round(k * 100))}%: {'-' if v is None else (f'{v:.3f}' if abs(v) < 1e5 else fmt(v))}"
            for k, v in thr.items()
        )
    )


@click.command()
@click.argument("ckpt", type=click.Path(readable=False))
@click.option(
    "--task", type=click.Choice(TASKS), default=None, help="Inputs from this task (default: trained one)."
)
@click.option(
    "--sigma", callback=_sigmas, default="0.1", show_default=True, help="Noise std(s), comma-separated."
)
@click.option(
    "--sequences",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Input sequences (at most the split's; more: all, with a warning).",
)
@click.option(
    "--draws", type=click.IntRange(min=2), default=500, show_default=True, help="Monte-Carlo draws."
)
@_rerun_options
def robustness(ckpt, task, sigma, sequences, draws, seed, split, data, threads, as_json, quiet) -> None:
    """Robustness measure E||y~_T - y_T||^2 of CKPT: linearised Tr(R_T) next to Monte Carlo.

    Tr(R_T) comes from propagating P_t = J_x P J_x^T + J_u Sigma J_u^T along
    the clean trajectory (first paper, Theorem 3); Monte Carlo adds noise of
    std SIGMA to every step of the first SEQUENCES inputs of the split.

    \b
    Examples:
      spectra robustness data/digits_rnn_stable.pt
      spectra robustness runs/gru_cov/epoch_010.pt --sigma 0.05,0.1 --draws 200 --json
    """
    from spectra.train.checkpoints import load_trained
    from spectra.train.evaluate import robustness as measure
    from spectra.train.loop import configure_torch

    configure_torch(threads)
    model, meta = load_trained(ckpt)
    t = _task_of(meta, data=data, task=task)
    x = t.split(split).x[:sequences]
    if len(x) < sequences:
        warn(f"--sequences {sequences}: the {split} split holds {len(x)} sequences; using all {len(x)}")
    progress = progress_bar("robustness (sigmas)", quiet or as_json)
    reports = []
    for i, s in enumerate(sigma):
        reports.append(measure(model, x, s, draws=draws, seed=seed))
        if progress is not None:
            progress(i + 1, len(sigma))
    if as_json:
        echo_json(
            {
                "schema_version": JSON_SCHEMA_VERSION,
                "checkpoint": ckpt,
                "task": t.name,
                "split": split,
                "sequences": int(len(x)),
                "draws": draws,
                "seed": seed,
                "results": [
                    {
                        "sigma": r.sigma,
                        "trace_R": r.mean_estimate,
                        "monte_carlo": r.mean_monte_carlo,
                        "monte_carlo_stderr": r.mean_monte_carlo_stderr,
                        "ratio": _ratio(r),
                        "per_sequence_trace_R": [float(v) for v in r.estimate],
                        "per_sequence_monte_carlo": [float(v) for v in r.monte_carlo],
                    }
                    for r in reports
                ],
            }
        )
        return
    rows = [
        [
            fmt(r.sigma),
            fmt(r.mean_estimate),
            fmt(r.mean_monte_carlo),
            fmt(r.mean_monte_carlo_stderr),
            "-" if _ratio(r) is None else fmt(_ratio(r)),
        ]
        for r in reports
    ]
    click.echo(f"{ckpt}: task {t.name}, {len(x)} {split} sequences, {plural(draws, 'draw')}, seed {seed}")
    click.echo(table(rows, ["sigma", "Tr(R_T)", "Monte Carlo", "MC stderr", "ratio"]))
