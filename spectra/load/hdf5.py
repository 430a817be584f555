"""Read recurrent matrices from HDF5 files: :func:`read_hdf5`.

Every HDF5 file the dispatcher (:func:`spectra.load.load`) sniffs comes here.
This module opens the file safely with h5py, decides which layout it holds and
handles the one layout that is not Keras:

* Keras legacy ``.h5`` (tf.keras 2.x or Keras 3 ``model.save("m.h5")`` /
  ``save_weights``; attributes ``layer_names`` and ``weight_names``) and
  Keras 3 ``.weights.h5`` (groups ``layers/<class-derived name>/cell/vars/<i>``)
  are walked by :mod:`spectra.load.keras`, which knows the Keras naming and
  gate conventions;
* any other HDF5 file is read as plain arrays: every square 2-D numeric
  dataset is one matrix (``cell="array"``, id = the dataset path), or, with
  ``dataset=`` (``file.h5:/group/W_hh``), exactly that dataset; datasets named
  as in a torch state_dict (``lstm.weight_hh_l0`` with ``lstm.weight_ih_l0``
  beside it) are read by torch's naming rules instead (gates split, no square
  ``nn.Linear``).

Safety: a dataset's size is judged from its declared shape before a byte of it
is read (:data:`MAX_DATASET_BYTES`); h5py errors on truncated or garbled files
become :class:`~spectra.errors.CorruptFileError`. Neither keras nor tensorflow
is ever imported.
"""

from __future__ import annotations

import math
import os
import re

import h5py
import numpy as np

from spectra.checkpoint import Checkpoint, RecurrentMatrix, Skipped
from spectra.errors import (
    CorruptFileError,
    MatrixNotFoundError,
    NonSquareError,
    NoRecurrentWeightsError,
    SpectraError,
)
from spectra.load.arrays import torch_named_checkpoint
from spectra.load.torch_names import follows_torch_names

__all__ = ["MAX_DATASET_BYTES", "declared_nbytes", "h5_layout", "read_dataset", "read_hdf5", "refuse_reason"]

#: Largest dataset (declared shape x item size, in bytes) that is ever read;
#: larger ones are skipped, unread, with the size they declare.
MAX_DATASET_BYTES: int = 2 * 1024**3

#: Errors h5py raises on truncated, garbled or unreadable files.
H5_ERRORS: tuple[type[BaseException], ...] = (OSError, KeyError, ValueError, RuntimeError, TypeError)


def declared_nbytes(ds: h5py.Dataset) -> int:
    """Bytes a dataset declares, ``prod(shape) * itemsize``, read from its header only.

    Parameters
    ----------
    ds : h5py.Dataset
        An open dataset; nothing of its data is read.

    Returns
    -------
    int
        0 for a null dataspace.
    """
    shape = ds.shape
    if shape is None:
        return 0
    return int(math.prod(int(s) for s in shape)) * int(ds.dtype.itemsize)


def size_text(nbytes: int) -> str:
    """Human-readable size: ``'360.0 GB'``, ``'2.0 MB'``, ``'120 bytes'``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def too_large_reason(ds: h5py.Dataset) -> str | None:
    """Reason to skip `ds` unread when it declares more than :data:`MAX_DATASET_BYTES`, else None."""
    nbytes = declared_nbytes(ds)
    if nbytes > MAX_DATASET_BYTES:
        return (
            f"declares {size_text(nbytes)} (shape {tuple(ds.shape)}, {ds.dtype}); "
            f"larger than the {size_text(MAX_DATASET_BYTES)} read limit, not read"
        )
    return None


def refuse_reason(ds: h5py.Dataset) -> str | None:
    """Reason never to read `ds`, or None: oversized, or data kept outside this file.

    A dataset may declare more than :data:`MAX_DATASET_BYTES`, or keep its
    bytes in external raw files or virtual sources (other files named by the
    HDF5 file, which could be any file on this machine); none is read.
    """
    reason = too_large_reason(ds)
    if reason is not None:
        return reason
    try:
        if ds.is_virtual:
            return "virtual dataset (data mapped from other files); not read"
        if ds.id.get_create_plist().get_external_count() > 0:
            return "data stored in external raw file(s) named by the HDF5 file; not read"
    except H5_ERRORS:
        return "storage layout unreadable; not read"
    return None


def is_numeric(ds: h5py.Dataset) -> bool:
    """True when the dataset's dtype is bool, integer, float or complex (not strings or compounds)."""
    return ds.dtype.kind in "biufc"


