"""Keras readers proved against the framework's own forward pass.

Tiny models are built with real Keras 3 (torch backend) at test time, trained
one step so the optimizer state lands in the files, and saved as ``.keras``,
``.weights.h5`` and legacy ``.h5``. For every recurrent layer the output
sequence Keras computes is reproduced by a float64 numpy recurrence that uses
*only* the ``A`` matrices the loader extracted (plus the input kernels and
biases, taken from Keras's ``layer.get_weights()``). A wrong orientation, gate
order or layer mapping cannot reproduce it.

The same proof runs on real tf.keras 2.21 files shipped in
``shared/fixtures/tf-keras`` (their true layer outputs are in
``tfkeras_mixed_io.npz``; non-recurrent weights are read here with h5py).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

os.environ["KERAS_BACKEND"] = "torch"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import h5py
import numpy as np
import pytest
import torch

from spectra.errors import NoRecurrentWeightsError
from spectra.load import load

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2] / "shared"
TFK = SHARED / "fixtures" / "tf-keras"
T, D = 6, 3  # sequence length, input features
LSTM_GATES = ("input", "forget", "cell", "output")
GRU_GATES = ("update", "reset", "new")
TOL = dict(rtol=1e-5, atol=2e-6)


# ============================================================== numpy oracle (float64)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gates(ckpt, prefix, names):
    """The extracted A matrices of one kernel: {gate: (n, n)} from ids '<prefix>/recurrent_kernel[gate]'."""
    return {g: ckpt[f"{prefix}/recurrent_kernel[{g}]"].matrix for g in names}


def run_simple(x, W, b, A, reverse=False):
    """h_t = tanh(W^T x_t + A h_{t-1} + b) (column form; rows here)."""
    n = A.shape[0]
    h = np.zeros((x.shape[0], n))
    out = np.zeros((x.shape[0], x.shape[1], n))
    for t in reversed(range(x.shape[1])) if reverse else range(x.shape[1]):
        h = np.tanh(x[:, t] @ W + h @ A.T + b)
        out[:, t] = h
    return out


def run_lstm(x, W, b, A, reverse=False):
    """Keras LSTM: gates (i, f, c, o) = split(x W + h U + b); A[g] = U[:, g].T."""
    n = A["input"].shape[0]
    Wg = {g: W[:, k * n : (k + 1) * n] for k, g in enumerate(LSTM_GATES)}
    bg = {g: b[k * n : (k + 1) * n] for k, g in enumerate(LSTM_GATES)}
    h = np.zeros((x.shape[0], n))
    c = np.zeros_like(h)
    out = np.zeros((x.shape[0], x.shape[1], n))
    for t in reversed(range(x.shape[1])) if reverse else range(x.shape[1]):
        pre = {g: x[:, t] @ Wg[g] + h @ A[g].T + bg[g] for g in LSTM_GATES}
        c = sigmoid(pre["forget"]) * c + sigmoid(pre["input"]) * np.tanh(pre["cell"])
        h = sigmoid(pre["output"]) * np.tanh(c)
        out[:, t] = h
    return out


def run_gru(x, W, b, A, reset_after, reverse=False):
    """Keras GRU, gates (z, r, h); reset_after=True: r * (A_h h + b_rh), else A_h (r * h)."""
    n = A["update"].shape[0]
    b = np.zeros((2, 3 * n)) if b is None else np.asarray(b)
    b_in, b_rec = (b[0], b[1]) if reset_after else (b, np.zeros(3 * n))
    Wg = {g: W[:, k * n : (k + 1) * n] for k, g in enumerate(GRU_GATES)}
    bi = {g: b_in[k * n : (k + 1) * n] for k, g in enumerate(GRU_GATES)}
    br = {g: b_rec[k * n : (k + 1) * n] for k, g in enumerate(GRU_GATES)}
    h = np.zeros((x.shape[0], n))
    out = np.zeros((x.shape[0], x.shape[1], n))
    for t in reversed(range(x.shape[1])) if reverse else range(x.shape[1]):
        xin = {g: x[:, t] @ Wg[g] + bi[g] for g in GRU_GATES}
        z = sigmoid(xin["update"] + h @ A["update"].T + br["update"])
        r = sigmoid(xin["reset"] + h @ A["reset"].T + br["reset"])
        if reset_after:
            hh = np.tanh(xin["new"] + r * (h @ A["new"].T + br["new"]))
        else:
            hh = np.tanh(xin["new"] + (r * h) @ A["new"].T)
        h = z * h + (1.0 - z) * hh
        out[:, t] = h
    return out


# ============================================================== Keras fixtures (built once)


@pytest.fixture(scope="module")
def kfiles(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(7)
    d = tmp_path_factory.mktemp("keras")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, T, D)).astype(np.float32)

    # Functional: user-named LSTM, Bidirectional LSTM, both GRU variants, a default-named
    # SimpleRNN and a square Dense decoy; compiled and trained one step (optimizer state saved).
    inp = keras.Input((T, D))
    h = keras.layers.LSTM(5, return_sequences=True, name="encoder_lstm")(inp)
    h = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True), name="bi")(h)
    h = keras.layers.GRU(4, return_sequences=True, reset_after=False, name="gru_before")(h)
    h = keras.layers.GRU(4, return_sequences=True, reset_after=True, name="gru_after")(h)
    h = keras.layers.SimpleRNN(4, return_sequences=True)(h)
    out = keras.layers.Dense(4, name="decoy")(h)
    mixed = keras.Model(inp, out)
    mixed.compile(optimizer="adam", loss="mse")
    mixed.fit(x, rng.standard_normal((2, T, 4)).astype(np.float32), epochs=1, batch_size=2, verbose=0)
    mixed.save(d / "mixed.keras")
    mixed.save_weights(d / "mixed.weights.h5")
    mixed.save(d / "mixed.h5")

    # Sequential with a nested Sequential ("encoder") and stacked default-named LSTMs.
    encoder = keras.Sequential(
        [keras.layers.LSTM(4, return_sequences=True, name="inner_lstm")], name="encoder"
    )
    stacked = keras.Sequential(
        [
            keras.Input((T, D)),
            encoder,
            keras.layers.LSTM(3, return_sequences=True),
            keras.layers.LSTM(3, return_sequences=True),
            keras.layers.GRU(3, return_sequences=True, name="top_gru"),
        ]
    )
    stacked.save(d / "stacked.keras")
    stacked.save_weights(d / "stacked.weights.h5")
    stacked.save(d / "stacked.h5")

    # RNN(cell), StackedRNNCells, go_backwards, Bidirectional with a user-named backward layer.
    L = keras.layers
    cells = keras.Sequential(
        [
            keras.Input((T, D)),
            L.RNN(L.LSTMCell(3), return_sequences=True, name="wrapped"),
            L.RNN([L.GRUCell(2), L.SimpleRNNCell(3)], return_sequences=True, name="stackcells"),
            L.LSTM(2, go_backwards=True, return_sequences=True, name="backwards"),
            L.Bidirectional(
                L.GRU(2, return_sequences=True, reset_after=False),
                backward_layer=L.GRU(
                    2, go_backwards=True, return_sequences=True, reset_after=False, name="mybw"
                ),
                name="bigru",
            ),
        ]
    )
    cells.save(d / "cells.keras")
    cells.save_weights(d / "cells.weights.h5")
    cells.save(d / "cells.h5")

    # A subclassed model: layers stored under attribute names, no "layers" group.
    class Sub(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.enc = L.LSTM(3, return_sequences=True, name="sub_enc")
            self.dec = L.GRU(2, use_bias=False, return_sequences=True, name="sub_dec")

        def call(self, a):
            return self.dec(self.enc(a))

    sub = Sub()
    sub(x)
    sub.save_weights(d / "sub.weights.h5")

    dense_only = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="d")])
    dense_only.save(d / "dense.keras")

    def layer_io(model, inp_arr):
        """Each layer's own input/output (Keras forward pass), nested models flattened."""
        rows = []

        def walk(m, a, prefix):
            for layer in m.layers:
                if isinstance(layer, keras.layers.InputLayer):
                    continue
                if isinstance(layer, keras.Model):
                    a = walk(layer, a, f"{prefix}{layer.name}/")
                    continue
                y = keras.ops.convert_to_numpy(layer(a)).astype(np.float64)
                rows.append((f"{prefix}{layer.name}", layer, a.astype(np.float64), y))
                a = y.astype(np.float32)
            return a

        walk(model, inp_arr, "")
        return {name: (layer, a, y) for name, layer, a, y in rows}

    return {
        "dir": d,
        "x": x,
        "mixed": layer_io(mixed, x),
        "stacked": layer_io(stacked, x),
        "simple_name": mixed.layers[5].name,
        "stacked_lstm_names": [stacked.layers[1].name, stacked.layers[2].name],
        "cells": layer_io(cells, x),
        "sub": {
            "sub_enc": (sub.enc, x.astype(np.float64), None),
            "sub_dec": (sub.dec, None, keras.ops.convert_to_numpy(sub(x)).astype(np.float64)),
        },
    }


