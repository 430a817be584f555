"""Read bare matrices from numpy files: :func:`read_npy` and :func:`read_npz`.

A ``.npy`` holds one array, which must be a square 2-D matrix; a ``.npz`` (a
zip of ``.npy`` members) yields every square 2-D member, the others are listed
as skipped. The arrays are taken as the column-vector ``A`` as stored
(``cell="array"``): a bare file says nothing about gates or orientation. A
``.npz`` whose names are a torch state_dict's (a ``weight_hh_l0`` or
``weight_hh`` with its ``weight_ih`` beside it) is read by torch's naming rules
instead (:func:`torch_named_checkpoint`): gates split, no square ``nn.Linear``.

Safety: pickled object arrays are never loaded (``allow_pickle=False``); the
size an array declares in its header is compared with the bytes the file (or
zip member) really holds before anything is allocated, and zip members that
declare more than :data:`MAX_NPZ_MEMBER_BYTES` or inflate beyond their
declared size are refused. HDF5 datasets live in :mod:`spectra.load.hdf5`.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import replace
from typing import IO

import numpy as np

from spectra.checkpoint import Checkpoint, RecurrentMatrix, Skipped
from spectra.errors import (
    CorruptFileError,
    NonSquareError,
    NoRecurrentWeightsError,
    SpectraError,
    UnsupportedFormatError,
)
from spectra.load.torch_names import follows_torch_names

__all__ = ["MAX_ARRAY_BYTES", "MAX_NPZ_MEMBER_BYTES", "read_npy", "read_npz"]

#: Largest array (declared shape x item size, bytes) read from a ``.npy``.
MAX_ARRAY_BYTES: int = 4 * 1024**3
#: Largest uncompressed size a ``.npz`` member may declare (zip-bomb guard).
MAX_NPZ_MEMBER_BYTES: int = 1024**3


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def _read_header(fh: IO[bytes], where: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Parse a ``.npy`` header: ``(shape, fortran_order, dtype, header_length_in_bytes)``.

    Raises
    ------
    CorruptFileError
        Bad magic or header.
    UnsupportedFormatError
        An object (pickled) dtype.
    """
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        elif version == (3, 0) and hasattr(np.lib.format, "_read_array_header"):
            shape, fortran, dtype = np.lib.format._read_array_header(fh, version)
        else:
            raise ValueError(f"unknown .npy format version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise CorruptFileError(f"{where}: corrupt .npy header ({exc})") from None
    if dtype.hasobject:
        raise UnsupportedFormatError(
            f"{where}: array of Python objects (dtype {dtype}), which needs pickle; not read "
            "(save the matrix as a numeric array)"
        )
    return tuple(int(s) for s in shape), bool(fortran), dtype, int(fh.tell())


def _declared(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return int(math.prod(shape)) * int(dtype.itemsize)


def _as_matrix(values: np.ndarray, name: str, dtype: np.dtype, note: str) -> RecurrentMatrix:
    matrix = values.astype(np.complex128 if values.dtype.kind == "c" else np.float64)
    return RecurrentMatrix(
        id=name,
        matrix=matrix,
        layer=name,
        cell="array",
        source=name,
        dtype=str(dtype),
        finite=bool(np.all(np.isfinite(matrix))),
        notes=(note,),
    )


def _square_problem(shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    if len(shape) != 2:
        return f"{len(shape)}-D array of shape {shape}, not a matrix"
    if shape[0] == 0 or shape[1] == 0:
        return f"shape {shape} is empty (no matrix)"
    if shape[0] != shape[1]:
        return f"shape {shape} is not square"
    if dtype.kind not in "biufc":
        return f"dtype {dtype} is not numeric"
    return None


def read_npy(path: str | os.PathLike) -> Checkpoint:
    """Read a ``.npy`` file holding one square matrix ``A``.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file with one ``(n, n)`` numeric array.

    Returns
    -------
    Checkpoint
        ``format="npy"``, one matrix (id = the file's base name without
        ``.npy``), converted to float64 (complex128 for complex input).

    Raises
    ------
    NonSquareError
        The array is not two-dimensional and square (the message names its shape).
    CorruptFileError
        Bad header, a header promising more bytes than the file holds, or
        more than :data:`MAX_ARRAY_BYTES`.
    UnsupportedFormatError
        An object array (would need pickle), or another non-numeric dtype.
    """
    p = os.fspath(path)
    name = os.path.basename(p)
    name = name[:-4] if name.endswith(".npy") else name
    with open(p, "rb") as fh:
        shape, _, dtype, offset = _read_header(fh, p)
        need = _declared(shape, dtype)
        have = os.fstat(fh.fileno()).st_size - offset
        if need > have:
            raise CorruptFileError(
                f"{p}: truncated .npy: header declares shape {shape} {dtype} ({_size(need)}) "
                f"but the file holds {_size(have)} of data"
            )
        if need > MAX_ARRAY_BYTES:
            raise CorruptFileError(
                f"{p}: .npy declares {_size(need)}, more than the {_size(MAX_ARRAY_BYTES)} limit"
            )
        if dtype.kind not in "biufc":
            raise UnsupportedFormatError(
                f"{p}: .npy of dtype {dtype}; a recurrent matrix must hold numbers (bool, int, float)"
            )
        problem = _square_problem(shape, dtype)
        if problem is not None:
            raise NonSquareError(f"{p}: {problem}; a recurrent matrix must be a square (n, n) array")
        fh.seek(0)
        try:
            values = np.lib.format.read_array(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise CorruptFileError(f"{p}: corrupt .npy data ({exc})") from None
    ckpt = Checkpoint(path=p, format="npy", metadata={"framework": "numpy", "dtype": str(dtype)})
    ckpt.matrices.append(
        _as_matrix(values, name, dtype, "bare .npy array, taken as the column-vector A as stored")
    )
    return ckpt


def read_npz(path: str | os.PathLike) -> Checkpoint:
    """Read every square 2-D array of a ``.npz`` archive as a matrix ``A``.

    Where the array names follow a torch state_dict's
    (:func:`spectra.load.torch_names.follows_torch_names`), they are read by
    torch's rules instead: one matrix per gate of each ``weight_hh``, and a
    square ``nn.Linear`` weight is skipped.

    Parameters
    ----------
    path : str or path-like
        A ``.npz`` file (``np.savez`` or ``np.savez_compressed``).

    Returns
    -------
    Checkpoint
        ``format="npz"``; ids are the array names (member names without
        ``.npy``); non-square, non-2-D and non-numeric members are skipped
        with the reason.

    Raises
    ------
    CorruptFileError
        Truncated zip, bad headers, a member declaring more than
        :data:`MAX_NPZ_MEMBER_BYTES` or inflating beyond its declared size.
    UnsupportedFormatError
        A member holding Python objects (would need pickle).
    NoRecurrentWeightsError
        No member is a square 2-D array, or there is no member (``np.savez(path)``).
    """
    p = os.fspath(path)
    ckpt = Checkpoint(path=p, format="npz", metadata={"framework": "numpy"})
    try:
        with zipfile.ZipFile(p) as zf:
            named = [i.filename[:-4] for i in zf.infolist() if i.filename.endswith(".npy")]
            if follows_torch_names(named):
                return _read_npz_torch_named(zf, p)
            for info in zf.infolist():
                if info.is_dir():
                    continue
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if not info.filename.endswith(".npy"):
                    ckpt.skipped.append(Skipped(key, None, "zip member that is not a .npy array"))
                    continue
                matrix, reason = _read_npz_matrix(zf, info, p, key)
                if matrix is None:
                    ckpt.skipped.append(Skipped(key, reason[1], reason[0]))
                else:
                    ckpt.matrices.append(matrix)
    except SpectraError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise CorruptFileError(
            f"{p}: corrupt or truncated .npz archive ({type(exc).__name__}: {exc})"
        ) from None
    if not ckpt.matrices and not ckpt.skipped:
        raise NoRecurrentWeightsError(f"{p}: .npz holds no arrays (an empty archive, as np.savez() writes)")
    if not ckpt.matrices:
        seen = ", ".join(f"{s.name} {s.shape}" for s in ckpt.skipped[:8])
        raise NoRecurrentWeightsError(f"{p}: .npz holds no square 2-D array ({seen})", checkpoint=ckpt)
    return ckpt


def _read_npz_torch_named(zf: zipfile.ZipFile, where: str) -> Checkpoint:
    """A ``.npz`` whose array names are a torch state_dict's, read by torch's naming rules."""
    arrays: dict[str, np.ndarray] = {}
    unreadable: list[Skipped] = []
    for info in zf.infolist():
        if info.is_dir():
            continue
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if not info.filename.endswith(".npy"):
            unreadable.append(Skipped(key, None, "zip member that is not a .npy array"))
            continue
        values, shape, problem = _read_npz_array(zf, info, where)
        if values is None:
            unreadable.append(Skipped(key, shape, problem))
        else:
            arrays[key] = values
    return torch_named_checkpoint(where, "npz", arrays, unreadable)


def torch_named_checkpoint(
    path: str, fmt: str, arrays: dict[str, np.ndarray], unreadable: list[Skipped]
) -> Checkpoint:
    """Arrays named as in a torch state_dict (a ``.npz``, a plain HDF5 file), read by torch's rules.

    :func:`spectra.load.torch_names.classify_state_dict` splits each ``weight_hh`` into its
    gates and never reports a square ``nn.Linear`` weight; each matrix gets a note saying so.
    """
    from spectra.load.pytorch import checkpoint_from_object  # numpy-only: torch is never imported

    ckpt = checkpoint_from_object(
        path, fmt, arrays, unreadable=unreadable, metadata={"framework": "numpy", "names": "torch"}
    )
    note = "array names follow torch's state_dict naming: read by its rules"
    ckpt.matrices = [replace(m, notes=(*m.notes, note)) for m in ckpt.matrices]
    return ckpt


def _read_npz_array(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, *, square: bool = False
) -> tuple[np.ndarray | None, tuple[int, ...], str]:
    """One numeric member (`square`: a square 2-D one), or ``(None, shape, reason)``.

    Raises on unsafe sizes; a member refused by its header is not read.
    """
    if info.file_size > MAX_NPZ_MEMBER_BYTES:
        raise CorruptFileError(
            f"{where}: member {info.filename} declares {_size(info.file_size)} uncompressed, more than "
            f"the {_size(MAX_NPZ_MEMBER_BYTES)} limit (refused unread)"
        )
    with zf.open(info) as fh:
        shape, fortran, dtype, offset = _read_header(fh, f"{where}:{info.filename}")
        need = _declared(shape, dtype)
        if offset + need != info.file_size:
            raise CorruptFileError(
                f"{where}: member {info.filename}: header declares shape {shape} {dtype} "
                f"({_size(need)}) but the member declares {_size(max(info.file_size - offset, 0))} of data"
            )
        problem = _square_problem(shape, dtype) if square else None
        if problem is None and dtype.kind not in "biufc":
            problem = f"dtype {dtype} is not numeric"
        if problem is not None:
            return None, shape, problem
        data = fh.read(need + 1)
    if len(data) != need:
        what = "inflates beyond" if len(data) > need else "is shorter than"
        raise CorruptFileError(f"{where}: member {info.filename} {what} its declared size")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C"), shape, ""


def _read_npz_matrix(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, key: str
) -> tuple[RecurrentMatrix | None, tuple[str, tuple[int, ...] | None]]:
    """One member as a matrix, or ``(None, (reason, shape))``; raises on unsafe sizes."""
    values, shape, problem = _read_npz_array(zf, info, where, square=True)
    if values is None:
        return None, (problem, shape)
    note = "bare .npz array, taken as the column-vector A as stored"
    return _as_matrix(values, key, values.dtype, note), ("", shape)