def read_dataset(ds: h5py.Dataset, path: str) -> np.ndarray:
    """Read a whole dataset after checking its declared size.

    Parameters
    ----------
    ds : h5py.Dataset
        The dataset.
    path : str
        The file, for error messages.

    Returns
    -------
    ndarray
        The stored values, in the stored dtype.

    Raises
    ------
    CorruptFileError
        The dataset declares more than :data:`MAX_DATASET_BYTES`, or its data
        cannot be read (truncated file, bad chunk).
    """
    reason = refuse_reason(ds)
    if reason is not None:
        raise CorruptFileError(f"{path}: dataset {ds.name}: {reason}")
    try:
        return np.asarray(ds[()])
    except H5_ERRORS as exc:
        raise CorruptFileError(f"{path}: dataset {ds.name} is corrupt/unreadable ({exc})") from None


def h5_layout(f: h5py.File) -> str:
    """Name the layout of an open HDF5 file.

    Returns
    -------
    str
        ``keras-h5`` (legacy: ``layer_names`` attribute at the root or on
        ``model_weights``), ``keras-weights-h5`` (Keras 3: a ``layers`` group,
        or a root ``vars`` group and ``.../vars/<i>`` datasets as a subclassed
        model writes them) or ``hdf5`` (anything else).
    """
    legacy = ("layer_names", "layer_names0")  # Keras splits attributes over 64 kB into name0, name1...
    if any(a in f.attrs for a in legacy):
        return "keras-h5"
    mw = f.get("model_weights")
    if isinstance(mw, h5py.Group) and any(a in mw.attrs for a in legacy):
        return "keras-h5"
    if isinstance(f.get("layers"), h5py.Group):
        return "keras-weights-h5"
    if isinstance(f.get("vars"), h5py.Group) and any(
        re.search(r"(^|/)vars/\d+$", name) for name, _ in list_datasets(f)
    ):
        return "keras-weights-h5"  # a subclassed Keras 3 model: layers under attribute names
    return "hdf5"


def list_datasets(group: h5py.Group) -> list[tuple[str, h5py.Dataset]]:
    """Every dataset below `group`, as ``(path without leading '/', dataset)``, in h5py's order."""
    out: list[tuple[str, h5py.Dataset]] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            out.append((obj.name.lstrip("/"), obj))

    group.visititems(visit)
    return out


def _array_matrix(ds: h5py.Dataset, name: str, path: str) -> RecurrentMatrix:
    values = read_dataset(ds, path)
    kind_complex = values.dtype.kind == "c"
    matrix = values.astype(np.complex128 if kind_complex else np.float64)
    return RecurrentMatrix(
        id=name,
        matrix=matrix,
        layer=name,
        cell="array",
        source=name,
        dtype=str(ds.dtype),
        finite=bool(np.all(np.isfinite(matrix))),
        notes=("bare HDF5 dataset, taken as the column-vector A as stored",),
    )