def weights64(layer):
    return [np.asarray(w, dtype=np.float64) for w in layer.get_weights()]


MIXED_FILES = ["mixed.keras", "mixed.weights.h5", "mixed.h5"]
STACKED_FILES = ["stacked.keras", "stacked.weights.h5", "stacked.h5"]


def expected_mixed_ids(simple):
    ids = [f"encoder_lstm/recurrent_kernel[{g}]" for g in LSTM_GATES]
    ids += [f"bi/forward_lstm/recurrent_kernel[{g}]" for g in LSTM_GATES]
    ids += [f"bi/backward_lstm/recurrent_kernel[{g}]" for g in LSTM_GATES]
    ids += [f"gru_before/recurrent_kernel[{g}]" for g in GRU_GATES]
    ids += [f"gru_after/recurrent_kernel[{g}]" for g in GRU_GATES]
    ids += [f"{simple}/recurrent_kernel"]
    return ids


@pytest.mark.parametrize("fname", MIXED_FILES)
def test_mixed_ids_formats_and_metadata(kfiles, fname):
    ckpt = load(kfiles["dir"] / fname)
    assert ckpt.ids == expected_mixed_ids(kfiles["simple_name"])
    assert ckpt.format == {"mixed.keras": "keras-v3", "mixed.weights.h5": "keras-weights-h5"}.get(
        fname, "keras-h5"
    )
    assert ckpt.metadata["framework"] == "keras"
    if fname.endswith(".keras"):
        assert ckpt.metadata["weights_member"] == "model.weights.h5"
    by = {m.id: m for m in ckpt}
    f = by["bi/backward_lstm/recurrent_kernel[forget]"]
    assert (f.layer, f.direction, f.cell, f.gate, f.native_gate) == ("bi", "reverse", "lstm", "forget", "f")
    assert by["bi/forward_lstm/recurrent_kernel[cell]"].direction == "forward"
    g = by["gru_before/recurrent_kernel[new]"]
    assert (g.cell, g.native_gate, g.block, g.transposed) == ("gru", "h", (8, 12), True)
    assert any("reset_after=False" in n for n in g.notes)
    assert any("reset_after=True" in n for n in by["gru_after/recurrent_kernel[reset]"].notes)
    s = by[f"{kfiles['simple_name']}/recurrent_kernel"]
    assert (s.cell, s.gate, s.block) == ("simple_rnn", None, (0, 4))
    assert [m.layer_index for m in ckpt][::4][:3] == [0, 1, 1]
    assert all(m.finite and m.matrix.dtype == np.float64 and m.dtype == "float32" for m in ckpt)


@pytest.mark.parametrize("fname", MIXED_FILES)
def test_mixed_skips_decoy_and_optimizer(kfiles, fname):
    ckpt = load(kfiles["dir"] / fname)
    assert not any("decoy" in m.id for m in ckpt)
    decoys = [s for s in ckpt.skipped if s.shape == (4, 4) and "decoy" in s.reason]
    assert len(decoys) == 1 and "not recurrent" in decoys[0].reason
    opt = [s for s in ckpt.skipped if "optimizer" in s.reason]
    if fname == "mixed.h5" or fname.endswith((".keras", ".weights.h5")):
        assert len(opt) >= 2 * 6 * 3  # Adam m and v of every recurrent layer's 3 weights
    # everything in the file is either reported or skipped with a reason
    reported = {m.source for m in ckpt}
    listed = {s.name for s in ckpt.skipped}
    assert not reported & listed
    assert all(s.reason for s in ckpt.skipped)


@pytest.mark.parametrize("fname", MIXED_FILES)
def test_mixed_reproduces_keras_forward_pass(kfiles, fname):
    ckpt = load(kfiles["dir"] / fname)
    io = kfiles["mixed"]

    layer, a, y = io["encoder_lstm"]
    W, _, b = weights64(layer)
    np.testing.assert_allclose(run_lstm(a, W, b, gates(ckpt, "encoder_lstm", LSTM_GATES)), y, **TOL)

    layer, a, y = io["bi"]
    Wf, _, bf, Wb, _, bb = weights64(layer)
    fw = run_lstm(a, Wf, bf, gates(ckpt, "bi/forward_lstm", LSTM_GATES))
    bw = run_lstm(a, Wb, bb, gates(ckpt, "bi/backward_lstm", LSTM_GATES), reverse=True)
    np.testing.assert_allclose(np.concatenate([fw, bw], axis=-1), y, **TOL)

    for name, reset_after in (("gru_before", False), ("gru_after", True)):
        layer, a, y = io[name]
        W, _, b = weights64(layer)
        assert b.ndim == (2 if reset_after else 1)
        got = run_gru(a, W, b, gates(ckpt, name, GRU_GATES), reset_after)
        np.testing.assert_allclose(got, y, **TOL)

    name = kfiles["simple_name"]
    layer, a, y = io[name]
    W, _, b = weights64(layer)
    np.testing.assert_allclose(run_simple(a, W, b, ckpt[f"{name}/recurrent_kernel"].matrix), y, **TOL)


def test_wrong_orientation_or_gate_order_would_fail(kfiles):
    """The oracle is sharp: the untransposed matrices, or swapped gates, miss by far more than TOL."""
    ckpt = load(kfiles["dir"] / "mixed.keras")
    layer, a, y = kfiles["mixed"]["encoder_lstm"]
    W, _, b = weights64(layer)
    A = gates(ckpt, "encoder_lstm", LSTM_GATES)
    wrong_t = {g: m.T for g, m in A.items()}
    swapped = dict(A, input=A["forget"], forget=A["input"])
    for bad in (wrong_t, swapped):
        assert np.max(np.abs(run_lstm(a, W, b, bad) - y)) > 1e-3


@pytest.mark.parametrize("fname", STACKED_FILES)
def test_stacked_nested_reproduces_keras(kfiles, fname):
    ckpt = load(kfiles["dir"] / fname)
    l1, l2 = kfiles["stacked_lstm_names"]
    prefixes = ["encoder/inner_lstm", l1, l2]
    expected = [f"{p}/recurrent_kernel[{g}]" for p in prefixes for g in LSTM_GATES]
    expected += [f"top_gru/recurrent_kernel[{g}]" for g in GRU_GATES]
    assert ckpt.ids == expected
    io = kfiles["stacked"]
    for p in prefixes:
        layer, a, y = io[p]
        W, _, b = weights64(layer)
        np.testing.assert_allclose(run_lstm(a, W, b, gates(ckpt, p, LSTM_GATES)), y, **TOL)
    layer, a, y = io["top_gru"]
    W, _, b = weights64(layer)
    np.testing.assert_allclose(run_gru(a, W, b, gates(ckpt, "top_gru", GRU_GATES), True), y, **TOL)


@pytest.mark.parametrize("fname", MIXED_FILES + STACKED_FILES)
def test_source_and_block_address_the_file(kfiles, tmp_path, fname):
    """Writer contract: f[source][:, a:b].T is the matrix (inside model.weights.h5 for .keras)."""
    path = kfiles["dir"] / fname
    ckpt = load(path)
    h5path = path
    if fname.endswith(".keras"):
        with zipfile.ZipFile(path) as zf:
            h5path = tmp_path / "w.h5"
            h5path.write_bytes(zf.read(ckpt.metadata["weights_member"]))
    with h5py.File(h5path, "r") as f:
        for m in ckpt:
            a, b = m.block
            assert m.transposed
            np.testing.assert_array_equal(np.asarray(f[m.source])[:, a:b].T.astype(np.float64), m.matrix)


