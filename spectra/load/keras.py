"""Read Keras checkpoints: ``.keras`` archives and the Keras HDF5 layouts.

Three layouts, read with :mod:`zipfile` and :mod:`h5py` only (keras and
tensorflow are never imported):

* Keras 3 ``.keras`` zip (:func:`read_keras_v3`): ``config.json`` (layer
  classes, user names, ``units``, ``reset_after``, Bidirectional wrappers,
  nested models), ``metadata.json`` and the weights in the
  ``model.weights.h5`` member, laid out as below;
* Keras 3 ``.weights.h5``: ``layers/<class-derived name>/cell/vars/<i>``
  (``lstm``, ``lstm_1``, ``bidirectional/forward_layer/...``), the user's
  layer name in the ``name`` attribute of each ``vars`` group (recent Keras)
  or, in a ``.keras`` archive, recovered from ``config.json``;
* legacy HDF5 (tf.keras 2.x ``model.save``/``save_weights``, Keras 3
  ``model.save("m.h5")``): attributes ``layer_names``/``weight_names``,
  weights under ``model_weights/<layer>/<weight name>``.

Conventions (DESIGN.md). ``recurrent_kernel`` is ``(units, gates*units)`` in
the row-vector convention ``h_{t-1} @ W``, so each gate's matrix of the
column-vector recurrence ``h_t = f(A h_{t-1} + B x_t + b)`` is
``A = W[:, a:b].T`` (``block=(a, b)``, ``transposed=True``). Gate orders:
LSTM ``(i, f, c, o)``, GRU ``(z, r, h)``; SimpleRNN has one matrix.
Ids, always with the user's layer names (never the class-derived HDF5 group
names): ``<layer>/recurrent_kernel[<gate>]`` (``rnn/recurrent_kernel`` for a
SimpleRNN), ``<bidirectional>/<forward_x|backward_x>/recurrent_kernel[<gate>]``
(the wrapped layers' own names, ``forward_lstm``/``backward_lstm`` by
default), ``<rnn>/<cell name>/recurrent_kernel[...]`` for the cells of an
``RNN([cell, ...])`` (StackedRNNCells: the user's cell name, or for a cell
Keras named the name a Keras 3 archive gives it, the snake-cased class
numbered over the stack's cells of that class, ``lstm_cell``, ``lstm_cell_1``)
and ``<model>/<layer>/...`` inside nested models. Layers kept in a list or
dict attribute of a subclassed model or layer are named by their own names
(``self.blocks = [GRU(name="blk0")]`` gives ``blk0/...``: the attribute is not
a layer, and legacy files do not record it). ``RecurrentMatrix.layer`` is the
user's layer (the Bidirectional or RNN wrapper for its parts); ``layer_index``
counts those layers in model order. The three layouts of one model give the
same ids, matrices and fields, except that a weights-only ``.weights.h5``
cannot know ``go_backwards`` of a stand-alone layer (reported ``forward``),
and that the files of a subclassed model record no model order:
``.keras``/``.weights.h5`` list its layers in an order taken from how Keras
saved them (by attribute name), legacy ``.h5`` in ``model.layers`` order, so
the order of matrices and ``layer_index`` may differ there. Sharded weights
(``save_weights("m.weights.json", max_shard_size=...)``) are not read: the
index and a shard beside it are refused; a later shard alone (no model
``vars`` group) is read with a warning, the first alone looks like a whole file.

HDF5 opening, size limits and plain datasets live in :mod:`spectra.load.hdf5`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import h5py
import numpy as np

from spectra.checkpoint import GATE_NAMES, Checkpoint, RecurrentMatrix, Skipped
from spectra.errors import CorruptFileError, NoRecurrentWeightsError, SpectraError, UnsupportedFormatError
from spectra.load.hdf5 import (
    H5_ERRORS,
    is_numeric,
    list_datasets,
    read_dataset,
    refuse_reason,
    size_text,
    too_large_reason,
)

__all__ = ["MAX_CONFIG_BYTES", "MAX_WEIGHTS_MEMBER_BYTES", "read_keras_h5", "read_keras_v3"]

#: Largest ``model.weights.h5`` member (declared uncompressed size) copied out of a ``.keras`` archive.
MAX_WEIGHTS_MEMBER_BYTES: int = 4 * 1024**3
#: Largest ``config.json`` / ``metadata.json`` member read.
MAX_CONFIG_BYTES: int = 64 * 1024**2
#: Copy chunk when extracting the weights member.
_CHUNK = 1 << 20

#: Keras layer or cell class -> our cell name.
_CLASS_CELL: dict[str, str] = {
    "LSTM": "lstm",
    "LSTMCell": "lstm",
    "CuDNNLSTM": "lstm",
    "GRU": "gru",
    "GRUCell": "gru",
    "CuDNNGRU": "gru",
    "SimpleRNN": "simple_rnn",
    "SimpleRNNCell": "simple_rnn",
}
#: Gates per cell (columns of recurrent_kernel = gates * units).
_CELL_GATES: dict[str, int] = {"lstm": 4, "gru": 3, "simple_rnn": 1}
_GATES_CELL: dict[int, str] = {v: k for k, v in _CELL_GATES.items()}


@dataclass
class _Kernel:
    """Where one recurrent kernel lives and what the file says about its layer."""

    source: str  # dataset path in the HDF5 file, without leading '/'
    id_prefix: str  # user names joined by '/', e.g. 'bi/forward_lstm'
    layer: str  # the user's layer (the Bidirectional wrapper for both directions)
    direction: str = "forward"
    cell: str | None = None  # from the config or Keras's own class-derived names
    reset_after: bool | None = None
    bias: str | None = None  # dataset path of the cell's bias, if any
    notes: tuple[str, ...] = ()  # how the kernel was told from the cell's other variables


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _texts(value: object) -> list[str]:
    """Decode an HDF5 string-array attribute (bytes or str items) to a list of str."""
    if value is None:
        return []
    arr = np.asarray(value)
    if arr.dtype.kind not in "OSU":
        return []  # an empty list is stored as float64 []
    return [_text(v) for v in arr.ravel().tolist()]


def _attr_texts(obj: h5py.Group, name: str) -> list[str]:
    """A string-list attribute, also when Keras split it into ``name0``, ``name1``... (over 64 kB)."""
    if name in obj.attrs:
        return _texts(obj.attrs[name])
    out: list[str] = []
    k = 0
    while f"{name}{k}" in obj.attrs:
        out += _texts(obj.attrs[f"{name}{k}"])
        k += 1
    return out


def _snake(name: str) -> str:
    """Keras's ``naming.to_snake_case``: ``SimpleRNN`` -> ``simple_rnn``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _cell_from_keras_name(name: str) -> str | None:
    """Cell from a Keras-generated (class-derived) name: ``lstm_cell``, ``gru_1``, ``simple_rnn``."""
    n = name.lower()
    if "simple_rnn" in n:
        return "simple_rnn"
    if "lstm" in n:
        return "lstm"
    if "gru" in n:
        return "gru"
    return None


def _cell_from_config(cfg: dict | None) -> tuple[str | None, bool | None]:
    """``(cell, reset_after)`` of a layer config entry (``{"class_name", "config"}``)."""
    if not isinstance(cfg, dict):
        return None, None
    cls = cfg.get("class_name")
    inner = cfg.get("config") if isinstance(cfg.get("config"), dict) else {}
    if cls == "RNN" and isinstance(inner.get("cell"), dict):
        return _cell_from_config(inner["cell"])
    cell = _CLASS_CELL.get(str(cls))
    reset_after = inner.get("reset_after") if cell == "gru" else None
    if cls == "CuDNNGRU":  # cuDNN applies the reset after the product (separate recurrent bias)
        reset_after = True
    return cell, (bool(reset_after) if reset_after is not None else None)


