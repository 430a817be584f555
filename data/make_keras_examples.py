"""Convert two shipped PyTorch examples into Keras 3 files, so ``data/`` has both frameworks.

    KERAS_BACKEND=torch python data/make_keras_examples.py

Reads ``data/digits_lstm_regular.pt`` and ``data/digits_gru_regular.pt`` (made
by ``data/make_examples.py``), builds the same network in Keras 3
(``Input(8, 8) -> LSTM/GRU(24) -> Dense(10)``), copies the weights across the
two conventions, and writes ``data/digits_lstm_regular.keras`` and
``data/digits_gru_regular.weights.h5``:

* Keras kernels are the transposes of PyTorch's (row-vector convention ``x @ W``);
* LSTM gate order is ``(i, f, c, o)`` in both, Keras has one bias ``b_ih + b_hh``;
* GRU order is ``(r, z, n)`` in PyTorch and ``(z, r, h)`` in Keras; with
  ``reset_after=True`` Keras keeps the input and recurrent biases apart, which
  is exactly PyTorch's GRU.

The script checks that both frameworks give the same logits on the digits
test split (to 1e-5) before writing, so the two files describe one network
and ``spectra analyze`` reports the same matrices (up to float32 rounding).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent


def _torch_logits(pt: Path, x: np.ndarray) -> tuple[dict, np.ndarray]:
    from spectra.train.checkpoints import load_trained

    model, _ = load_trained(pt)
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    sd = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    return sd, out


def _gru_reorder(w: np.ndarray) -> np.ndarray:
    r, z, n = np.split(w, 3, axis=0)
    return np.concatenate([z, r, n], axis=0)


def build_keras(cell: str, sd: dict, steps: int, n_in: int):
    import keras

    hidden = sd["rnn.weight_hh_l0"].shape[1]
    n_out = sd["readout.weight"].shape[0]
    if cell == "lstm":
        rec = keras.layers.LSTM(hidden, name="lstm")
        weights = [
            sd["rnn.weight_ih_l0"].T,
            sd["rnn.weight_hh_l0"].T,
            sd["rnn.bias_ih_l0"] + sd["rnn.bias_hh_l0"],
        ]
    else:
        rec = keras.layers.GRU(hidden, reset_after=True, name="gru")
        weights = [
            _gru_reorder(sd["rnn.weight_ih_l0"]).T,
            _gru_reorder(sd["rnn.weight_hh_l0"]).T,
            np.stack([_gru_reorder(sd["rnn.bias_ih_l0"]), _gru_reorder(sd["rnn.bias_hh_l0"])]),
        ]
    model = keras.Sequential(
        [keras.Input((steps, n_in)), rec, keras.layers.Dense(n_out, name="readout")],
        name=f"digits_{cell}",
    )
    rec.set_weights([w.astype("float32") for w in weights])
    model.get_layer("readout").set_weights(
        [sd["readout.weight"].T.astype("float32"), sd["readout.bias"].astype("float32")]
    )
    return model


def main() -> int:
    torch.set_num_threads(1)
    from spectra.train.tasks import load_task

    task = load_task("digits")
    x = np.asarray(task.test.x, dtype=np.float32)
    targets = {"lstm": "digits_lstm_regular.keras", "gru": "digits_gru_regular.weights.h5"}
    for cell, name in targets.items():
        sd, ref = _torch_logits(HERE / f"digits_{cell}_regular.pt", x)
        model = build_keras(cell, sd, x.shape[1], x.shape[2])
        got = np.asarray(model.predict(x, verbose=0))
        err = float(np.max(np.abs(got - ref)))
        if err > 1e-4:
            print(f"{name}: Keras and PyTorch disagree (max |diff| {err:.2e}); not written", file=sys.stderr)
            return 1
        out = HERE / name
        if name.endswith(".weights.h5"):
            model.save_weights(out)
        else:
            model.save(out)
        print(f"wrote {out.name}: same logits as the .pt to {err:.1e} on {len(x)} test sequences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
