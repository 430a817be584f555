"""Hostile and broken PyTorch-family files: pickles, zip archives, safetensors.

Broken bytes must give CorruptFileError (never UnsafeFileError), pickles that
need arbitrary code must give UnsafeFileError without running any of it, and
absurd declared sizes must be refused before anything is allocated.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import time
import tracemalloc
import warnings
import zipfile

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch

from spectra.errors import CorruptFileError, NoRecurrentWeightsError, UnsafeFileError, UnsupportedFormatError
from spectra.load import load

torch.set_num_threads(1)


class CreatesFile:
    """Unpickling this would create the file `target` (the attack)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def _lstm_sd(seed=0):
    torch.manual_seed(seed)
    return torch.nn.LSTM(3, 4).state_dict()


@pytest.fixture
def good_zip(tmp_path):
    path = tmp_path / "good.pt"
    torch.save(_lstm_sd(), path)
    return path


def _rewrite_zip(src, dst, replace=None, compress=None):
    """Copy a torch zip, replacing members (suffix -> bytes) and compressing some (suffixes)."""
    replace, compress = replace or {}, compress or ()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            for suffix, new in replace.items():
                if info.filename.endswith(suffix):
                    data = new(data) if callable(new) else new
            ct = zipfile.ZIP_DEFLATED if any(info.filename.endswith(s) for s in compress) else 0
            zout.writestr(info.filename, data, compress_type=ct)


def _patch_central_size(path, suffix, size, *, compressed=False):
    """Overwrite the central-directory uncompressed (and optionally compressed) size of a member."""
    raw = bytearray(path.read_bytes())
    pos = raw.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", raw, pos + 28)[0]
        name = bytes(raw[pos + 46 : pos + 46 + name_len]).decode()
        if name.endswith(suffix):
            struct.pack_into("<I", raw, pos + 24, size)  # uncompressed
            if compressed:
                struct.pack_into("<I", raw, pos + 20, size)
            return path.write_bytes(bytes(raw))
        pos = raw.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"member {suffix} not found")


def _assert_cheap(fn, exc_type, match=None):
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(exc_type, match=match) as info:
            fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 5.0
    assert peak < 20 * 2**20, f"allocated {peak} bytes"
    return info.value


# ----------------------------------------------------------------- broken bytes -> CorruptFileError


def test_empty_file(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CorruptFileError, match="empty"):
        load(tmp_path / "empty.pt")


@pytest.mark.parametrize("head", [b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x04"])
def test_random_bytes(tmp_path, head):
    rng = np.random.default_rng(7)
    for i in range(20):
        path = tmp_path / f"r{i}.pt"
        path.write_bytes(head + rng.bytes(int(rng.integers(1, 4000))))
        with pytest.raises(CorruptFileError, match="corrupt|unreadable|unrecognised"):
            load(path)


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9, 0.99])
def test_truncated_zip(tmp_path, good_zip, fraction):
    raw = good_zip.read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(CorruptFileError):
        load(path)


def test_truncated_legacy_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    legacy = tmp_path / "legacy.pt"
    torch.save(_lstm_sd(), legacy, _use_new_zipfile_serialization=False)
    st = tmp_path / "w.safetensors"
    save_file(_lstm_sd(), str(st))
    for src in (legacy, st):
        raw = src.read_bytes()
        for frac in (0.3, 0.8):
            cut = tmp_path / f"cut_{src.name}"
            cut.write_bytes(raw[: int(len(raw) * frac)])
            with pytest.raises(CorruptFileError):
                load(cut)


