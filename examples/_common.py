"""Helpers shared by the example scripts (``robust_rnn.py``, ``how_robust.py``).

Nothing here computes a figure of the papers: training, evaluation and every
spectral quantity come from :mod:`spectra`. This module only trains-or-resumes
run folders, formats numbers, writes the Markdown/JSON tables and saves
figures with the Agg backend.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "Stopwatch",
    "fmt",
    "jsonable",
    "machine",
    "markdown_table",
    "mean_std",
    "save_png",
    "set_threads",
    "train_or_resume",
    "write_outputs",
]


def set_threads(threads: int) -> None:
    """Limit BLAS/OpenMP and torch to `threads` threads (call before heavy imports)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("MPLBACKEND", "Agg")
    import torch

    torch.set_num_threads(threads)


class Stopwatch:
    """Wall-clock seconds since creation (``elapsed``), and a stderr logger with a time stamp."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    @property
    def elapsed(self) -> float:
        """Seconds since creation."""
        return time.perf_counter() - self.t0

    def log(self, msg: str) -> None:
        """Print `msg` to stderr with the elapsed time."""
        print(f"[{self.elapsed:7.1f} s] {msg}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    """Where the run happened: CPU count, platform, Python and torch versions."""
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def _comparable(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in ("epochs", "threads")}


def train_or_resume(config, run_dir: Path, task, log=None):
    """Train `config` into `run_dir`, continuing a run already there (finished runs are not retrained).

    Parameters
    ----------
    config : spectra.train.TrainConfig
        The run.
    run_dir : Path
        Its folder; a folder holding ``run.json`` with the same configuration
        (apart from ``epochs`` and ``threads``) is reused when it has at least
        ``config.epochs`` epochs, else resumed.
    task : spectra.train.Task
        The loaded task (shared by the runs of one script).
    log : callable, optional
        ``log(message)`` for progress lines.

    Returns
    -------
    object
        With ``out_dir`` and ``history`` (a :class:`spectra.train.TrainResult`
        when training ran).

    Raises
    ------
    SystemExit
        `run_dir` holds a run with another configuration.
    """
    import types

    import torch

    from spectra.train import train

    run_file = run_dir / "run.json"
    if run_file.exists():
        run = json.loads(run_file.read_text(encoding="utf-8"))
        if _comparable(run.get("config", {})) != _comparable(config.to_dict()):
            raise SystemExit(f"{run_dir}: holds a run with another configuration; remove it or use --runs")
        history = run.get("history", [])
        if len(history) >= config.epochs:
            if log is not None:
                log(f"reusing {run_dir} ({len(history)} epochs done)")
            return types.SimpleNamespace(out_dir=run_dir, history=history)
        # run folders written before resume.pt carried the configuration and history: add them
        resume = run_dir / "resume.pt"
        if history and resume.exists():
            state = torch.load(resume, map_location="cpu", weights_only=True)
            if "config_json" not in state and int(state.get("epoch", -1)) == len(history):
                state["config_json"] = json.dumps(run["config"])
                state["history_json"] = json.dumps(history)
                torch.save(state, resume)
        if log is not None:
            log(f"resuming {run_dir} ({len(history)}/{config.epochs} epochs done)")
    elif log is not None:
        log(f"training {run_dir} (0/{config.epochs} epochs)")

    def progress(epoch: int, b: int, nb: int, stats: dict) -> None:
        if log is not None and b == nb:
            log(f"  {run_dir.name}: epoch {epoch} loss {stats['loss']:.4f} acc {stats['accuracy']:.4f}")

    return train(config, run_dir, resume=True, progress=progress, task=task)


def last_checkpoint(result) -> Path:
    """Path of the final epoch's checkpoint of a :class:`spectra.train.TrainResult`."""
    return Path(result.out_dir) / result.history[-1]["checkpoint"]


def fmt(x: float | None, digits: int = 3) -> str:
    """Format a number for a Markdown table (``—`` for None, ``∞`` for inf)."""
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-4):
        return f"{x:.{max(1, digits - 1)}e}"
    return f"{x:.{digits}f}"


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean and sample standard deviation (ddof=1; 0 for one value) of the non-None values, and their count.

    An infinite value makes the mean infinite and the deviation None.
    """
    v = [float(x) for x in values if x is not None]
    if not v:
        return None, None, 0
    if any(math.isinf(x) for x in v):
        return (math.inf if any(x > 0 for x in v if math.isinf(x)) else -math.inf), None, len(v)
    m = sum(v) / len(v)
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, s, len(v)


def fmt_mean_std(values: Sequence[float | None], digits: int = 2, total: int | None = None) -> str:
    """``mean ± std`` of `values` (None entries dropped; ``(k/N)`` appended when some were None)."""
    m, s, k = mean_std(values)
    n = len(values) if total is None else total
    if m is None:
        return "not reached"
    if s is not None and 0 < s < 10.0**-digits:
        s = 0.0  # below the printed precision
    text = fmt(m, digits) if s is None else f"{fmt(m, digits)} ± {fmt(s, digits)}"
    return text if k == n else f"{text} ({k}/{n})"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


_ROOT_PREFIX = str(Path(__file__).resolve().parents[1]) + "/"


def jsonable(obj: Any) -> Any:
    """Plain JSON types (inf/nan spelled as strings, numpy scalars and arrays converted)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, Path):
        obj = str(obj)
    if isinstance(obj, str) and obj.startswith(_ROOT_PREFIX):
        return obj[len(_ROOT_PREFIX) :]  # paths inside the checkout: relative to its root
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    return obj


def write_outputs(out: Path, name: str, markdown: str, data: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<out>/<name>.md`` and ``<out>/<name>.json``; return both paths."""
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{name}.md", out / f"{name}.json"
    md.write_text(markdown.rstrip() + "\n", encoding="utf-8")
    js.write_text(json.dumps(jsonable(data), indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return md, js


def save_png(fig, path: Path, *, dpi: int = 80) -> Path:
    """Save `fig` as PNG (Agg, tight box) and close it."""
    import matplotlib.pyplot as plt

    from spectra.plot.pseudospectra import save_figure

    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=dpi)
    plt.close(fig)
    return path
