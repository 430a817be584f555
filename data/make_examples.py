"""Train the small example checkpoints shipped in ``data/`` (digits; RNN, LSTM, GRU x three regimes).

    python data/make_examples.py            # writes data/digits_<cell>_<regime>.pt and .json

Each model is trained with :func:`spectra.train.train` on scikit-learn's 8x8
digits (8 steps x 8 inputs), hidden size 24, for a few epochs, seed 0, one
thread; the epoch with the best validation accuracy is kept. The ``.pt`` is a
plain state dict (keys ``rnn.weight_hh_l0`` ...), readable by ``spectra.load``
and ``spectra analyze``; the ``.json`` beside it is the training metadata
(without wall-clock timings, so reruns give the same files apart from
torch's random serialisation id). Deterministic: rerunning gives the same
weights; files whose weights and metadata are unchanged are not rewritten.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from spectra.train.checkpoints import atomic_torch_save, atomic_write_json  # noqa: E402
from spectra.train.loop import TrainConfig, train  # noqa: E402
from spectra.train.tasks import load_task  # noqa: E402

HERE = Path(__file__).resolve().parent
CELLS = ("rnn", "lstm", "gru")
REGIMES = ("regular", "stable", "robust-cov")
EPOCHS = 12
HIDDEN = 24


def _strip_timings(meta: dict) -> dict:
    meta = {k: v for k, v in meta.items() if k != "seconds"}
    return meta


def _same(path: Path, state: dict, meta: dict) -> bool:
    side = path.with_suffix(".json")
    if not (path.exists() and side.exists()):
        return False
    old = torch.load(path, map_location="cpu", weights_only=True)
    if set(old) != set(state) or not all(torch.equal(old[k], state[k]) for k in state):
        return False
    return json.loads(side.read_text()) == json.loads(json.dumps(meta))


def main() -> int:
    task = load_task("digits")
    for cell in CELLS:
        for regime in REGIMES:
            name = f"digits_{cell}_{regime}"
            cfg = TrainConfig(
                task="digits",
                cell=cell,
                hidden=HIDDEN,
                regime=regime,
                epochs=EPOCHS,
                lr=0.01,
                seed=0,
                threads=1,
            )
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                res = train(cfg, tmp, task=task)
                best = Path(tmp) / f"epoch_{res.best_epoch:03d}.pt"
                state = torch.load(best, map_location="cpu", weights_only=True)
                meta = _strip_timings(json.loads(best.with_suffix(".json").read_text()))
            meta["checkpoint"] = f"{name}.pt"
            meta["selection"] = f"epoch {res.best_epoch} of {EPOCHS}: best validation accuracy"
            meta["made_by"] = "data/make_examples.py"
            out = HERE / f"{name}.pt"
            if _same(out, state, meta):
                status = "unchanged"
            else:
                atomic_torch_save(state, out)
                atomic_write_json(meta, out.with_suffix(".json"))
                status = "written"
            m = meta["metrics"]
            print(
                f"{name:<26} epoch {res.best_epoch:>2}  val {m['val']['accuracy']:.3f}  "
                f"test {m['test']['accuracy']:.3f}  {time.perf_counter() - t0:5.1f}s  {status}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