def test_garbled_data_pkl(tmp_path, good_zip):
    bad = tmp_path / "garbled.pt"
    _rewrite_zip(good_zip, bad, {"data.pkl": lambda d: d[: len(d) // 2]})
    with pytest.raises(CorruptFileError):
        load(bad)


# ----------------------------------------------------------------- code in pickles -> UnsafeFileError


def test_malicious_zip_pickle_never_runs(tmp_path):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    torch.save({"weight_hh_l0": torch.zeros(4, 4), "x": CreatesFile(str(target))}, path)
    err = _assert_cheap(lambda: load(path), UnsafeFileError)
    msg = str(err)
    assert "\n" not in msg
    assert "arbitrary pickled objects" in msg and "open" in msg and "--trust-pickle" in msg
    assert not target.exists()


def test_malicious_bare_pickle_never_runs(tmp_path):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"x": CreatesFile(str(target))}, f, protocol=4)
    with pytest.raises(
        UnsafeFileError, match=r"first disallowed global: (io|builtins)\.open.*--trust-pickle"
    ):
        load(path)
    assert not target.exists()


def test_malicious_legacy_pickle_never_runs(tmp_path):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil_legacy.pt"
    torch.save({"x": CreatesFile(str(target))}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeFileError, match="arbitrary pickled objects") as info:
        load(path)
    assert "\n" not in str(info.value)
    assert not target.exists()


def test_os_system_global_is_named(tmp_path):
    # hand-written protocol-2 pickle calling os.system: never executed
    target = tmp_path / "pwned2.txt"
    payload = (
        b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(f"touch {target}")) + f"touch {target}".encode()
    )
    payload += b"\x85R."
    (tmp_path / "sys.pkl").write_bytes(payload)
    with pytest.raises(UnsafeFileError, match=r"os\.system"):
        load(tmp_path / "sys.pkl")
    assert not target.exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_whole_pickled_module_needs_trust(tmp_path, legacy):
    torch.manual_seed(1)
    model = torch.nn.LSTM(3, 4, num_layers=2)
    path = tmp_path / "model.pt"
    torch.save(model, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafeFileError, match=r"torch\.nn\.modules\.rnn\.LSTM.*--trust-pickle"):
        load(path)
    ckpt = load(path, trust=True)
    assert len(ckpt) == 8
    W = model.weight_hh_l1.detach().double().numpy()
    np.testing.assert_array_equal(ckpt["weight_hh_l1[cell]"].matrix, W[8:12])


def test_bare_pickle_of_numpy_arrays(tmp_path):
    W = np.arange(16.0).reshape(4, 4)
    path = tmp_path / "arrays.pkl"
    with open(path, "wb") as f:
        pickle.dump({"rnn.weight_hh_l0": W, "rnn.weight_ih_l0": np.ones((4, 2))}, f)
    with pytest.raises(UnsafeFileError, match="numpy"):
        load(path)
    ckpt = load(path, trust=True)
    assert ckpt.ids == ["rnn.weight_hh_l0"]
    np.testing.assert_array_equal(ckpt["rnn.weight_hh_l0"].matrix, W)


def test_safe_bare_pickle_without_weights(tmp_path):
    path = tmp_path / "plain.pkl"
    with open(path, "wb") as f:
        pickle.dump({"epoch": 3, "names": ["a", "b"]}, f)
    with pytest.raises(NoRecurrentWeightsError, match="no recurrent weight matrix found"):
        load(path)


