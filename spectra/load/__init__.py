r"""Read recurrent weight matrices from checkpoint files: :func:`load`.

The reader is chosen by sniffing the file's first bytes, never its extension:

=====================  ==========================================  ======================
first bytes            what it is                                   reader
=====================  ==========================================  ======================
``PK\\x03\\x04``       zip: PyTorch (``*/data.pkl``), TorchScript   :mod:`.pytorch`,
                       (``*/constants.pkl``, ``code/``), Keras 3     :mod:`.keras`,
                       ``.keras`` (``config.json`` +                 :mod:`.arrays`
                       ``model.weights.h5``), ``.npz`` (``*.npy``)
``\\x89HDF\\r\\n``      HDF5: Keras legacy ``.h5``, Keras 3           :mod:`.hdf5`
                       ``.weights.h5``, or plain datasets
``\\x80\\x02`` + magic  PyTorch legacy (pre-zip) serialization       :mod:`.pytorch`
``\\x80`` (pickle)      a bare pickle                                 refused unless trusted
u64 + ``{"``           safetensors                                   :mod:`.pytorch`
``\\x93NUMPY``         ``.npy``                                      :mod:`.arrays`
=====================  ==========================================  ======================

Modules of this package: one per family (``pytorch.py`` with the torch-free
zip/pickle reader in ``torchpickle.py`` and the state-dict naming rules in
``torch_names.py``; ``keras.py``/``hdf5.py`` for Keras and HDF5 via h5py;
``arrays.py`` for numpy files). None imports torch at module level.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path

from spectra.checkpoint import Checkpoint
from spectra.errors import CorruptFileError, NoRecurrentWeightsError, UnsupportedFormatError

__all__ = ["load", "sniff"]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
NPY_MAGIC = b"\x93NUMPY"


def _split_dataset(path: str) -> tuple[str, str | None]:
    """Split ``file.h5:/group/ds`` into the file and the dataset path."""
    if os.path.exists(path):
        return path, None
    idx = path.rfind(":/")
    if idx > 0 and os.path.exists(path[:idx]):
        return path[:idx], path[idx + 1 :]
    return path, None


def sniff(path: str | os.PathLike) -> str:
    """Name the container format of `path` from its content.

    Returns one of ``zip``, ``hdf5``, ``pickle``, ``safetensors``, ``npy``.

    Raises
    ------
    CorruptFileError
        Empty file or unrecognisable bytes.
    UnsupportedFormatError
        The JSON index of sharded Keras weights (``m.weights.json``), which are not read.
    """
    p = str(path)
    with open(p, "rb") as f:
        head = f.read(1024)
        if not head:
            raise CorruptFileError(f"{p}: empty file (0 bytes)")
        if head.startswith(ZIP_MAGIC) or head.startswith(EMPTY_ZIP_MAGIC):
            return "zip"
        if head.startswith(NPY_MAGIC):
            return "npy"
        # HDF5 superblock may sit at 0, 512, 1024, 2048, ... (user block)
        offset = 0
        size = os.fstat(f.fileno()).st_size
        while offset < size:
            f.seek(offset)
            if f.read(8) == HDF5_MAGIC:
                return "hdf5"
            offset = 512 if offset == 0 else offset * 2
        if head[:1] == b"\x80" and len(head) >= 2 and 2 <= head[1] <= 5:
            return "pickle"
        if len(head) >= 10:
            (hlen,) = struct.unpack("<Q", head[:8])
            if 2 <= hlen <= 100_000_000 and head[8:9] == b"{":
                return "safetensors"
    if head.lstrip().startswith(b"{") and b'"weight_map"' in head:
        hf = _hf_shard_index(p)
        if hf is not None:
            raise UnsupportedFormatError(hf)
        # keras saving_lib.ShardedH5IOStore: {"metadata": ..., "weight_map": {path: [shard]}}
        raise UnsupportedFormatError(
            f"{p}: the index of sharded Keras weights (save_weights(..., max_shard_size=...)); "
            "sharded Keras weights are not read: re-save the model without max_shard_size"
        )
    raise CorruptFileError(
        f"{p}: unreadable: not a PyTorch, Keras, safetensors, HDF5 or numpy file "
        "(unrecognised content; corrupt or not a checkpoint)"
    )


def _hf_shard_index(p: str) -> str | None:
    """The refusal of a Hugging Face shard index (``{"weight_map": {tensor: "x.safetensors"}}``), else None.

    Keras's sharded index maps paths to lists of ``.weights.h5`` files; Hugging Face's
    ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json`` map tensor names to one
    shard file each. The message names the shards that hold recurrent weights.
    """
    import json

    try:
        if os.path.getsize(p) > 64 << 20:
            return None
        with open(p, encoding="utf-8") as f:
            wm = json.load(f).get("weight_map")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(wm, dict) or not wm or not all(isinstance(v, str) for v in wm.values()):
        return None
    if not all(v.endswith((".safetensors", ".bin", ".pt", ".pth")) for v in wm.values()):
        return None
    rec = sorted({v for k, v in wm.items() if any(t in k for t in ("weight_hh", "recurrent_kernel"))})
    where = f"; recurrent weights are in {', '.join(rec)}" if rec else ""
    return (
        f"{p}: the index of a sharded Hugging Face checkpoint (tensor -> shard file); "
        f"an index holds no weights: give spectra a shard file itself{where}"
    )


def _zip_kind(path: str) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            first = min((zi.header_offset for zi in zf.infolist()), default=0)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptFileError(f"{path}: corrupt or truncated zip archive ({exc})") from None
    if first > 0:
        # zipfile reads the last of several archives saved back to back (torch.load refuses the
        # file): reporting it as the whole file silently dropped the others
        dcp = (
            " (a torch.distributed.checkpoint .distcp shard is written this way: convert the folder "
            "with torch.distributed.checkpoint.format_utils.dcp_to_torch_save)"
            if path.endswith(".distcp")
            else ""
        )
        raise CorruptFileError(
            f"{path}: {first} bytes precede its zip archive: several archives saved back to back in "
            f"one file, which torch.load refuses too{dcp}"
        )
    base = {n.split("/", 1)[-1] if "/" in n else n for n in names}
    if "archive_format" in base or "data/weights/model_weights_config.json" in base:
        raise UnsupportedFormatError(
            f"{path}: a torch.export archive (.pt2, torch.export.save), whose weights are not read: "
            "save the state_dict instead (torch.save(model.state_dict(), 'm.pt'), or "
            "torch.save(exported_program.state_dict, 'm.pt')) and analyse that"
        )
    if any(n.endswith("constants.pkl") for n in names) or any("/code/" in n for n in names):
        return "torchscript"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "pytorch-zip"
    if "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names):
        return "keras-v3"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    if not names:
        # np.savez(path) with no arrays writes an archive with no members (and names it .npz)
        if path.endswith(".npz"):
            return "npz"
        raise NoRecurrentWeightsError(f"{path}: an empty zip archive (no members), so no recurrent matrix")
    raise UnsupportedFormatError(
        f"{path}: a zip archive that is neither a PyTorch checkpoint, a TorchScript archive, "
        f"a Keras .keras file nor a .npz (members: {', '.join(sorted(base)[:5])}"
        f"{' ...' if len(base) > 5 else ''})"
    )


def _read_zip(p: str, trust: bool) -> Checkpoint:
    sub = _zip_kind(p)
    if sub == "pytorch-zip":
        from spectra.load.pytorch import read_pytorch_zip

        return read_pytorch_zip(p, trust=trust)
    if sub == "torchscript":
        from spectra.load.pytorch import read_torchscript

        return read_torchscript(p, trust=trust)
    if sub == "keras-v3":
        from spectra.load.keras import read_keras_v3

        return read_keras_v3(p)
    from spectra.load.arrays import read_npz

    return read_npz(p)


def load(path: str | os.PathLike, *, trust: bool = False) -> Checkpoint:
    """Read every recurrent weight matrix of a checkpoint.

    Parameters
    ----------
    path : str or path-like
        A PyTorch file (zip or legacy ``torch.save``, TorchScript), a
        ``.safetensors`` file, a Keras ``.keras``/``.weights.h5``/``.h5`` file,
        a ``.npy``/``.npz`` array file, or an HDF5 file, optionally with a
        dataset path (``weights.h5:/group/W_hh``).
    trust : bool
        Allow arbitrary pickled objects (executes code from the file). Off by
        default: pickles are read through an allowlist only.

    Returns
    -------
    Checkpoint
        Its ``matrices`` hold every recurrent matrix ``A`` (column-vector
        orientation, one per gate); ``skipped`` says what else was in the file.

    Raises
    ------
    UnsupportedFormatError
        A directory, or a readable file of a format this tool does not read.
    CorruptFileError
        Empty, truncated or random bytes, or sizes the file cannot hold.
    UnsafeFileError
        The file needs arbitrary pickle execution and `trust` is false.
    NoRecurrentWeightsError
        The file was read but holds no recurrent matrix.

    Examples
    --------
    >>> ckpt = spectra.load("data/digits_lstm_regular.pt")  # doctest: +SKIP
    >>> [m.id for m in ckpt][:2]  # doctest: +SKIP
    ['lstm.weight_hh_l0[input]', 'lstm.weight_hh_l0[forget]']
    """
    p, dataset = _split_dataset(os.fspath(path))
    fp = Path(p)
    if fp.is_dir():
        if os.path.exists(os.path.join(p, ".metadata")) and any(n.endswith(".distcp") for n in os.listdir(p)):
            raise UnsupportedFormatError(
                f"{p}: a torch.distributed.checkpoint folder (.metadata and .distcp shards), not read; "
                "convert it with torch.distributed.checkpoint.format_utils.dcp_to_torch_save"
            )
        raise UnsupportedFormatError(f"{p}: is a directory, not a checkpoint file")
    if not fp.exists():
        head, sep, name = p.rpartition(":")
        if sep and head and name and os.path.isfile(head):
            # 'model.npz:weight_hh_l0': a selector in a form the loader does not take
            raise UnsupportedFormatError(
                f"{p}: no such file; {head} exists: a dataset inside an HDF5 file is written "
                f"file.h5:/{name.lstrip('/')}, and matrices of any file are chosen with "
                f"--matrix (spectra ls {head} lists them)"
            )
        raise UnsupportedFormatError(f"{p}: no such file")
    try:
        kind = sniff(p)
    except PermissionError as exc:
        raise UnsupportedFormatError(f"{p}: cannot be read ({exc.strerror})") from None
    if dataset is not None and kind != "hdf5":
        raise UnsupportedFormatError(f"{p}: a dataset path ({dataset}) is only valid for HDF5 files")

    if kind == "zip":
        try:
            return _read_zip(p, trust)
        except (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError) as exc:
            # a damaged member header or compression, or a "version needed" no reader has:
            # found only when that member is read, past the archive-level checks
            raise CorruptFileError(f"{p}: corrupt zip archive ({type(exc).__name__}: {exc})") from None
    if kind == "hdf5":
        from spectra.load.hdf5 import read_hdf5

        return read_hdf5(p, dataset=dataset)
    if kind == "pickle":
        from spectra.load.pytorch import read_pickle

        return read_pickle(p, trust=trust)
    if kind == "safetensors":
        from spectra.load.pytorch import read_safetensors

        return read_safetensors(p)
    from spectra.load.arrays import read_npy

    return read_npy(p)
