"""Hostile and broken input to the Keras/HDF5/numpy readers.

One-line errors, no tracebacks, no big allocations.

Files are crafted with h5py, zipfile and numpy (no keras import, so this
module runs in about a second). Each test checks the error class *and* that
the message names the file; the size checks must act on declared sizes,
before reading (a test that allocated 360 GB would not finish).
"""

from __future__ import annotations

import io
import json
import time
import zipfile

import h5py
import numpy as np
import pytest

import spectra.load.arrays as arrays
import spectra.load.hdf5 as hdf5
import spectra.load.keras as kmod
from spectra.errors import CorruptFileError, NoRecurrentWeightsError, SpectraError
from spectra.load import load


def write_keras3_weights(f: h5py.File, rk: np.ndarray, units: int = 3) -> None:
    """A Keras-3-layout LSTM layer, as ``model.save_weights`` writes it."""
    f.create_group("layers/lstm/vars").attrs["name"] = "enc"
    cell = f.create_group("layers/lstm/cell/vars")
    cell.attrs["name"] = "lstm_cell"
    cell.create_dataset("0", data=np.ones((2, 4 * units), np.float32))
    cell.create_dataset("1", data=rk)
    cell.create_dataset("2", data=np.zeros(4 * units, np.float32))
    f.create_group("vars").attrs["name"] = "sequential"


def make_keras_zip(path, weights: bytes, *, compress: int = zipfile.ZIP_STORED) -> None:
    config = {
        "class_name": "Sequential",
        "config": {"name": "s", "layers": [{"class_name": "LSTM", "config": {"name": "enc", "units": 3}}]},
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", weights, compress_type=compress)


def h5_bytes(rk: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        write_keras3_weights(f, rk)
    return buf.getvalue()


@pytest.fixture
def good_keras(tmp_path):
    rk = np.arange(36, dtype=np.float32).reshape(3, 12)
    path = tmp_path / "good.keras"
    make_keras_zip(path, h5_bytes(rk))
    return path, rk


def test_crafted_keras_file_reads(good_keras):
    """Sanity check of the crafted file the corruptions below start from."""
    path, rk = good_keras
    ckpt = load(path)
    assert ckpt.ids[1] == "enc/recurrent_kernel[forget]"
    np.testing.assert_array_equal(ckpt[1].matrix, rk[:, 3:6].T.astype(np.float64))


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_keras_zip(tmp_path, good_keras, keep):
    path, _ = good_keras
    data = path.read_bytes()
    bad = tmp_path / "trunc.keras"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptFileError, match="trunc.keras"):
        load(bad)


def test_keras_weights_member_with_garbage(tmp_path, good_keras):
    """Zip structure intact, weights member overwritten: CRC or HDF5 error -> CorruptFileError."""
    path, _ = good_keras
    data = bytearray(path.read_bytes())
    start = data.find(b"\x89HDF\r\n\x1a\n")
    assert start > 0
    data[start + 8 : start + 600] = np.random.default_rng(0).integers(0, 256, 592, dtype=np.uint8).tobytes()
    bad = tmp_path / "garbled.keras"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="garbled.keras"):
        load(bad)


def test_keras_weights_member_not_hdf5(tmp_path):
    path = tmp_path / "nothdf5.keras"
    make_keras_zip(path, b"this is not an HDF5 file at all" * 10)
    with pytest.raises(CorruptFileError, match="corrupt/unreadable"):
        load(path)


def test_keras_weights_member_over_cap_is_refused_unread(tmp_path, good_keras, monkeypatch):
    path, _ = good_keras
    monkeypatch.setattr(kmod, "MAX_WEIGHTS_MEMBER_BYTES", 1000)
    with pytest.raises(CorruptFileError, match="declares"):
        load(path)


def test_keras_compressed_member_inflating_beyond_declared_size(tmp_path, good_keras):
    """A deflated member whose central directory lies about its size must not be read past it."""
    path, _ = good_keras
    with zipfile.ZipFile(path) as zf:
        payload = zf.read("model.weights.h5")
    bomb = tmp_path / "lying.keras"
    make_keras_zip(bomb, payload, compress=zipfile.ZIP_DEFLATED)
    data = bytearray(bomb.read_bytes())
    # patch the uncompressed size of the weights member in the central directory to 100 bytes
    cd = data.rfind(b"PK\x01\x02", 0, len(data))
    while data[cd + 46 : cd + 46 + 16] != b"model.weights.h5":
        cd = data.rfind(b"PK\x01\x02", 0, cd)
    data[cd + 24 : cd + 28] = (100).to_bytes(4, "little")
    bomb.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError):
        load(bomb)