def test_no_recurrent_weights_message(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(4, 4).state_dict(), path)
    with pytest.raises(NoRecurrentWeightsError) as info:
        load(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: no recurrent weight matrix found (2 tensors, e.g. weight: (4, 4)")


# ----------------------------------------------------------------- absurd sizes -> CorruptFileError, cheaply


def test_member_declaring_gigabytes(tmp_path, good_zip):
    path = tmp_path / "huge_member.pt"
    path.write_bytes(good_zip.read_bytes())
    _patch_central_size(path, "data/1", 0xFFFF0000, compressed=True)  # ~4 GiB for weight_hh_l0
    _assert_cheap(lambda: load(path), CorruptFileError, match="declares 4294901760 bytes")
    _patch_central_size(path, "data/1", 0xFFFF0000 - 1)  # stored, but two different sizes
    _assert_cheap(lambda: load(path), CorruptFileError, match="corrupt archive")


def test_zip_bomb_data_pkl(tmp_path, good_zip):
    path = tmp_path / "bomb.pt"
    _rewrite_zip(good_zip, path, compress=("data.pkl",))
    _patch_central_size(path, "data.pkl", 0xFFFF0000)
    _assert_cheap(lambda: load(path), CorruptFileError)


def _numel_patched(data: bytes, new: int) -> bytes:
    # persistent id ('storage', FloatStorage, '1', 'cpu', 64) of weight_hh_l0 (16 x 4): 'cpu' is memoised
    pat = re.compile(rb"(X\x01\x00\x00\x001q.h.)K@t", re.S)
    out, n = pat.subn(lambda m: m.group(1) + b"J" + struct.pack("<i", new) + b"t", data, count=1)
    assert n == 1, "pattern not found"
    return out


def test_storage_numel_beyond_member(tmp_path, good_zip):
    path = tmp_path / "numel.pt"
    _rewrite_zip(good_zip, path, {"data.pkl": lambda d: _numel_patched(d, 2_000_000_000)})
    err = _assert_cheap(lambda: load(path), CorruptFileError, match="declares")
    assert "storage 1" in str(err)


def test_storage_member_truncated(tmp_path, good_zip):
    path = tmp_path / "short.pt"
    _rewrite_zip(good_zip, path, {"data/1": lambda d: d[:10]})
    with pytest.raises(CorruptFileError, match="storage 1"):
        load(path)


def _safetensors(header: dict, data: bytes, hlen: int | None = None) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def test_safetensors_offsets_beyond_file(tmp_path):
    path = tmp_path / "lie.safetensors"
    header = {"weight_hh_l0": {"dtype": "F32", "shape": [50000, 50000], "data_offsets": [0, 10**10]}}
    path.write_bytes(_safetensors(header, b"\0" * 64))
    _assert_cheap(lambda: load(path), CorruptFileError, match="data section holds 64 bytes")


def test_safetensors_size_mismatch(tmp_path):
    path = tmp_path / "mismatch.safetensors"
    header = {"weight_hh_l0": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 32]}}
    path.write_bytes(_safetensors(header, b"\0" * 64))
    with pytest.raises(CorruptFileError, match="needs 64 bytes"):
        load(path)


