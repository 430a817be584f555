"""The checkpoints shipped in ``data/`` load, and the Keras copies hold the PyTorch networks' matrices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spectra.load import load

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize("path", sorted(DATA.glob("*.pt")), ids=lambda p: p.name)
def test_shipped_pytorch_examples_load_with_metadata(path):
    ckpt = load(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert ckpt.format == "pytorch-zip"
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[meta["cell"].split("-")[0]]
    assert len(ckpt) == gates * meta["model"]["layers"]
    for m in ckpt:
        assert m.matrix.shape == (meta["model"]["hidden"],) * 2
        assert m.finite


@pytest.mark.parametrize(
    "keras_file,pt_file",
    [
        ("digits_lstm_regular.keras", "digits_lstm_regular.pt"),
        ("digits_gru_regular.weights.h5", "digits_gru_regular.pt"),
    ],
)
def test_keras_copies_match_pytorch_gate_by_gate(keras_file, pt_file):
    k, t = load(DATA / keras_file), load(DATA / pt_file)
    assert k.format.startswith("keras")
    by_gate = {m.gate: m.matrix for m in t}
    assert sorted(by_gate) == sorted(m.gate for m in k)
    for m in k:
        np.testing.assert_array_equal(m.matrix, by_gate[m.gate])  # same float32 values, moved
