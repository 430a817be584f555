"""Files of a training run: per-epoch state dicts, JSON sidecars, resume state (atomic writes).

A run folder holds::

    epoch_001.pt   epoch_001.json   ...   run.json   resume.pt

``epoch_NNN.pt`` is a plain ``state_dict`` saved with :func:`torch.save`
(readable with ``weights_only=True`` and by :func:`spectra.load`);
``epoch_NNN.json`` is its metadata (task, cell, regime and every option,
seed, data source and sha256, metrics, versions); ``run.json`` is the run's
history and model selection; ``resume.pt`` holds the optimiser state, the
configuration and the history of the last finished epoch. Every file is
written to a temporary name and renamed; ``resume.pt`` is written after the
epoch's checkpoint and sidecar, so it is the commit point ``--resume`` trusts.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
from pathlib import Path

import torch

from spectra._atomic import atomic_write
from spectra.errors import UnsupportedFormatError

__all__ = [
    "SCHEMA_VERSION",
    "atomic_write_json",
    "atomic_torch_save",
    "epoch_path",
    "load_trained",
    "read_metadata",
    "task_for",
    "versions",
]

#: Version of the JSON sidecar layout.
SCHEMA_VERSION = 1


def epoch_path(out_dir: str | os.PathLike, epoch: int) -> Path:
    """Path of the checkpoint of epoch `epoch` (1-based): ``epoch_003.pt``."""
    return Path(out_dir) / f"epoch_{epoch:03d}.pt"


def atomic_torch_save(obj: object, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` through a temporary file and :func:`os.replace`.

    The same object gives the same bytes whatever the temporary file was called.

    Raises
    ------
    WriteError
        The folder is not writable.
    """

    def write(tmp: str) -> None:
        # through a file object: saved by name, torch names the zip's inner folder after the
        # (random) temporary file, so equal checkpoints would not be equal files
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    atomic_write(Path(path), write, make_parents=True)


def atomic_write_json(obj: object, path: str | os.PathLike) -> None:
    """Write `obj` as indented JSON through a temporary file.

    Raises
    ------
    WriteError
        The folder is not writable.
    """

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")

    atomic_write(Path(path), write, make_parents=True)


def versions() -> dict:
    """Versions of Python, torch, numpy and rnn-spectra (for the metadata)."""
    import numpy

    import spectra

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "rnn-spectra": spectra.__version__,
    }


def read_metadata(ckpt: str | os.PathLike) -> dict:
    """Return the JSON sidecar of checkpoint `ckpt` (``epoch_003.json`` beside ``epoch_003.pt``).

    Raises
    ------
    UnsupportedFormatError
        No sidecar (the checkpoint was not written by :func:`spectra.train.train`)
        or an unreadable one.
    """
    p = Path(ckpt)
    side = p.with_suffix(".json")
    if p.is_dir():  # as spectra.load says it (exit code 3)
        raise UnsupportedFormatError(f"{p}: is a directory, not a checkpoint file")
    if not p.exists():
        raise UnsupportedFormatError(f"{p}: no such file")
    if side == p:  # the sidecar itself was named: it is not "its own sidecar"
        raise UnsupportedFormatError(
            f"{p}: a JSON file, not a PyTorch checkpoint; pass the .pt checkpoint that 'spectra train' "
            "wrote beside it (this .json is its metadata)"
        )
    if not side.exists():
        raise UnsupportedFormatError(
            f"{p}: no metadata sidecar {side.name} beside it; evaluate/robustness need a checkpoint "
            "written by 'spectra train' (its .json says which task and model to rebuild)"
        )
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnsupportedFormatError(f"{side}: unreadable metadata ({exc})") from None
    if not isinstance(meta, dict) or "config" not in meta or "model" not in meta:
        raise UnsupportedFormatError(f"{side}: not a spectra.train metadata file (no 'config'/'model')")
    missing = [
        f"{part}.{key}"
        for part, keys in _REQUIRED.items()
        for key in keys
        if not isinstance(meta[part], dict) or key not in meta[part]
    ]
    if missing:  # an older schema or an edited file: this was an internal KeyError
        raise UnsupportedFormatError(
            f"{side}: metadata without {', '.join(missing)} (needed to rebuild the model); "
            "not a sidecar written by this version of 'spectra train'"
        )
    return meta


#: Keys of a sidecar that :func:`load_trained` and :func:`task_for` need, by section.
_REQUIRED = {
    "config": ("task",),
    "model": ("cell", "n_inputs", "n_outputs", "hidden", "layers", "tokens", "embed_dim"),
}