@pytest.mark.parametrize("stem", ["mixed", "stacked", "cells"])
def test_same_matrices_and_fields_in_all_three_formats(kfiles, stem):
    ck = [load(kfiles["dir"] / f"{stem}{ext}") for ext in (".keras", ".weights.h5", ".h5")]
    for other in ck[1:]:
        assert other.ids == ck[0].ids
        for m0, m1 in zip(ck[0], other):
            np.testing.assert_array_equal(m0.matrix, m1.matrix)
            fields = ("layer", "layer_index", "cell", "gate", "native_gate", "block", "transposed")
            assert [getattr(m1, a) for a in fields] == [getattr(m0, a) for a in fields], m0.id
            if not (other.format == "keras-weights-h5" and m0.id.startswith("backwards/")):
                assert m1.direction == m0.direction, m0.id


def test_dataset_path_selects_one_kernel(kfiles):
    ckpt = load(f"{kfiles['dir'] / 'mixed.h5'}:/model_weights/bi/bi/backward_lstm/lstm_cell/recurrent_kernel")
    assert ckpt.ids == [f"bi/backward_lstm/recurrent_kernel[{g}]" for g in LSTM_GATES]


def test_nonfinite_weights_are_listed(kfiles, tmp_path):
    path = tmp_path / "nan.weights.h5"
    path.write_bytes((kfiles["dir"] / "mixed.weights.h5").read_bytes())
    src = load(path)["gru_after/recurrent_kernel[reset]"].source
    with h5py.File(path, "r+") as f:
        f[src][0, 5] = np.nan  # column 5 of a (4, 12) GRU kernel: the reset gate
    ckpt = load(path)
    assert ckpt.ids == expected_mixed_ids(kfiles["simple_name"])
    assert [m.id for m in ckpt if not m.finite] == ["gru_after/recurrent_kernel[reset]"]


def test_dense_only_model_has_no_recurrent_weights(kfiles):
    with pytest.raises(NoRecurrentWeightsError, match="dense.keras"):
        load(kfiles["dir"] / "dense.keras")


# ============================================================== shipped tf.keras 2.21 files


@pytest.fixture(scope="module")
def tf_io():
    with np.load(TFK / "tfkeras_mixed_io.npz") as z:
        return {k: z[k].astype(np.float64) for k in z.files}


@pytest.mark.parametrize(
    ("fname", "root"), [("tfkeras_mixed_full.h5", "model_weights/"), ("tfkeras_mixed_weights.h5", "")]
)
def test_tf_keras_files_reproduce_tf_outputs(tf_io, fname, root):
    ckpt = load(TFK / fname)
    assert ckpt.format == "keras-h5"
    expected = [f"gru_a/recurrent_kernel[{g}]" for g in GRU_GATES]
    expected += [
        f"bi_lstm/{s}_lstm/recurrent_kernel[{g}]" for s in ("forward", "backward") for g in LSTM_GATES
    ]
    expected += ["rnn_c/recurrent_kernel"]
    expected += [f"gru_d/recurrent_kernel[{g}]" for g in GRU_GATES]
    assert ckpt.ids == expected
    assert ckpt.metadata["keras_version"] == "2.21.0"

    with h5py.File(TFK / fname, "r") as f:

        def w(name):
            return np.asarray(f[root + name], dtype=np.float64)

        got = run_gru(
            tf_io["x"],
            w("gru_a/gru_a/gru_cell/kernel:0"),
            w("gru_a/gru_a/gru_cell/bias:0"),
            gates(ckpt, "gru_a", GRU_GATES),
            reset_after=False,
        )
        np.testing.assert_allclose(got, tf_io["gru_a"], **TOL)

        cell = "bi_lstm/bi_lstm/{}_lstm/lstm_cell/{}:0"
        fw = run_lstm(
            tf_io["gru_a"],
            w(cell.format("forward", "kernel")),
            w(cell.format("forward", "bias")),
            gates(ckpt, "bi_lstm/forward_lstm", LSTM_GATES),
        )
        bw = run_lstm(
            tf_io["gru_a"],
            w(cell.format("backward", "kernel")),
            w(cell.format("backward", "bias")),
            gates(ckpt, "bi_lstm/backward_lstm", LSTM_GATES),
            reverse=True,
        )
        np.testing.assert_allclose(np.concatenate([fw, bw], axis=-1), tf_io["bi_lstm"], **TOL)

        got = run_simple(
            tf_io["bi_lstm"],
            w("rnn_c/rnn_c/simple_rnn_cell/kernel:0"),
            w("rnn_c/rnn_c/simple_rnn_cell/bias:0"),
            ckpt["rnn_c/recurrent_kernel"].matrix,
        )
        np.testing.assert_allclose(got, tf_io["rnn_c"], **TOL)

        got = run_gru(
            tf_io["rnn_c"],
            w("gru_d/gru_d/gru_cell/kernel:0"),
            w("gru_d/gru_d/gru_cell/bias:0"),
            gates(ckpt, "gru_d", GRU_GATES),
            reset_after=True,
        )
        np.testing.assert_allclose(got, tf_io["gru_d"], **TOL)


def test_tf_keras_full_model_skips_optimizer_and_head():
    ckpt = load(TFK / "tfkeras_mixed_full.h5")
    opt = [s for s in ckpt.skipped if s.name.startswith("optimizer_weights/")]
    assert len(opt) == 35 and all("optimizer state" in s.reason for s in opt)
    head = {s.name: s.reason for s in ckpt.skipped if s.name.startswith("model_weights/head/")}
    assert set(head) == {"model_weights/head/head/kernel:0", "model_weights/head/head/bias:0"}
    assert all("not recurrent" in r for r in head.values())
    notes = ckpt["gru_d/recurrent_kernel[new]"].notes
    assert any("reset_after=True" in n for n in notes)
    assert any("reset_after=False" in n for n in ckpt["gru_a/recurrent_kernel[new]"].notes)


CELLS_FILES = ["cells.keras", "cells.weights.h5", "cells.h5"]


@pytest.mark.parametrize("fname", CELLS_FILES)
def test_rnn_cells_stacked_cells_go_backwards_custom_backward(kfiles, fname):
    ckpt = load(kfiles["dir"] / fname)
    expected = [f"wrapped/recurrent_kernel[{g}]" for g in LSTM_GATES]
    expected += [f"stackcells/gru_cell/recurrent_kernel[{g}]" for g in GRU_GATES]
    expected += ["stackcells/simple_rnn_cell/recurrent_kernel"]
    expected += [f"backwards/recurrent_kernel[{g}]" for g in LSTM_GATES]
    expected += [f"bigru/forward_gru/recurrent_kernel[{g}]" for g in GRU_GATES]
    expected += [f"bigru/mybw/recurrent_kernel[{g}]" for g in GRU_GATES]
    assert ckpt.ids == expected
    assert {m.direction for m in ckpt if m.id.startswith("bigru/mybw/")} == {"reverse"}
    if fname != "cells.weights.h5":  # go_backwards lives in the config, not in a weights-only file
        assert {m.direction for m in ckpt if m.id.startswith("backwards/")} == {"reverse"}
    io = kfiles["cells"]

    layer, a, y = io["wrapped"]
    W, _, b = weights64(layer)
    np.testing.assert_allclose(run_lstm(a, W, b, gates(ckpt, "wrapped", LSTM_GATES)), y, **TOL)

    layer, a, y = io["stackcells"]
    Wg, _, bg, Ws, _, bs = weights64(layer)
    h1 = run_gru(a, Wg, bg, gates(ckpt, "stackcells/gru_cell", GRU_GATES), reset_after=True)
    h2 = run_simple(h1, Ws, bs, ckpt["stackcells/simple_rnn_cell/recurrent_kernel"].matrix)
    np.testing.assert_allclose(h2, y, **TOL)

    layer, a, y = io["backwards"]  # go_backwards alone: outputs in processing (reversed) order
    W, _, b = weights64(layer)
    np.testing.assert_allclose(run_lstm(a[:, ::-1], W, b, gates(ckpt, "backwards", LSTM_GATES)), y, **TOL)

    layer, a, y = io["bigru"]
    Wf, _, bf, Wb, _, bb = weights64(layer)
    fw = run_gru(a, Wf, bf, gates(ckpt, "bigru/forward_gru", GRU_GATES), reset_after=False)
    bw = run_gru(a, Wb, bb, gates(ckpt, "bigru/mybw", GRU_GATES), reset_after=False, reverse=True)
    np.testing.assert_allclose(np.concatenate([fw, bw], axis=-1), y, **TOL)


