"""Readers for the PyTorch family: ``torch.save`` zip and legacy files, TorchScript, safetensors.

==================  ===================================================  ===================
format              how it is read                                        imports torch?
==================  ===================================================  ===================
``pytorch-zip``     :mod:`spectra.load.torchpickle` (allowlisted pickle)   no (falls back to
                                                                          ``torch.load`` only
                                                                          for sparse/quantised)
``pytorch-legacy``  ``torch.load(weights_only=True)``                      yes
``torchscript``     ``torch.jit.load(map_location="cpu")``                 yes
``safetensors``     parsed here with numpy                                 no
bare pickle         allowlisted unpickler; arbitrary objects refused       no
==================  ===================================================  ===================

Every reader hands the unpickled object (numpy arrays in place of tensors) to
:func:`checkpoint_from_object`, which finds the state_dict inside nested
checkpoint dicts and applies the naming rules of :mod:`spectra.load.torch_names`.
Nothing in a pickle is executed unless ``trust=True``.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import sys
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from spectra.checkpoint import Checkpoint, RecurrentMatrix, Skipped
from spectra.errors import CorruptFileError, NoRecurrentWeightsError, UnsafeFileError, UnsupportedFormatError
from spectra.load.torch_names import classify_state_dict, find_tensor_mappings
from spectra.load.torchpickle import NeedsTorch, restricted_loads, unpickle_torch_zip

__all__ = [
    "checkpoint_from_object",
    "read_pickle",
    "read_pytorch_zip",
    "read_safetensors",
    "read_torchscript",
]

#: What ``torch.save(..., _use_new_zipfile_serialization=False)`` writes first:
#: protocol 2, then the LONG1 magic number 0x1950a86a20f9469cfc6c.
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C

#: safetensors dtype -> numpy dtype (little-endian); BF16 is read as uint16 and widened,
#: the float8 formats are read as bytes and decoded through :func:`float8_table`.
SAFETENSORS_DTYPES: dict[str, str] = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "F8_E4M3": "u1",
    "F8_E5M2": "u1",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}
_SAFETENSORS_NAMES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
}
MAX_SAFETENSORS_HEADER = 100_000_000


def float8_table(fmt: str) -> np.ndarray:
    """The float32 value of each of the 256 bytes of a float8 format, exactly.

    A byte is ``s eeee mmm`` (``F8_E4M3``, torch ``float8_e4m3fn``: exponent bias 7,
    no infinities, ``S.1111.111`` is NaN) or ``s eeeee mm`` (``F8_E5M2``, torch
    ``float8_e5m2``: bias 15, IEEE-like, exponent 31 is Inf or NaN); its value is
    ``(-1)^s 2^(e - bias) (1 + m/2^M)``, or ``(-1)^s 2^(1 - bias) m/2^M`` for ``e = 0``
    (Micikevicius et al. 2022, "FP8 formats for deep learning", Table 1). Every
    value is a float32 exactly.

    Parameters
    ----------
    fmt : {"F8_E4M3", "F8_E5M2"}
        The safetensors dtype.

    Returns
    -------
    (256,) ndarray of float32
        ``table[b]`` is the value of byte ``b``.
    """
    E, M = {"F8_E4M3": (4, 3), "F8_E5M2": (5, 2)}[fmt]
    bias = (1 << (E - 1)) - 1
    out = np.empty(256, dtype=np.float32)
    for b in range(256):
        e, m = (b >> M) & ((1 << E) - 1), b & ((1 << M) - 1)
        if (fmt == "F8_E4M3" and e == 15 and m == 7) or (fmt == "F8_E5M2" and e == 31 and m):
            v = math.nan
        elif fmt == "F8_E5M2" and e == 31:
            v = math.inf
        elif e == 0:
            v = math.ldexp(m, 1 - bias - M)
        else:
            v = math.ldexp((1 << M) + m, e - bias - M)
        out[b] = -v if b & 0x80 else v
    return out


_TRUST_HINT = "If you trust its source, pass --trust-pickle (trust=True in Python)"


# --------------------------------------------------------------------------- building


def _hints_at(cell_hints: Mapping[str, str] | None, path: list) -> dict[str, str]:
    """The cell hints of the mapping at key `path`.

    Keys behind ``"<path>/"`` (a whole model stored inside a dict), or, at the top
    level, those of a top-level model.
    """
    if not cell_hints:
        return {}
    pre = "".join(f"{p}/" for p in path)
    if not pre:
        return {k: v for k, v in cell_hints.items() if "/" not in k}
    return {k[len(pre) :]: v for k, v in cell_hints.items() if k.startswith(pre) and "/" not in k[len(pre) :]}


def checkpoint_from_object(
    path: str,
    fmt: str,
    obj: object,
    dtypes: Mapping[int, str] | None = None,
    *,
    cell_hints: Mapping[str, str] | None = None,
    metadata: Mapping[str, object] | None = None,
    unreadable: Sequence[Skipped] = (),
) -> Checkpoint:
    """Build a :class:`Checkpoint` from an unpickled torch checkpoint object.

    The tensor mapping holding the recurrent weights is found by walking
    dicts depth first (a bare state_dict, Lightning ``{"state_dict": ...}``,
    ``{"model_state_dict": ...}``, ``{"model": ...}``...); optimizer state is
    never searched. The mapping with the recurrent weights is reported; its
    key path is ``metadata["state_dict_path"]``. When several mappings hold
    recurrent weights (an encoder and a decoder, a model and its EMA copy),
    all are reported, each matrix's id, layer and source prefixed by its
    mapping's key path (``encoder/rnn.weight_hh_l0[input]``), and
    ``metadata["source_paths"]`` maps each such source to its key path.

    Parameters
    ----------
    path : str
        The file, for messages and ``Checkpoint.path``.
    fmt : str
        ``Checkpoint.format`` (``pytorch-zip``, ``pytorch-legacy``...).
    obj : object
        Unpickled object with numpy arrays as tensors.
    dtypes : mapping of int to str, optional
        ``id(array) -> stored torch dtype name``.
    cell_hints : mapping of str to str, optional
        Module path -> ``rnn_tanh``/``rnn_relu`` where known; for a model stored inside
        dicts the module path follows its key path (``model/rnn``).
    metadata : mapping, optional
        Extra metadata to record.
    unreadable : sequence of Skipped, optional
        Tensors the reader could not decode (an unsupported dtype): listed as
        skipped, counted and named in the error when no matrix is found.

    Returns
    -------
    Checkpoint

    Raises
    ------
    NoRecurrentWeightsError
        No readable recurrent weight; the message quotes why tensors named like
        one were refused (shape, dtype, parametrization) and names undecodable tensors,
        or says that the file holds only optimizer state (``optimizer.state_dict()``).
    """
    mappings, skipped = find_tensor_mappings(obj)
    results = []
    refused: list[Skipped] = []
    for m in mappings:
        mats, sk, ref = classify_state_dict(m.tensors, dtypes, cell_hints=_hints_at(cell_hints, m.path))
        results.append((m, mats, sk))
        where = "".join(f"{p}/" for p in m.path)
        refused.extend(Skipped(where + r.name, r.shape, r.reason) for r in ref)
    holding = [m for m, mats, _ in results if mats]
    primary = holding[0] if holding else None
    several = len(holding) > 1
    matrices: list[RecurrentMatrix] = []
    source_paths: dict[str, list] = {}
    out_skipped: list[Skipped] = []
    for m, mats, sk in results:
        where = "/".join(str(p) for p in m.path)
        pre = f"{where}/" if where and (several or m is not primary) else ""
        if mats and (several or m is primary):
            # several mappings hold recurrent weights (an encoder and a decoder, a model and its
            # EMA copy): all are reported, ids prefixed by the mapping's key path
            for mm in mats:
                if pre:
                    source_paths[pre + mm.source] = [*m.path, mm.source]
                    mm = replace(
                        mm,
                        id=pre + mm.id,
                        layer=(pre + mm.layer) if mm.layer else pre.rstrip("/"),
                        source=pre + mm.source,
                    )
                matrices.append(mm)
        out_skipped.extend(Skipped(pre + s.name, s.shape, s.reason) for s in sk)
    out_skipped.extend(skipped)
    out_skipped.extend(unreadable)
    packed = _packed_entries(obj)
    out_skipped.extend(Skipped(name, (), _PACKED_REASON) for name in packed)
    # what the file holds, for an error that finds no matrix (spectra ls still lists it)
    held = Checkpoint(
        path=path, format=fmt, skipped=out_skipped, metadata={"framework": "torch", **(metadata or {})}
    )
    if primary is None and not mappings and skipped and all(s.reason == "optimizer state" for s in skipped):
        # torch.save(optimizer.state_dict(), f): moments and step counts keyed by parameter number
        raise NoRecurrentWeightsError(
            f"{path}: no recurrent weight matrix found: the file holds only an optimizer's state "
            f"(optimizer.state_dict(): {len(skipped)} tensors of moments and step counts, e.g. "
            f"{skipped[0].name}; no model weights); give the model's state_dict instead "
            "(torch.save(model.state_dict(), 'm.pt')), or a checkpoint that holds it beside the optimizer's",
            checkpoint=held,
        )
    if primary is None:
        n = sum(len(m.tensors) for m in mappings) + len(skipped) + len(unreadable)
        examples = [(s.name, s.shape) for s in out_skipped[:3]]
        eg = ", ".join(f"{k}: {s}" for k, s in examples)
        # a tensor named like a recurrent weight but refused (its shape, dtype, parametrization),
        # or one the reader could not decode, says why
        near = [*refused, *sorted(unreadable, key=lambda s: "weight_hh" not in s.name)]
        why = "; ".join(f"{s.name} {s.shape}: {s.reason}" for s in near[:3])
        if len(near) > 3:
            why += f" (and {len(near) - 3} more)"
        custom = _square_names(mappings, _CUSTOM_RECURRENT)
        square = "" if custom else _square_names(mappings)
        if custom or square:
            what = (
                "named like a hand-written recurrence"
                if custom
                else "not named like a torch recurrent weight"
            )
            why = (why + "; " if why else "") + (
                f"square tensors {what} ({custom or square}) are not read: only "
                "torch's RNN/LSTM/GRU and cell names are known; save the matrix with numpy "
                "(np.save('W.npy', W)) and analyse the .npy"
            )
        if packed:
            why = (why + "; " if why else "") + (
                f"the file holds dynamically quantized layers (packed parameters, e.g. {packed[0]!r}), "
                "which are not read: analyse the float model from before quantize_dynamic"
            )
        raise NoRecurrentWeightsError(
            f"{path}: no recurrent weight matrix found ({n} tensors{', e.g. ' + eg if eg else ''})"
            + (f"; {why}" if why else ""),
            checkpoint=held,
        )
    rnn_packed = [k for k in packed if "_all_weight_values" in k]
    if rnn_packed:  # a partly quantized model: the quantized LSTM/GRU would vanish from the analysis
        warnings.warn(
            f"{path}: dynamically quantized recurrent layers are not read ({rnn_packed[0]}"
            f"{f' and {len(rnn_packed) - 1} more' if len(rnn_packed) > 1 else ''}): analyse the float "
            "model from before quantize_dynamic",
            RuntimeWarning,
            stacklevel=2,
        )
    dups = sorted(i for i, c in Counter(mm.id for mm in matrices).items() if c > 1)
    if dups:  # mapping keys holding "/" can make two mappings' prefixed ids equal
        raise UnsupportedFormatError(
            f"{path}: matrix ids collide ({', '.join(dups[:3])}{'...' if len(dups) > 3 else ''}): the "
            "key paths of two tensor mappings give the same prefixed id (a key containing '/'?)"
        )
    meta: dict = {"framework": "torch", "state_dict_path": list(primary.path)}
    if len(mappings) > 1:
        meta["tensor_mappings"] = [list(m.path) for m in mappings]
    if several:
        meta["state_dict_path"] = []
        meta["source_paths"] = source_paths
    if isinstance(obj, Mapping):
        for k in ("epoch", "global_step", "step"):
            v = obj.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                meta[k] = v
    if metadata:
        meta.update(metadata)
    return Checkpoint(path=path, format=fmt, matrices=matrices, skipped=out_skipped, metadata=meta)


#: names of a hand-written recurrence's hidden-to-hidden matrix (W_hh, h2h, U_z/U_r/U_h of a GRU,
#: rec, recurrent...); a bare U is left out (an SVD factor, a projection)
_CUSTOM_RECURRENT = re.compile(
    r"(?i)(^|[._])(w_?hh|h2h|hh|u_[zrhfioc]|w_?rec|rec|recurrent(_weight|_kernel)?|rec_weight)$"
)


def _square_names(mappings, named: re.Pattern | None = None) -> str:
    """``"W_hh: (64, 64)"`` for square 2-D tensors (named like a custom cell's recurrent matrix)."""
    hits = []
    for m in mappings:
        for k, t in m.tensors.items():
            shape = getattr(t, "shape", ())
            if (
                len(shape) == 2
                and shape[0] == shape[1] > 1
                and (named is None or named.search(k.rsplit(".weight", 1)[0]))
                # unnamed: bare parameters only, not a module's weight (fc.weight: a Linear layer)
                and (named is not None or k.rsplit(".", 1)[-1] != "weight")
            ):
                hits.append(f"{k}: ({shape[0]}, {shape[1]})")
    return ", ".join(hits[:3]) + (" ..." if len(hits) > 3 else "")


_PACKED_REASON = (
    "packed parameters of a dynamically quantized layer (quantize_dynamic), not read: analyse the "
    "float model from before quantize_dynamic"
)


def _packed_entries(obj: object, prefix: str = "", depth: int = 0) -> list[str]:
    """Key paths of quantized layers' packed parameters.

    ``quantize_dynamic`` stores an LSTM/GRU as ``<layer>._all_weight_values.<k>.param``, opaque
    objects holding no tensor this reader sees (a Linear's ``_packed_params._packed_params`` is a
    tuple whose tensors are listed on their own).
    """
    if depth > 20 or not isinstance(obj, Mapping):
        return []
    hits: list[str] = []
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(k, str) and not isinstance(v, (np.ndarray, Mapping, list, tuple)):
            if ("_all_weight_values" in k and k.endswith("param")) or k.endswith(
                "_packed_params._packed_params"
            ):
                hits.append(name)
                continue
        hits.extend(_packed_entries(v, f"{name}/", depth + 1))
    return hits


# --------------------------------------------------------------------------- torch helpers


def _import_torch():
    import torch

    torch.set_num_threads(1)
    return torch


def _from_torch(obj: object, dtypes: dict[int, str], depth: int = 0) -> object:
    """Replace torch tensors (and modules, by their state_dict) with numpy arrays."""
    torch = sys.modules.get("torch")
    if depth > 100:
        return obj
    if torch is not None:
        if isinstance(obj, torch.nn.Module):
            # a stand-in for an unimportable dict subclass (EasyDict, yacs CfgNode) holds its items
            items = obj.__dict__.get("_stand_in_items")
            obj = obj.state_dict()
            if items:
                obj = {**items, **obj}
        elif isinstance(obj, torch.Tensor):
            if obj.is_meta:
                raise UnsupportedFormatError(
                    "a tensor is on the 'meta' device: it has a shape but no values (the model was "
                    "built under torch.device('meta') and saved before its weights were loaded)"
                )
            t = obj.detach().cpu()
            name = str(t.dtype).removeprefix("torch.")  # the stored dtype (qint8, float8_e4m3fn...)
            if t.is_quantized:  # reported as stored, read as torch dequantizes it (scale, zero point)
                t = t.dequantize()
            if t.layout != torch.strided:
                t = t.to_dense()
            if t.dtype == torch.bfloat16:
                t = t.float()
            if type(obj).__name__ == "DTensor":  # FSDP2 / tensor parallel: one rank's shard
                raise UnsupportedFormatError(
                    "the weights are DTensors (FSDP2 or tensor-parallel shards, one rank's piece): save a "
                    "full state_dict (torch.distributed.checkpoint.state_dict.get_model_state_dict with "
                    "StateDictOptions(full_state_dict=True)) and analyse that"
                )
            try:
                arr = t.numpy().copy()
            except TypeError:  # float8 and other dtypes numpy lacks: widen exactly to float32
                arr = t.to(torch.float32).numpy().copy()
            dtypes[id(arr)] = name
            return arr
    if isinstance(obj, Mapping):
        return {k: _from_torch(v, dtypes, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if type(obj) in (list, tuple):
            return type(obj)(_from_torch(v, dtypes, depth + 1) for v in obj)
    return obj


def _unsupported_global(msg: str) -> str | None:
    for marker in (
        "Unsupported global: GLOBAL ",
        "Trying to load unsupported GLOBAL ",
        "Unsupported global: ",
    ):
        i = msg.find(marker)
        if i >= 0:
            rest = msg[i + len(marker) :].split()
            return rest[0].rstrip(".,") if rest else None
    return None


def _stand_in_pickle(torch, missing: list[str]):
    """A ``pickle_module`` for ``torch.load`` that replaces classes it cannot import by stand-ins.

    ``torch.save(model)`` pickles the model's class by reference (``__main__.Net`` when it
    was defined in the training script); the stand-in is an ``nn.Module`` that takes the
    pickled state (``_parameters``, ``_modules``...), so its ``state_dict()`` holds the
    weights. Only used on trusted files (``torch.load(weights_only=False)`` already runs
    code from them).
    """
    import types

    def stand_in(module: str, name: str):
        def setstate(self, state):
            if isinstance(state, dict) and "_parameters" in state:
                torch.nn.Module.__setstate__(self, state)
            else:
                torch.nn.Module.__init__(self)
                self.__dict__["_stand_in_state"] = state

        def init(self, *args, **kwargs):
            torch.nn.Module.__init__(self)

        def setitem(self, key, value):  # the class was a dict subclass (EasyDict, CfgNode, ...)
            if "_parameters" not in self.__dict__:
                torch.nn.Module.__init__(self)
            self.__dict__.setdefault("_stand_in_items", {})[key] = value

        def append(self, value):  # ... or a list subclass
            if "_parameters" not in self.__dict__:
                torch.nn.Module.__init__(self)
            items = self.__dict__.setdefault("_stand_in_items", {})
            items[str(len(items))] = value

        def extend(self, values):
            for v in values:
                append(self, v)

        body = {"__init__": init, "__setstate__": setstate, "__module__": module, "__setitem__": setitem}
        body.update(append=append, extend=extend)
        return type(name, (torch.nn.Module,), body)

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            try:
                return super().find_class(module, name)
            except (AttributeError, ImportError):
                missing.append(f"{module}.{name}")
                return stand_in(module, name)

    def load(file, **kwargs):
        return Unpickler(file, **kwargs).load()

    return types.SimpleNamespace(Unpickler=Unpickler, load=load, __name__="pickle")


def _module_cell_hints(torch, obj: object) -> dict[str, str]:
    """``{"rnn": "rnn_relu"}`` from the ``nn.RNN``/``nn.RNNCell`` modules of the whole models in `obj`.

    A model at the top level gives its module paths; one inside dicts or lists (``{"model":
    model, "ema": ema}``) gives them behind its key path (``model/rnn``), as
    :func:`checkpoint_from_object` looks them up for the mapping found there.
    """
    hints: dict[str, str] = {}

    def walk(node: object, path: list, depth: int) -> None:
        if depth > 50:
            return
        if isinstance(node, torch.nn.Module):
            pre = "".join(f"{p}/" for p in path)
            for name, sub in node.named_modules():
                if isinstance(sub, (torch.nn.RNN, torch.nn.RNNCell)) and getattr(
                    sub, "nonlinearity", None
                ) in ("tanh", "relu"):
                    hints[pre + name] = f"rnn_{sub.nonlinearity}"
        elif isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, [*path, k], depth + 1)
        elif type(node) in (list, tuple):
            for i, v in enumerate(node):
                walk(v, [*path, i], depth + 1)

    walk(obj, [], 0)
    return hints


def _quiet_torch_deprecations() -> None:
    """Inside ``warnings.catch_warnings()``: hide torch's own deprecation notices on reading a file.

    Rebuilding a qint8 tensor (``torch.quantize_per_tensor``...) or a legacy storage
    (``TypedStorage``) makes torch warn that *it* will drop these APIs: nothing the user
    can act on, and not about their file.
    """
    warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.*deprecated", category=UserWarning)
    warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning)


def _torch_load(path: str, *, weights_only: bool) -> tuple[object, dict[int, str], dict[str, str]]:
    """``torch.load`` with errors mapped to the spectra family.

    Returns the object with tensors as numpy arrays, their stored dtypes, and cell hints
    (``{"rnn": "rnn_relu"}``) from the ``nn.RNN`` modules of a whole pickled model, whose
    nonlinearity a state_dict does not record.
    """
    torch = _import_torch()
    missing: list[str] = []
    try:
        with warnings.catch_warnings():  # our own message says what torch's warning would
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            _quiet_torch_deprecations()
            try:
                obj = torch.load(path, map_location="cpu", weights_only=weights_only)
            except (AttributeError, ImportError):
                if weights_only:
                    raise
                # a pickled class that cannot be imported here (defined in the training script)
                obj = torch.load(
                    path,
                    map_location="cpu",
                    weights_only=False,
                    pickle_module=_stand_in_pickle(torch, missing),
                )
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        name = _unsupported_global(msg)
        if weights_only and (name or "Can only create new object" in msg or "Trying to call reduce" in msg):
            raise UnsafeFileError(
                f"{path}: contains arbitrary pickled objects (first disallowed global: {name or '?'}); "
                f"loading it would run code from the file. {_TRUST_HINT}"
            ) from None
        with open(path, "rb") as f:
            proto = f.read(2)[1:]
        if weights_only and "Unsupported operand" in msg and proto and proto[0] > 2:
            raise UnsafeFileError(
                f"{path}: a legacy torch.save file written with pickle protocol {proto[0]}, which "
                f"torch's weights-only loader cannot read; loading it means trusting the file. {_TRUST_HINT}"
            ) from None
        raise CorruptFileError(
            f"{path}: corrupt/unreadable PyTorch file ({(msg.splitlines() or [''])[0][:200]})"
        ) from None
    except MemoryError:
        raise CorruptFileError(f"{path}: corrupt/unreadable PyTorch file (absurd sizes)") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ValueError... on bad bytes
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise CorruptFileError(
            f"{path}: corrupt/unreadable PyTorch file ({type(exc).__name__}: {first})"
        ) from None
    dtypes: dict[int, str] = {}
    hints = _module_cell_hints(torch, obj)
    try:
        with warnings.catch_warnings():
            _quiet_torch_deprecations()
            out = _from_torch(obj, dtypes)
    except UnsupportedFormatError as exc:
        raise UnsupportedFormatError(f"{path}: {exc}") from None
    if missing:
        warnings.warn(
            f"{path}: classes not importable here were read as plain modules (their weights kept): "
            + ", ".join(sorted(set(missing))),
            RuntimeWarning,
            stacklevel=3,
        )
    return out, dtypes, hints


# --------------------------------------------------------------------------- readers


def read_pytorch_zip(path: str | os.PathLike, *, trust: bool) -> Checkpoint:
    """Read a ``torch.save`` zip archive (torch >= 1.6 default format).

    Plain tensors are read without importing torch
    (:func:`spectra.load.torchpickle.unpickle_torch_zip`). Sparse, quantised
    or nested tensors fall back to ``torch.load(weights_only=True)``. A whole
    pickled model (``torch.save(model)``) needs `trust`; then
    ``torch.load(weights_only=False)`` runs and each ``nn.Module`` is replaced
    by its ``state_dict()``.

    Parameters
    ----------
    path : str or path-like
        The archive (content already sniffed as a PyTorch zip).
    trust : bool
        Allow arbitrary pickled objects (runs code from the file).

    Returns
    -------
    Checkpoint
        ``format="pytorch-zip"``; ``metadata["state_dict_path"]`` locates the
        state_dict, ``metadata["reader"]`` says ``torch-free`` or ``torch``.

    Raises
    ------
    UnsafeFileError
        Arbitrary pickled objects and `trust` false (names the first global).
    CorruptFileError
        Truncated archive, sizes the file cannot hold, malformed pickle.
    NoRecurrentWeightsError
        Readable, but no tensor named like a torch recurrent weight.
    """
    p = os.fspath(path)
    reader = "torch-free"
    hints: dict[str, str] = {}
    try:
        obj, dtypes = unpickle_torch_zip(p)
    except NeedsTorch:
        obj, dtypes, hints = _torch_load(p, weights_only=not trust)
        reader = "torch"
    except UnsafeFileError:
        if not trust:
            raise
        obj, dtypes, hints = _torch_load(p, weights_only=False)
        reader = "torch (trusted)"
    return checkpoint_from_object(
        p, "pytorch-zip", obj, dtypes, cell_hints=hints, metadata={"reader": reader}
    )


def _is_legacy_torch(path: str) -> bool:
    """True when the first pickle in the file is torch's legacy magic number (any protocol)."""
    with open(path, "rb") as f:
        head = f.read(256)
    if head.startswith(LEGACY_MAGIC):
        return True
    try:  # allowlisted unpickler: a global in the head is refused, never called
        first, _ = restricted_loads(head, path=path, storages=None)
    except Exception:  # incomplete, garbled or unsafe: not the magic number
        return False
    return isinstance(first, int) and not isinstance(first, bool) and first == LEGACY_MAGIC_NUMBER


def read_pickle(path: str | os.PathLike, *, trust: bool) -> Checkpoint:
    """Read a pickle file: the legacy (pre-zip) ``torch.save`` format or a bare pickle.

    The legacy format (first object: the magic number
    ``0x1950a86a20f9469cfc6c``) is read with ``torch.load(weights_only=True)``
    (``weights_only=False`` when `trust`). Any other pickle goes through the
    allowlisted unpickler (plain containers only) and is refused at its first
    global unless `trust`, in which case ``pickle.load`` runs.

    Parameters
    ----------
    path : str or path-like
        The file (content already sniffed as a pickle).
    trust : bool
        Allow arbitrary pickled objects (runs code from the file).

    Returns
    -------
    Checkpoint
        ``format="pytorch-legacy"`` or ``"pickle"``.

    Raises
    ------
    UnsafeFileError
        The pickle needs globals outside the allowlist and `trust` is false.
    CorruptFileError
        Truncated or garbled pickle.
    NoRecurrentWeightsError
        Readable, but no recurrent weight.
    """
    p = os.fspath(path)
    if _is_legacy_torch(p):
        obj, dtypes, hints = _torch_load(p, weights_only=not trust)
        reader = "torch" if not trust else "torch (trusted)"
        return checkpoint_from_object(
            p, "pytorch-legacy", obj, dtypes, cell_hints=hints, metadata={"reader": reader}
        )
    if trust:
        try:
            with open(p, "rb") as f:
                obj = pickle.load(f)  # noqa: S301 - the user asked to trust this file
        except Exception as exc:
            raise CorruptFileError(f"{p}: corrupt/unreadable pickle ({type(exc).__name__}: {exc})") from None
        dtypes: dict[int, str] = {}
        obj = _from_torch(obj, dtypes)
        return checkpoint_from_object(p, "pickle", obj, dtypes, metadata={"reader": "pickle (trusted)"})
    with open(p, "rb") as f:
        data = f.read()
    try:
        obj, dtypes = restricted_loads(data, path=p, storages=None)
    except NeedsTorch as exc:
        raise UnsafeFileError(
            f"{p}: a bare pickle (not a torch.save file) that contains arbitrary pickled objects "
            f"(first disallowed global: {exc.args[0]}). {_TRUST_HINT}"
        ) from None
    return checkpoint_from_object(p, "pickle", obj, dtypes, metadata={"reader": "torch-free"})


def read_torchscript(path: str | os.PathLike, *, trust: bool) -> Checkpoint:
    """Read a TorchScript archive (``torch.jit.save``) through ``torch.jit.load``.

    Loading deserialises TorchScript code and constants but runs no Python
    pickle of arbitrary objects and no ``forward``; `trust` is accepted for a
    uniform signature and does not change anything. The named parameters come
    from ``state_dict()``; ``nn.RNN`` submodules record their nonlinearity
    (``mode`` ``RNN_TANH``/``RNN_RELU``), ``nn.RNNCell`` theirs as
    ``nonlinearity``, reported as cell ``rnn_tanh`` / ``rnn_relu``.

    Parameters
    ----------
    path : str or path-like
        The archive (content already sniffed as TorchScript).
    trust : bool
        Unused (see above).

    Returns
    -------
    Checkpoint
        ``format="torchscript"``.

    Raises
    ------
    CorruptFileError
        ``torch.jit.load`` cannot read it.
    NoRecurrentWeightsError
        No recurrent weight among its parameters.
    """
    del trust
    p = os.fspath(path)
    torch = _import_torch()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*torch.jit.load.* is deprecated", category=DeprecationWarning
            )
            module = torch.jit.load(p, map_location="cpu")
    except Exception as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise CorruptFileError(
            f"{p}: corrupt/unreadable TorchScript archive ({type(exc).__name__}: {first})"
        ) from None
    hints: dict[str, str] = {}
    for name, sub in module.named_modules():
        try:
            mode = getattr(sub, "mode", None)
        except Exception:  # scripted attribute access can raise on odd modules
            mode = None
        if mode in ("RNN_TANH", "RNN_RELU"):
            hints[name] = mode.lower()
        elif getattr(sub, "original_name", None) == "RNNCell":  # records nonlinearity, not mode
            try:
                act = getattr(sub, "nonlinearity", None)
            except Exception:
                act = None
            if act in ("tanh", "relu"):
                hints[name] = f"rnn_{act}"
    dtypes: dict[int, str] = {}
    obj = _from_torch(dict(module.state_dict()), dtypes)
    try:
        return checkpoint_from_object(
            p, "torchscript", obj, dtypes, cell_hints=hints, metadata={"reader": "torch.jit"}
        )
    except NoRecurrentWeightsError as exc:
        if not _frozen_torchscript(p):
            raise
        raise NoRecurrentWeightsError(
            f"{exc}; the archive is frozen TorchScript (torch.jit.freeze or "
            "torch.jit.optimize_for_inference): the weights are inlined into the code as unnamed "
            "constants, which are not read: save the module before freezing "
            "(torch.jit.save(torch.jit.script(model), 'm.pt')) or its state_dict "
            "(torch.save(model.state_dict(), 'm.pt')) and analyse that",
            checkpoint=exc.checkpoint,
        ) from None