def _custom_cell_class(cfg: dict | None) -> bool:
    """Whether a layer config names a recurrent cell class that is not one of Keras's own."""
    if not isinstance(cfg, dict):
        return False
    inner = cfg.get("config") if isinstance(cfg.get("config"), dict) else {}
    if cfg.get("class_name") == "RNN" and isinstance(inner.get("cell"), dict):
        c = inner["cell"]
        return str(c.get("class_name")) not in _CLASS_CELL and c.get("class_name") != "StackedRNNCells"
    return False


def _gru_note(reset_after: bool | None, bias: bool = True) -> str:
    """The GRU variant's candidate formula (`bias`: the layer has biases; use_bias=False has none)."""
    if reset_after is True:
        if not bias:
            return (
                "GRU reset_after=True: candidate h~ = tanh(W_h x + r * (A_h h)), reset applied "
                "after the recurrent product (no biases)"
            )
        return (
            "GRU reset_after=True: candidate h~ = tanh(W_h x + r * (A_h h + b_rh)), reset applied "
            "after the recurrent product, separate recurrent bias"
        )
    if reset_after is False:
        b = " + b_h" if bias else ""
        return f"GRU reset_after=False: candidate h~ = tanh(W_h x + A_h (r * h){b}), reset applied before"
    return (
        "GRU reset_after unknown (neither a config nor the bias says): the gate matrices are the same "
        "columns either way"
    )