@pytest.mark.parametrize("hlen", [10**6, 2**40, 2**63])
def test_safetensors_header_length_beyond_file(tmp_path, hlen):
    path = tmp_path / "hlen.safetensors"
    header = {"weight_hh_l0": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    path.write_bytes(_safetensors(header, b"\0" * 16, hlen=hlen))
    _assert_cheap(lambda: load(path), CorruptFileError)


def test_safetensors_garbage_header(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(struct.pack("<Q", 12) + b"{not json!!}" + b"\0" * 8)
    with pytest.raises(CorruptFileError, match="header"):
        load(path)


def test_safetensors_valid_roundtrip_by_hand(tmp_path):
    # independent writer: the format spec by hand, BF16 included
    W = np.arange(16, dtype=np.float32).reshape(4, 4) / 8  # exactly representable in bfloat16
    bf16 = (W.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = {
        "__metadata__": {"format": "pt"},
        "cell.weight_hh": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 32]},
    }
    path = tmp_path / "hand.safetensors"
    path.write_bytes(_safetensors(header, bf16))
    ckpt = load(path)
    assert ckpt.ids == ["cell.weight_hh"] and ckpt[0].dtype == "bfloat16"
    np.testing.assert_array_equal(ckpt[0].matrix, W.astype(np.float64))


def test_legacy_protocol4_needs_trust(tmp_path):
    torch.manual_seed(2)
    module = torch.nn.GRU(3, 4)
    path = tmp_path / "legacy4.pt"
    torch.save(module.state_dict(), path, _use_new_zipfile_serialization=False, pickle_protocol=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's protocol warning is not passed on
        with pytest.raises(UnsafeFileError, match="pickle protocol 4.*--trust-pickle"):
            load(path)
    ckpt = load(path, trust=True)
    assert ckpt.format == "pytorch-legacy"
    np.testing.assert_array_equal(ckpt.stacked("weight_hh_l0"), module.weight_hh_l0.detach().double().numpy())


def test_allocation_bomb_in_pickle(tmp_path, good_zip):
    # data.pkl = bytearray(2**40): allowed global, absurd argument; refused before allocating
    bomb = b"\x80\x02c__builtin__\nbytearray\n\x8a\x06" + (2**40).to_bytes(6, "little") + b"\x85R."
    path = tmp_path / "alloc.pt"
    _rewrite_zip(good_zip, path, {"data.pkl": bomb})
    _assert_cheap(lambda: load(path), CorruptFileError, match="bytearray")


def test_expanded_tensor_is_not_materialised(tmp_path):
    # a legitimate torch.save of a stride-0 view: 1 stored float, 10**13 logical elements
    huge = torch.ones(1).expand(4 * 10**6, 10**6)
    path = tmp_path / "expand.pt"
    torch.save({"rnn.weight_hh_l0": huge, "cell.weight_hh": torch.eye(4)}, path)
    tracemalloc.start()
    ckpt = load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20
    assert ckpt.ids == ["cell.weight_hh"]
    assert {s.name: s.reason for s in ckpt.skipped}["rnn.weight_hh_l0"].startswith(
        "recurrent weight too large"
    )


def test_mutated_files_raise_only_spectra_errors(tmp_path, good_zip):
    """Byte flips anywhere in data.pkl, a storage or a safetensors file: a SpectraError or a clean load."""
    from safetensors.torch import save_file

    from spectra.errors import SpectraError

    st = tmp_path / "w.safetensors"
    save_file(_lstm_sd(), str(st))
    with zipfile.ZipFile(good_zip) as zf:
        pkl_name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
        pkl = zf.read(pkl_name)
    rng = np.random.default_rng(11)
    outcomes = set()
    for i in range(120):
        if i % 2:
            raw = bytearray(pkl)
            target = tmp_path / f"m{i}.pt"
        else:
            raw = bytearray(st.read_bytes()[:400])  # header region
            target = tmp_path / f"m{i}.safetensors"
        for pos in rng.integers(2 if i % 2 else 8, len(raw), size=int(rng.integers(1, 4))):
            raw[pos] = int(rng.integers(0, 256))
        if i % 2:
            _rewrite_zip(good_zip, target, {"data.pkl": bytes(raw)})
        else:
            target.write_bytes(bytes(raw) + st.read_bytes()[400:])
        try:
            load(target)
            outcomes.add("ok")
        except SpectraError as exc:
            outcomes.add(type(exc).__name__)
    assert "CorruptFileError" in outcomes


def test_zip_damage_found_only_when_a_member_is_read_is_corrupt_not_internal(tmp_path):
    # a damaged local header of the byteorder member (BadZipFile) and a "version needed" of 6.4
    # (NotImplementedError from zipfile) escaped as internal errors (exit 1)
    import struct
    import zipfile

    import torch

    base = tmp_path / "base.pt"
    torch.save(torch.nn.LSTM(3, 4).state_dict(), base)
    raw = bytes(base.read_bytes())
    with zipfile.ZipFile(base) as zf:
        bo = next(i for i in zf.infolist() if i.filename.endswith("/byteorder"))
    bad_local = bytearray(raw)
    bad_local[bo.header_offset : bo.header_offset + 4] = b"\0\0\0\0"
    cd = raw.rfind(b"PK\x05\x06")
    cd_off = struct.unpack("<I", raw[cd + 16 : cd + 20])[0]
    bad_version = bytearray(raw)
    bad_version[cd_off + 6] = 64
    for name, data in (("local.pt", bad_local), ("version.pt", bad_version)):
        p = tmp_path / name
        p.write_bytes(bytes(data))
        with pytest.raises(CorruptFileError, match="corrupt zip"):
            load(p)


def test_a_selector_on_a_file_that_exists_says_how_to_choose_matrices(tmp_path):
    # 'model.npz:weight_hh_l0' said only "no such file"
    np.savez(tmp_path / "m.npz", weight_hh=np.eye(3))
    with pytest.raises(UnsupportedFormatError, match=r"m\.npz exists.*file\.h5:/weight_hh.*--matrix"):
        load(f"{tmp_path / 'm.npz'}:weight_hh")
    with pytest.raises(UnsupportedFormatError, match=r"no such file$"):
        load(tmp_path / "other.npz")