def test_subclassed_model_weights(kfiles):
    ckpt = load(kfiles["dir"] / "sub.weights.h5")
    assert ckpt.format == "keras-weights-h5"
    assert sorted(ckpt.ids) == sorted(
        [f"sub_enc/recurrent_kernel[{g}]" for g in LSTM_GATES]
        + [f"sub_dec/recurrent_kernel[{g}]" for g in GRU_GATES]
    )
    enc, x, _ = kfiles["sub"]["sub_enc"]
    dec, _, y = kfiles["sub"]["sub_dec"]
    W, _, b = weights64(enc)
    h = run_lstm(x, W, b, gates(ckpt, "sub_enc", LSTM_GATES))
    Wd, _ = weights64(dec)  # use_bias=False: kernel and recurrent kernel only
    np.testing.assert_allclose(
        run_gru(h, Wd, None, gates(ckpt, "sub_dec", GRU_GATES), reset_after=True), y, **TOL
    )


def test_dataset_path_to_a_non_recurrent_square_dataset(kfiles):
    """A path to the square Dense kernel of a Keras file reports that array as stored."""
    path = kfiles["dir"] / "mixed.h5"
    ckpt = load(f"{path}:/model_weights/decoy/decoy/kernel")
    assert ckpt.ids == ["model_weights/decoy/decoy/kernel"]
    assert ckpt[0].cell == "array"
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(ckpt[0].matrix, np.asarray(f["model_weights/decoy/decoy/kernel"]))


def test_legacy_attributes_split_over_64kb(tmp_path):
    """Keras writes long attribute lists as layer_names0, layer_names1, ... (Keras 2 style names)."""
    path = tmp_path / "split.h5"
    rk = np.arange(36.0).reshape(3, 12) / 10
    with h5py.File(path, "w") as f:
        f.attrs["layer_names0"] = np.array([b"first"], dtype=object)
        f.attrs["layer_names1"] = np.array([b"second"], dtype=object)
        g = f.create_group("first")
        g.attrs["weight_names"] = np.array([b"dense/kernel:0"], dtype=object)
        g.create_dataset("dense/kernel:0", data=np.eye(2))
        g = f.create_group("second")
        g.attrs["weight_names0"] = np.array([b"second/kernel:0"], dtype=object)
        g.attrs["weight_names1"] = np.array([b"second/recurrent_kernel:0"], dtype=object)
        g.create_dataset("second/kernel:0", data=np.ones((3, 12)))
        g.create_dataset("second/recurrent_kernel:0", data=rk)
    ckpt = load(path)
    # no cell name, no config: 12 columns / 3 units = 4 gates -> LSTM (i, f, c, o)
    assert ckpt.ids == [f"second/recurrent_kernel[{g}]" for g in LSTM_GATES]
    np.testing.assert_array_equal(ckpt["second/recurrent_kernel[output]"].matrix, rk[:, 9:12].T)
    assert {s.name for s in ckpt.skipped} == {"first/dense/kernel:0", "second/second/kernel:0"}


def strip_layer_names(src: Path, dst: Path, tmp: Path) -> None:
    """Copy a .keras archive, deleting the ``name`` attributes older Keras 3 versions did not write."""
    h5 = tmp / "stripped.weights.h5"
    with zipfile.ZipFile(src) as zin:
        h5.write_bytes(zin.read("model.weights.h5"))
        others = {n: zin.read(n) for n in zin.namelist() if n != "model.weights.h5"}

    def drop(_name, obj):
        if "name" in obj.attrs:
            del obj.attrs["name"]

    with h5py.File(h5, "r+") as f:
        f.visititems(drop)
        if "name" in f.attrs:
            del f.attrs["name"]
    with zipfile.ZipFile(dst, "w") as zout:
        for n, data in others.items():
            zout.writestr(n, data)
        zout.write(h5, "model.weights.h5")


@pytest.mark.parametrize("stem", ["mixed", "stacked", "cells"])
def test_keras_archive_without_name_attributes_maps_names_from_config(kfiles, tmp_path, stem):
    """Class-derived group names (lstm, lstm_1, ...) are matched to config.json's user names."""
    src = kfiles["dir"] / f"{stem}.keras"
    dst = tmp_path / f"{stem}_noname.keras"
    strip_layer_names(src, dst, tmp_path)
    with zipfile.ZipFile(dst) as zf, h5py.File(zf.open("model.weights.h5"), "r") as f:
        names = []
        f.visititems(lambda n, o: names.extend(o.attrs.keys()))
        assert "name" not in names
    want, got = load(src), load(dst)
    assert got.ids == want.ids
    assert [m.direction for m in got] == [m.direction for m in want]
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a.matrix, b.matrix)


def test_user_named_cells_give_the_same_ids_in_every_format(tmp_path):
    # RNN([LSTMCell(name="a"), ...]): .keras/.weights.h5 used Keras's group names (lstm_cell,
    # lstm_cell_1) where legacy .h5 used "a", "b"; legacy .h5 kept a user-named cell of
    # RNN(cell) in the id, missed Keras 3's numbered "stacked_rnn_cells_1", and took a layer
    # named "..._cells" for the stacked-cells wrapper
    import keras
    from keras import layers

    L = layers
    models = {
        "named": [L.RNN([L.LSTMCell(3, name="a"), L.LSTMCell(3, name="b")], name="rnn_stacked")],
        "auto": [L.RNN([L.LSTMCell(3), L.GRUCell(3)], name="rnn_auto")],
        "cell": [L.RNN(L.GRUCell(4, name="gc"), name="rnn_gc")],
        "bicell": [L.Bidirectional(L.RNN(L.GRUCell(4, name="gc")), name="bi_rnn")],
        "cells": [L.RNN([L.LSTMCell(3, name="a"), L.LSTMCell(3, name="b")], name="lstm_cells")],
    }
    expected = {
        "named": ["rnn_stacked/a", "rnn_stacked/b"],
        "auto": ["rnn_auto/lstm_cell", "rnn_auto/gru_cell"],
        "cell": ["rnn_gc"],
        "bicell": ["bi_rnn/forward_rnn", "bi_rnn/backward_rnn"],
        "cells": ["lstm_cells/a", "lstm_cells/b"],
    }
    for key, body in models.items():
        m = keras.Sequential([keras.Input((4, 3)), *body], name=f"seq_{key}")
        paths = [tmp_path / f"{key}.keras", tmp_path / f"{key}.weights.h5", tmp_path / f"{key}.h5"]
        m.save(paths[0])
        m.save_weights(paths[1])
        m.save(paths[2])
        for p in paths:
            ckpt = load(p)
            prefixes = list(dict.fromkeys(i.split("/recurrent_kernel")[0] for i in ckpt.ids))
            assert prefixes == expected[key], (p.name, ckpt.ids)
            layer = expected[key][0].split("/")[0]
            assert {mat.layer for mat in ckpt} == {layer}, p.name


def test_bfloat16_kernels_read_exactly(tmp_path):
    # Keras stores bfloat16 as an opaque 2-byte HDF5 type; it was "no recurrent layer"
    import keras
    from keras import layers

    m = keras.Sequential(
        [keras.Input((4, 3)), layers.GRU(5, dtype="bfloat16", recurrent_initializer="glorot_uniform")]
    )
    W = np.asarray(m.layers[0].get_weights()[1], dtype=np.float64)  # (units, 3 units)
    for p in (tmp_path / "bf.keras", tmp_path / "bf.weights.h5", tmp_path / "bf.h5"):
        m.save_weights(p) if p.name.endswith(".weights.h5") else m.save(p)
        ckpt = load(p)
        assert [mat.gate for mat in ckpt] == ["update", "reset", "new"], p.name
        for mat in ckpt:
            assert mat.dtype == "bfloat16"
            np.testing.assert_array_equal(mat.matrix, W[:, mat.block[0] : mat.block[1]].T)