def _kernel_matrices(
    f: h5py.File, k: _Kernel, layer_index: int, path: str
) -> tuple[list[RecurrentMatrix], str | None]:
    """Split one recurrent kernel into per-gate ``A`` matrices, or return a reason to skip it."""
    ds = f[k.source]
    shape = tuple(ds.shape) if ds.shape is not None else ()
    if len(shape) != 2 or shape[0] == 0 or shape[1] % shape[0] != 0:
        return [], f"recurrent kernel of shape {shape} is not (units, gates*units)"
    # Keras writes bfloat16 weights as an opaque 2-byte type (its .keras files add the attribute
    # dtype="bfloat16"; float16 is a native HDF5 float): read them as bfloat16
    bf16 = (
        ds.dtype.kind == "V"
        and ds.dtype.itemsize == 2
        and _text(ds.attrs.get("dtype", "bfloat16")) == "bfloat16"
    )
    if not is_numeric(ds) and not bf16:
        return [], f"recurrent kernel of dtype {ds.dtype} is not numeric"
    reason = refuse_reason(ds)
    if reason is not None:
        return [], reason
    units, gates = shape[0], shape[1] // shape[0]
    notes: list[str] = []
    cell = k.cell
    if cell is None or _CELL_GATES.get(cell) != gates:
        guessed = _GATES_CELL.get(gates)
        if guessed is None:
            return [], f"recurrent kernel {shape}: {gates} gates match no LSTM/GRU/SimpleRNN cell"
        if cell is not None:
            notes.append(f"file names a {cell} cell but the kernel has {gates} gates; read as {guessed}")
        elif gates > 1:
            notes.append(
                f"cell not one of Keras's LSTM/GRU/SimpleRNN (a custom cell?): the kernel's {gates} "
                f"blocks are named as a {guessed}'s gates by their count alone"
            )
        else:
            notes.append("cell not one of Keras's LSTM/GRU/SimpleRNN (a custom cell?): read as one matrix")
        cell = guessed
    reset_after = k.reset_after
    if cell == "gru" and reset_after is None and k.bias is not None and k.bias in f:
        bshape = f[k.bias].shape
        # (2, 3u) (Keras reset_after) or CuDNNGRU's (6u,): input and recurrent biases apart
        reset_after = bool(
            bshape is not None
            and (
                (len(bshape) == 2 and bshape[0] == 2) or (len(bshape) == 1 and bshape[0] == 2 * gates * units)
            )
        )
    if cell == "gru":
        notes.append(_gru_note(reset_after, bias=k.bias is not None and k.bias in f))
    values = read_dataset(ds, path)
    if bf16:  # the top 16 bits of a float32
        raw = np.frombuffer(np.ascontiguousarray(values).tobytes(), dtype="<u2").reshape(shape)
        W = (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    else:
        W = values.astype(np.float64)
    gate_names: tuple[tuple[str | None, str | None], ...]
    if cell == "lstm":
        gate_names = GATE_NAMES["keras-lstm"]
    elif cell == "gru":
        gate_names = GATE_NAMES["keras-gru"]
    else:
        gate_names = ((None, None),)
    out = []
    base = f"{k.id_prefix}/recurrent_kernel"
    for g, (common, native) in enumerate(gate_names):
        a, b = g * units, (g + 1) * units
        A = np.ascontiguousarray(W[:, a:b].T)
        out.append(
            RecurrentMatrix(
                id=base if common is None else f"{base}[{common}]",
                matrix=A,
                layer=k.layer,
                direction="reverse" if k.direction == "reverse" else "forward",
                cell=cell,
                gate=common,
                native_gate=native,
                layer_index=layer_index,
                source=k.source,
                block=(a, b),
                transposed=True,
                dtype="bfloat16" if bf16 else str(ds.dtype),
                finite=bool(np.all(np.isfinite(A))),
                notes=(
                    f"A = recurrent_kernel[:, {a}:{b}].T (Keras row-vector convention h @ W)",
                    *k.notes,
                    *notes,
                ),
            )
        )
    return out, None


def _finish(
    f: h5py.File,
    path: str,
    fmt: str,
    kernels: list[tuple[_Kernel, int]],
    reasons: dict[str, str],
    metadata: dict,
    describe: str,
) -> Checkpoint:
    """Turn the kernels found into matrices; every other dataset becomes a Skipped entry."""
    ckpt = Checkpoint(path=path, format=fmt, metadata=metadata)
    used: set[str] = set()
    prefixes: set[str] = set()
    for k, idx in kernels:
        if k.id_prefix in prefixes:  # never two matrices with one id: fall back to the dataset path
            k.id_prefix = k.source
        prefixes.add(k.id_prefix)
        mats, why = _kernel_matrices(f, k, idx, path)
        if why is not None:
            reasons[k.source] = why
            continue
        ckpt.matrices.extend(mats)
        used.add(k.source)
    for name, ds in list_datasets(f):
        if name in used:
            continue
        shape = tuple(ds.shape) if ds.shape is not None else None
        reason = reasons.get(name)
        if reason is None:
            if name.startswith(("optimizer", "optimizer_weights")):
                reason = "optimizer state (not a model weight)"
            else:
                reason = "not a recurrent kernel"
        big = too_large_reason(ds)
        if big is not None and "declares" not in reason:
            reason = f"{reason}; {big}"
        ckpt.skipped.append(Skipped(name, shape, reason))
    if not ckpt.matrices:
        # the reasons that concern recurrent kernels say why none was read (a ConvLSTM, an odd shape)
        why = list(dict.fromkeys(sk.reason for sk in ckpt.skipped if "recurrent kernel" in sk.reason))
        said = (
            f"; {why[0]}" + (f" (and {len(why) - 1} more reasons: spectra ls)" if len(why) > 1 else "")
            if why
            else ""
        )
        raise NoRecurrentWeightsError(
            f"{path}: {describe}, but no recurrent layer (LSTM, GRU, SimpleRNN) with a readable "
            f"recurrent kernel ({len(ckpt.skipped)} other datasets{said})",
            checkpoint=ckpt,
        )
    return ckpt


# --------------------------------------------------------------------------- Keras 3 layout


def _vars_name(group: h5py.Group) -> str | None:
    v = group.get("vars")
    if isinstance(v, h5py.Group) and "name" in v.attrs:
        return _text(v.attrs["name"])
    return None


def _subgroups(parent: h5py.Group) -> list[str]:
    """Names of the subgroups of `parent` reached by hard links (soft and external links are not followed)."""
    out = []
    for name in parent:
        if isinstance(parent.get(name, getlink=True), h5py.HardLink) and isinstance(
            parent.get(name), h5py.Group
        ):
            out.append(name)
    return out


def _creation_key(group: h5py.Group) -> float:
    """Address of the group's object header: Keras creates groups in model order, so this sorts them."""
    try:
        return float(h5py.h5o.get_info(group.id).addr)
    except (AttributeError, *H5_ERRORS):
        return float("inf")


def _config_layers(cfg: dict | None) -> list[dict]:
    if not isinstance(cfg, dict):
        return []
    inner = cfg.get("config")
    if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
        return [c for c in inner["layers"] if isinstance(c, dict)]
    return []


def _layer_name(cfg: dict) -> str | None:
    inner = cfg.get("config")
    if isinstance(inner, dict) and isinstance(inner.get("name"), str):
        return inner["name"]
    return cfg.get("name") if isinstance(cfg.get("name"), str) else None


def _match_children(
    layers_group: h5py.Group, config_layers: list[dict]
) -> list[tuple[str, str, dict | None]]:
    """``(group name, user name, config)`` for each child of a Keras 3 ``layers`` group, in model order.

    Group names are class-derived (``lstm``, ``lstm_1``: Keras's ``saving_lib``
    numbers them per class in ``model.layers`` order); the user's name is the
    ``vars`` group's ``name`` attribute when present, else the config layer
    with the same class-derived name and counter.
    """
    derived: dict[str, tuple[int, dict]] = {}
    counters: dict[str, int] = {}
    for i, c in enumerate(config_layers):
        base = _snake(str(c.get("class_name", "")))
        if base in counters:
            counters[base] += 1
            key = f"{base}_{counters[base]}"
        else:
            counters[base] = 0
            key = base
        derived[key] = (i, c)
    by_name = {_layer_name(c): (i, c) for i, c in enumerate(config_layers)}
    rows = []
    for gname in _subgroups(layers_group):
        child = layers_group[gname]
        if not isinstance(child, h5py.Group):
            continue
        attr = _vars_name(child)
        hit = by_name.get(attr) if attr is not None else None
        if hit is None:
            hit = derived.get(gname)
        user = attr or (_layer_name(hit[1]) if hit else None) or gname
        order = (0, hit[0], 0.0) if hit else (1, 0, _creation_key(child))
        rows.append((order, gname, user, hit[1] if hit else None))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [(g, u, c) for _, g, u, c in rows]


def _cell_kernels(
    cell_group: h5py.Group,
    *,
    id_prefix: str,
    layer: str,
    user: str,
    cls: str,
    cell: str | None,
    reset_after: bool | None,
    direction: str,
    reasons: dict[str, str],
    has_config: bool = False,
) -> list[_Kernel]:
    """Kernels of a Keras 3 cell group: ``<cell>/vars/1``, or one per cell of ``StackedRNNCells``.

    `has_config`: a config described the layer (so a cell of unknown class is a custom one).
    """
    cells = cell_group.get("cells")
    if isinstance(cells, h5py.Group):  # RNN([cell, cell, ...]): <layer>/cell/cells/<cell name>/vars
        out: list[_Kernel] = []
        for cname in sorted(_subgroups(cells), key=lambda n: (_creation_key(cells[n]), n)):
            sub = cells[cname]
            if isinstance(sub, h5py.Group):
                # the group is named after the cell class (lstm_cell, lstm_cell_1); the name the
                # user gave (the one legacy .h5 files use) is the vars group's name attribute
                uname = _vars_name(sub) or cname
                if _AUTO_CELL.fullmatch(uname):
                    uname = cname  # Keras's own name, numbered process-wide: the group's is stable
                out += _cell_kernels(
                    sub,
                    id_prefix=f"{id_prefix}/{uname}",
                    layer=layer,
                    user=f"{user}/{uname}",
                    cls="StackedRNNCells",
                    # the user may have named the cell (s1); its group keeps the class (lstm_cell)
                    cell=_cell_from_keras_name(cname),  # the group: named after the cell's class
                    reset_after=None,
                    direction=direction,
                    reasons=reasons,
                    has_config=has_config,
                )
        return out
    cell_vars = cell_group.get("vars")
    if not isinstance(cell_vars, h5py.Group):
        return []
    base = cell_vars.name.lstrip("/")
    names = sorted((n for n in cell_vars if n.isdigit()), key=int)
    conv = "Conv" in cls
    rk_name, how = "1", ()
    shapes = _kernel_shapes(cell_vars, names)
    if not conv and (cell is None or not _kernel_shaped(shapes.get("1", ()))):
        # not one of Keras's cells (a custom cell in RNN(cell), or one whose class name merely
        # sounds like one): its variables are saved by creation order, with no names, so the
        # recurrent kernel is told by its shape
        rk_name, how = _custom_recurrent_kernel(shapes, has_config)
    for n in names:
        role = {"0": "input kernel", "1": "recurrent kernel", "2": "bias"}.get(n, "variable")
        if rk_name != "1":
            role = "variable"  # positions say nothing in a custom cell
        if conv:
            reasons[f"{base}/{n}"] = (
                f"{role} of {cls} layer {user!r} (a convolution over feature maps, not a recurrent "
                "matrix; ConvLSTM layers are not analysed)"
            )
        elif n != rk_name:
            reasons[f"{base}/{n}"] = (
                f"{role} of {cls} layer {user!r} (acts on x_t or is a bias; not recurrent)"
            )
    rk = cell_vars.get(rk_name)
    if not isinstance(rk, h5py.Dataset) or rk.ndim != 2:
        if isinstance(rk, h5py.Dataset) and not conv:
            reasons[f"{base}/{rk_name}"] = f"recurrent kernel of shape {rk.shape} is not (units, gates*units)"
        return []
    bias = f"{base}/2" if rk_name == "1" and "2" in names else None
    return [
        _Kernel(
            source=f"{base}/{rk_name}",
            id_prefix=id_prefix,
            layer=layer,
            direction=direction,
            cell=cell,
            reset_after=reset_after,
            bias=bias if rk_name == "1" else None,
            notes=how,
        )
    ]


def _kernel_shapes(cell_vars: h5py.Group, names: list[str]) -> dict[str, tuple[int, ...]]:
    out = {}
    for n in names:
        ds = cell_vars.get(n)
        if isinstance(ds, h5py.Dataset) and ds.shape is not None:
            out[n] = tuple(ds.shape)
    return out


def _kernel_shaped(sh: tuple[int, ...]) -> bool:
    """``(units, gates*units)`` with 1, 3 or 4 gates."""
    return len(sh) == 2 and sh[0] > 0 and sh[1] % sh[0] == 0 and sh[1] // sh[0] in _GATES_CELL


def _custom_recurrent_kernel(
    shapes: dict[str, tuple[int, ...]], has_config: bool
) -> tuple[str, tuple[str, ...]]:
    """Which variable of a custom cell is the recurrent kernel, and a note on how it was chosen.

    The recurrent kernel is ``(units, gates*units)`` with 1, 3 or 4 gates, and the input kernel
    ``(input_dim, gates*units)`` has its column count: a candidate with no such partner is no
    kernel of a recurrent cell (a Dense's kernel, a square extra weight). Keras's own cells create
    ``kernel, recurrent_kernel, bias`` in that order, and a cell written after Keras's guide does
    too; a variable of the recurrent shape is taken alone when only one has it, and position 1
    (Keras's order) when the input kernel's shape is the same.
    """
    two_d = {n: sh for n, sh in shapes.items() if len(sh) == 2}
    cands = [
        n
        for n, sh in two_d.items()
        if _kernel_shaped(sh) and sum(s2[1] == sh[1] for s2 in two_d.values()) >= 2
    ]
    if not cands:
        return "1", ()
    if len(cands) == 1:
        n = cands[0]
        if n == "1":
            return n, ()
        return n, (f"custom cell: variable {n} is the only one of recurrent-kernel shape {shapes[n]}",)
    pick = "1" if "1" in cands else cands[-1]
    others = ", ".join(f"{n} {shapes[n]}" for n in cands if n != pick)
    if not has_config:
        # no config names the cell's class: most likely one of Keras's own, read in its order
        return pick, (
            f"variables {pick} {shapes[pick]} and {others} have the same shape; no config names the "
            "cell's class: read in Keras's own order (kernel, recurrent_kernel, bias)",
        )
    return pick, (
        f"custom cell: variables {pick} {shapes[pick]} and {others} all have a recurrent-kernel "
        "shape and the file does not name them: "
        f"taken by Keras's creation order (kernel, recurrent_kernel, bias); a cell that creates "
        f"its recurrent kernel first is read wrongly (check the cell's build())",
    )


def _cell_of(group: h5py.Group, cfg: dict | None) -> tuple[str | None, bool | None]:
    """Cell kind from the config, else from Keras's own class-derived cell or group name.

    A config naming a class that is not Keras's (a custom cell, maybe named MyLSTMCell) gives
    None: names are no evidence of the variables' order there.
    """
    cell, reset_after = _cell_from_config(cfg)
    if cell is None and _custom_cell_class(cfg):
        return None, None
    if cell is None:
        # Keras's own names only (lstm_cell_3; the class-derived group name): a user's name
        # that merely contains "lstm" may be a custom cell's, with its own variable order
        hint = _vars_name(group["cell"]) if isinstance(group.get("cell"), h5py.Group) else None
        auto = hint if hint is not None and _AUTO_CELL.fullmatch(hint) else ""
        cell = _cell_from_keras_name(auto) or _cell_from_keras_name(group.name.rsplit("/", 1)[-1])
    return cell, reset_after


#: a torch recurrent weight's parameter name (nn.LSTM/GRU/RNN), as TorchModuleWrapper saves it
_TORCH_PARAM = re.compile(r"weight_hh_l\d+(_reverse)?")


def _visit_v3(
    child: h5py.Group, prefix: str, user: str, cfg: dict | None, reasons: dict[str, str], seen: set
) -> Iterator[_Kernel]:
    """Yield the recurrent kernels of one Keras 3 layer group (recursing into nested models)."""
    if cfg is None and _is_container(child):
        # a list or dict attribute's group (self.blocks = [GRU(...), ...]): the attribute is not
        # a layer, and legacy files (which list the layers alone) never name it: no id component
        yield from _walk_v3(child, prefix, [], reasons, seen)
        return
    cls = str(cfg.get("class_name")) if cfg else child.name.rsplit("/", 1)[-1]
    inner = cfg.get("config") if cfg and isinstance(cfg.get("config"), dict) else {}
    here = f"{prefix}{user}"
    fwd, bwd = child.get("forward_layer"), child.get("backward_layer")
    if isinstance(fwd, h5py.Group) and isinstance(bwd, h5py.Group):
        for sub, direction, key in ((fwd, "forward", "layer"), (bwd, "reverse", "backward_layer")):
            own_cfg = inner.get(key) if isinstance(inner.get(key), dict) else None
            sub_cfg = own_cfg or inner.get("layer")  # without its own config, backward copies forward's
            sub_name = _vars_name(sub)
            if sub_name is None and own_cfg is not None and _layer_name(own_cfg):
                # Keras 3 names the wrapped copies forward_<x> / backward_<x>, or keeps the name of
                # a user-given backward_layer; either way config.json records it.
                sub_name = _layer_name(own_cfg)
                if direction == "forward" and not str(sub_name).startswith("forward_"):
                    sub_name = f"forward_{sub_name}"  # tf.keras-style config: the unwrapped layer
            if sub_name is None:
                word = "forward" if direction == "forward" else "backward"
                base = _layer_name(sub_cfg) if isinstance(sub_cfg, dict) else None
                base = re.sub(r"^(forward|backward)_", "", base) if base else ""
                sub_name = f"{word}_{base}" if base else word
            if isinstance(sub.get("cell"), h5py.Group):
                cell, reset_after = _cell_of(sub, sub_cfg)
                yield from _cell_kernels(
                    sub["cell"],
                    id_prefix=f"{here}/{sub_name}",
                    layer=here,
                    user=sub_name,
                    cls=str(sub_cfg.get("class_name")) if isinstance(sub_cfg, dict) else "recurrent",
                    cell=cell,
                    reset_after=reset_after,
                    direction=direction,
                    reasons=reasons,
                    has_config=isinstance(sub_cfg, dict),
                )
        return
    if isinstance(child.get("cell"), h5py.Group) and _is_rnn_layer(child, cfg):
        cell, reset_after = _cell_of(child, cfg)
        yield from _cell_kernels(
            child["cell"],
            id_prefix=here,
            layer=here,
            user=user,
            cls=cls if cfg else "recurrent",
            cell=cell,
            reset_after=reset_after,
            direction="reverse" if inner.get("go_backwards") else "forward",
            reasons=reasons,
            has_config=cfg is not None,
        )
        return
    own = child.get("vars")
    builtin_cell = cfg is not None and str(cfg.get("class_name")) in ("LSTMCell", "GRUCell", "SimpleRNNCell")
    if isinstance(own, h5py.Group) and (builtin_cell or (cfg is None and _looks_like_cell(child, user))):
        # a bare LSTMCell/GRUCell/SimpleRNNCell: called as a layer of a functional model (its
        # config says so), or kept as an attribute of a subclassed layer or model (a decoder
        # stepping it by hand), where no config says what it is and its variables' shapes do
        # (legacy .h5 files name them, and read it too)
        if builtin_cell:
            hint, reset_after = _cell_from_config(cfg)
        else:
            hint = _cell_from_keras_name(_vars_name(child) or "") or _cell_from_keras_name(
                child.name.rsplit("/", 1)[-1]
            )
            reset_after = None
        parent = child.parent
        siblings = [
            g
            for g in _subgroups(parent)
            if g != child.name.rsplit("/", 1)[-1] and _AUTO_CELL.fullmatch(_vars_name(parent[g]) or "")
        ]
        if not builtin_cell and _AUTO_CELL.fullmatch(user) and prefix and not siblings:
            # Keras named it (lstm_cell_3: a process-wide counter) -- legacy files leave such
            # names out of the weight's path, and so do the ids here: the owner's id (unless
            # the owner holds several such cells, whose ids would then be one)
            here = prefix.rstrip("/")
        found = _cell_kernels(
            child,
            id_prefix=here,
            layer=here,
            user=user,
            cls="cell",
            cell=hint,
            reset_after=reset_after,
            direction="forward",
            reasons=reasons,
            has_config=cfg is not None,
        )
        if not builtin_cell:
            for k in found:
                k.notes = (
                    *k.notes,
                    "a cell kept as an attribute of a subclassed layer or model: recognised by its "
                    "variables' shapes (kernel, recurrent_kernel, bias), assumed a Keras cell (no "
                    "config names its class)",
                )
        yield from found
        return
    if isinstance(own, h5py.Group):
        for n in own:
            ds = own[n]
            if isinstance(ds, h5py.Dataset):
                if _TORCH_PARAM.fullmatch(n):
                    # keras.layers.TorchModuleWrapper saves the wrapped torch module's parameters
                    # under their torch names: an nn.LSTM/GRU/RNN inside a Keras model
                    reasons[ds.name.lstrip("/")] = (
                        f"torch recurrent kernel {n!r} of a torch module wrapped in Keras "
                        f"(TorchModuleWrapper {user!r}): not read from the Keras file; save the "
                        f"module's state_dict with torch.save and analyse that"
                    )
                    continue
                square = ds.ndim == 2 and ds.shape[0] == ds.shape[1]
                kind = "square feed-forward kernel" if square else "weights"
                # no config: cls is the attribute's group name ("layer" inside a TimeDistributed)
                what = f"layer {user!r}" if cls.lower() == "layer" else f"{cls} layer {user!r}"
                reasons[ds.name.lstrip("/")] = f"{kind} of {what} (not recurrent)"
                if square and n == "1" and cfg is None and _cell_shaped_gates(child) == 1:
                    reasons[ds.name.lstrip("/")] = (
                        f"square kernel of layer {user!r}, beside a kernel and a bias: shaped like a "
                        "one-gate (SimpleRNN) cell's, but no name says simple_rnn and no config names "
                        "its class, so it cannot be told from a feed-forward layer (a projection with "
                        "two matrices); not read"
                    )
    yield from _walk_v3(child, f"{here}/", _config_layers(cfg), reasons, seen)


#: Keras layer classes that hold a recurrent ``cell`` (their subclasses keep ``units``/``cell`` configs)
_RNN_CLASSES = frozenset(_CLASS_CELL) | {"RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}


def _is_rnn_layer(child: h5py.Group, cfg: dict | None) -> bool:
    """Whether a group with a ``cell`` subgroup is a recurrent layer, not a layer holding a cell attribute.

    A recurrent layer's group holds its ``cell`` and an empty ``vars``; a subclassed layer
    that keeps a cell in an attribute named ``cell`` (and maybe other layers beside it) is
    told by its config's class, or without a config by those other subgroups.
    """
    if cfg is not None:
        cls = str(cfg.get("class_name", ""))
        inner = cfg.get("config") if isinstance(cfg.get("config"), dict) else {}
        return cls in _RNN_CLASSES or "cell" in inner or "return_sequences" in inner
    others = [n for n in _subgroups(child) if n not in ("cell", "vars")]
    return not [n for n in others if isinstance(child[n].get("vars"), h5py.Group)]  # no other layers


def _looks_like_cell(group: h5py.Group, name: str) -> bool:
    """Whether a leaf group's variables are a Keras RNN cell's, in Keras's order.

    ``kernel (input_dim, g*u)``, ``recurrent_kernel (u, g*u)`` with g = 1, 3 or 4, and a bias
    ``(g*u,)`` (or ``(2, g*u)``, GRU reset_after). A one-gate layer (``(in, u)``, ``(u, u)``,
    ``(u,)``) could as well be feed-forward (a projection or scorer with two matrices): only a
    name saying ``simple_rnn`` (Keras's own, or the group's) makes it a cell.
    """
    gates = _cell_shaped_gates(group)
    if gates is None:
        return False
    if gates == 1:
        # a kernel, a square "recurrent kernel", a bias: as well a feed-forward layer
        hints = (name, _vars_name(group) or "", group.name.rsplit("/", 1)[-1])
        return any(_cell_from_keras_name(h) == "simple_rnn" for h in hints)
    return True


def _cell_shaped_gates(group: h5py.Group) -> int | None:
    """The gate count g when a leaf group holds ``(in, g*u)``, ``(u, g*u)``, ``(g*u,)`` variables."""
    if [n for n in _subgroups(group) if n != "vars"] or not isinstance(group.get("vars"), h5py.Group):
        return None
    v = group["vars"]
    names = sorted(v)
    if names != ["0", "1", "2"]:
        return None
    shapes = _kernel_shapes(v, names)
    if len(shapes) != 3:
        return None
    k, r = shapes["0"], shapes["1"]
    if len(k) != 2 or not _kernel_shaped(r) or k[1] != r[1] or shapes["2"] not in ((r[1],), (2, r[1])):
        return None
    return r[1] // r[0]


def _is_container(group: h5py.Group, depth: int = 0) -> bool:
    """Whether a Keras 3 group holds a list or dict attribute's items, not a layer.

    Keras's ``saving_lib`` gives every layer a ``vars`` group (with the layer's ``name``
    attribute, recent Keras) and a list or dict of layers a group of its own with none,
    its items named ``<snake-cased class>[_N]`` and ``container[_N]`` for nested lists.
    Files without the ``name`` attributes are not told apart (their ids keep group names).
    """
    if "vars" in group or depth > 64:
        return False
    subs = _subgroups(group)
    return bool(subs) and all(
        _vars_name(group[n]) is not None or _is_container(group[n], depth + 1) for n in subs
    )


def _walk_v3(
    model: h5py.Group, prefix: str, config_layers: list[dict], reasons: dict[str, str], seen: set
) -> Iterator[_Kernel]:
    """Yield the recurrent kernels below a Keras 3 model or layer group.

    Children are the groups under ``layers/`` (functional and sequential
    models, matched with `config_layers`) and any other subgroup (layers
    tracked as attributes of subclassed models and layers).
    """
    addr = _creation_key(model)
    key = addr if addr != float("inf") else model.name
    if key in seen or prefix.count("/") > 64:
        return  # a hard-link cycle or an absurdly deep file
    seen.add(key)
    rows: list[tuple[h5py.Group, str, dict | None]] = []
    layers_group = model.get("layers")
    if isinstance(layers_group, h5py.Group):
        rows += [(layers_group[g], u, c) for g, u, c in _match_children(layers_group, config_layers)]
    skip = {"vars", "layers"} | ({"optimizer"} if model.name == "/" else set())
    others = [n for n in _subgroups(model) if n not in skip]
    for n in sorted(others, key=lambda n: (_creation_key(model[n]), n)):
        rows.append((model[n], _vars_name(model[n]) or n, None))
    for group, user, cfg in rows:
        yield from _visit_v3(group, prefix, user, cfg, reasons, seen)


def _read_v3_weights(f: h5py.File, path: str, fmt: str, config: dict | None, metadata: dict) -> Checkpoint:
    reasons: dict[str, str] = {}
    kernels: list[tuple[_Kernel, int]] = []
    layer_ids: dict[str, int] = {}
    for k in _walk_v3(f, "", _config_layers(config), reasons, set()):
        idx = layer_ids.setdefault(k.layer, len(layer_ids))
        kernels.append((k, idx))
    for name, _ in list_datasets(f):
        if name.startswith("optimizer/"):
            reasons[name] = "optimizer state (not a model weight)"
        else:
            reasons.setdefault(name, "variable of a model or layer that is not a recurrent kernel")
    top = f["layers"] if isinstance(f.get("layers"), h5py.Group) else f
    names = [
        _vars_name(top[n]) or n
        for n in top
        if n not in ("vars", "optimizer") and isinstance(top[n], h5py.Group)
    ]
    shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
    return _finish(f, path, fmt, kernels, reasons, metadata, f"Keras 3 weights of layers [{shown}]")


# --------------------------------------------------------------------------- legacy layout


#: Keras's own name for the cell of ``RNN([cell, cell, ...])`` in legacy weight names
_STACKED = re.compile(r"stacked_rnn_cells(_\d+)?")
#: a cell name Keras made up (numbered by a process-wide counter, so it varies between runs)
_AUTO_CELL = re.compile(r"(lstm|gru|simple_rnn)_cell(_\d+)?")


def _legacy_cell_names(inner: object) -> set[str]:
    """Names the config gives the cells of ``RNN(cell)`` layers (also inside a Bidirectional).

    Legacy weight names carry the cell's name (``rnn/gc/recurrent_kernel`` for
    ``RNN(GRUCell(name="gc"), name="rnn")``); ids leave it out, as Keras 3 files do.
    """
    out: set[str] = set()
    if not isinstance(inner, dict):
        return out
    subs = [inner] + [
        inner.get(k, {}).get("config", {})
        for k in ("layer", "backward_layer")
        if isinstance(inner.get(k), dict)
    ]
    for sub in subs:
        cell = sub.get("cell") if isinstance(sub, dict) else None
        if isinstance(cell, dict):
            name = _layer_name(cell)
            if name:
                out.add(name)
    return out


def _deepest_config(cfg: dict | None, head: list[str]) -> tuple[dict | None, int]:
    """The config of the most deeply nested layer that `head` (name components) names, and its depth.

    ``head[0]`` is the top-level layer of `cfg`; each further component is looked up among
    the layers of the model config above it (nested Sequential/Functional models).
    """
    cur, depth = cfg, 0
    for i, part in enumerate(head[1:], 1):
        match = next((c for c in _config_layers(cur) if _layer_name(c) == part), None)
        if match is None:
            break
        cur, depth = match, i
    return cur, depth


def _legacy_head(lname: str, head: list[str], cfg: dict | None) -> list[str]:
    """The name components of a legacy weight, from top-level layer `lname` down to its layer.

    Keras 3 prefixes variable paths with the model's name (``sequential/lstm_1/...``), and
    with a top-level layer's own name (``bi/forward_lstm/...``); tf.keras 2 and Keras 3 omit
    the name of a nested model (``inner_lstm/...`` under ``encoder``). A nested model's
    weight path starting with its own name is one of its layers named like it (a model
    ``enc`` holding ``GRU(name="enc")``) when the model's config lists that layer but not
    what follows.
    """
    if lname not in head:
        return [lname, *head]
    cand = head[head.index(lname) :]
    inner_names = {_layer_name(c) for c in _config_layers(cfg)}
    if inner_names and head[0] in inner_names and (len(cand) < 2 or cand[1] not in inner_names):
        return [lname, *head]
    return cand


def _stacked_cell_classes(cfg: dict | None) -> dict[str, str]:
    """``{cell name: class name}`` of the cells of every StackedRNNCells in a layer's config."""
    out: dict[str, str] = {}

    def walk(node: object, depth: int) -> None:
        if depth > 64:
            return
        if isinstance(node, dict):
            inner = node.get("config")
            if node.get("class_name") == "StackedRNNCells" and isinstance(inner, dict):
                for c in inner.get("cells") or []:
                    if isinstance(c, dict) and _layer_name(c) and isinstance(c.get("class_name"), str):
                        out.setdefault(_layer_name(c), c["class_name"])
            for v in node.values():
                walk(v, depth + 1)
        elif isinstance(node, list):
            for v in node:
                walk(v, depth + 1)

    walk(cfg, 0)
    return out


def _stacked_cell_kind(name: str, classes: dict[str, str], kernel: h5py.Dataset) -> str:
    """The archive's name stem of a StackedRNNCells cell: its class, snake-cased (``lstm_cell``).

    From Keras's own cell name, else the config's class for the user's name, else (a file
    without a config) the recurrent kernel's gate count.
    """
    auto = _AUTO_CELL.fullmatch(name)
    if auto:
        return auto.group(1) + "_cell"
    if name in classes:
        return _snake(classes[name])
    shape = kernel.shape or ()
    gates = shape[1] // shape[0] if len(shape) == 2 and shape[0] else 0
    return f"{_GATES_CELL[gates]}_cell" if gates in _GATES_CELL else _snake(name)


def _strip_index(name: str) -> str:
    return re.sub(r":\d+$", "", name)


def _legacy_directions(cls: str | None, inner: dict, heads: list[list[str]]) -> list[tuple[str, int]]:
    """Direction of each recurrent kernel of one legacy layer, and how many name components its layer has.

    ``heads`` are the kernels' name components, starting with the layer whose config is
    `cls`/`inner` (`cls` None: the file has no config), without a StackedRNNCells cell's name.
    The second item of each pair is the length of the head's prefix that names the user's
    layer: the Bidirectional wrapper for its halves, else the whole head.

    A Bidirectional layer stores its forward sublayer first; the sublayers are
    named ``forward_<x>``/``backward_<x>`` unless the user passed a
    ``backward_layer``, whose name the config records. Those names are taken for
    halves only below a layer that no config describes (a Bidirectional kept inside
    a custom layer): directly below a layer whose config is not a Bidirectional's, a
    ``forward_enc`` is the name the user gave an ordinary layer.
    """
    bw_cfg = inner.get("backward_layer") if isinstance(inner, dict) else None
    bw_name = _layer_name(bw_cfg) if isinstance(bw_cfg, dict) else None
    is_bi = cls == "Bidirectional" or (isinstance(inner, dict) and "layer" in inner and "merge_mode" in inner)

    def half(h: list[str]) -> int | None:
        # where the Bidirectional's half sits: the component after the layer name, or deeper when
        # the wrapper sits inside a subclassed layer (blk/bi/backward_gru/...)
        for i, c in enumerate(h[1:], 1):
            if c.startswith(("forward_", "backward_")) or (bw_name is not None and c == bw_name):
                if i == 1 and cls is not None and not is_bi:
                    continue  # its parent is a layer the config describes, and no Bidirectional
                return i
        return 1 if is_bi and len(h) > 1 else None

    halves = [half(h) for h in heads]
    order = list(dict.fromkeys(h[i] for h, i in zip(heads, halves) if i is not None))
    # where a forward_<x> half sits (its parent path): a sibling there that is not forward_ is
    # the user's backward_layer, even when no config names it (a Bidirectional inside a
    # subclassed layer that also holds other layers: blk/bi/forward_fw, blk/bi/bw, blk/post)
    fw_parents = {
        tuple(h[:i]) for h, i in zip(heads, halves) if i is not None and h[i].startswith("forward_")
    }
    back = isinstance(inner, dict) and bool(inner.get("go_backwards"))
    out: list[tuple[str, int]] = []
    for h, i in zip(heads, halves):
        if i is None:
            parent = next((j for j in range(1, len(h)) if tuple(h[:j]) in fw_parents), None)
            if parent is not None:
                out.append(("reverse", parent))
            else:
                out.append(("reverse" if back else "forward", len(h)))
            continue
        s = h[i]
        if s.startswith("backward") or (bw_name is not None and s == bw_name):
            out.append(("reverse", i))
        elif s.startswith("forward"):
            out.append(("forward", i))
        elif tuple(h[:i]) in fw_parents:
            out.append(("reverse", i))
        else:
            out.append(("reverse" if len(order) == 2 and s == order[1] else "forward", i))
    return out


def _read_legacy(f: h5py.File, path: str) -> Checkpoint:
    root = f["model_weights"] if isinstance(f.get("model_weights"), h5py.Group) else f
    layer_names = _attr_texts(root, "layer_names")
    config: dict | None = None
    raw = f.attrs.get("model_config")
    if raw is not None:
        try:
            config = json.loads(_text(raw))
        except (ValueError, TypeError, RecursionError):
            config = None
    by_name = {_layer_name(c): c for c in _config_layers(config)}
    metadata = {
        "framework": "keras",
        "keras_version": _text(root.attrs.get("keras_version", f.attrs.get("keras_version", ""))) or None,
        "backend": _text(root.attrs.get("backend", f.attrs.get("backend", ""))) or None,
        "layout": "legacy-h5-full-model" if root is not f else "legacy-h5-weights",
        "layers": layer_names,
    }
    reasons: dict[str, str] = {}
    kernels: list[tuple[_Kernel, int]] = []
    layer_ids: dict[str, int] = {}
    root_groups = set(_subgroups(root))
    for lname in layer_names:
        g = root.get(lname) if lname in root_groups else None
        if not isinstance(g, h5py.Group):
            continue
        cfg = by_name.get(lname)
        cls = str(cfg.get("class_name")) if cfg else "a"
        inner = cfg.get("config", {}) if cfg else {}
        weight_names = _attr_texts(g, "weight_names")
        cell_names = _legacy_cell_names(inner)
        seen_cells: dict[tuple, list[int]] = {}
        found: list[tuple[str, list[str], str | None, str | None, bool]] = []
        for wn in weight_names:
            ds = g.get(wn)
            if not isinstance(ds, h5py.Dataset):
                continue
            source = ds.name.lstrip("/")
            parts = _strip_index(wn).split("/")
            base = parts[-1]
            if base != "recurrent_kernel":
                role = {"kernel": "input kernel", "bias": "bias"}.get(base, base)
                square = ds.ndim == 2 and ds.shape[0] == ds.shape[1]
                if cls in _CLASS_CELL or cls in ("Bidirectional", "RNN") or "_cell" in wn:
                    reasons[source] = f"{role} of recurrent layer {lname!r} (acts on x_t or is a bias)"
                else:
                    kind = "square feed-forward kernel" if square else "weights"
                    reasons[source] = f"{kind} ({base}) of {cls} layer {lname!r} (not recurrent)".replace(
                        " of a layer", " of layer"
                    )
                continue
            head = parts[:-1]
            hint = None
            stacked = any(_STACKED.fullmatch(p) for p in head)
            if stacked:  # StackedRNNCells (Keras names it stacked_rnn_cells[_N]): keep each cell's name
                hint = head[-1]
                head = [p for p in head if not _STACKED.fullmatch(p)]
            elif head and (_AUTO_CELL.fullmatch(head[-1]) or head[-1] == "cell" or head[-1] in cell_names):
                # the cell of a layer (Keras names it lstm_cell[_N]), not a cell the user named and
                # kept as an attribute of a subclassed layer (blk_cell): that name stays in the id
                hint = head[-1]
                head = head[:-1]
            head = _legacy_head(lname, head, cfg)
            bias_wn = "/".join([*_strip_index(wn).split("/")[:-1], "bias"])
            bias = None
            for other in weight_names:
                if _strip_index(other) == bias_wn and isinstance(g.get(other), h5py.Dataset):
                    bias = g[other].name.lstrip("/")
            if stacked and len(head) > 1:
                # as Keras 3 archives name them (saving_lib: the snake-cased class, numbered within
                # the stack over every cell of that class, user-named ones included); a cell the
                # user named keeps that name in the id, one Keras named gets the archive's
                classes = _stacked_cell_classes(_deepest_config(cfg, head[:-1])[0])
                kind = _stacked_cell_kind(head[-1], classes, ds)
                k = seen_cells.setdefault((tuple(head[:-1]), kind), [0])
                if _AUTO_CELL.fullmatch(head[-1]):
                    head = [*head[:-1], kind if k[0] == 0 else f"{kind}_{k[0]}"]
                k[0] += 1
                hint = kind
            found.append((source, head, hint, bias, stacked))
        # cell names left out of two kernels' paths would give them one id (a layer holding two
        # Keras-named cells): those keep their cell names
        heads = [tuple(row[1]) for row in found]
        for i, (source, head, hint, bias, stacked) in enumerate(found):
            if not stacked and hint is not None and heads.count(tuple(head)) > 1:
                found[i] = (source, [*head, hint], hint, bias, stacked)
        # a layer of a nested model has its own config (go_backwards, Bidirectional) in the
        # nested model's: group the kernels by the deepest config their names lead to
        # (the name of a StackedRNNCells cell, last in its head, is no layer's: left out here)
        layer_heads = [row[1][:-1] if row[4] and len(row[1]) > 1 else row[1] for row in found]
        groups: dict[tuple[int, int], list[int]] = {}
        owner: dict[tuple[int, int], dict | None] = {}
        for i, lh in enumerate(layer_heads):
            sub, depth = _deepest_config(cfg, lh)
            key = (id(sub), depth)
            groups.setdefault(key, []).append(i)
            owner[key] = sub
        per_row: list[tuple[str, int, str, dict]] = [("forward", 1, cls, inner)] * len(found)
        for key, rows in groups.items():
            sub, depth = owner[key], key[1]
            g_cls = str(sub.get("class_name")) if sub else cls
            g_inner = sub.get("config", {}) if sub else inner
            g_inner = g_inner if isinstance(g_inner, dict) else {}
            dirs = _legacy_directions(g_cls if sub else None, g_inner, [layer_heads[i][depth:] for i in rows])
            for i, (d, n) in zip(rows, dirs):
                per_row[i] = (d, depth + n, g_cls, g_inner)
        for (source, head, hint, bias, _), (direction, n_layer, g_cls, g_inner) in zip(found, per_row):
            sub_cfg = cfg if g_inner is inner else {"class_name": g_cls, "config": g_inner}
            if g_cls == "Bidirectional" and isinstance(g_inner, dict):
                sub_cfg = g_inner.get("backward_layer") if direction == "reverse" else None
                sub_cfg = sub_cfg or g_inner.get("layer")
            cell, reset_after = _cell_from_config(sub_cfg)
            if cell is None and hint is not None:
                cell = _cell_from_keras_name(hint)
            # the layer the user sees: the Bidirectional or RNN(StackedRNNCells) wrapper, else the layer
            layer = "/".join(head[:n_layer])
            kernel = _Kernel(
                source=source,
                id_prefix="/".join(head),
                layer=layer,
                direction=direction,
                cell=cell,
                reset_after=reset_after,
                bias=bias,
            )
            kernels.append((kernel, layer_ids.setdefault(layer, len(layer_ids))))
    for name, _ in list_datasets(f):
        if name.startswith("optimizer_weights/"):
            reasons[name] = "optimizer state (not a model weight)"
        elif name not in reasons:
            reasons[name] = "not listed in any layer's weight_names"
    more = " ..." if len(layer_names) > 10 else ""
    return _finish(
        f,
        path,
        "keras-h5",
        kernels,
        reasons,
        metadata,
        f"Keras HDF5 file with layers [{', '.join(layer_names[:10])}{more}]",
    )


#: a shard of sharded Keras weights (saving_lib.ShardedH5IOStore: ``<base>_<k:05>.weights.h5``)
_SHARD = re.compile(r"(.+)_\d{5}\.weights\.h5")


def _shard_index(path: str) -> str | None:
    """The index beside `path` that lists it as one shard of sharded Keras weights, or None.

    ``save_weights("m.weights.json", max_shard_size=...)`` writes an index
    (``{"metadata": ..., "weight_map": {group path: [shard file]}}``) and shards
    ``m_00000.weights.h5``, ...; a layer's variables may straddle two shards.
    """
    name = os.path.basename(path)
    m = _SHARD.fullmatch(name)
    if m is None:
        return None
    folder = os.path.dirname(path)
    for index in (f"{m.group(1)}.weights.json", f"{m.group(1)}.json"):
        ip = os.path.join(folder, index)
        try:
            if os.path.getsize(ip) > MAX_CONFIG_BYTES:
                continue
            with open(ip, encoding="utf-8") as fh:
                weight_map = json.load(fh).get("weight_map")
        except (OSError, ValueError, AttributeError, RecursionError):
            continue
        files = weight_map.values() if isinstance(weight_map, dict) else ()
        if any(name == v or (isinstance(v, list) and name in v) for v in files):
            return index
    return None


def _looks_like_later_shard(f: h5py.File) -> bool:
    """Layer variables but no model ``vars`` group: as in a shard after the first.

    Every Keras 3 weights file has the model's own ``vars`` group (older Keras created one
    for each saved object, newer Keras one with the object's name); of sharded weights only
    the first shard holds it. A file written by other means may lack it too: a warning, no
    refusal.
    """
    layers = f.get("layers")
    if "vars" in f or not isinstance(layers, h5py.Group):
        return False
    found: list[str] = []
    layers.visit(lambda n: found.append(n) if n.rsplit("/", 1)[-1] == "vars" else None)
    return bool(found)


def read_keras_h5(f: h5py.File, path: str, *, layout: str, config: dict | None = None) -> Checkpoint:
    """Read the recurrent matrices of an open Keras HDF5 file.

    Parameters
    ----------
    f : h5py.File
        Open file, layout ``keras-h5`` (legacy) or ``keras-weights-h5`` (Keras 3).
    path : str
        Path shown in messages and in ``Checkpoint.path``.
    layout : {"keras-h5", "keras-weights-h5"}
        As named by :func:`spectra.load.hdf5.h5_layout`.
    config : dict, optional
        The model's ``config.json`` (Keras 3), for classes and user names.

    Returns
    -------
    Checkpoint
        One matrix per gate, ``A = recurrent_kernel[:, a:b].T``.

    Raises
    ------
    NoRecurrentWeightsError
        No LSTM, GRU or SimpleRNN kernel in the file.
    CorruptFileError
        A kernel's data cannot be read.
    UnsupportedFormatError
        One shard of sharded Keras weights (``m_00000.weights.h5``) beside the index that
        lists it: sharded weights are not read.

    Warns
    -----
    RuntimeWarning
        A Keras 3 weights file without the model's own ``vars`` group, like a shard after
        the first away from its index (read, but maybe part of a model).
    """
    if layout == "keras-h5":
        return _read_legacy(f, path)
    index = _shard_index(path)
    if index is not None:
        raise UnsupportedFormatError(
            f"{path}: one shard of sharded Keras weights (index {index}); sharded Keras weights "
            "are not read, and a shard alone is part of a model: re-save the model without "
            "max_shard_size"
        )
    if _looks_like_later_shard(f):
        warnings.warn(
            f"{path}: no model 'vars' group, as in a shard of sharded Keras weights after the "
            "first: if it is one, the model's other layers are in other shards, not read here "
            "(sharded Keras weights are not read: re-save the model without max_shard_size)",
            RuntimeWarning,
            stacklevel=4,
        )
    root_name = _vars_name(f)
    metadata = {"framework": "keras", "layout": "keras3-weights", "model_name": root_name}
    return _read_v3_weights(f, path, "keras-weights-h5", config, metadata)


# --------------------------------------------------------------------------- .keras zip


def _read_member_text(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> str:
    if info.file_size > MAX_CONFIG_BYTES:
        raise CorruptFileError(
            f"{path}: member {info.filename} declares {size_text(info.file_size)}, "
            f"more than the {size_text(MAX_CONFIG_BYTES)} a config may hold"
        )
    with zf.open(info) as fh:
        data = fh.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise CorruptFileError(f"{path}: member {info.filename} inflates beyond its declared size")
    return data.decode("utf-8")


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dst, path: str) -> None:
    """Copy a zip member to `dst` in chunks, never more than its declared size."""
    left = info.file_size
    with zf.open(info) as fh:
        while True:
            chunk = fh.read(min(_CHUNK, left + 1))
            if not chunk:
                break
            if len(chunk) > left:
                raise CorruptFileError(
                    f"{path}: member {info.filename} inflates beyond its declared size "
                    f"({size_text(info.file_size)})"
                )
            dst.write(chunk)
            left -= len(chunk)
    if left:
        raise CorruptFileError(f"{path}: member {info.filename} is truncated ({left} bytes missing)")


def read_keras_v3(path: str | os.PathLike) -> Checkpoint:
    """Read every recurrent matrix ``A`` of a Keras 3 ``.keras`` archive.

    For each LSTM/GRU/SimpleRNN layer (also inside Bidirectional wrappers and
    nested models) and each gate, ``A = recurrent_kernel[:, a:b].T``: Keras
    computes ``h_{t-1} @ W`` (row vectors), the column-vector recurrence
    ``h_t = f(A h_{t-1} + B x_t + b)`` needs the transpose (DESIGN.md).

    Parameters
    ----------
    path : str or path-like
        A ``.keras`` zip holding ``config.json`` and ``model.weights.h5``.

    Returns
    -------
    Checkpoint
        ``format="keras-v3"``; ``metadata`` has ``framework="keras"``,
        ``weights_member="model.weights.h5"``, ``keras_version`` and the
        model's class and name. ``RecurrentMatrix.source`` is the dataset path
        inside the weights member (``layers/lstm/cell/vars/1``).

    Raises
    ------
    CorruptFileError
        Truncated zip, unreadable JSON, a member larger than
        :data:`MAX_WEIGHTS_MEMBER_BYTES` or than the free temporary disk
        space, a member inflating beyond its declared size, corrupt HDF5.
    UnsupportedFormatError
        Sharded weights (``model.weights.json``), which are not read.
    NoRecurrentWeightsError
        No weights member, or no recurrent layer in it.
    """
    p = os.fspath(path)
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptFileError(f"{p}: corrupt or truncated .keras archive ({exc})") from None
    try:
        with zf:
            infos = {i.filename: i for i in zf.infolist()}
            config: dict | None = None
            meta: dict = {}
            if "config.json" in infos:
                try:
                    config = json.loads(_read_member_text(zf, infos["config.json"], p))
                except ValueError as exc:
                    if isinstance(exc, SpectraError):
                        raise
                    raise CorruptFileError(f"{p}: config.json is not valid JSON ({exc})") from None
            if "metadata.json" in infos:
                try:
                    meta = json.loads(_read_member_text(zf, infos["metadata.json"], p))
                except ValueError as exc:
                    if isinstance(exc, SpectraError):
                        raise
                    meta = {}
            info = infos.get("model.weights.h5")
            if info is None:
                if "model.weights.json" in infos:
                    raise UnsupportedFormatError(
                        f"{p}: sharded Keras weights (model.weights.json + shards) are not read; "
                        "re-save the model without max_shard_size"
                    )
                raise NoRecurrentWeightsError(
                    f"{p}: .keras archive without a model.weights.h5 member "
                    f"(members: {', '.join(sorted(infos))})"
                )
            if info.file_size > MAX_WEIGHTS_MEMBER_BYTES:
                raise CorruptFileError(
                    f"{p}: model.weights.h5 declares {size_text(info.file_size)}, more than the "
                    f"{size_text(MAX_WEIGHTS_MEMBER_BYTES)} limit"
                )
            tmpdir = tempfile.gettempdir()
            free = shutil.disk_usage(tmpdir).free
            if info.file_size > free:
                raise CorruptFileError(
                    f"{p}: model.weights.h5 declares {size_text(info.file_size)}, more than the "
                    f"{size_text(free)} free in {tmpdir}"
                )
            with tempfile.NamedTemporaryFile(suffix=".weights.h5") as tmp:
                _copy_member(zf, info, tmp, p)
                tmp.flush()
                try:
                    f = h5py.File(tmp.name, "r", locking=False)
                except H5_ERRORS as exc:
                    raise CorruptFileError(f"{p}: model.weights.h5 is corrupt/unreadable ({exc})") from None
                with f:
                    metadata = {
                        "framework": "keras",
                        "weights_member": "model.weights.h5",
                        "keras_version": meta.get("keras_version") if isinstance(meta, dict) else None,
                        "model_class": config.get("class_name") if isinstance(config, dict) else None,
                        "model_name": _layer_name(config) if isinstance(config, dict) else None,
                    }
                    return _read_v3_weights(f, p, "keras-v3", config, metadata)
    except SpectraError:
        raise
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RecursionError, *H5_ERRORS) as exc:
        raise CorruptFileError(
            f"{p}: corrupt/unreadable .keras archive ({type(exc).__name__}: {exc})"
        ) from None
