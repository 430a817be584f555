"""The shipped example checkpoints in data/ (made by data/make_examples.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import spectra
from spectra.train.checkpoints import load_trained
from spectra.train.tasks import load_task

torch.set_num_threads(1)

DATA = Path(__file__).resolve().parent.parent / "data"
NAMES = [f"digits_{c}_{r}" for c in ("rnn", "lstm", "gru") for r in ("regular", "stable", "robust-cov")]


@pytest.fixture(scope="module")
def digits():
    return load_task("digits")


@pytest.mark.parametrize("name", NAMES)
def test_example_checkpoint(name, digits):
    path = DATA / f"{name}.pt"
    meta = json.loads(path.with_suffix(".json").read_text())
    cell, regime = name.split("_")[1:]
    assert (meta["task"], meta["cell"], meta["regime"]) == ("digits", cell, regime)
    assert meta["data"]["sha256"] == digits.sha256
    ckpt = spectra.load(path)
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    assert len(ckpt) == gates and all(m.n == meta["model"]["hidden"] for m in ckpt)
    if regime == "stable":
        assert all(np.linalg.norm(m.matrix, 2) <= 1 + 1e-5 for m in ckpt)
    model, _ = load_trained(path)
    with torch.no_grad():
        pred = model(torch.from_numpy(digits.test.x)).argmax(-1).numpy()
    acc = float(np.mean(pred == digits.test.y))
    assert acc == pytest.approx(meta["metrics"]["test"]["accuracy"])
    assert acc > 0.85