def test_convlstm_is_skipped_with_its_reason(tmp_path):
    import keras
    from keras import layers

    from spectra.errors import NoRecurrentWeightsError as NoRec

    only = keras.Sequential([keras.Input((4, 6, 6, 2)), layers.ConvLSTM2D(3, 3, name="cl")])
    only.save(tmp_path / "conv.keras")
    with pytest.raises(NoRec, match="ConvLSTM2D layer 'cl' .*not a recurrent matrix"):
        load(tmp_path / "conv.keras")
    inp = keras.Input((4, 6, 6, 2))
    h = layers.ConvLSTM2D(3, 3, name="cl", return_sequences=True)(inp)
    h = layers.Reshape((4, 48))(h)
    both = keras.Model(inp, layers.LSTM(2, name="rnn")(h))
    both.save(tmp_path / "both.keras")
    ckpt = load(tmp_path / "both.keras")
    assert [m.id.split("[")[0] for m in ckpt][:1] == ["rnn/recurrent_kernel"]
    conv = [sk for sk in ckpt.skipped if "conv_lstm" in sk.name and sk.name.endswith("vars/1")]
    assert conv and "convolution" in conv[0].reason and "acts on x_t" not in conv[0].reason


def test_legacy_h5_nested_model_directions_and_layers(tmp_path):
    # legacy .h5 read go_backwards/Bidirectional only from the top-level layer's config: inside
    # a nested model both came out "forward", and the backward copy counted as its own layer
    import keras
    from keras import layers

    inner = keras.Sequential(
        [
            keras.Input((4, 3)),
            layers.LSTM(3, go_backwards=True, return_sequences=True, name="gb"),
            layers.Bidirectional(layers.SimpleRNN(2), name="bd"),
        ],
        name="inner",
    )
    inp = keras.Input((4, 3))
    model = keras.Model(inp, layers.Dense(1)(inner(inp)))
    rows = {}
    for p in (tmp_path / "nest.h5", tmp_path / "nest.keras"):
        model.save(p)
        rows[p.suffix] = [(m.id, m.layer, m.direction, m.layer_index, m.cell) for m in load(p)]
    assert rows[".h5"] == rows[".keras"]
    got = {i.split("/recurrent_kernel")[0]: (layer, d, k) for i, layer, d, k, _ in rows[".h5"]}
    # (the wrapped copies are named forward_/backward_<Keras's name for the SimpleRNN>)
    fw = [v for i, v in got.items() if i.startswith("inner/bd/forward_")]
    bw = [v for i, v in got.items() if i.startswith("inner/bd/backward_")]
    assert got["inner/gb"] == ("inner/gb", "reverse", 0)
    assert fw == [("inner/bd", "forward", 1)] and bw == [("inner/bd", "reverse", 1)]


def test_custom_cell_gates_are_said_to_be_named_by_count(tmp_path):
    # a custom cell's (units, 3 units) kernel got GRU gate names with nothing saying it was a guess
    import keras

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class ThreeBlockCell(keras.layers.Layer):
        def __init__(self, units, **kw):
            super().__init__(**kw)
            self.units, self.state_size = units, units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
            self.recurrent_kernel = self.add_weight(
                shape=(self.units, 3 * self.units), name="recurrent_kernel"
            )

        def call(self, inputs, states):
            r = keras.ops.matmul(states[0], self.recurrent_kernel)
            u = self.units
            h = keras.ops.matmul(inputs, self.kernel) + r[:, :u] + r[:, u : 2 * u] * r[:, 2 * u :]
            return h, [h]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    inp = keras.Input((4, 2))
    cell = ThreeBlockCell(3, name="three")
    model = keras.Model(inp, keras.layers.RNN(cell, name="rnn_three")(inp))
    model.save(tmp_path / "m.keras")
    ckpt = load(tmp_path / "m.keras")
    assert len(ckpt) == 3
    R = keras.ops.convert_to_numpy(cell.recurrent_kernel)
    for g, m in enumerate(ckpt):
        np.testing.assert_array_equal(m.matrix, R[:, 3 * g : 3 * g + 3].T.astype(np.float64))
        assert any("custom cell" in n for n in m.notes), m.notes


def test_torch_module_wrapper_is_named_in_the_error(tmp_path):
    # keras.layers.TorchModuleWrapper(nn.LSTM) saves the torch parameters under their torch
    # names; the error says so (it said only "no recurrent layer" before)
    import keras

    class Wrapped(keras.Model):
        def __init__(self):
            super().__init__()
            self.w = keras.layers.TorchModuleWrapper(torch.nn.LSTM(D, 5, batch_first=True))

        def call(self, x):
            return self.w(x)[0]

    model = Wrapped()
    model(np.zeros((1, T, D), dtype="float32"))
    path = tmp_path / "wrapped.weights.h5"
    model.save_weights(path)
    with pytest.raises(NoRecurrentWeightsError, match=r"weight_hh_l0.*TorchModuleWrapper.*torch\.save"):
        load(path)


