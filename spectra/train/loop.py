"""The training loop: :class:`TrainConfig` and :func:`train`.

One call trains one model under one regime and writes, after every epoch, a
checkpoint, its metadata and the resume state (:mod:`.checkpoints`). Model
selection uses the validation split only; test metrics are recorded, never
used to choose. Runs are deterministic given the seed and the thread count:
the initial weights, the batch order and the training noise of epoch ``e`` are
all drawn from generators seeded by ``(seed, e)``, so a resumed run equals an
uninterrupted one bit for bit when both use the same ``threads``. Torch's
reductions sum in an order that depends on the thread count (``threads`` 1 and
2 gave weights 3e-8 apart after two epochs), so a resume with another
``threads`` is allowed but warned about.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F

from spectra.errors import NonFiniteError, UnsupportedFormatError, WriteError
from spectra.train.checkpoints import (
    SCHEMA_VERSION,
    _torch_reason,
    atomic_torch_save,
    atomic_write_json,
    epoch_path,
    versions,
)
from spectra.train.errors import TrainConfigError
from spectra.train.models import SequenceModel, build_model
from spectra.train.regimes import make_regime
from spectra.train.tasks import ADDING_TOLERANCE, Split, Task, load_task

__all__ = [
    "SEED_MAX",
    "EpochProgress",
    "TrainConfig",
    "TrainResult",
    "check_resume",
    "configure_torch",
    "metrics",
    "train",
]

#: Largest seed: numpy's SeedSequence takes no negative seed, torch.manual_seed a signed 64-bit one.
SEED_MAX = 2**63 - 1

#: ``progress(epoch, batches_done, batches_total, running_stats)``; epoch is 1-based.
EpochProgress = Callable[[int, int, int, dict], None]


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in every checkpoint's metadata).

    Attributes
    ----------
    task : str
        ``adding``, ``digits``, ``mnist`` or ``sentiment``.
    cell : str
        ``rnn`` (tanh), ``rnn-relu``, ``lstm`` or ``gru``.
    hidden, layers : int
        Hidden size and stacked layers.
    regime : str
        Registry name(s) joined by ``+`` (:mod:`spectra.train.regimes`).
    regime_options : dict
        Options of the regime(s) (``clip``, ``cov_mu``...); unset ones take defaults.
    epochs, batch_size : int
        Training length and mini-batch size.
    lr : float
        Learning rate.
    optimizer : {"adam", "sgd"}
        Optimiser (``sgd`` without momentum).
    grad_clip : float or None
        Clip the gradient's global norm to this value (None: no clipping).
    seed : int
        Seed of the initial weights, batch order and training noise.
    threads : int
        ``torch.set_num_threads`` (1 by default: two threads were 40x slower
        than one when another process shared the cores).
    data : str or None
        Data path (``mnist``: ``.npz``/IDX; ``sentiment``: ``aclImdb``).
    seq_len, n_samples, vocab_size, embed_dim : int
        Task options (see :func:`spectra.train.tasks.load_task`).
    max_batches : int or None
        Stop each epoch after this many batches (smoke tests, benchmarks).
    """

    task: str = "digits"
    cell: str = "rnn"
    hidden: int = 32
    layers: int = 1
    regime: str = "regular"
    regime_options: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    grad_clip: float | None = None
    seed: int = 0
    threads: int = 1
    data: str | None = None
    seq_len: int | None = None
    n_samples: int = 10_000
    vocab_size: int = 5000
    embed_dim: int = 32
    max_batches: int | None = None

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-serialisable)."""
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    out_dir : Path
        The run folder.
    history : list of dict
        One record per epoch: ``epoch``, ``train``/``val``/``test`` metrics,
        ``seconds``, ``checkpoint``, ``regime_info``.
    best_epoch : int
        Epoch (1-based) with the best validation metric (accuracy, or lowest
        MSE for regression); ties go to the earlier epoch.
    model : SequenceModel
        The model after the last epoch.
    task : Task
        The task trained on.
    """

    out_dir: Path
    history: list[dict]
    best_epoch: int
    model: SequenceModel
    task: Task