def _frozen_torchscript(path: str) -> bool:
    """True when a TorchScript archive keeps tensors as constants (``<name>/constants/<k>``).

    ``torch.jit.freeze`` inlines the parameters into the code (``CONSTANTS.c0``...), stored
    as constants; an archive that is not frozen keeps them in ``data/`` with their names.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return any(re.search(r"(^|/)constants/\d+$", n) for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_safetensors(path: str | os.PathLike) -> Checkpoint:
    """Read a ``.safetensors`` file with numpy only.

    Layout (huggingface/safetensors format spec): an 8-byte little-endian
    header length ``N``, a JSON header of ``N`` bytes mapping each name to
    ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to
    the byte after the header), then the raw little-endian data. Every offset
    and size is checked against the file before anything is read; BF16 and
    the float8 formats (``F8_E4M3``, ``F8_E5M2``) are widened exactly to float32.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    Checkpoint
        ``format="safetensors"``, ``metadata["state_dict_path"] == []``.

    Raises
    ------
    CorruptFileError
        Header length beyond the file, malformed JSON, offsets outside the
        data, or sizes that do not match ``prod(shape) * itemsize``.
    NoRecurrentWeightsError
        No tensor named like a torch recurrent weight.
    """
    p = os.fspath(path)
    size = os.path.getsize(p)
    tensors: dict[str, np.ndarray] = {}
    dtypes: dict[int, str] = {}
    unreadable: list[Skipped] = []
    with open(p, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CorruptFileError(f"{p}: corrupt safetensors file (shorter than its 8-byte header length)")
        n = int.from_bytes(raw, "little")
        if n > size - 8 or n > MAX_SAFETENSORS_HEADER:
            raise CorruptFileError(
                f"{p}: corrupt safetensors file: header length {n} exceeds the file size ({size} bytes)"
                if n > size - 8
                else f"{p}: corrupt safetensors file: header length {n} above the limit "
                f"{MAX_SAFETENSORS_HEADER}"
            )
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise CorruptFileError(f"{p}: corrupt safetensors header ({exc})") from None
        if not isinstance(header, dict):
            raise CorruptFileError(f"{p}: corrupt safetensors header (not a JSON object)")
        base, data_size = 8 + n, size - 8 - n
        meta = header.pop("__metadata__", None)
        entries = []
        for name, spec in header.items():
            try:
                dt, shape, (begin, end) = spec["dtype"], spec["shape"], spec["data_offsets"]
                shape = tuple(shape)
                ok = all(
                    isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in (*shape, begin, end)
                )
            except (TypeError, KeyError, ValueError):
                ok = False
            if not ok or not isinstance(dt, str):
                raise CorruptFileError(f"{p}: corrupt safetensors header entry {name!r}: {str(spec)[:120]}")
            if not begin <= end <= data_size:
                raise CorruptFileError(
                    f"{p}: corrupt safetensors file: tensor {name!r} at bytes [{begin}, {end}) "
                    f"but the data section holds {data_size} bytes"
                )
            code = SAFETENSORS_DTYPES.get(dt)
            if code is None:
                unreadable.append(Skipped(name, shape, f"unsupported safetensors dtype {dt}"))
                continue
            nbytes = math.prod(shape) * np.dtype(code).itemsize
            if nbytes != end - begin:
                raise CorruptFileError(
                    f"{p}: corrupt safetensors file: tensor {name!r} of shape {shape} and dtype {dt} "
                    f"needs {nbytes} bytes, offsets give {end - begin}"
                )
            entries.append((name, dt, code, shape, begin, nbytes))
        for name, dt, code, shape, begin, nbytes in entries:
            f.seek(base + begin)
            buf = f.read(nbytes)
            if len(buf) != nbytes:
                raise CorruptFileError(f"{p}: corrupt safetensors file: tensor {name!r} truncated")
            arr = np.frombuffer(buf, dtype=code).reshape(shape)
            if dt == "BF16":
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            elif dt.startswith("F8_"):
                arr = float8_table(dt)[arr]
            else:
                arr = arr.astype(arr.dtype.newbyteorder("="), copy=True)
            tensors[name] = arr
            dtypes[id(arr)] = _SAFETENSORS_NAMES[dt]
    extra: dict[str, object] = {"reader": "torch-free"}
    if isinstance(meta, dict):
        extra["safetensors_metadata"] = meta
    return checkpoint_from_object(p, "safetensors", tensors, dtypes, metadata=extra, unreadable=unreadable)