def test_keras_without_recurrent_layer(tmp_path):
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("layers/dense/vars").attrs["name"] = "decoy"
        f["layers/dense/vars"].create_dataset("0", data=np.eye(4, dtype=np.float32))
    path = tmp_path / "dense.keras"
    make_keras_zip(path, buf.getvalue())
    with pytest.raises(NoRecurrentWeightsError, match="dense.keras") as err:
        load(path)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ HDF5


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_hdf5(tmp_path, keep):
    good = tmp_path / "good.weights.h5"
    with h5py.File(good, "w") as f:
        write_keras3_weights(f, np.ones((3, 12), np.float32))
        f.create_dataset("pad", data=np.ones((64, 64)))
    data = good.read_bytes()
    bad = tmp_path / "trunc.h5"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptFileError, match="trunc.h5"):
        load(bad)


def test_random_bytes_after_hdf5_magic(tmp_path):
    bad = tmp_path / "rand.h5"
    rng = np.random.default_rng(1)
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CorruptFileError, match="corrupt/unreadable"):
        load(bad)


def huge_h5(path):
    """A 300000 x 300000 float32 dataset: declares 360 GB, stores nothing (allocated lazily)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("huge", shape=(300000, 300000), dtype="f4")
        f.create_dataset(
            "big_chunked", shape=(10, 10), maxshape=(None, None), chunks=(5, 5), fillvalue=1.0, dtype="f8"
        )
        f["big_chunked"].resize((200000, 200000))
        f.create_dataset("ok", data=np.eye(3))


def test_absurd_declared_shape_is_skipped_unread(tmp_path):
    path = tmp_path / "huge.h5"
    huge_h5(path)
    assert path.stat().st_size < 100_000
    t0 = time.perf_counter()
    ckpt = load(path)
    assert time.perf_counter() - t0 < 5
    assert ckpt.ids == ["ok"]
    skipped = {s.name: s for s in ckpt.skipped}
    assert "declares 360.0 GB" in skipped["huge"].reason
    assert skipped["huge"].shape == (300000, 300000)
    assert "declares 320.0 GB" in skipped["big_chunked"].reason


def test_absurd_declared_shape_by_path_is_refused(tmp_path):
    path = tmp_path / "huge.h5"
    huge_h5(path)
    with pytest.raises(CorruptFileError, match="declares 360.0 GB"):
        load(f"{path}:/huge")


def test_absurd_recurrent_kernel_in_keras_layout_is_skipped(tmp_path, monkeypatch):
    path = tmp_path / "k.weights.h5"
    with h5py.File(path, "w") as f:
        # Keras writes the model's own vars group (without it, the file looks like a shard)
        f.create_group("vars").attrs["name"] = "model"
        f.create_group("layers/lstm/vars").attrs["name"] = "big"
        cell = f.create_group("layers/lstm/cell/vars")
        cell.create_dataset("1", shape=(100000, 400000), dtype="f4")
        f.create_group("layers/lstm_1/vars").attrs["name"] = "small"
        f.create_group("layers/lstm_1/cell/vars").create_dataset("1", data=np.ones((2, 8), np.float32))
    ckpt = load(path)
    assert [m.layer for m in ckpt] == ["small"] * 4
    (big,) = [s for s in ckpt.skipped if s.name == "layers/lstm/cell/vars/1"]
    assert "declares 160.0 GB" in big.reason


def test_hdf5_size_cap_is_a_module_constant(tmp_path, monkeypatch):
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("W", data=np.eye(64))
    monkeypatch.setattr(hdf5, "MAX_DATASET_BYTES", 1000)
    with pytest.raises(NoRecurrentWeightsError):
        load(tmp_path / "m.h5")


# ------------------------------------------------------------------ numpy


def test_npy_header_promising_more_data_than_present(tmp_path):
    path = tmp_path / "short.npy"
    np.save(path, np.ones((50, 50)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 8])
    with pytest.raises(CorruptFileError, match="short.npy"):
        load(path)


def test_npy_header_declaring_terabytes(tmp_path):
    """A header edited to (1000000, 1000000) with 8 bytes of data: refused from the header."""
    path = tmp_path / "tb.npy"
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (1_000_000, 1_000_000)}
    )
    path.write_bytes(buf.getvalue() + b"\x00" * 8)
    with pytest.raises(CorruptFileError, match="8.0 TB|8000000.0 MB|truncated"):
        load(path)


def test_npy_corrupt_header(tmp_path):
    path = tmp_path / "h.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{garbage!!!!!!}\n")
    with pytest.raises(CorruptFileError):
        load(path)


def test_npz_member_inflating_to_beyond_cap(tmp_path, monkeypatch):
    """2 MB of zeros deflated to a few kB; with the cap at 1 MB it is refused before inflating."""
    path = tmp_path / "bomb.npz"
    n = 512  # 512 x 512 float64 = 2 MiB
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("W.npy", "w", force_zip64=True) as out:
            np.lib.format.write_array_header_1_0(
                out, {"descr": "<f8", "fortran_order": False, "shape": (n, n)}
            )
            zero = b"\x00" * 65536
            for _ in range(n * n * 8 // len(zero)):
                out.write(zero)
    assert path.stat().st_size < 50_000
    monkeypatch.setattr(arrays, "MAX_NPZ_MEMBER_BYTES", 1024**2)
    with pytest.raises(CorruptFileError, match="declares 2.1 MB"):
        load(path)


def test_npz_member_lying_about_its_size(tmp_path):
    """Header says 40 x 40 float64 but the member holds only a 2 x 2 array's bytes."""
    path = tmp_path / "lie.npz"
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (40, 40)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("W.npy", buf.getvalue() + b"\x00" * 32)
    with pytest.raises(CorruptFileError, match="lie.npz"):
        load(path)