def configure_torch(threads: int = 1) -> None:
    """``torch.set_num_threads(threads)`` and ``torch.set_flush_denormal(True)``.

    Raises
    ------
    TrainConfigError
        `threads` below 1.
    """
    if threads < 1:
        raise TrainConfigError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(int(threads))
    torch.set_flush_denormal(True)


def _tensors(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(split.x)), torch.from_numpy(np.ascontiguousarray(split.y))


def _loss(task: Task, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task.kind == "regression":
        return F.mse_loss(out, y)
    return F.cross_entropy(out, y)


def _correct(task: Task, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task.kind == "regression":
        return ((out - y).abs() < ADDING_TOLERANCE).all(dim=-1)
    return out.argmax(dim=-1) == y


@torch.no_grad()
def metrics(model: SequenceModel, task: Task, split: Split, *, batch_size: int = 2000) -> dict:
    """Clean metrics of `model` on `split`: ``loss`` and ``accuracy`` (plus ``mse`` for regression).

    Regression accuracy is the fraction with ``|prediction - target| <``
    :data:`spectra.train.tasks.ADDING_TOLERANCE` (0.04).
    """
    model.eval()
    x, y = _tensors(split)
    loss = 0.0
    correct = 0
    for i in range(0, len(x), batch_size):
        out = model(x[i : i + batch_size])
        yb = y[i : i + batch_size]
        loss += float(_loss(task, out, yb)) * len(yb)
        correct += int(_correct(task, out, yb).sum())
    n = max(1, len(x))
    res = {"loss": loss / n, "accuracy": correct / n}
    if task.kind == "regression":
        res["mse"] = res["loss"]
    return res


#: What torch.load / load_state_dict raise for a missing, truncated or foreign file.
_UNREADABLE = (KeyError, TypeError, RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError)


def _first_line(exc: BaseException) -> str:
    """The first line of `exc`'s message, at most 200 characters (torch's messages run for pages)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    s = int(np.random.SeedSequence([int(seed), int(epoch), 1]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(s)


def _better(task: Task, a: dict, b: dict) -> bool:
    if task.kind == "regression":
        return a["mse"] < b["mse"]
    return a["accuracy"] > b["accuracy"]


def _best_index(task: Task, history: list[dict]) -> int:
    best = 0
    for i, h in enumerate(history):
        if _better(task, h["val"], history[best]["val"]):
            best = i
    return best


def _comparable(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in ("epochs", "threads", "regime", "regime_options")}


#: TrainConfig fields that no option of ``spectra train`` sets (named as they are)
_API_ONLY = ("max_batches",)


def _option_name(field_name: str) -> str:
    """``--cov-mu`` for the field ``cov_mu``: the command line's option (the field is plain from it)."""
    if field_name in _API_ONLY:
        return field_name
    return f"--{field_name.replace('_', '-')}"


def _config_differences(saved: dict, cfg: TrainConfig, regime) -> list[str]:
    """``name (run: X, now: Y)`` for every setting that differs, regime options with defaults filled in.

    `saved` is the configuration stored in ``resume.pt``; ``epochs`` and ``threads`` may change.
    """
    then = make_regime(saved.get("regime", ""), saved.get("regime_options") or {})
    before = {**_comparable(saved), "regime": then.spec, **then.options()}
    now = {**_comparable(cfg.to_dict()), "regime": regime.spec, **regime.options()}
    missing = object()
    return [
        f"{_option_name(k)} (run: {before.get(k, '(unset)')}, now: {now.get(k, '(unset)')})"
        for k in dict.fromkeys([*now, *before])
        if before.get(k, missing) != now.get(k, missing)
    ]


def _read_resume(resume_file: Path) -> dict:
    """The content of ``resume.pt``: ``epoch``, ``optimizer``, ``config`` and ``history``.

    Raises
    ------
    UnsupportedFormatError
        Not a resume file this version can continue from.
    """
    try:
        state = torch.load(resume_file, map_location="cpu", weights_only=True)
        out = {
            "epoch": int(state["epoch"]),
            "optimizer": state["optimizer"],
            "config": json.loads(state["config_json"]),
            "history": json.loads(state["history_json"]),
        }
        if not isinstance(out["config"], dict):
            raise TypeError("its configuration is not a mapping")
        make_regime(out["config"].get("regime", ""), out["config"].get("regime_options") or {})
    except (*_UNREADABLE, AttributeError) as exc:
        raise UnsupportedFormatError(
            f"{resume_file}: not a resume file this version can continue from "
            f"({type(exc).__name__}: {_torch_reason(exc)}); start a new run folder or drop --resume"
        ) from None
    return out


def _check_resume_state(state: dict, cfg: TrainConfig, regime, out: Path) -> None:
    """Refuse to continue the run whose ``resume.pt`` holds `state` with `cfg` (see :func:`check_resume`)."""
    diff = _config_differences(state["config"], cfg, regime)
    if diff:
        raise TrainConfigError(
            f"{out}: --resume with a different configuration (differs in: {'; '.join(diff)})"
        )
    done = state["epoch"]
    if cfg.epochs < done:  # the loop would run no epoch and say nothing of --epochs
        raise TrainConfigError(
            f"{out}: --epochs (epochs) {cfg.epochs} is below the {done} epochs the run has done; "
            f"pass --epochs {done} (to show the run as it is) or more (to train on)"
        )


def check_resume(config: TrainConfig, out_dir: str | os.PathLike) -> int | None:
    """Check that ``train(config, out_dir, resume=True)`` can continue the run in `out_dir`.

    Reads only ``resume.pt`` (no data, no model): a front end can refuse a bad ``--resume``
    before the data is loaded. :func:`train` makes the same checks.

    Parameters
    ----------
    config : TrainConfig
        The configuration to continue with.
    out_dir : path
        The run folder.

    Returns
    -------
    int or None
        The epochs the run has done; None when `out_dir` holds no ``resume.pt`` (a new run
        would start).

    Raises
    ------
    TrainConfigError
        `config` differs from the run's configuration in anything but ``epochs`` and
        ``threads`` (each difference is named), or ``config.epochs`` is below the epochs done.
    UnsupportedFormatError
        ``resume.pt`` is not a resume file this version can continue from.
    """
    regime = validate_config(config)
    resume_file = _without_dotdot(Path(out_dir)) / "resume.pt"
    if not resume_file.exists():
        return None
    state = _read_resume(resume_file)
    _check_resume_state(state, config, regime, resume_file.parent)
    return state["epoch"]


def _without_dotdot(out: Path) -> Path:
    """`out` with its ``..`` components resolved (unchanged when it has none).

    ``new/../old`` cannot be opened while ``new`` does not exist, and walking it lexically for
    the folders a run creates would mistake ``old`` for one of them. The part that exists is
    resolved by the OS (a symbolic link before ``..`` leads where the OS says), the rest
    lexically (it names folders yet to be created).
    """
    if ".." not in out.parts:
        return out
    parts = out.absolute().parts
    k = len(parts)
    while k > 1 and not Path(*parts[:k]).exists():
        k -= 1
    rest = os.path.normpath(os.path.join(*parts[k:])) if k < len(parts) else "."
    head = Path(os.path.realpath(Path(*parts[:k])))
    return Path(os.path.normpath(head / rest))


def _prepare_out_dir(out: Path) -> Path | None:
    """Create `out` and check that a file can be written in it; return the topmost folder created.

    Raises
    ------
    WriteError
        The folder cannot be created or written (said before any data is loaded or epoch trained).
    """
    top = None
    p = out.absolute()
    while not p.exists() and p != p.parent:
        top, p = p, p.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", suffix=".tmp", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        _remove_empty(out, top)
        raise WriteError(f"{out}: cannot write the run folder ({exc.strerror or exc})") from None
    return top


def _remove_empty(out: Path, top: Path | None) -> None:
    """Remove the folders from `out` up to `top` that this run created and left empty."""
    if top is None:
        return
    p = out.absolute()
    while True:
        try:
            p.rmdir()
        except OSError:
            return
        if p == top:
            return
        p = p.parent


def validate_config(cfg: TrainConfig):
    """Check `cfg`'s numbers and regime (no data, no model); return the regime object.

    Raises
    ------
    TrainConfigError
        Epochs, batch size, learning rate or optimizer out of range, or a bad regime or option.
    """
    checks = (
        ("epochs", cfg.epochs, cfg.epochs >= 0, ">= 0"),
        ("batch-size", cfg.batch_size, cfg.batch_size >= 1, ">= 1"),
        ("lr", cfg.lr, math.isfinite(cfg.lr) and cfg.lr > 0, "a finite number > 0"),
        # 0 froze training, a negative value turned descent into ascent
        (
            "grad-clip",
            cfg.grad_clip,
            cfg.grad_clip is None or (math.isfinite(cfg.grad_clip) and cfg.grad_clip > 0),
            "a finite number > 0 (or None: no clipping)",
        ),
    )
    seed_ok = isinstance(cfg.seed, (int, np.integer)) and not isinstance(cfg.seed, bool)
    checks += (("seed", cfg.seed, seed_ok and 0 <= cfg.seed <= SEED_MAX, f"an integer in 0..{SEED_MAX}"),)
    for name, value, ok, want in checks:
        if not ok:
            raise TrainConfigError(f"--{name} ({name.replace('-', '_')}) must be {want}; got {value}")
    if cfg.optimizer not in ("adam", "sgd"):
        raise TrainConfigError(f"optimizer must be 'adam' or 'sgd', got {cfg.optimizer!r}")
    from spectra.train.tasks import TASKS, check_task_options

    if cfg.task in TASKS:  # an unknown task is said where the task is made
        check_task_options(cfg.task, data=cfg.data, seq_len=cfg.seq_len)
    regime = make_regime(cfg.regime, cfg.regime_options)
    names = [s.strip() for s in str(cfg.regime).split("+")]
    if "robust-bound" in names and (not str(cfg.cell).startswith("rnn") or cfg.layers != 1):
        # said before the data is loaded (MNIST, the sentiment corpus) and the model built
        raise TrainConfigError(
            "robust-bound is defined for one-layer basic RNNs (cell rnn or rnn-relu, layers=1); "
            f"got cell={cfg.cell}, layers={cfg.layers}"
        )
    return regime


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: EpochProgress | None = None,
    task: Task | None = None,
) -> TrainResult:
    """Train ``config.cell`` on ``config.task`` under ``config.regime``; write a checkpoint per epoch.

    Per mini-batch: ``u = model.inputs(x)``; the loss is the task loss on
    ``regime.perturb(u)`` plus ``regime.penalty(model, u, epoch)``; after the
    optimiser step ``regime.after_step``; after the epoch ``regime.after_epoch``,
    then validation/test metrics and the files ``epoch_NNN.pt`` (the state
    dict), ``epoch_NNN.json`` (metadata), ``run.json``, ``resume.pt``.

    Parameters
    ----------
    config : TrainConfig
        The run.
    out_dir : path
        Run folder (created).
    resume : bool
        Continue the run in `out_dir` from its last finished epoch (the
        configuration must match, apart from ``epochs`` and ``threads``, and
        ``epochs`` must not be below the epochs done; :func:`check_resume`).
        The result equals an uninterrupted run's with the same ``threads``;
        another ``threads`` warns (RuntimeWarning).
    progress : callable, optional
        ``progress(epoch, batches_done, batches_total, stats)`` after every batch.
    task : Task, optional
        An already loaded task (else :func:`load_task` from the config).

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainConfigError
        Invalid configuration, or `resume` with a different one or with fewer epochs than done.
    UnsupportedFormatError
        `resume` and the run's ``resume.pt`` is not a file this version can continue from.
    WriteError
        `out_dir` already holds a run and `resume` is false.
    NonFiniteError
        The loss became NaN or infinite (training diverged); earlier epochs are kept.
    DataUnavailableError
        The task's data cannot be read or fetched.
    """
    cfg = config
    regime = validate_config(cfg)
    if isinstance(out_dir, str) and not out_dir.strip():  # Path("") is the current folder
        raise TrainConfigError("out_dir (-o/--out) must name a folder, got an empty string")
    if isinstance(cfg.seed, np.integer):  # a numpy integer seed: the sidecar's JSON needs an int
        cfg = dataclasses.replace(cfg, seed=int(cfg.seed))
    configure_torch(cfg.threads)
    out = _without_dotdot(Path(out_dir))
    if ((out / "run.json").exists() or (out / "resume.pt").exists()) and not resume:
        raise WriteError(
            f"{out}: already holds a training run (run.json/resume.pt); pass --resume or choose another -o"
        )
    state = None
    if resume:
        if (out / "resume.pt").exists():
            state = _read_resume(out / "resume.pt")
            _check_resume_state(state, cfg, regime, out)  # before any data is loaded
            then = state["config"].get("threads")
            if then is not None and then != cfg.threads:
                warnings.warn(
                    f"{out}: resuming with --threads {cfg.threads}, the run was last trained with "
                    f"--threads {then}: torch sums in an order that depends on the thread count, so "
                    "the weights can differ in the last bits from an uninterrupted run "
                    f"(--threads {then} reproduces it exactly)",
                    RuntimeWarning,
                    stacklevel=2,
                )
        else:
            warnings.warn(
                f"{out}: no run to resume (no resume.pt): starting a new one", RuntimeWarning, stacklevel=2
            )
    created = _prepare_out_dir(out)
    try:
        return _run(cfg, regime, out, state=state, progress=progress, task=task)
    except BaseException:
        _remove_empty(out, created)  # a run that wrote nothing leaves no empty folder behind
        raise


def _run(
    cfg: TrainConfig, regime, out: Path, *, state: dict | None, progress, task: Task | None
) -> TrainResult:
    """The body of :func:`train` once the configuration and the run folder are checked.

    `state` is the checked content of ``resume.pt`` to continue from (None: a new run).
    """
    run_file = out / "run.json"
    resume_file = out / "resume.pt"
    if task is None:
        task = load_task(
            cfg.task, data=cfg.data, seq_len=cfg.seq_len, n_samples=cfg.n_samples, vocab_size=cfg.vocab_size
        )
    model = build_model(
        cfg.cell,
        task.n_inputs,
        task.n_outputs,
        cfg.hidden,
        cfg.layers,
        tokens=task.tokens,
        embed_dim=cfg.embed_dim,
        seed=cfg.seed,
    )
    regime.check(model)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)

    history: list[dict] = []
    start = 0
    if state is not None:
        # resume.pt is the commit point of an epoch: written after the epoch's checkpoint and
        # sidecar, it holds the optimiser state, the configuration and the history
        history, start = state["history"], state["epoch"]
        last = epoch_path(out, start)
        try:
            model.load_state_dict(torch.load(last, map_location="cpu", weights_only=True))
            opt.load_state_dict(state["optimizer"])
        except _UNREADABLE as exc:
            raise TrainConfigError(
                f"{last}: the checkpoint of epoch {start} that {resume_file.name} continues from is "
                f"missing or unreadable ({type(exc).__name__}: {_first_line(exc)}); "
                "start a new run folder or drop --resume"
            ) from None

    x_all, y_all = _tensors(task.train)
    n_train = len(x_all)
    n_batches = (n_train + cfg.batch_size - 1) // cfg.batch_size
    if cfg.max_batches is not None:
        n_batches = min(n_batches, int(cfg.max_batches))
    common = {
        "schema_version": SCHEMA_VERSION,
        "task": cfg.task,
        "cell": cfg.cell,
        "regime": regime.spec,
        "regime_options": regime.options(),
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "model": {
            "cell": cfg.cell,
            "n_inputs": task.n_inputs,
            "n_outputs": task.n_outputs,
            "hidden": cfg.hidden,
            "layers": cfg.layers,
            "tokens": task.tokens,
            "embed_dim": cfg.embed_dim,
            "readout": "linear on the last hidden state of the top layer",
        },
        "data": {
            "source": task.source,
            "sha256": task.sha256,
            "options": task.options,
            "seq_len": task.seq_len,
            "sizes": {"train": len(task.train), "val": len(task.val), "test": len(task.test)},
            "kind": task.kind,
            "accuracy_definition": (
                f"fraction with |prediction - target| < {ADDING_TOLERANCE}"
                if task.kind == "regression"
                else "fraction of correctly classified sequences"
            ),
        },
        "versions": versions(),
    }

    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        gen = _epoch_generator(cfg.seed, epoch)
        perm = torch.randperm(n_train, generator=gen)
        tot_loss = tot_pen = 0.0
        tot_correct = tot_n = 0
        for b in range(n_batches):
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            xb, yb = x_all[idx], y_all[idx]
            u = model.inputs(xb)
            outb = model.from_inputs(regime.perturb(u, gen))
            loss = _loss(task, outb, yb)
            pen = regime.penalty(model, u, epoch)
            total = loss if pen is None else loss + pen
            if not torch.isfinite(total):
                pen_value = float("nan") if pen is None else float(pen.detach())
                raise NonFiniteError(
                    f"training diverged at epoch {epoch + 1}, batch {b + 1}: loss {float(loss.detach()):.4g} "
                    f"and penalty {pen_value:.4g}; lower --lr, pass --grad-clip, or lower the regime's mu "
                    + (
                        f"(checkpoints up to epoch {epoch} are kept in {out})"
                        if epoch > 0
                        else "(no epoch finished: no checkpoint was written)"
                    )
                )
            opt.zero_grad(set_to_none=True)
            total.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            regime.after_step(model)
            with torch.no_grad():
                tot_loss += float(loss.detach()) * len(yb)
                tot_pen += 0.0 if pen is None else float(pen.detach()) * len(yb)
                tot_correct += int(_correct(task, outb, yb).sum())
                tot_n += len(yb)
            if progress is not None:
                progress(
                    epoch + 1, b + 1, n_batches, {"loss": tot_loss / tot_n, "accuracy": tot_correct / tot_n}
                )
        info = regime.after_epoch(model, epoch, cfg.seed)
        seconds = time.perf_counter() - t0
        train_m = {
            "loss": tot_loss / max(1, tot_n),
            "accuracy": tot_correct / max(1, tot_n),
            "penalty": tot_pen / max(1, tot_n),
            "note": "running averages over the epoch's batches",
        }
        record = {
            "epoch": epoch + 1,
            "train": train_m,
            "val": metrics(model, task, task.val),
            "test": metrics(model, task, task.test),
            "seconds": seconds,
            "checkpoint": epoch_path(out, epoch + 1).name,
            "regime_info": info,
        }
        history.append(record)
        best = _best_index(task, history)
        atomic_torch_save(model.state_dict(), epoch_path(out, epoch + 1))
        atomic_write_json(
            {
                **common,
                "epoch": epoch + 1,
                "epochs": cfg.epochs,
                "metrics": {k: record[k] for k in ("train", "val", "test")},
                "seconds": seconds,
                "regime_info": info,
                "checkpoint": record["checkpoint"],
                "selection": "best validation epoch so far: " + history[best]["checkpoint"],
            },
            epoch_path(out, epoch + 1).with_suffix(".json"),
        )
        atomic_torch_save(
            {
                "epoch": epoch + 1,
                "optimizer": opt.state_dict(),
                "config_json": json.dumps(cfg.to_dict()),
                "history_json": json.dumps(history),
            },
            resume_file,
        )
        atomic_write_json(
            {
                **common,
                "epochs": cfg.epochs,
                "history": history,
                "best_epoch": history[best]["epoch"],
                "best_checkpoint": history[best]["checkpoint"],
                "selection": "validation split (test metrics are recorded, never used to select)",
            },
            run_file,
        )
    if not history:
        atomic_write_json({**common, "epochs": cfg.epochs, "history": [], "best_epoch": 0}, run_file)
    best_epoch = history[_best_index(task, history)]["epoch"] if history else 0
    model.eval()
    return TrainResult(out_dir=out, history=history, best_epoch=best_epoch, model=model, task=task)
