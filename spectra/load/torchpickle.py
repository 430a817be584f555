"""Read ``torch.save`` zip archives without importing torch.

A zip-format PyTorch checkpoint is a ``<name>/data.pkl`` pickle whose tensors
point, through pickle *persistent ids* ``('storage', StorageType, key,
location, numel)``, at raw little-endian storages ``<name>/data/<key>``
(stored uncompressed). This module unpickles ``data.pkl`` with an allowlist
that admits only what ``torch.load(weights_only=True)`` needs for plain
tensors (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and
friends, ``torch.*Storage`` types, dtypes, ``torch.Size``...) and rebuilds each
tensor as a numpy array, so reading a state_dict costs milliseconds instead of
the seconds ``import torch`` takes.

Every other global is refused: names that torch's own weights-only unpickler
also admits (sparse or quantised tensors, ...) raise :class:`NeedsTorch` so
the caller can fall back to ``torch.load(weights_only=True)``; anything else
(``__main__.MyNet``, ``os.system``...) raises
:class:`~spectra.errors.UnsafeFileError` without executing anything.

Sizes are checked before anything is allocated: a member that declares more
bytes than the archive holds, a storage whose ``numel * itemsize`` exceeds its
member, or a view reaching past its storage raise
:class:`~spectra.errors.CorruptFileError`.

The mapping from state-dict names to recurrent matrices lives in
:mod:`spectra.load.torch_names`; the public readers in :mod:`spectra.load.pytorch`.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import io
import math
import os
import pickle
import zipfile
from collections import Counter, OrderedDict
from dataclasses import dataclass
from zlib import error as zlib_error

import numpy as np

from spectra.errors import CorruptFileError, UnsafeFileError

__all__ = [
    "NeedsTorch",
    "TorchDtype",
    "read_torch_zip_objects",
    "restricted_loads",
    "unpickle_torch_zip",
]

#: torch legacy storage class name -> (torch dtype name, numpy dtype string without byte order)
STORAGE_DTYPES: dict[str, tuple[str, str]] = {
    "DoubleStorage": ("float64", "f8"),
    "FloatStorage": ("float32", "f4"),
    "HalfStorage": ("float16", "f2"),
    "BFloat16Storage": ("bfloat16", "u2"),
    "LongStorage": ("int64", "i8"),
    "IntStorage": ("int32", "i4"),
    "ShortStorage": ("int16", "i2"),
    "CharStorage": ("int8", "i1"),
    "ByteStorage": ("uint8", "u1"),
    "BoolStorage": ("bool", "?"),
    "ComplexDoubleStorage": ("complex128", "c16"),
    "ComplexFloatStorage": ("complex64", "c8"),
    "UntypedStorage": ("uint8", "u1"),
}

#: torch dtype name -> numpy dtype string (bfloat16 read as raw uint16, widened later)
DTYPE_NUMPY: dict[str, str] = {
    "float64": "f8",
    "float32": "f4",
    "float16": "f2",
    "bfloat16": "u2",
    "int64": "i8",
    "int32": "i4",
    "int16": "i2",
    "int8": "i1",
    "uint8": "u1",
    "uint16": "u2",
    "uint32": "u4",
    "uint64": "u8",
    "bool": "?",
    "complex128": "c16",
    "complex64": "c8",
}

#: Aliases torch pickles dtypes under (``torch.float`` is ``torch.float32``...).
_DTYPE_ALIASES = {
    "double": "float64",
    "float": "float32",
    "half": "float16",
    "long": "int64",
    "int": "int32",
    "short": "int16",
    "cdouble": "complex128",
    "cfloat": "complex64",
}

#: Globals torch's weights-only unpickler admits but this reader does not rebuild.
_TORCH_ONLY = {
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_wrapper_subclass",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor",
    "torch.serialization._get_layout",
    "torch.per_tensor_affine",
    "torch.per_tensor_symmetric",
    "torch.per_channel_affine",
    "torch.per_channel_symmetric",
    "torch.per_channel_affine_float_qparams",
}

#: Uncompressed pickle larger than this is refused (a state_dict pickle is kilobytes).
MAX_PICKLE_BYTES = 1 << 30


class NeedsTorch(Exception):
    """The pickle is weights-only safe but uses a construct only torch can rebuild.

    ``args[0]`` names the global (e.g. ``torch._utils._rebuild_sparse_tensor``).
    Not a :class:`~spectra.errors.SpectraError`: callers catch it and fall back
    to ``torch.load(weights_only=True)``.
    """


@dataclass(frozen=True)
class TorchDtype:
    """Placeholder for a pickled ``torch.<dtype>`` (``name`` e.g. ``float32``)."""

    name: str


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _Storage:
    """A storage read from the archive: flat array plus its torch dtype name."""

    data: np.ndarray
    dtype: str
    byteorder: str = "<"


class _TensorMarker:
    """Stands for ``torch.Tensor`` / ``torch.nn.Parameter`` as a type object."""


class _DeviceMarker(str):
    """``torch.device(...)`` rebuilt as its string."""


def _device(*args: object) -> _DeviceMarker:
    return _DeviceMarker(":".join(str(a) for a in args))


def _size(*args: object) -> tuple:
    return tuple(*args) if args else ()


def _encode(obj: str, encoding: str = "utf-8") -> bytes:
    # protocol-2 pickles store bytes as _codecs.encode(str, "latin1")
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise pickle.UnpicklingError("_codecs.encode: only text encodings are allowed")
    return codecs.encode(obj, encoding)


def _bytearray(*args: object) -> bytearray:
    # bytearray(10**12) would be an allocation bomb: only copy existing bytes/text
    if args and not isinstance(args[0], (bytes, bytearray, str)):
        raise pickle.UnpicklingError("bytearray: only bytes or text arguments are allowed")
    return bytearray(*args)


class _Rebuilder:
    """Rebuild functions producing numpy arrays; records each array's torch dtype."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.dtypes: dict[int, str] = {}
        self._flats: dict[tuple[int, str | None], tuple[np.ndarray, str, _Storage]] = {}

    def _view(
        self, storage: object, offset: object, size: object, stride: object, dtype: str | None, meta=()
    ):
        if not isinstance(storage, _Storage):
            raise CorruptFileError(f"{self.path}: a tensor's storage is not an archive storage")
        try:
            offset = int(offset)  # type: ignore[arg-type]
            shape = tuple(int(s) for s in size)  # type: ignore[union-attr]
            strides = tuple(int(s) for s in stride)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise CorruptFileError(f"{self.path}: malformed tensor size/stride in data.pkl") from None
        if len(shape) != len(strides) or offset < 0 or any(s < 0 for s in shape + strides):
            raise CorruptFileError(f"{self.path}: malformed tensor size/stride in data.pkl")
        flat, tdtype = self._flat(storage, dtype)
        flat = self._with_bits(flat, meta)
        count = math.prod(shape)
        if count == 0:
            arr = np.empty(shape, dtype=flat.dtype)
        else:
            last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
            if last >= flat.size:
                raise CorruptFileError(
                    f"{self.path}: a tensor of shape {shape} at offset {offset} reaches element "
                    f"{last} of a storage holding {flat.size}"
                )
            item = flat.itemsize
            arr = np.lib.stride_tricks.as_strided(
                flat[offset:], shape=shape, strides=tuple(s * item for s in strides), writeable=False
            )
            # an expanded (stride-0) tensor far larger than its storage stays a read-only view:
            # copying it could allocate without bound
            if count <= 4 * flat.size + (1 << 20):
                arr = arr.copy()
        self.dtypes[id(arr)] = tdtype
        return arr

    def _flat(self, storage: _Storage, dtype: str | None) -> tuple[np.ndarray, str]:
        """The storage as a native-endian flat array of `dtype` (bfloat16 widened to float32)."""
        key = (id(storage), dtype)
        if key not in self._flats:
            flat, tdtype = storage.data, storage.dtype
            if dtype is not None and dtype != tdtype:  # v3: untyped storage reinterpreted
                code = DTYPE_NUMPY.get(dtype)
                if code is None:
                    raise NeedsTorch(f"torch.{dtype}")
                want = np.dtype(code).newbyteorder(storage.byteorder)
                if flat.nbytes % want.itemsize:
                    raise CorruptFileError(f"{self.path}: storage size is not a multiple of {dtype}")
                flat, tdtype = flat.view(want), dtype
            if not flat.dtype.isnative:
                flat = flat.astype(flat.dtype.newbyteorder("="))
            if tdtype == "bfloat16":
                flat = (flat.astype(np.uint32) << 16).view(np.float32)
            self._flats[key] = (flat, tdtype, storage)  # keep storage alive: ids stay unique
        flat, tdtype, _ = self._flats[key]
        return flat, tdtype

    def _with_bits(self, flat: np.ndarray, meta: tuple) -> np.ndarray:
        """The storage as the tensor reads it: torch's lazy negation and conjugation bits applied.

        ``torch.save`` writes the storage unchanged and records the bits in the tensor's metadata
        (``{"neg": True}`` for ``z.conj().imag``, ``{"conj": True}`` for ``z.conj()``);
        ``torch.load`` sets them again, so the values read are the negated/conjugated storage.
        The copy is of the storage, whose size the archive bounds.
        """
        bits = meta[0] if meta else None
        if not bits:
            return flat
        if not isinstance(bits, dict) or not set(bits) <= {"neg", "conj"}:
            raise NeedsTorch(f"tensor metadata {bits!r}")
        if bits.get("conj") and np.iscomplexobj(flat):
            flat = np.conj(flat)
        if bits.get("neg"):
            flat = np.negative(flat)
        return flat

    def rebuild_tensor(self, storage, storage_offset, size, stride):
        return self._view(storage, storage_offset, size, stride, None)

    def rebuild_tensor_v2(self, storage, storage_offset, size, stride, requires_grad, backward_hooks, *meta):
        return self._view(storage, storage_offset, size, stride, None, meta)

    def rebuild_tensor_v3(
        self, storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, *meta
    ):
        name = dtype.name if isinstance(dtype, TorchDtype) else None
        if name is None:
            raise CorruptFileError(f"{self.path}: _rebuild_tensor_v3 without a dtype")
        return self._view(storage, storage_offset, size, stride, name, meta)

    @staticmethod
    def rebuild_parameter(data, requires_grad, backward_hooks, *state):
        return data

    @staticmethod
    def rebuild_from_type_v2(func, new_type, args, state):
        if new_type is not _TensorMarker:
            raise pickle.UnpicklingError("_rebuild_from_type_v2 of a tensor subclass")
        return func(*args)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler admitting only the globals a plain tensor checkpoint needs."""

    def __init__(self, file, *, path: str, rebuilder: _Rebuilder, storages) -> None:
        super().__init__(file)
        self._path = path
        self._storages = storages
        r = rebuilder
        self._allowed: dict[str, object] = {
            "collections.OrderedDict": OrderedDict,
            "collections.Counter": Counter,
            "builtins.set": set,
            "builtins.frozenset": frozenset,
            "builtins.bytearray": _bytearray,
            "builtins.complex": complex,
            "_codecs.encode": _encode,
            "torch._utils._rebuild_tensor": r.rebuild_tensor,
            "torch._utils._rebuild_tensor_v2": r.rebuild_tensor_v2,
            "torch._utils._rebuild_tensor_v3": r.rebuild_tensor_v3,
            "torch._utils._rebuild_parameter": r.rebuild_parameter,
            "torch._utils._rebuild_parameter_with_state": r.rebuild_parameter,
            "torch._tensor._rebuild_from_type_v2": r.rebuild_from_type_v2,
            "torch.Tensor": _TensorMarker,
            "torch.nn.parameter.Parameter": _TensorMarker,
            "torch.Size": _size,
            "torch.device": _device,
        }

    def find_class(self, module: str, name: str):
        # protocol-2 pickles name Python 2 modules (``__builtin__.set``): map them as pickle does
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        full = f"{module}.{name}"
        if not all(part.isidentifier() for part in full.split(".")):
            # random bytes decoded as a GLOBAL opcode: garbage, not an attack
            raise CorruptFileError(f"{self._path}: corrupt/unreadable pickle (bad global name {full[:60]!r})")
        if full in self._allowed:
            return self._allowed[full]
        if module in ("torch", "torch.storage", "torch.cuda") and name.endswith("Storage"):
            if name in STORAGE_DTYPES:
                return _StorageType(name)
            raise NeedsTorch(full)
        if module == "torch":
            dt = _DTYPE_ALIASES.get(name, name)
            if dt in DTYPE_NUMPY:
                return TorchDtype(dt)
            if name.startswith(("float8", "float4", "uint", "int", "complex", "bits", "qint", "quint")):
                raise NeedsTorch(full)
        if full in _TORCH_ONLY:
            raise NeedsTorch(full)
        raise UnsafeFileError(
            f"{self._path}: contains arbitrary pickled objects (first disallowed global: {full}); "
            "loading it would run code from the file. If you trust its source, pass --trust-pickle "
            "(trust=True in Python)"
        )

    def persistent_load(self, pid):
        if self._storages is None:
            raise UnsafeFileError(
                f"{self._path}: pickle uses persistent ids outside a PyTorch archive; "
                "pass --trust-pickle (trust=True) only if you trust its source"
            )
        return self._storages(pid)


def restricted_loads(data: bytes, *, path: str, storages=None) -> tuple[object, dict[int, str]]:
    """Unpickle `data` through the allowlist; tensors become numpy arrays.

    Parameters
    ----------
    data : bytes
        The pickle stream.
    path : str
        File name used in error messages.
    storages : callable or None
        ``storages(pid) -> _Storage`` resolving persistent ids; None refuses them.

    Returns
    -------
    obj : object
        The unpickled object (dicts, lists, numbers, numpy arrays).
    dtypes : dict
        ``id(array) -> torch dtype name`` for every rebuilt array.

    Raises
    ------
    UnsafeFileError
        A global outside the allowlist (named in the message).
    NeedsTorch
        A weights-only construct this reader does not rebuild.
    CorruptFileError
        The stream is not a valid pickle.
    """
    rebuilder = _Rebuilder(path)
    up = _RestrictedUnpickler(io.BytesIO(data), path=path, rebuilder=rebuilder, storages=storages)
    try:
        obj = up.load()
    except (UnsafeFileError, NeedsTorch, CorruptFileError):
        raise
    except RecursionError:
        raise CorruptFileError(f"{path}: corrupt/unreadable pickle (nesting too deep)") from None
    except MemoryError:
        raise CorruptFileError(f"{path}: corrupt/unreadable pickle (absurd size)") from None
    except Exception as exc:  # any pickle-level failure on untrusted bytes
        raise CorruptFileError(f"{path}: corrupt/unreadable pickle ({type(exc).__name__}: {exc})") from None
    return obj, rebuilder.dtypes


def _check_member(path: str, info: zipfile.ZipInfo, archive_size: int, limit: int | None = None) -> None:
    """Refuse members whose declared sizes the archive cannot hold (zip bombs, lies)."""
    if info.compress_size > archive_size:
        raise CorruptFileError(
            f"{path}: corrupt archive: member {info.filename} declares {info.compress_size} bytes "
            f"but the file holds {archive_size}"
        )
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            raise CorruptFileError(f"{path}: corrupt archive: stored member {info.filename} has two sizes")
    elif info.file_size > 100 * max(info.compress_size, 1):
        raise CorruptFileError(
            f"{path}: corrupt archive: member {info.filename} inflates to {info.file_size} bytes "
            f"from {info.compress_size} (refusing a possible zip bomb)"
        )
    if limit is not None and info.file_size > limit:
        raise CorruptFileError(
            f"{path}: corrupt archive: member {info.filename} declares {info.file_size} bytes "
            f"(more than the {limit} allowed)"
        )


def unpickle_torch_zip(path: str | os.PathLike) -> tuple[object, dict[int, str]]:
    """Unpickle a ``torch.save`` zip archive without torch.

    Returns
    -------
    obj : object
        The saved object with numpy arrays in place of tensors (bfloat16 as
        float32, every other dtype as itself).
    dtypes : dict
        ``id(array) -> torch dtype name`` (``float32``, ``bfloat16``...).

    Raises
    ------
    CorruptFileError
        Not a zip, no ``data.pkl``, declared sizes the file cannot hold,
        truncated storages, malformed pickle.
    UnsafeFileError
        The pickle needs a global outside the weights-only allowlist.
    NeedsTorch
        Weights-only safe, but only torch can rebuild it (sparse, quantised...).
    """
    p = os.fspath(path)
    archive_size = os.path.getsize(p)
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptFileError(f"{p}: corrupt or truncated zip archive ({exc})") from None
    with zf:
        names = zf.namelist()
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if not pkl:
            raise CorruptFileError(f"{p}: zip archive without data.pkl (not a torch.save file)")
        pkl_name = min(pkl, key=len)
        prefix = pkl_name[: -len("data.pkl")]
        byteorder = "<"
        if prefix + "byteorder" in names:
            bo = zf.read(prefix + "byteorder")[:8]
            if bo == b"big":
                byteorder = ">"
            elif bo != b"little":
                raise CorruptFileError(f"{p}: unknown byte order record {bo!r}")
        cache: dict[str, _Storage] = {}

        def storage(pid: object) -> _Storage:
            if (
                not isinstance(pid, tuple)
                or len(pid) < 5
                or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType)
            ):
                raise CorruptFileError(f"{p}: unexpected persistent id in data.pkl: {str(pid)[:80]}")
            stype, key, numel = pid[1].name, str(pid[2]), pid[4]
            if key in cache:
                return cache[key]
            tdtype, code = STORAGE_DTYPES[stype]
            dt = np.dtype(byteorder + code) if np.dtype(code).itemsize > 1 else np.dtype(code)
            if not isinstance(numel, int) or numel < 0:
                raise CorruptFileError(f"{p}: storage {key} has invalid element count {numel!r}")
            member = f"{prefix}data/{key}"
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise CorruptFileError(f"{p}: storage {member} missing from the archive") from None
            _check_member(p, info, archive_size)
            nbytes = numel * dt.itemsize
            if nbytes > info.file_size:
                raise CorruptFileError(
                    f"{p}: storage {key} declares {numel} x {dt.itemsize} bytes but its member "
                    f"holds {info.file_size}"
                )
            try:
                with zf.open(info) as fh:
                    raw = fh.read(nbytes)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib_error) as exc:
                raise CorruptFileError(f"{p}: corrupt storage {key} ({exc})") from None
            if len(raw) != nbytes:
                raise CorruptFileError(f"{p}: storage {key} truncated ({len(raw)} of {nbytes} bytes)")
            arr = np.frombuffer(raw, dtype=dt)
            cache[key] = _Storage(arr, tdtype, byteorder)
            return cache[key]

        info = zf.getinfo(pkl_name)
        _check_member(p, info, archive_size, MAX_PICKLE_BYTES)
        try:
            data = zf.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib_error) as exc:
            raise CorruptFileError(f"{p}: corrupt data.pkl ({exc})") from None
        return restricted_loads(data, path=p, storages=storage)


def read_torch_zip_objects(path: str | os.PathLike) -> object:
    """Return the object saved in a ``torch.save`` zip archive, tensors as numpy arrays.

    The torch-free equivalent of ``torch.load(path, weights_only=True)`` for
    plain tensors: same nesting (dicts, OrderedDicts, lists), each tensor a
    contiguous numpy array of the same values (bfloat16 widened exactly to
    float32).

    Parameters
    ----------
    path : str or path-like
        A file written by ``torch.save`` (zip serialization, torch >= 1.6).

    Returns
    -------
    object
        The unpickled top-level object.

    Raises
    ------
    CorruptFileError
        Truncated or malformed archive, or sizes the file cannot hold.
    UnsafeFileError
        The pickle needs a global outside the weights-only allowlist.
    NeedsTorch
        Allowed by torch's weights-only loader but not rebuilt here
        (sparse, quantised or nested tensors).
    """
    return unpickle_torch_zip(path)[0]