def _read_torch_named(f: h5py.File, path: str, dotted: bool = False) -> Checkpoint:
    """A plain HDF5 file whose dataset names are a torch state_dict's, read by torch's naming rules.

    `dotted`: the state_dict was written as a group tree (``encoder/rnn/weight_hh_l0`` for
    ``encoder.rnn.weight_hh_l0``): the paths are read with dots (write-back maps them back).
    """
    arrays: dict[str, np.ndarray] = {}
    unreadable: list[Skipped] = []
    for path_name, ds in list_datasets(f):
        name = path_name.replace("/", ".") if dotted else path_name
        shape = tuple(ds.shape) if ds.shape is not None else None
        if not is_numeric(ds):
            unreadable.append(Skipped(name, shape, f"dtype {ds.dtype} is not numeric"))
        elif (reason := refuse_reason(ds)) is not None:
            unreadable.append(Skipped(name, shape, reason))
        else:
            arrays[name] = read_dataset(ds, path)
    return torch_named_checkpoint(path, "hdf5", arrays, unreadable)


def _torch_named_selection(f: h5py.File, path: str, dataset: str) -> Checkpoint | None:
    """``file.h5:/weight_hh_l0`` in a file of torch-named datasets: that tensor read by torch's rules.

    An LSTM's ``weight_hh_l0`` is four stacked gates (4H x H); read as one raw dataset it was
    "not square". Returns None when the file does not follow torch's names, or for a square
    dataset that is no recurrent matrix by those names (read as it is, as asked).
    """
    names = [n for n, _ in list_datasets(f)]
    if follows_torch_names(names):
        dotted, key = False, dataset
    elif len({n.replace("/", ".") for n in names}) == len(names) and follows_torch_names(
        n.replace("/", ".") for n in names
    ):
        dotted, key = True, dataset.replace("/", ".")
    else:
        return None
    full = _read_torch_named(f, path, dotted=dotted)
    chosen = [m for m in full.matrices if m.source == key]
    shape = f[dataset].shape
    if not chosen and shape is not None and len(shape) == 2 and shape[0] == shape[1] > 0:
        return None  # a square dataset asked for by name (a Linear weight, say) is read as it is
    if not chosen:
        why = next((s.reason for s in full.skipped if s.name == key), "not a recurrent matrix")
        raise MatrixNotFoundError(
            f"{path}: dataset /{dataset} is not a recurrent matrix ({why}); "
            f"the file follows torch's state_dict names: 'spectra ls {path}' lists its matrices"
        )
    ckpt = Checkpoint(path=f"{path}:/{dataset}", format="hdf5", matrices=chosen, metadata=full.metadata)
    return ckpt


def _read_generic(f: h5py.File, path: str, dataset: str | None) -> Checkpoint:
    ckpt = Checkpoint(path=path if dataset is None else f"{path}:{dataset}", format="hdf5")
    if dataset is not None:
        obj = f.get(dataset)
        if not isinstance(obj, h5py.Dataset):
            names = [n for n, _ in list_datasets(f)]
            raise MatrixNotFoundError(
                f"{path}: no dataset {dataset!r} in this HDF5 file; datasets: "
                f"{', '.join('/' + n for n in names[:20]) or '(none)'}{' ...' if len(names) > 20 else ''}"
            )
        shape = tuple(obj.shape) if obj.shape is not None else ()
        torch_named = _torch_named_selection(f, path, obj.name.lstrip("/"))
        if torch_named is not None:
            return torch_named
        if len(shape) != 2 or shape[0] != shape[1] or shape[0] == 0:
            raise NonSquareError(
                f"{path}: dataset {dataset} has shape {shape}; a recurrent matrix must be square (n, n)"
            )
        if not is_numeric(obj):
            raise NonSquareError(f"{path}: dataset {dataset} holds {obj.dtype}, not numbers")
        ckpt.matrices.append(_array_matrix(obj, obj.name.lstrip("/"), path))
        return ckpt
    names = [n for n, _ in list_datasets(f)]
    if follows_torch_names(names):
        return _read_torch_named(f, path)
    # a state_dict written as a group tree (k.replace('.', '/')): an LSTM's weights were "no square
    # dataset" and a 2-layer RNN's square weight_ih_l1 was reported as recurrent (a review)
    if len({n.replace("/", ".") for n in names}) == len(names) and follows_torch_names(
        n.replace("/", ".") for n in names
    ):
        return _read_torch_named(f, path, dotted=True)
    for name, ds in list_datasets(f):
        shape = tuple(ds.shape) if ds.shape is not None else None
        if shape is None or len(shape) != 2:
            ckpt.skipped.append(Skipped(name, shape, f"{len(shape or ())}-D dataset, not a matrix"))
        elif shape[0] != shape[1] or shape[0] == 0:
            ckpt.skipped.append(Skipped(name, shape, f"shape {shape} is not square"))
        elif not is_numeric(ds):
            ckpt.skipped.append(Skipped(name, shape, f"dtype {ds.dtype} is not numeric"))
        elif (reason := refuse_reason(ds)) is not None:
            ckpt.skipped.append(Skipped(name, shape, reason))
        else:
            ckpt.matrices.append(_array_matrix(ds, name, path))
    if not ckpt.matrices:
        seen = ", ".join(f"{s.name} {s.shape}" for s in ckpt.skipped[:8]) or "no datasets at all"
        more = " ..." if len(ckpt.skipped) > 8 else ""
        raise NoRecurrentWeightsError(
            f"{path}: HDF5 file holds no square 2-D dataset ({seen}{more})", checkpoint=ckpt
        )
    return ckpt


