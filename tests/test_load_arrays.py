"""Bare matrices: ``.npy``, ``.npz`` and plain HDF5 datasets, through ``spectra.load``.

The oracle is the array written by numpy / h5py itself: the loader must hand
back exactly those values (as float64), name them by key or dataset path, and
refuse non-square input with a message that names the shape.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from spectra.errors import (
    MatrixNotFoundError,
    NonSquareError,
    NoRecurrentWeightsError,
    UnsupportedFormatError,
)
from spectra.load import load


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# ------------------------------------------------------------------ .npy


def test_npy_square_values_and_metadata(tmp_path, rng):
    A = rng.standard_normal((6, 6)).astype(np.float32)
    np.save(tmp_path / "W_hh.npy", A)
    ckpt = load(tmp_path / "W_hh.npy")
    assert ckpt.format == "npy"
    assert ckpt.ids == ["W_hh"]
    m = ckpt[0]
    assert m.matrix.dtype == np.float64
    np.testing.assert_array_equal(m.matrix, A.astype(np.float64))
    assert (m.cell, m.gate, m.dtype, m.finite, m.block, m.transposed) == (
        "array",
        None,
        "float32",
        True,
        None,
        False,
    )


def test_npy_fortran_order_and_integer_dtype(tmp_path):
    A = np.asfortranarray(np.arange(16, dtype=np.int16).reshape(4, 4))
    np.save(tmp_path / "f.npy", A)
    m = load(tmp_path / "f.npy")[0]
    np.testing.assert_array_equal(m.matrix, np.arange(16.0).reshape(4, 4))
    assert m.dtype == "int16"


@pytest.mark.parametrize("shape", [(3, 4), (5,), (2, 2, 2), (0, 0)])
def test_npy_non_square_names_the_shape(tmp_path, shape):
    np.save(tmp_path / "x.npy", np.zeros(shape))
    with pytest.raises(NonSquareError) as err:
        load(tmp_path / "x.npy")
    assert str(shape) in str(err.value)
    assert "x.npy" in str(err.value)


def test_npy_nonfinite_is_listed_not_hidden(tmp_path):
    A = np.eye(3)
    A[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", A)
    m = load(tmp_path / "nan.npy")[0]
    assert m.finite is False
    assert np.isnan(m.matrix[1, 2])


def test_npy_object_array_is_refused_without_unpickling(tmp_path):
    np.save(tmp_path / "o.npy", np.array([[{"a": 1}, None], [None, None]], dtype=object), allow_pickle=True)
    with pytest.raises(UnsupportedFormatError, match="pickle"):
        load(tmp_path / "o.npy")


# ------------------------------------------------------------------ .npz


def test_npz_every_square_array_skips_the_rest(tmp_path, rng):
    W = rng.standard_normal((5, 5))
    U = rng.standard_normal((3, 3)).astype(np.float16)
    np.savez(tmp_path / "w.npz", W_hh=W, B=np.ones((5, 2)), bias=np.ones(5), U=U)
    ckpt = load(tmp_path / "w.npz")
    assert ckpt.format == "npz"
    assert ckpt.ids == ["W_hh", "U"]
    np.testing.assert_array_equal(ckpt["W_hh"].matrix, W)
    np.testing.assert_array_equal(ckpt["U"].matrix, U.astype(np.float64))
    assert ckpt["U"].dtype == "float16"
    skipped = {s.name: s for s in ckpt.skipped}
    assert set(skipped) == {"B", "bias"}
    assert skipped["B"].shape == (5, 2) and "not square" in skipped["B"].reason
    assert skipped["bias"].shape == (5,) and "1-D" in skipped["bias"].reason


def test_npz_compressed_and_fortran(tmp_path):
    A = np.asfortranarray(np.arange(9.0).reshape(3, 3))
    np.savez_compressed(tmp_path / "c.npz", A=A)
    np.testing.assert_array_equal(load(tmp_path / "c.npz")["A"].matrix, np.arange(9.0).reshape(3, 3))


def test_npz_without_square_array(tmp_path):
    np.savez(tmp_path / "n.npz", a=np.ones((2, 3)), b=np.ones(4))
    with pytest.raises(NoRecurrentWeightsError, match="n.npz"):
        load(tmp_path / "n.npz")


def test_npz_with_no_arrays(tmp_path):
    # review11: np.savez(path) with no arrays writes a zip with no members, which was reported as
    # "a zip archive that is neither ... nor a .npz" (exit 3); it is an npz holding nothing (exit 5)
    np.savez(tmp_path / "e.npz")
    with pytest.raises(NoRecurrentWeightsError, match=r"e\.npz: \.npz holds no arrays"):
        load(tmp_path / "e.npz")
    (tmp_path / "e.zip").write_bytes((tmp_path / "e.npz").read_bytes())
    with pytest.raises(NoRecurrentWeightsError, match=r"e\.zip: an empty zip archive \(no members\)"):
        load(tmp_path / "e.zip")


def _torch_named(rng):
    """A state_dict of an LSTM(3, 8), a GRUCell(2, 5) and a square Linear(8, 8), as numpy arrays."""
    return {
        "lstm.weight_ih_l0": rng.standard_normal((32, 3)).astype(np.float32),
        "lstm.weight_hh_l0": rng.standard_normal((32, 8)).astype(np.float32),
        "lstm.bias_ih_l0": rng.standard_normal(32).astype(np.float32),
        "lstm.bias_hh_l0": rng.standard_normal(32).astype(np.float32),
        "cell.weight_ih": rng.standard_normal((15, 2)),
        "cell.weight_hh": rng.standard_normal((15, 5)),
        "fc.weight": rng.standard_normal((8, 8)).astype(np.float32),
        "fc.bias": rng.standard_normal(8).astype(np.float32),
    }


@pytest.mark.parametrize("fmt", ["npz", "h5"])
def test_arrays_named_like_a_torch_state_dict_follow_torch_rules(tmp_path, rng, fmt):
    # review11: np.savez(f, **{k: v.numpy() for k, v in sd.items()}) reported the square Linear
    # weight as the recurrent matrix and skipped the LSTM's weight_hh_l0 as "not square"
    sd = _torch_named(rng)
    path = tmp_path / f"sd.{fmt}"
    if fmt == "npz":
        np.savez(path, **sd)
    else:
        with h5py.File(path, "w") as f:
            for k, v in sd.items():
                f.create_dataset(k, data=v)
    ckpt = load(path)
    got = {m.id: m for m in ckpt.matrices}
    lstm = [f"lstm.weight_hh_l0[{g}]" for g in ("input", "forget", "cell", "output")]
    cell = [f"cell.weight_hh[{g}]" for g in ("reset", "update", "new")]
    assert sorted(got) == sorted(lstm + cell)
    for k, name in enumerate(lstm):  # gate k is rows [8k, 8k + 8) of weight_hh, as stored
        np.testing.assert_array_equal(got[name].matrix, sd["lstm.weight_hh_l0"][8 * k : 8 * k + 8])
        assert got[name].cell == "lstm" and got[name].dtype == "float32"
    for k, name in enumerate(cell):
        np.testing.assert_array_equal(got[name].matrix, sd["cell.weight_hh"][5 * k : 5 * k + 5])
        assert got[name].cell == "gru"
    assert all("torch's state_dict naming" in " ".join(m.notes) for m in ckpt.matrices)
    reasons = {s.name: s.reason for s in ckpt.skipped}
    assert "square Linear" in reasons["fc.weight"] and "input weights" in reasons["lstm.weight_ih_l0"]


def test_a_state_dict_written_as_an_hdf5_group_tree_follows_torch_rules(tmp_path, rng):
    # f.create_dataset(k.replace('.', '/'), ...): the LSTM's weights were "no square dataset" and a
    # 2-layer RNN's square weight_ih_l1 (6x6) was reported as a recurrent matrix (a review);
    # write-back finds the datasets again
    import spectra

    sd = _torch_named(rng)
    sd["rnn.weight_ih_l0"] = rng.standard_normal((6, 4)).astype(np.float32)
    sd["rnn.weight_hh_l0"] = rng.standard_normal((6, 6)).astype(np.float32)
    sd["rnn.weight_ih_l1"] = rng.standard_normal((6, 6)).astype(np.float32)
    sd["rnn.weight_hh_l1"] = rng.standard_normal((6, 6)).astype(np.float32)
    path = tmp_path / "tree.h5"
    with h5py.File(path, "w") as f:
        for k, v in sd.items():
            f.create_dataset(k.replace(".", "/"), data=v)
    got = {m.id: m for m in load(path).matrices}
    assert "rnn.weight_hh_l1" in got and not any("weight_ih" in i for i in got)
    np.testing.assert_array_equal(got["rnn.weight_hh_l1"].matrix, sd["rnn.weight_hh_l1"])
    np.testing.assert_array_equal(got["lstm.weight_hh_l0[forget]"].matrix, sd["lstm.weight_hh_l0"][8:16])
    out = tmp_path / "out.h5"
    spectra.stabilize_checkpoint(path, out, method="exact", target=0.5)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["rnn/weight_ih_l1"][...], sd["rnn.weight_ih_l1"])
        assert np.max(np.abs(np.linalg.eigvals(f["rnn/weight_hh_l1"][...].astype(float)))) <= 0.5 + 1e-6


def test_a_lone_weight_hh_array_stays_a_bare_array(tmp_path, rng):
    # without a weight_ih beside it the name proves nothing: every square array, as before
    W, F = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    np.savez(tmp_path / "w.npz", weight_hh=W, **{"fc.weight": F})
    ckpt = load(tmp_path / "w.npz")
    assert [m.id for m in ckpt.matrices] == ["weight_hh", "fc.weight"]
    assert all(m.cell == "array" for m in ckpt.matrices)


# ------------------------------------------------------------------ plain HDF5


@pytest.fixture
def plain_h5(tmp_path, rng):
    path = tmp_path / "plain.h5"
    W = rng.standard_normal((4, 4))
    V = rng.standard_normal((2, 2)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("group/W_hh", data=W)
        f.create_dataset("group/W_ih", data=np.ones((4, 3)))
        f.create_dataset("V", data=V)
        f.create_dataset("vec", data=np.ones(7))
        f.create_dataset("names", data=np.array([b"a", b"b"]))
        f.attrs["note"] = "not keras"
    return path, W, V


def test_plain_hdf5_every_square_dataset(plain_h5):
    path, W, V = plain_h5
    ckpt = load(path)
    assert ckpt.format == "hdf5"
    assert ckpt.ids == ["V", "group/W_hh"]
    np.testing.assert_array_equal(ckpt["group/W_hh"].matrix, W)
    np.testing.assert_array_equal(ckpt["V"].matrix, V.astype(np.float64))
    assert ckpt["group/W_hh"].source == "group/W_hh" and ckpt["group/W_hh"].cell == "array"
    assert {s.name for s in ckpt.skipped} == {"group/W_ih", "vec", "names"}


def test_plain_hdf5_dataset_by_path(plain_h5):
    path, W, _ = plain_h5
    ckpt = load(f"{path}:/group/W_hh")
    assert ckpt.ids == ["group/W_hh"]
    np.testing.assert_array_equal(ckpt[0].matrix, W)


def test_plain_hdf5_dataset_by_path_non_square(plain_h5):
    path, _, _ = plain_h5
    with pytest.raises(NonSquareError, match=r"\(4, 3\)"):
        load(f"{path}:/group/W_ih")


def test_plain_hdf5_dataset_by_path_missing(plain_h5):
    path, _, _ = plain_h5
    with pytest.raises(MatrixNotFoundError, match="/group/W_hh"):
        load(f"{path}:/group/nothing")


def test_plain_hdf5_without_square_dataset(tmp_path):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f.create_dataset("a", data=np.ones((2, 3)))
    with pytest.raises(NoRecurrentWeightsError, match="r.h5"):
        load(tmp_path / "r.h5")


def test_plain_hdf5_nonfinite_listed(tmp_path):
    with h5py.File(tmp_path / "inf.h5", "w") as f:
        f.create_dataset("W", data=np.array([[1.0, np.inf], [0.0, 1.0]]))
    m = load(tmp_path / "inf.h5")["W"]
    assert m.finite is False


def test_npy_string_array_is_unsupported(tmp_path):
    np.save(tmp_path / "s.npy", np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(UnsupportedFormatError, match="dtype <U1"):
        load(tmp_path / "s.npy")


def test_npy_big_endian_and_complex(tmp_path):
    A = np.arange(4.0).reshape(2, 2).astype(">f8")
    np.save(tmp_path / "be.npy", A)
    np.testing.assert_array_equal(load(tmp_path / "be.npy")[0].matrix, np.arange(4.0).reshape(2, 2))
    C = np.array([[1 + 2j, 0], [0, 1 - 1j]], dtype=np.complex64)
    np.savez(tmp_path / "c.npz", C=C)
    m = load(tmp_path / "c.npz")["C"]
    assert m.matrix.dtype == np.complex128
    np.testing.assert_array_equal(m.matrix, C.astype(np.complex128))


@pytest.mark.parametrize("tree", [False, True])
def test_one_dataset_of_a_torch_named_hdf5_file_splits_its_gates(tmp_path, rng, tree):
    # 'file.h5:/lstm.weight_hh_l0' read the stacked 32x8 tensor as one raw dataset: "must be square"
    from spectra.errors import MatrixNotFoundError

    sd = _torch_named(rng)
    path = tmp_path / "sd.h5"
    with h5py.File(path, "w") as f:
        for k, v in sd.items():
            f.create_dataset(k.replace(".", "/") if tree else k, data=v)
    ds = "lstm/weight_hh_l0" if tree else "lstm.weight_hh_l0"
    ckpt = load(f"{path}:/{ds}")
    assert [m.id for m in ckpt.matrices] == [
        f"lstm.weight_hh_l0[{g}]" for g in ("input", "forget", "cell", "output")
    ]
    for k, m in enumerate(ckpt.matrices):
        np.testing.assert_array_equal(m.matrix, sd["lstm.weight_hh_l0"][8 * k : 8 * k + 8])
    with pytest.raises(MatrixNotFoundError, match="bias"):
        load(f"{path}:/{'lstm/bias_hh_l0' if tree else 'lstm.bias_hh_l0'}")
    # a square dataset that is no recurrent matrix by torch's names is read as it is, when asked for
    (m,) = load(f"{path}:/{'fc/weight' if tree else 'fc.weight'}").matrices
    np.testing.assert_array_equal(m.matrix, sd["fc.weight"])