def test_truncated_npz(tmp_path):
    path = tmp_path / "t.npz"
    np.savez(path, W=np.eye(30))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError):
        load(path)


def test_every_error_is_one_line_spectra_error(tmp_path):
    cases = []
    p = tmp_path / "a.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    cases.append(p)
    p = tmp_path / "b.npy"
    p.write_bytes(b"\x93NUMPY\x01\x00")
    cases.append(p)
    for case in cases:
        with pytest.raises(SpectraError) as err:
            load(case)
        assert "\n" not in str(err.value)
        assert "Traceback" not in str(err.value)


def test_keras_config_not_json(tmp_path):
    path = tmp_path / "badjson.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", "{not json")
        zf.writestr("model.weights.h5", h5_bytes(np.ones((3, 12), np.float32)))
    with pytest.raises(CorruptFileError, match="config.json"):
        load(path)


def test_keras_config_nested_too_deep(tmp_path):
    path = tmp_path / "deep.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", "[" * 200_000 + "]" * 200_000)
        zf.writestr("model.weights.h5", h5_bytes(np.ones((3, 12), np.float32)))
    with pytest.raises(CorruptFileError):
        load(path)


def test_hdf5_hard_link_cycle_terminates(tmp_path):
    path = tmp_path / "cycle.weights.h5"
    with h5py.File(path, "w") as f:
        write_keras3_weights(f, np.ones((3, 12), np.float32))
        f["layers/lstm/loop"] = f["layers"]  # a hard link back up the tree
        f["layers/lstm/cell/again"] = f["/"]
    ckpt = load(path)
    assert [m.id for m in ckpt][:1] == ["enc/recurrent_kernel[input]"]


def test_external_storage_and_links_are_not_followed(tmp_path):
    """Data kept in other files named by the HDF5 file is never read into a matrix."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(9.0).tobytes())
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_group("cell/vars").create_dataset("1", data=np.ones((2, 8), np.float32))
    path = tmp_path / "ext.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("ext", shape=(3, 3), dtype="<f8", external=[(str(secret), 0, 72)])
        f.create_dataset("ok", data=np.eye(2))
    ckpt = load(path)
    assert ckpt.ids == ["ok"]
    (ext,) = [s for s in ckpt.skipped if s.name == "ext"]
    assert "external" in ext.reason
    with pytest.raises(CorruptFileError, match="external"):
        load(f"{path}:/ext")

    kpath = tmp_path / "extlink.weights.h5"
    with h5py.File(kpath, "w") as f:
        write_keras3_weights(f, np.ones((3, 12), np.float32))
        f["layers/lstm_1"] = h5py.ExternalLink(str(other), "/")
    ckpt = load(kpath)
    assert {m.source for m in ckpt} == {"layers/lstm/cell/vars/1"}