def _torch_reason(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one line without torch's advice.

    Torch's message for a pickle with objects beyond tensors suggests ``weights_only=False``,
    which would run arbitrary code from the file: not repeated here.
    """
    text = str(exc).strip()
    if "weights_only" in text or "Weights only" in text:
        return "torch's safe loader (weights_only=True) cannot read it"
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _mismatch(model: torch.nn.Module, state: object, exc: BaseException) -> str:
    """What does not fit between `state` and `model`, in one line: missing, unexpected, other shapes.

    Torch's own message spreads this over several lines (its first says only
    ``Error(s) in loading state_dict for SequenceModel:``); the rest is kept, joined by ``; ``,
    where the state is no mapping of tensors.
    """

    def some(names: list[str]) -> str:
        more = f" (and {len(names) - 3} more)" if len(names) > 3 else ""
        return ", ".join(names[:3]) + more

    def dims(shape) -> str:
        return "x".join(str(int(d)) for d in shape) or "scalar"

    want = model.state_dict()
    if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
        parts = []
        missing = [k for k in want if k not in state]
        unexpected = [str(k) for k in state if k not in want]
        sizes = [
            f"{k} {dims(state[k].shape)} vs {dims(v.shape)}"
            for k, v in want.items()
            if k in state and tuple(state[k].shape) != tuple(v.shape)
        ]
        if missing:
            parts.append(f"missing {some(missing)}")
        if unexpected:
            parts.append(f"unexpected {some(unexpected)}")
        if sizes:
            parts.append(f"size mismatch (file vs model): {some(sizes)}")
        if parts:
            return "; ".join(parts)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines)[:400] or type(exc).__name__


def load_trained(ckpt: str | os.PathLike):
    """Rebuild the trained model of checkpoint `ckpt` from its sidecar; return ``(model, metadata)``.

    The state dict is read with ``torch.load(weights_only=True)``.

    Raises
    ------
    UnsupportedFormatError
        No or bad sidecar, or a state dict that does not fit the model it describes.
    """
    from spectra.train.models import build_model

    if os.fspath(ckpt).lower().endswith((".keras", ".h5", ".hdf5")):
        raise UnsupportedFormatError(
            f"{ckpt}: a Keras file; evaluate and robustness rerun the network in PyTorch and need "
            "the .pt checkpoint that 'spectra train' writes (with its .json sidecar)"
        )
    meta = read_metadata(ckpt)
    m = meta["model"]
    model = build_model(
        m["cell"],
        m["n_inputs"],
        m["n_outputs"],
        m["hidden"],
        m["layers"],
        tokens=m["tokens"],
        embed_dim=m["embed_dim"],
    )
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise UnsupportedFormatError(
            f"{ckpt}: not a PyTorch checkpoint of the run its sidecar describes ({_torch_reason(exc)}); "
            "a plain torch.save state dict written by 'spectra train' is expected"
        ) from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise UnsupportedFormatError(
            f"{ckpt}: not a state dict of the model its sidecar {Path(ckpt).with_suffix('.json').name} "
            f"describes ({_mismatch(model, state, exc)})"
        ) from None
    model.eval()
    return model, meta


def task_for(metadata: dict, *, data: str | os.PathLike | None = None, task: str | None = None):
    """Reload the task a checkpoint was trained on, from its metadata (same splits, same vocabulary).

    Parameters
    ----------
    metadata : dict
        A sidecar (:func:`read_metadata`).
    data : path, optional
        Override the data path stored in the metadata.
    task : str, optional
        Another task with inputs of the same shape (default: the trained one).

    Raises
    ------
    TrainConfigError
        The other task's inputs do not fit the model, or `data` is given for a task that
        takes none (both said before any data is read, where the task's shape is fixed).
    DataUnavailableError
        The data cannot be read or fetched.
    """
    from spectra.train.errors import TrainConfigError
    from spectra.train.tasks import TASK_SHAPES, TASKS, check_task_options, load_task

    cfg = metadata["config"]
    name = task or cfg["task"]
    same = name == cfg["task"]
    m = metadata["model"]
    want = (m["n_inputs"], m["n_outputs"], m["tokens"])
    data = data if data is not None else (cfg.get("data") if same else None)
    seq_len = cfg.get("seq_len") if same else None

    def misfit(shape) -> TrainConfigError:
        via = f" from --data {data}" if data is not None and same else ""
        return TrainConfigError(
            f"--task {name} (task){via} has {shape[0]} inputs/{shape[1]} outputs per step"
            f"{' (tokens)' if shape[2] else ''}; the checkpoint's model expects "
            f"{want[0]}/{want[1]}{' (tokens)' if want[2] else ''} (trained on {cfg['task']!r})"
        )

    if name in TASKS:  # refused before MNIST or a text corpus is read
        check_task_options(name, data=data, seq_len=seq_len)
        shape = TASK_SHAPES[name]
        if any(a is not None and a != b for a, b in zip(shape, want)):
            raise misfit(tuple("?" if a is None else a for a in shape))
    t = load_task(
        name,
        data=data,
        seq_len=seq_len,
        n_samples=cfg.get("n_samples", 10_000),
        vocab_size=cfg.get("vocab_size", 5000),
    )
    if (t.n_inputs, t.n_outputs, t.tokens) != want:
        raise misfit((t.n_inputs, t.n_outputs, t.tokens))
    return t
