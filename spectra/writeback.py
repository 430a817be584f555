"""Write modified recurrent matrices back into a copy of their checkpoint: :func:`write_matrices`.

Given a loaded :class:`~spectra.checkpoint.Checkpoint` and new values for some
of its matrices (by id), write a new file in the **same format** as the input,
in which only those recurrent weights differ (cast back to the stored dtype);
everything else (other tensors, optimizer state, training metadata, Keras
config, safetensors ``__metadata__``) is kept. The input is never touched; the
output is written to a temporary file in the destination directory and moved
into place with :func:`os.replace`.

=====================  ====================================================
format                 how
=====================  ====================================================
``pytorch-zip``        ``torch.load(weights_only=True)``, modify the tensor at
``pytorch-legacy``     ``metadata["state_dict_path"] + [source]``, ``torch.save``
                       (legacy serialization for legacy input)
``torchscript``        ``torch.jit.load`` / ``torch.jit.save`` (needs ``trust``)
``safetensors``        the bytes of each modified tensor patched in a copy
                       (8-byte header length, JSON header, raw data)
``keras-v3``           the zip copied member by member, ``model.weights.h5``
                       replaced by a modified copy
``keras-weights-h5``   file copied, datasets modified with h5py
``keras-h5``, ``hdf5``
``npy``, ``npz``       rewritten with numpy (npz: compression kept)
=====================  ====================================================

Placement of a matrix ``A`` in its stored tensor ``T`` (:class:`RecurrentMatrix`
fields ``source``, ``block``, ``transposed``): rows ``T[a:b, :] = A`` (PyTorch),
columns ``T[:, a:b] = A.T`` when ``transposed`` (Keras); the whole tensor when
``block`` is None. A weight pruned by ``torch.nn.utils.prune`` (field ``mask``) is
read as ``A = mask * W`` from ``W = <name>_orig``: ``W = A / mask`` where the mask
is nonzero, and the pruned entries, which ``A`` does not see, are multiplied by the
factor ``A`` was scaled by (``mask * (c W) = c (mask * W)``); the mask is kept.
What to write is decided elsewhere (:mod:`spectra.stabilize`).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from spectra._atomic import _unlink, atomic_write
from spectra.checkpoint import Checkpoint, RecurrentMatrix
from spectra.errors import (
    CorruptFileError,
    SpectraError,
    UnsafeFileError,
    UnsupportedFormatError,
    WriteError,
)

__all__ = ["WRITABLE_FORMATS", "check_output", "place_block", "write_matrices"]

#: Checkpoint formats :func:`write_matrices` can write.
WRITABLE_FORMATS = (
    "pytorch-zip",
    "pytorch-legacy",
    "torchscript",
    "safetensors",
    "keras-v3",
    "keras-weights-h5",
    "keras-h5",
    "hdf5",
    "npy",
    "npz",
)


def _real_file(path: str | os.PathLike) -> str:
    """Return the file part of ``file.h5:/dataset``."""
    from spectra.load import _split_dataset

    return _split_dataset(str(path))[0]


def check_output(path: str | os.PathLike, out: str | os.PathLike, *, force: bool = False) -> None:
    """Refuse to write `out` when it exists (without `force`) or is the input file.

    Raises
    ------
    WriteError
        `out` is the input file, is a directory, or exists and `force` is false.
    """
    src = _real_file(path)
    dst = str(out)
    if os.path.isdir(dst):
        raise WriteError(f"output {dst!r} is a directory; give a file name")
    if os.path.exists(dst):
        if os.path.exists(src) and os.path.samefile(src, dst):
            raise WriteError(f"output {dst!r} is the input file; the input is never modified")
        if not force:
            raise WriteError(f"output {dst!r} exists; pass --force (force=True) to overwrite it")
    parent = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(parent):
        what = "is not a folder" if os.path.exists(parent) else "does not exist"
        raise WriteError(f"output {dst!r}: {parent!r} {what}")


def place_block(stored: np.ndarray, m: RecurrentMatrix, A: np.ndarray, *, scale: float = 1.0) -> None:
    """Write matrix `A` into the stored tensor `stored` in place, where `m` came from.

    ``stored[a:b, :] = A`` for a PyTorch row block, ``stored[:, a:b] = A.T``
    for a Keras column block (``m.transposed``), the whole tensor (``A`` or
    ``A.T``) when ``m.block`` is None. For a pruned weight (``m.mask`` set,
    ``A = mask * W``), the block ``W`` of ``<name>_orig`` becomes ``A / mask``
    where the mask is nonzero, and ``scale * W`` where it is zero, so that
    ``mask * W`` is `A`.

    Parameters
    ----------
    stored : ndarray
        The stored tensor (float64 or complex128), modified in place.
    m : RecurrentMatrix
        Where `A` goes.
    A : (n, n) ndarray
        The new matrix (column-vector orientation).
    scale : float
        For a pruned weight: the factor its pruned entries (mask 0, which `A`
        does not see) are multiplied by, the one `A` was scaled by; 1 keeps
        them. Ignored otherwise.

    Raises
    ------
    SpectraError
        If the shapes do not fit, or `A` of a pruned weight is nonzero where
        the mask is zero (torch would zero those entries again).
    """
    blk = A.T if m.transposed else A
    if m.block is None:
        target = stored
    else:
        a, b = m.block
        target = stored[:, a:b] if m.transposed else stored[a:b, :]
    if target.shape != blk.shape:
        raise SpectraError(
            f"{m.id}: the stored block of {m.source!r} has shape {target.shape}, the matrix to write "
            f"{blk.shape}; the checkpoint's layout is not understood"
        )
    if m.mask is None:
        target[...] = blk
        return
    mask = np.asarray(m.mask.T if m.transposed else m.mask, dtype=np.float64)
    kept = mask != 0
    if np.any(blk[~kept] != 0):
        raise SpectraError(
            f"{m.id}: the matrix to write is nonzero where the pruning mask of {m.source!r} is 0, "
            "and torch multiplies the stored weight by that mask: it cannot be written back. Make "
            "the pruning permanent (torch.nn.utils.prune.remove) first"
        )
    target[...] = np.where(kept, blk / np.where(kept, mask, 1.0), target * scale)


def _apply(stored: np.ndarray, ms: list[tuple[RecurrentMatrix, np.ndarray, float]]) -> np.ndarray:
    """Float64 (complex128 for complex data) copy of `stored` with the blocks of `ms` replaced."""
    cplx = np.iscomplexobj(stored) or any(np.iscomplexobj(A) for _, A, _ in ms)
    dt = np.complex128 if cplx else np.float64
    arr = np.array(stored, dtype=dt)
    for m, A, scale in ms:
        place_block(arr, m, np.asarray(A, dtype=dt), scale=scale)
    return arr


def _cast_back(new: np.ndarray, stored_dtype: np.dtype, where: str) -> np.ndarray:
    """`new` in the array file's dtype; integer or boolean arrays become float64.

    Scaled weights cannot be stored as integers (they were written as zeros); an array
    file can change dtype, so it is promoted rather than truncated.
    """
    if stored_dtype.kind in "biu":
        warnings.warn(
            f"{where}: stored as {stored_dtype}, which cannot hold the new values: written as float64",
            RuntimeWarning,
            stacklevel=3,
        )
        return new.astype(np.float64) if not np.iscomplexobj(new) else new
    return new.astype(stored_dtype)


def write_matrices(
    ckpt: Checkpoint,
    path: str | os.PathLike,
    out: str | os.PathLike,
    updates: Mapping[str, np.ndarray],
    *,
    scales: Mapping[str, float] | None = None,
    force: bool = False,
    trust: bool = False,
) -> None:
    """Write a copy of checkpoint `path` to `out` with some recurrent matrices replaced.

    Parameters
    ----------
    ckpt : Checkpoint
        What :func:`spectra.load` read from `path` (gives each matrix's
        ``source``, ``block``, ``transposed`` and the format).
    path : path-like
        The input file (for HDF5, optionally ``file.h5:/dataset``).
    out : path-like
        The file to write (same format as the input).
    updates : mapping of str to (n, n) ndarray
        Matrix id -> new ``A`` (column-vector orientation, as in
        :attr:`RecurrentMatrix.matrix`). May be empty: then `out` is a faithful
        re-save of the input. A pruned weight's matrix (``mask`` set) is the
        effective ``mask * W``: zero where the mask is.
    scales : mapping of str to float, optional
        Matrix id -> the factor its new matrix was scaled by; multiplies the
        pruned entries of a pruned weight (see :func:`place_block`), which
        are kept as they are where not given.
    force : bool
        Overwrite an existing `out`.
    trust : bool
        Allow full pickle loading for PyTorch files, and TorchScript.

    Raises
    ------
    WriteError
        `out` exists without `force`, is the input, or could not be written.
    UnsupportedFormatError
        The checkpoint format cannot be written back.
    UnsafeFileError
        The PyTorch file needs more than ``weights_only=True`` (or is
        TorchScript) and `trust` is false.
    MatrixNotFoundError
        An id in `updates` is not in the checkpoint.
    SpectraError
        A new matrix of the wrong shape, or nonzero where its pruning mask is 0.
    """
    check_output(path, out, force=force)
    scales = dict(scales or {})
    groups: dict[str, list[tuple[RecurrentMatrix, np.ndarray, float]]] = {}
    for key, A in updates.items():
        m = ckpt[key]
        a = np.asarray(A)
        if a.shape != (m.n, m.n):
            raise SpectraError(f"{key}: new matrix has shape {a.shape}, expected {(m.n, m.n)}")
        groups.setdefault(m.source, []).append((m, a, float(scales.get(key, 1.0))))
    _check_extension(ckpt.format, str(out))
    writer = _WRITERS.get(ckpt.format)
    if writer is None:
        raise UnsupportedFormatError(
            f"{path}: cannot write checkpoints of format {ckpt.format!r}; writable formats: "
            f"{', '.join(WRITABLE_FORMATS)}"
        )
    writer(ckpt, _real_file(path), str(out), groups, force, trust)


# --------------------------------------------------------------------------- PyTorch


def _torch():
    import torch

    torch.set_num_threads(1)
    return torch


def _navigate(obj, keys, path):
    for k in keys:
        try:
            obj = obj[k]
        except (KeyError, IndexError, TypeError):
            raise SpectraError(f"{path}: cannot find the tensor mapping at {keys!r} (key {k!r})") from None
    return obj


def _write_torch(ckpt, path, out, groups, force, trust):
    torch = _torch()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as exc:  # torch raises UnpicklingError/RuntimeError for disallowed globals
        if trust:
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise UnsupportedFormatError(
                f"{path}: writing back needs torch.load with the file's own classes, which failed "
                f"({first}); reading it used stand-ins. Save the model's state_dict() and stabilize that"
            ) from exc
        raise UnsafeFileError(
            f"{path}: torch.load(weights_only=True) refuses this file ({type(exc).__name__}); "
            "writing it back needs full unpickling: pass trust=True (--trust-pickle) if you trust it"
        ) from exc
    if _holds_module(obj, torch):
        raise UnsupportedFormatError(
            f"{path}: holds a whole pickled model (torch.nn.Module), which is not written back: "
            "save its state_dict() and stabilize that"
        )
    mapping = _navigate(obj, list(ckpt.metadata.get("state_dict_path", []) or []), path)
    located = ckpt.metadata.get("source_paths") or {}
    for source, ms in groups.items():
        try:
            if source in located:  # a matrix of one of several tensor mappings
                t = _navigate(obj, located[source][:-1], path)[located[source][-1]]
            else:
                t = mapping[source]
        except (KeyError, TypeError):
            raise SpectraError(f"{path}: tensor {source!r} not found for writing") from None
        new = _apply(t.detach().to(torch.float64).cpu().numpy(), ms)
        with torch.no_grad():
            t.copy_(torch.from_numpy(new).to(t.dtype))
    legacy = ckpt.format == "pytorch-legacy"

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # not by name: the zip's inner folder would be the temp name
            torch.save(obj, f, _use_new_zipfile_serialization=not legacy)

    atomic_write(out, write, force=force)


def _holds_module(obj, torch, depth: int = 0) -> bool:
    """Whether a checkpoint object is, or holds in its dicts and lists, a torch.nn.Module."""
    if isinstance(obj, torch.nn.Module):
        return True
    if depth > 20:
        return False
    if isinstance(obj, dict):
        return any(_holds_module(v, torch, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_holds_module(v, torch, depth + 1) for v in obj)
    return False


def _write_torchscript(ckpt, path, out, groups, force, trust):
    if not trust:
        raise UnsafeFileError(
            f"{path}: writing a TorchScript archive back means loading it with torch.jit.load "
            "(runs its TorchScript code): pass trust=True (--trust-pickle) if you trust it"
        )
    torch = _torch()
    module = torch.jit.load(path, map_location="cpu")
    sd = module.state_dict()
    for source, ms in groups.items():
        if source not in sd:
            raise SpectraError(f"{path}: tensor {source!r} not found in the TorchScript module")
        t = sd[source]
        new = _apply(t.detach().to(torch.float64).numpy(), ms)
        with torch.no_grad():
            t.copy_(torch.from_numpy(new).to(t.dtype))

    atomic_write(out, lambda tmp: torch.jit.save(module, tmp), force=force)


# --------------------------------------------------------------------------- safetensors

_ST_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2")}


def _st_decode(raw: bytes, dtype: str, shape) -> np.ndarray:
    if dtype == "BF16":
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).astype(np.float64).reshape(shape)
    if dtype not in _ST_DTYPES:
        raise UnsupportedFormatError(f"safetensors dtype {dtype!r} cannot be written back (float only)")
    return np.frombuffer(raw, dtype=_ST_DTYPES[dtype]).astype(np.float64).reshape(shape)


def bfloat16_bits(arr: np.ndarray) -> np.ndarray:
    """The bfloat16 bit patterns (uint16) of `arr`: round to nearest even on the upper 16 bits of float32."""
    u = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _st_encode(arr: np.ndarray, dtype: str) -> bytes:
    if dtype == "BF16":
        return bfloat16_bits(arr).astype("<u2").tobytes()
    return np.ascontiguousarray(arr, dtype=_ST_DTYPES[dtype]).tobytes()


def _write_safetensors(ckpt, path, out, groups, force, trust):
    data = bytearray(Path(path).read_bytes())
    if len(data) < 8:
        raise CorruptFileError(f"{path}: too short for safetensors")
    (hlen,) = struct.unpack("<Q", bytes(data[:8]))
    try:
        header = json.loads(bytes(data[8 : 8 + hlen]))
    except ValueError as exc:
        raise CorruptFileError(f"{path}: unreadable safetensors header: {exc}") from exc
    base = 8 + hlen
    for source, ms in groups.items():
        info = header.get(source)
        if not isinstance(info, dict):
            raise SpectraError(f"{path}: tensor {source!r} not in the safetensors header")
        b0, b1 = info["data_offsets"]
        stored = _st_decode(bytes(data[base + b0 : base + b1]), info["dtype"], tuple(info["shape"]))
        raw = _st_encode(_apply(stored, ms), info["dtype"])
        if len(raw) != b1 - b0:
            raise SpectraError(f"{path}: re-encoded {source!r} has {len(raw)} bytes, expected {b1 - b0}")
        data[base + b0 : base + b1] = raw

    atomic_write(out, lambda tmp: Path(tmp).write_bytes(bytes(data)), force=force)


# --------------------------------------------------------------------------- HDF5 / Keras


def _modify_h5(h5path: str, groups) -> None:
    import h5py

    with h5py.File(h5path, "r+") as f:
        for name, ms in groups.items():
            source = name
            if source not in f and name.replace(".", "/") in f:
                source = name.replace(".", "/")  # a torch state_dict written as a group tree
            if source not in f or not isinstance(f[source], h5py.Dataset):
                raise SpectraError(f"{h5path}: dataset {name!r} not found for writing")
            ds = f[source]
            new, dtype = _apply(ds[...], ms), ds.dtype
            if dtype.kind in "biu":
                # an integer dataset cannot hold the scaled weights: replaced by a float64 one
                attrs = dict(ds.attrs)
                del f[source]
                f.create_dataset(source, data=_cast_back(new, dtype, source)).attrs.update(attrs)
            else:
                ds[...] = new.astype(ds.dtype)


def _write_h5(ckpt, path, out, groups, force, trust):
    def write(tmp: str) -> None:
        shutil.copyfile(path, tmp)
        _modify_h5(tmp, groups)

    atomic_write(out, write, force=force)


def _write_keras(ckpt, path, out, groups, force, trust):
    member = ckpt.metadata.get("weights_member", "model.weights.h5")
    with zipfile.ZipFile(path) as zin:
        names = zin.namelist()
        if member not in names:
            raise CorruptFileError(f"{path}: no {member!r} inside the .keras archive")

        def write(tmp: str) -> None:
            h5tmp = tmp + ".weights.h5"  # beside tmp: a failure there is the write's failure
            try:
                with zin.open(member) as src, open(h5tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                _modify_h5(h5tmp, groups)
                with zipfile.ZipFile(tmp, "w") as zout:
                    for info in zin.infolist():
                        if info.filename == member:
                            zout.writestr(info, Path(h5tmp).read_bytes())
                        else:
                            zout.writestr(info, zin.read(info.filename))
            finally:
                _unlink(h5tmp)

        atomic_write(out, write, force=force)


# --------------------------------------------------------------------------- numpy


def _write_npy(ckpt, path, out, groups, force, trust):
    arr = np.load(path, allow_pickle=False)
    for ms in groups.values():
        arr = _cast_back(_apply(arr, ms), arr.dtype, path)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)

    atomic_write(out, write, force=force)


def _write_npz(ckpt, path, out, groups, force, trust):
    with zipfile.ZipFile(path) as z:
        compressed = any(i.compress_type != zipfile.ZIP_STORED for i in z.infolist())
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for source, ms in groups.items():
        if source not in arrays:
            raise SpectraError(f"{path}: array {source!r} not found for writing")
        arrays[source] = _cast_back(_apply(arrays[source], ms), arrays[source].dtype, f"{path}:{source}")
    save = np.savez_compressed if compressed else np.savez

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            save(f, **arrays)

    atomic_write(out, write, force=force)


#: file-name endings and the formats written under them (the output format follows the input)
_EXTENSIONS: dict[tuple[str, ...], tuple[str, ...]] = {
    (".pt", ".pth", ".ckpt", ".bin", ".tar"): ("pytorch-zip", "pytorch-legacy", "torchscript"),
    (".keras",): ("keras-v3",),
    (".h5", ".hdf5", ".weights.h5"): ("keras-weights-h5", "keras-h5", "hdf5"),
    (".npy",): ("npy",),
    (".npz",): ("npz",),
    (".safetensors",): ("safetensors",),
}


def _check_extension(fmt: str, out: str) -> None:
    """Refuse an output name whose ending belongs to another format than the one written.

    ``stabilize model.keras -o fixed.pt`` wrote a Keras archive named ``.pt``: torch.load
    then fails on it. Unknown endings (or none) are left to the user.
    """
    low = out.lower()
    for ends, fmts in _EXTENSIONS.items():
        if low.endswith(ends) and fmt not in fmts:
            want = next((e for e, f in _EXTENSIONS.items() if fmt in f), ())
            hint = f"; name it {' or '.join(want[:2])}" if want else ""
            raise WriteError(
                f"output {out!r}: its ending is for another format, but the copy is written in the "
                f"input's format ({fmt}){hint}"
            )


_WRITERS: dict[str, Callable] = {
    "pytorch-zip": _write_torch,
    "pytorch-legacy": _write_torch,
    "torchscript": _write_torchscript,
    "safetensors": _write_safetensors,
    "keras-v3": _write_keras,
    "keras-weights-h5": _write_h5,
    "keras-h5": _write_h5,
    "hdf5": _write_h5,
    "npy": _write_npy,
    "npz": _write_npz,
}