def read_hdf5(path: str | os.PathLike, dataset: str | None = None) -> Checkpoint:
    """Read every recurrent matrix ``A`` of an HDF5 file.

    A Keras file yields one ``(units, units)`` matrix per gate,
    ``A = recurrent_kernel[:, a:b].T`` (Keras stores ``h_{t-1} @ W`` in the
    row-vector convention; DESIGN.md, "Orientation"); a plain HDF5 file yields
    every square 2-D dataset as stored.

    Parameters
    ----------
    path : str or path-like
        An HDF5 file: Keras legacy ``.h5`` (tf.keras 2.x, Keras 3
        ``model.save("m.h5")``), Keras 3 ``.weights.h5``, or any other.
    dataset : str, optional
        A dataset path inside the file (``/group/W_hh``). For a Keras
        recurrent kernel this selects its gates; otherwise the dataset itself
        must be a square 2-D array.

    Returns
    -------
    Checkpoint
        ``format`` is ``keras-h5``, ``keras-weights-h5`` or ``hdf5``;
        ``skipped`` lists every other dataset with the reason (input kernels,
        biases, feed-forward layers, optimizer state, oversized declarations).

    Raises
    ------
    CorruptFileError
        Truncated or garbled HDF5, or a requested dataset that declares more
        than :data:`MAX_DATASET_BYTES`.
    NonSquareError
        `dataset` names an array that is not square 2-D.
    MatrixNotFoundError
        `dataset` names nothing in the file.
    NoRecurrentWeightsError
        Nothing recurrent (Keras) or no square dataset (plain HDF5).
    """
    p = os.fspath(path)
    try:
        f = h5py.File(p, "r", locking=False)  # reading never needs a lock (read-only media)
    except H5_ERRORS as exc:
        raise CorruptFileError(f"{p}: corrupt/unreadable HDF5 file ({exc})") from None
    try:
        with f:
            layout = h5_layout(f)
            if layout == "hdf5":
                return _read_generic(f, p, dataset)
            from spectra.load.keras import read_keras_h5

            if dataset is None:
                return read_keras_h5(f, p, layout=layout)
            try:
                ckpt = read_keras_h5(f, p, layout=layout)
            except NoRecurrentWeightsError:
                return _read_generic(f, p, dataset)
            key = dataset.lstrip("/")
            hits = [m for m in ckpt.matrices if m.source == key]
            if hits:
                ckpt.matrices = hits
                ckpt.path = f"{p}:{dataset}"
                return ckpt
            return _read_generic(f, p, dataset)
    except SpectraError:
        raise
    except H5_ERRORS as exc:
        raise CorruptFileError(f"{p}: corrupt/unreadable HDF5 file ({type(exc).__name__}: {exc})") from None