def test_cells_kept_as_attributes_of_subclassed_layers_are_read_in_every_format(tmp_path):
    # a custom layer with an attribute named `cell` was read as if it were an RNN layer (the LSTM
    # beside it missed); a GRUCell under another attribute name was "not recurrent" (exit 5);
    # legacy .h5 called the backward half of a nested Bidirectional "forward"
    import keras

    L = keras.layers

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class DecA(L.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.enc = L.LSTM(4, name="enc")
            self.cell = L.LSTMCell(4, name="step")

        def build(self, s):
            self.enc.build(s)
            self.cell.build((s[0], 4))

        def call(self, x):
            h = self.enc(x)
            return self.cell(h, [h, h])[0]

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class DecB(L.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.step = L.GRUCell(4, name="step")

        def build(self, s):
            self.step.build((s[0], s[-1]))

        def call(self, x):
            return self.step(x[:, -1], [x[:, -1, :4]])[0]

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class BlockC(L.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.bi = L.Bidirectional(L.GRU(3), name="bi")

        def build(self, s):
            self.bi.build(s)

        def call(self, x):
            return self.bi(x)

    rng = np.random.default_rng(3)
    for cls, name in ((DecA, "decA"), (DecB, "decB"), (BlockC, "blkC")):
        inp = keras.Input((5, 4))
        layer = cls(name=name)
        model = keras.Model(inp, layer(inp))
        # the cells' recurrent kernels, and which ids and directions they must come out as
        if name == "decA":
            want = {
                "decA/enc": (layer.enc.cell.recurrent_kernel, LSTM_GATES, "forward"),
                "decA/step": (layer.cell.recurrent_kernel, LSTM_GATES, "forward"),
            }
        elif name == "decB":
            want = {"decB/step": (layer.step.recurrent_kernel, GRU_GATES, "forward")}
        else:
            fw, bw = layer.bi.forward_layer, layer.bi.backward_layer  # Keras numbers these per process
            want = {
                f"blkC/bi/{fw.name}": (fw.cell.recurrent_kernel, GRU_GATES, "forward"),
                f"blkC/bi/{bw.name}": (bw.cell.recurrent_kernel, GRU_GATES, "reverse"),
            }
        for ext in (".keras", ".weights.h5", ".h5"):
            p = tmp_path / f"{name}{ext}"
            (model.save_weights if ext == ".weights.h5" else model.save)(p)
            ckpt = load(p)
            assert len(ckpt) == sum(len(g) for _, g, _ in want.values()), (name, ext, ckpt.ids)
            for prefix, (rk, names, direction) in want.items():
                U = keras.ops.convert_to_numpy(rk).astype(np.float64)
                n = U.shape[0]
                h = rng.standard_normal(n)
                for k, g in enumerate(names):
                    m = ckpt[f"{prefix}/recurrent_kernel[{g}]"]
                    # the gate's recurrent pre-activation, as the cell computes it: h @ U[:, block]
                    np.testing.assert_allclose(m.matrix @ h, h @ U[:, k * n : (k + 1) * n], rtol=1e-12)
                    assert m.direction == direction, (name, ext, m.id, m.direction)


def test_custom_cell_recurrent_kernel_is_told_by_shape_and_an_ambiguous_one_is_flagged(tmp_path):
    # a custom cell creating (kernel, bias, recurrent_kernel): the bias was taken for the
    # recurrent kernel (exit 5, "recurrent kernel of shape (4,)"); one creating its recurrent
    # kernel first, with the input as wide as the state, got the input kernel with no word said
    import keras

    L = keras.layers

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class BiasFirst(L.Layer):
        def __init__(self, units, **kw):
            super().__init__(**kw)
            self.units, self.state_size = units, units

        def build(self, s):
            self.kernel = self.add_weight(shape=(s[-1], self.units), name="kernel")
            self.bias = self.add_weight(shape=(self.units,), name="bias")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel")

        def call(self, x, states):
            o = keras.ops.tanh(x @ self.kernel + self.bias + states[0] @ self.recurrent_kernel)
            return o, [o]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class RecFirst(BiasFirst):
        def build(self, s):
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel")
            self.kernel = self.add_weight(shape=(s[-1], self.units), name="kernel")
            self.bias = self.add_weight(shape=(self.units,), name="bias")

    for cls, width in ((BiasFirst, 3), (RecFirst, 4)):
        inp = keras.Input((5, width))
        cell = cls(4)
        model = keras.Model(inp, L.RNN(cell, name="r")(inp))
        U = keras.ops.convert_to_numpy(cell.recurrent_kernel).astype(np.float64)
        for ext in (".keras", ".weights.h5"):
            p = tmp_path / f"{cls.__name__}{ext}"
            (model.save_weights if ext == ".weights.h5" else model.save)(p)
            (m,) = load(p)
            if cls is BiasFirst:  # the only (units, units) variable: the right one
                np.testing.assert_array_equal(m.matrix, U.T)
            elif ext == ".keras":  # a custom class, and two (4, 4) kernels: it must warn
                assert any("does not name them" in n for n in m.notes), m.notes
            else:  # no config: most likely Keras's own cell, read in its order; said in a note
                assert any("same shape" in n and "Keras's own order" in n for n in m.notes), m.notes


def test_feed_forward_layers_are_not_read_as_cells_and_cell_ids_agree_across_formats(tmp_path):
    # review of the shape-based reading: a gated feed-forward layer (W, G square and a bias) came
    # out as a SimpleRNN, a Dense kept in an attribute named `cell` as a GRU; a Keras-named cell
    # attribute got a process-counter name (gru_cell_1) in .keras/.weights.h5 but not in .h5; a
    # custom cell class named like an LSTM cell with (kernel, bias, recurrent_kernel) was exit 5
    import keras

    L = keras.layers

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class GatedDense(L.Layer):
        def build(self, s):
            d = s[-1]
            self.w = self.add_weight(shape=(d, d), name="w")
            self.g = self.add_weight(shape=(d, d), name="g")
            self.b = self.add_weight(shape=(d,), name="b")

        def call(self, x):
            return (x @ self.w + self.b) * keras.ops.sigmoid(x @ self.g)

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class Proj(L.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.cell = L.Dense(24)

        def build(self, s):
            self.cell.build(s)

        def call(self, x):
            return self.cell(x)

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class Dec(L.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.step = L.GRUCell(4)  # Keras names it gru_cell[_N]

        def build(self, s):
            self.step.build((s[0], s[-1]))

        def call(self, x):
            return self.step(x[:, -1], [x[:, -1, :4]])[0]

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class MyLSTMCell(L.Layer):
        def __init__(self, units, **kw):
            super().__init__(**kw)
            self.units, self.state_size = units, [units, units]

        def build(self, s):
            u = self.units
            self.kernel = self.add_weight(shape=(s[-1], 4 * u), name="kernel")
            self.bias = self.add_weight(shape=(4 * u,), name="bias")
            self.recurrent_kernel = self.add_weight(shape=(u, 4 * u), name="recurrent_kernel")

        def call(self, x, states):
            h, c = states
            i, f, g, o = keras.ops.split(x @ self.kernel + h @ self.recurrent_kernel + self.bias, 4, axis=-1)
            c = keras.ops.sigmoid(f) * c + keras.ops.sigmoid(i) * keras.ops.tanh(g)
            h = keras.ops.sigmoid(o) * keras.ops.tanh(c)
            return h, [h, c]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    inp = keras.Input((5, 8))
    m1 = keras.Model(
        inp, Proj(name="proj")(GatedDense(name="gated")(L.SimpleRNN(8, return_sequences=True, name="s")(inp)))
    )
    inp = keras.Input((5, 4))
    dec = Dec(name="dec")
    m2 = keras.Model(inp, dec(inp))
    inp = keras.Input((5, 3))
    mycell = MyLSTMCell(4)
    m3 = keras.Model(inp, L.RNN(mycell, name="r")(inp))
    U_dec = keras.ops.convert_to_numpy(dec.step.recurrent_kernel).astype(np.float64)
    U_my = keras.ops.convert_to_numpy(mycell.recurrent_kernel).astype(np.float64)
    for ext in (".keras", ".weights.h5", ".h5"):
        for tag, m in (("m1", m1), ("m2", m2), ("m3", m3)):
            p = tmp_path / f"{tag}{ext}"
            (m.save_weights if ext == ".weights.h5" else m.save)(p)
        assert load(tmp_path / f"m1{ext}").ids == ["s/recurrent_kernel"], ext
        ck = load(tmp_path / f"m2{ext}")
        assert [x.id for x in ck] == [f"dec/recurrent_kernel[{g}]" for g in GRU_GATES], ext
        np.testing.assert_array_equal(ck["dec/recurrent_kernel[update]"].matrix, U_dec[:, :4].T)
        if ext != ".h5":
            ck = load(tmp_path / f"m3{ext}")
            np.testing.assert_array_equal(ck["r/recurrent_kernel[input]"].matrix, U_my[:, :4].T)


def test_legacy_h5_user_backward_layer_of_a_bidirectional_nested_beside_another_rnn(tmp_path):
    import keras

    L = keras.layers

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class Blk(L.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.bi = L.Bidirectional(
                L.GRU(3, return_sequences=True, name="fw"),
                backward_layer=L.GRU(3, return_sequences=True, go_backwards=True, name="bw"),
                name="bi",
            )
            self.post = L.LSTM(2, name="post")

        def build(self, s):
            self.bi.build(s)
            self.post.build((s[0], s[1], 6))

        def call(self, x):
            return self.post(self.bi(x))

    inp = keras.Input((5, 3))
    m = keras.Model(inp, Blk(name="blk")(inp))
    for ext in (".keras", ".weights.h5", ".h5"):
        p = tmp_path / f"m{ext}"
        (m.save_weights if ext == ".weights.h5" else m.save)(p)
        got = {x.id.split("[")[0]: x.direction for x in load(p)}
        assert got == {
            "blk/bi/forward_fw/recurrent_kernel": "forward",
            "blk/bi/bw/recurrent_kernel": "reverse",
            "blk/post/recurrent_kernel": "forward",
        }, (ext, got)


def test_a_cell_called_in_a_functional_graph_and_two_keras_named_cell_attributes(tmp_path):
    # a second review: LSTMCell(...)(x, states) in a functional model was lost in .keras (its
    # config names LSTMCell, which the shape test no longer looked at); two Keras-named cells of
    # one layer both took the layer's id, and the second fell back to a file path
    import keras

    L = keras.layers
    inp = keras.Input((4,))
    h0 = keras.Input((4,))
    c0 = keras.Input((4,))
    step = L.LSTMCell(4, name="step")
    m1 = keras.Model([inp, h0, c0], step(inp, [h0, c0])[0])

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class Hold(L.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.a = L.LSTMCell(3)
            self.b = L.GRUCell(3)

        def build(self, s):
            self.a.build(s)
            self.b.build(s)

        def call(self, x):
            h = self.a(x, [x[:, :3], x[:, :3]])[0]
            return self.b(h, [h])[0]

    hold = Hold(name="hold")
    m2 = keras.Model((inp := keras.Input((3,))), hold(inp))
    U = keras.ops.convert_to_numpy(step.recurrent_kernel).astype(np.float64)
    ids = {}
    for ext in (".keras", ".weights.h5", ".h5"):
        for tag, m in (("m1", m1), ("m2", m2)):
            p = tmp_path / f"{tag}{ext}"
            (m.save_weights if ext == ".weights.h5" else m.save)(p)
        ck = load(tmp_path / f"m1{ext}")
        np.testing.assert_array_equal(ck["step/recurrent_kernel[forget]"].matrix, U[:, 4:8].T)
        ids[ext] = load(tmp_path / f"m2{ext}").ids
    assert ids[".keras"] == ids[".weights.h5"] == ids[".h5"] and len(set(ids[".h5"])) == 7
    assert all(i.startswith(("hold/lstm_cell", "hold/gru_cell")) for i in ids[".h5"])


# ============================================================== a third review (Keras 3.15)

KERAS_EXTS = (".keras", ".weights.h5", ".h5")


def save_three(model, stem: Path) -> dict[str, Path]:
    """The model saved as ``.keras``, ``.weights.h5`` and legacy ``.h5``: {ext: path}."""
    out = {}
    for ext in KERAS_EXTS:
        p = stem.with_name(stem.name + ext)
        (model.save_weights if ext == ".weights.h5" else model.save)(p)
        out[ext] = p
    return out


def kernel_rows(path):
    """{id without gate: (layer, direction, layer_index)} of a file, one row per kernel."""
    return {m.id.split("[")[0]: (m.layer, m.direction, m.layer_index) for m in load(path)}


def test_legacy_h5_forward_prefixed_layers_in_a_custom_layer_are_no_bidirectional(tmp_path):
    # legacy .h5 took user names forward_*/backward_* inside a custom layer for the halves of a
    # Bidirectional: the sibling (or both) came out reverse and the layer collapsed to the parent
    import keras

    L = keras.layers

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class TwoLSTM(L.Layer):
        def __init__(self, n1="a", n2="b", **kw):
            super().__init__(**kw)
            self.a = L.LSTM(2, return_sequences=True, name=n1)
            self.b = L.LSTM(2, return_sequences=True, name=n2)

        def call(self, x):
            return self.b(self.a(x))

    for n1, n2 in (("forward_enc", "ctx"), ("backward_looking", "plain")):
        inp = keras.Input((4, 3))
        blk = TwoLSTM(n1, n2, name="blk")
        m = keras.Model(inp, blk(inp))
        truth = {n: "reverse" if lay.go_backwards else "forward" for n, lay in ((n1, blk.a), (n2, blk.b))}
        want = {
            f"blk/{n1}/recurrent_kernel": (f"blk/{n1}", truth[n1], 0),
            f"blk/{n2}/recurrent_kernel": (f"blk/{n2}", truth[n2], 1),
        }
        for ext, p in save_three(m, tmp_path / n1).items():
            assert kernel_rows(p) == want, (ext, kernel_rows(p))


def test_legacy_h5_nested_model_named_like_its_recurrent_layer(tmp_path):
    # legacy .h5 took the GRU's "enc" in the weight name for the nested model "enc": the id lost
    # the GRU and its go_backwards (reported forward)
    import keras

    L = keras.layers
    i = keras.Input((4, 3))
    inner = keras.Model(i, L.GRU(2, name="enc", go_backwards=True)(i), name="enc")
    inp = keras.Input((4, 3))
    m = keras.Model(inp, inner(inp), name="top")
    gru = m.get_layer("enc").get_layer("enc")
    direction = "reverse" if gru.go_backwards else "forward"
    paths = save_three(m, tmp_path / "nsn")
    want = {"enc/enc/recurrent_kernel": ("enc/enc", direction, 0)}
    assert kernel_rows(paths[".keras"]) == kernel_rows(paths[".h5"]) == want
    # a weights-only file cannot know go_backwards: the same ids and layers
    assert {k: v[0] for k, v in kernel_rows(paths[".weights.h5"]).items()} == {
        k: v[0] for k, v in want.items()
    }
    U = keras.ops.convert_to_numpy(gru.cell.recurrent_kernel).astype(np.float64)
    for p in paths.values():
        np.testing.assert_array_equal(load(p)["enc/enc/recurrent_kernel[reset]"].matrix, U[:, 2:4].T)


def test_stacked_cells_are_numbered_as_keras_archives_number_them(tmp_path):
    # Keras's saving_lib names the cells of StackedRNNCells per class over every cell of that class
    # (user-named ones included): legacy .h5 counted only the Keras-named ones
    import h5py
    import keras

    L = keras.layers
    cells = [L.LSTMCell(2, name="c0"), L.LSTMCell(2), L.GRUCell(2, name="g"), L.GRUCell(2), L.LSTMCell(2)]
    inp = keras.Input((4, 3))
    m = keras.Model(inp, L.RNN(cells, name="stack")(inp))
    paths = save_three(m, tmp_path / "sc")
    with h5py.File(paths[".weights.h5"], "r") as f:  # the archive's own group names
        groups = sorted(f["layers/rnn/cell/cells"])
    assert groups == ["gru_cell", "gru_cell_1", "lstm_cell", "lstm_cell_1", "lstm_cell_2"]
    want = ["stack/c0", "stack/lstm_cell_1", "stack/g", "stack/gru_cell_1", "stack/lstm_cell_2"]
    for ext, p in paths.items():
        ckpt = load(p)
        assert list(dict.fromkeys(i.split("/recurrent_kernel")[0] for i in ckpt.ids)) == want, ext
        assert {(x.layer, x.layer_index) for x in ckpt} == {("stack", 0)}, ext
        for cell, prefix in zip(cells, want):
            U = keras.ops.convert_to_numpy(cell.recurrent_kernel).astype(np.float64)
            n = U.shape[0]
            gate = "forget" if isinstance(cell, L.LSTMCell) else "reset"
            np.testing.assert_array_equal(
                ckpt[f"{prefix}/recurrent_kernel[{gate}]"].matrix, U[:, n : 2 * n].T
            )


def test_bidirectional_of_stacked_cells_is_one_layer_in_every_format(tmp_path):
    # legacy .h5 reported layers bi/forward_rnn and bi/backward_rnn (two layer_index values)
    import keras

    L = keras.layers
    inp = keras.Input((4, 3))
    bi = L.Bidirectional(L.RNN([L.GRUCell(2), L.GRUCell(2)]), name="bi")
    m = keras.Model(inp, bi(inp))
    want = {
        f"bi/{half.name}/{c}/recurrent_kernel": ("bi", d, 0)
        for half, d in ((bi.forward_layer, "forward"), (bi.backward_layer, "reverse"))
        for c in ("gru_cell", "gru_cell_1")
    }
    assert bi.backward_layer.go_backwards and not bi.forward_layer.go_backwards
    for ext, p in save_three(m, tmp_path / "bs").items():
        assert kernel_rows(p) == want, (ext, kernel_rows(p))


def test_layers_in_a_list_attribute_of_a_subclassed_model_are_named_by_their_own_names(tmp_path):
    # .keras/.weights.h5 put the list attribute's name ("blocks", a Keras container group, not a
    # layer) into the ids; legacy .h5, which has no such name, did not
    import keras

    L = keras.layers

    class Sub(keras.Model):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.enc = L.LSTM(2, return_sequences=True, name="enc")
            self.blocks = [L.GRU(2, return_sequences=True, name="blk0"), L.GRU(2, name="blk1")]

        def call(self, x):
            h = self.enc(x)
            for b in self.blocks:
                h = b(h)
            return h

    m = Sub(name="sub")
    m(np.zeros((1, 4, 3), "float32"))
    want = {f"{lay.name}/recurrent_kernel": (lay.name, "forward") for lay in (m.enc, *m.blocks)}
    for ext, p in save_three(m, tmp_path / "sub").items():
        ckpt = load(p)
        assert {k: v[:2] for k, v in kernel_rows(p).items()} == want, (ext, ckpt.ids)
        U = keras.ops.convert_to_numpy(m.blocks[1].cell.recurrent_kernel).astype(np.float64)
        np.testing.assert_array_equal(ckpt["blk1/recurrent_kernel[new]"].matrix, U[:, 4:6].T)


def test_sharded_keras_weights_are_refused_with_a_clear_message(tmp_path):
    # the index was "unreadable: not a PyTorch, Keras ..." and each shard loaded as a partial model
    import keras

    from spectra.errors import UnsupportedFormatError

    L = keras.layers
    inp = keras.Input((4, 3))
    h = L.LSTM(64, return_sequences=True, name="a")(inp)
    m = keras.Model(inp, L.GRU(64, name="b")(h))
    m.save_weights(tmp_path / "m.weights.json", max_shard_size=0.0001)
    shards = sorted(tmp_path.glob("m_*.weights.h5"))
    assert len(shards) >= 2
    with pytest.raises(UnsupportedFormatError, match="sharded Keras weights"):
        load(tmp_path / "m.weights.json")
    for shard in shards:
        with pytest.raises(UnsupportedFormatError, match=f"{shard.name}: one shard of sharded Keras weights"):
            load(shard)
    # a shard after the first, away from its index: it lacks the model's own "vars" group
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "x.weights.h5").write_bytes(shards[-1].read_bytes())
    with pytest.warns(RuntimeWarning, match="as in a shard of sharded Keras weights after the first"):
        try:
            load(alone / "x.weights.h5")
        except NoRecurrentWeightsError:
            pass  # a shard holding only the tail of a kernel has none to read


def test_analyze_repeats_what_the_reader_had_to_assume(tmp_path):
    # a loader note saying the file cannot settle the reading (here: a custom cell whose input
    # kernel has the recurrent kernel's shape, in a .keras) is repeated as a warning by analyze
    import warnings

    import keras

    import spectra

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class DoubtCell(keras.layers.Layer):
        def __init__(self, units, **kw):
            super().__init__(**kw)
            self.units, self.state_size = units, units

        def build(self, s):
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel")
            self.kernel = self.add_weight(shape=(s[-1], self.units), name="kernel")

        def call(self, x, states):
            o = keras.ops.tanh(x @ self.kernel + states[0] @ self.recurrent_kernel)
            return o, [o]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    inp = keras.Input((5, 4))
    keras.Model(inp, keras.layers.RNN(DoubtCell(4), name="r")(inp)).save(tmp_path / "m.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = spectra.analyze(tmp_path / "m.keras", figures=("basic",))
    assert any("does not name them" in w for w in rep.warnings)
    assert any("does not name them" in str(c.message) for c in caught)


@pytest.mark.parametrize("config", [True, False], ids=["model_config", "weights_only"])
def test_cudnn_gru_is_read_as_reset_after(tmp_path, config):
    # review11 finding 7: Keras 2.2's CuDNNGRU (a 1-D bias of 6u) was noted "reset_after=False";
    # cuDNN applies the reset after the recurrent product, Keras's reset_after=True. Keras 2.2's
    # layout, written by hand (no Keras 2.2 here): model_config, layer_names, weight_names.
    import json

    u, d = 3, 2
    rng = np.random.default_rng(0)
    rk = rng.standard_normal((u, 3 * u)).astype("float32")
    with h5py.File(tmp_path / "cudnn.h5", "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        root = f
        if config:
            layer = {"class_name": "CuDNNGRU", "config": {"name": "cu_dnngru_1", "units": u}}
            f.attrs["model_config"] = json.dumps(
                {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": [layer]}}
            ).encode()
            root = f.create_group("model_weights")
        root.attrs["layer_names"] = np.array([b"cu_dnngru_1"])
        g = root.create_group("cu_dnngru_1")
        names = [f"cu_dnngru_1/{w}:0" for w in ("kernel", "recurrent_kernel", "bias")]
        g.attrs["weight_names"] = np.array([n.encode() for n in names])
        g.create_dataset(names[0], data=rng.standard_normal((d, 3 * u)).astype("float32"))
        g.create_dataset(names[1], data=rk)
        g.create_dataset(names[2], data=np.zeros(6 * u, "float32"))
    ckpt = load(tmp_path / "cudnn.h5")
    assert [m.gate for m in ckpt] == list(GRU_GATES)
    for g_, m in enumerate(ckpt):
        np.testing.assert_array_equal(m.matrix, rk[:, g_ * u : (g_ + 1) * u].T.astype(np.float64))
        assert any(n.startswith("GRU reset_after=True") for n in m.notes), m.notes


def test_a_one_gate_shaped_layer_with_no_cell_name_is_skipped_not_read_as_simple_rnn(tmp_path):
    # review11 finding 8: a custom non-recurrent layer with weights (in, u), (u, u), (u,) in a
    # subclassed model was reported as a SimpleRNN matrix (only a square input kernel was
    # doubted); a SimpleRNNCell kept beside it, whose name says so, is still read
    import keras

    L = keras.layers

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class Proj(L.Layer):
        def __init__(self, units, **kw):
            super().__init__(**kw)
            self.units = units

        def build(self, s):
            self.W = self.add_weight(shape=(s[-1], self.units), name="W")
            self.U = self.add_weight(shape=(self.units, self.units), name="U")
            self.b = self.add_weight(shape=(self.units,), name="b")

        def call(self, x):
            return keras.ops.tanh(keras.ops.tanh(x @ self.W + self.b) @ self.U)

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    @keras.saving.register_keras_serializable(package="spectra_tests")
    class WithProj(keras.Model):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.cell = L.SimpleRNNCell(5)
            self.score = Proj(6, name="proj")

        def call(self, x):
            y, _ = self.cell(x[:, 0], [keras.ops.zeros((keras.ops.shape(x)[0], 5))])
            return self.score(y)

    model = WithProj()
    model(np.zeros((2, 3, 4), "float32"))
    A = keras.ops.convert_to_numpy(model.cell.recurrent_kernel).astype(np.float64).T
    for ext in (".keras", ".weights.h5"):
        p = tmp_path / f"m{ext}"
        (model.save_weights if ext == ".weights.h5" else model.save)(p)
        ckpt = load(p)
        (m,) = ckpt.matrices
        assert m.cell == "simple_rnn"
        np.testing.assert_array_equal(m.matrix, A)
        (why,) = [s.reason for s in ckpt.skipped if s.shape == (6, 6)]
        assert "cannot be told from a feed-forward layer" in why, why


def test_time_distributed_skip_reason_says_layer_once(tmp_path):
    # review11: "weights of layer layer 'dense'" for the Dense inside a TimeDistributed
    import keras

    inp = keras.Input((4, 3))
    x = keras.layers.GRU(5, return_sequences=True, name="g")(inp)
    model = keras.Model(inp, keras.layers.TimeDistributed(keras.layers.Dense(2, name="dense"), name="td")(x))
    model.save(tmp_path / "m.keras")
    ckpt = load(tmp_path / "m.keras")
    R = keras.ops.convert_to_numpy(model.get_layer("g").cell.recurrent_kernel).astype(np.float64)
    for g, m in enumerate(ckpt):
        np.testing.assert_array_equal(m.matrix, R[:, 5 * g : 5 * g + 5].T)
    reasons = [s.reason for s in ckpt.skipped if "dense" in s.reason]
    assert reasons and not any("layer layer" in r for r in reasons), reasons


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_without_biases_has_no_bias_in_its_note(tmp_path, reset_after):
    # GRU(use_bias=False) was described with "+ b_rh ... separate recurrent bias"
    import keras
    from keras import layers

    m = keras.Sequential([keras.Input((4, 3)), layers.GRU(5, use_bias=False, reset_after=reset_after)])
    m.save(tmp_path / "g.keras")
    (note,) = {n for mat in load(tmp_path / "g.keras") for n in mat.notes if n.startswith("GRU")}
    assert f"reset_after={reset_after}" in note and "b_" not in note and "separate" not in note
    if reset_after:
        assert "no biases" in note
