"""PyTorch state-dict naming rules: which tensors are recurrent matrices.

Only the names torch's own recurrent modules produce qualify:

==============================================  ===========================================
state-dict key                                  module
==============================================  ===========================================
``<path>.weight_hh_l{k}[_reverse]``             ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` layer k
``<path>.weight_hh``                            ``nn.RNNCell`` / ``LSTMCell`` / ``GRUCell``
``<path>.weight_hr_l{k}[_reverse]``             ``nn.LSTM(proj_size=P)`` projection
``<path>.weight_hh_l{k}_orig`` (+ ``_u, _v``)   ``torch.nn.utils.spectral_norm``
``<path>.parametrizations.weight_hh_l{k}.original`` (+ ``.0._u``, ``.0._v``)
                                                ``torch.nn.utils.parametrizations.spectral_norm``
``<path>.weight_hh_l{k}_g`` + ``_v``             ``torch.nn.utils.weight_norm``
``<path>.parametrizations.weight_hh_l{k}.original0`` + ``original1``
                                                ``torch.nn.utils.parametrizations.weight_norm``
``<path>.parametrizations.weight_hh_l{k}.original`` + ``.0.base``
                                                ``torch.nn.utils.parametrizations.orthogonal``
                                                (read only while ``original`` is ``-I``:
                                                the map is not stored; see
                                                :mod:`spectra.load.torch_orthogonal`)
``<path>.weight_hh_l{k}_raw``                   AWD-LSTM / fastai ``WeightDrop`` (the weight
                                                used in evaluation; dropout acts in training)
``<path>.weight_hh_l{k}_orig`` + ``_mask``       ``torch.nn.utils.prune`` (the weight used is
                                                ``orig * mask``)
==============================================  ===========================================

Under ``spectral_norm`` the effective weight ``W / sigma``, ``sigma = u^T W_mat v``
with the stored power-iteration vectors, is reported (``W_mat = W``, or ``W^T``
for ``dim=1``: told by the vectors' shapes, or for a square ``W`` by which
orientation they are singular vectors of with a positive ``sigma``; vectors that
do not settle it, and a ``sigma`` that is not positive, are refused, never
guessed); under ``weight_norm`` the effective
``g v/||v||`` (norms over the rows, the columns or the whole tensor, as the
shape of ``g`` says).

The cell type follows from the gate count ``rows / cols`` of ``weight_hh``
(1 RNN, 3 GRU, 4 LSTM), cross-checked with ``weight_ih`` and bias shapes.
PyTorch's ``weight_hh`` is already the column-vector ``A`` (rows are stacked
gates ``i, f, g, o`` / ``r, z, n``), so gate ``g`` is rows
``[g*H, (g+1)*H)``. A square ``nn.Linear`` weight or optimizer moment never
qualifies, however square it is.

This module also finds the tensor mapping inside nested checkpoint dicts
(Lightning ``{"state_dict": ...}``, ``{"model_state_dict": ...}``...). Reading
files lives in :mod:`spectra.load.pytorch` and :mod:`spectra.load.torchpickle`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from spectra.checkpoint import GATE_NAMES, RecurrentMatrix, Skipped
from spectra.load.torch_orthogonal import default_orthogonal_map, orthogonal_weight, trivial_original

__all__ = [
    "TensorMapping",
    "classify_state_dict",
    "find_tensor_mappings",
    "follows_torch_names",
    "strip_wrapper_prefix",
]

_KINDS = "weight_hh|weight_ih|bias_hh|bias_ih|weight_hr"
_SUFFIX = r"(?:_l(?P<k>\d+)(?P<rev>_reverse)?)?"
_PLAIN = re.compile(rf"^(?P<prefix>(?:.+\.)?)(?P<kind>{_KINDS}){_SUFFIX}(?P<sn>_orig|_u|_v|_g|_raw|_mask)?$")
_PARAM = re.compile(
    rf"^(?P<prefix>(?:.+\.)?)parametrizations\.(?P<kind>{_KINDS}){_SUFFIX}\."
    r"(?P<part>original|original0|original1|0\._u|0\._v|0\.base)$"
)
#: any parametrization entry of a recurrent weight (a chain stores "1._u", "0.base"... besides ours)
_PARAM_ANY = re.compile(rf"^(?P<prefix>(?:.+\.)?)parametrizations\.weight_hh{_SUFFIX}\.(?P<rest>.+)$")
#: parametrizations part -> role suffix
_PARTS = {
    "original": "_param",
    "0._u": "_param_u",
    "0._v": "_param_v",
    "original0": "_param0",
    "original1": "_param1",
    "0.base": "_param_base",
}
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_WRAPPERS = frozenset(p[:-1] for p in _WRAPPER_PREFIXES)
_CELLS = {1: "rnn", 3: "gru", 4: "lstm"}
#: torch's quantized dtypes: such tensors reach here dequantized, their dtype name kept
_QUANTIZED = frozenset({"qint8", "quint8", "qint32", "quint4x2", "quint2x4"})
#: A weight_hh with more elements is skipped (4 gates of hidden 4096; 512 MiB in float64).
MAX_ELEMENTS = 1 << 26


def _wrapper_stripper(keys) -> Callable[[str], str]:
    """How to drop wrapper components from one mapping's keys.

    A wrapper (DataParallel/DDP ``module.``, ``torch.compile``'s ``_orig_mod.``) adds one
    component to the key of every tensor of the model it wraps, wherever that model sits: at
    the front for a wrapped model saved by itself, after the owner's path for one inside
    another module (``model._orig_mod.rnn.weight_hh_l0`` from a Lightning module holding a
    compiled model). Dropping it gives the ids of the unwrapped model. A wrapper component is
    dropped

    - where every key carries it at the same place, after the same leading components
      (``module.``, ``model.module.``; nested wrappers too: ``module._orig_mod.``);
    - for ``_orig_mod`` (a name only ``torch.compile`` gives), also where it is the only child
      of its parent (``model._orig_mod.*`` beside ``loss.weight``).

    A submodule literally named ``module`` beside others, or beside its parent's own tensors
    (fastai's ``WeightDropout``: ``weight_hh_l0_raw`` beside ``module.weight_hh_l0``), keeps its
    name. Keys without a dot (the wrapper's own bookkeeping, such as
    ``torch.optim.swa_utils.AveragedModel``'s ``n_averaged`` beside ``module.*``) do not count.
    No two keys are made equal: a dropped component was the only child of its parent.
    """
    keys = [k for k in keys if isinstance(k, str)]
    keys = [k for k in keys if "." in k] or keys
    paths = [k.split(".") for k in keys]
    # the module path every key shares (a tensor's own name, the last component, never counts)
    common: list[str] = []
    for parts in zip(*(p[:-1] for p in paths)):
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    children: dict[tuple[str, ...], set[str]] = {}
    for p in paths:
        for i in range(1, len(p)):
            children.setdefault(tuple(p[:i]), set()).add(p[i])
        children.setdefault((), set()).add(p[0])

    def wrapper_at(parts: list[str], i: int) -> bool:
        c = parts[i]
        if c not in _WRAPPERS or i == len(parts) - 1:
            return False
        if i < len(common) and parts[: i + 1] == common[: i + 1]:
            return True
        return c == "_orig_mod" and children.get(tuple(parts[:i])) == {c}

    def strip(key: str) -> str:
        parts = key.split(".")
        kept = [c for i, c in enumerate(parts) if not wrapper_at(parts, i)]
        return ".".join(kept) if len(kept) < len(parts) else key

    return strip


def strip_wrapper_prefix(key: str) -> str:
    """Drop leading ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes."""
    changed = True
    while changed:
        changed = False
        for pre in _WRAPPER_PREFIXES:
            if key.startswith(pre) and len(key) > len(pre):
                key = key[len(pre) :]
                changed = True
    return key


@dataclass
class TensorMapping:
    """A dict of named arrays found in a checkpoint object.

    Attributes
    ----------
    path : list
        Keys from the top-level object down to the mapping (``[]`` when the
        object itself is the mapping, ``["state_dict"]`` for Lightning).
    tensors : dict
        Its array-valued entries, in file order.
    """

    path: list
    tensors: dict[str, np.ndarray]


@dataclass
class _Group:
    prefix: str  # wrapper-stripped module path with trailing "."
    suffix: str  # "_l1_reverse", "" for cells
    layer_index: int | None
    reverse: bool
    keys: dict[str, str] = field(default_factory=dict)  # role -> source key


def _is_optimizer(d: Mapping) -> bool:
    return "state" in d and "param_groups" in d


def _path_str(path: list) -> str:
    return "/".join(str(p) for p in path)


def find_tensor_mappings(
    obj: object, *, is_array=lambda v: isinstance(v, np.ndarray)
) -> tuple[list[TensorMapping], list[Skipped]]:
    """Walk a checkpoint object and collect its tensor mappings.

    Parameters
    ----------
    obj : object
        The unpickled top-level object (dicts, lists, arrays).
    is_array : callable
        Predicate for a tensor leaf.

    Returns
    -------
    mappings : list of TensorMapping
        Every dict with string keys holding at least one array, depth first,
        in insertion order, outside optimizer state.
    skipped : list of Skipped
        Arrays that belong to no such mapping: optimizer state (any subtree
        of a dict with ``state`` and ``param_groups``, or under a key naming an
        optimizer), gradients or optimizer moments keyed by parameter name
        under a key naming them (``grads``, ``exp_avg``, ``momentum_buffer``...),
        tensors keyed by integers or inside lists.
    """
    mappings: list[TensorMapping] = []
    skipped: list[Skipped] = []

    def visit(node: object, path: list, reason: str | None, depth: int) -> None:
        if depth > 50:
            return
        if is_array(node):
            skipped.append(
                Skipped(_path_str(path), tuple(node.shape), reason or "tensor outside a state_dict")
            )
            return
        if isinstance(node, Mapping):
            sub_reason = reason
            if sub_reason is None and (_is_optimizer(node) or _names_optimizer(path)):
                sub_reason = "optimizer state"
            if sub_reason is None and path and isinstance(path[-1], str):
                # {"state_dict": sd, "exp_avg": {name: m}} or {"model": sd, "grads": {name: p.grad}}:
                # named like the weights, but optimizer state or gradients
                key = path[-1].lower()
                sub_reason = next((why for rx, why in _NOT_WEIGHTS if rx.fullmatch(key)), None)
            if sub_reason is None and node and all(isinstance(k, str) for k in node):
                arrays = {k: v for k, v in node.items() if is_array(v)}
                if arrays:
                    mappings.append(TensorMapping(list(path), arrays))
                for k, v in node.items():
                    if not is_array(v):
                        visit(v, [*path, k], None, depth + 1)
                return
            for k, v in node.items():
                r = sub_reason
                if r is None and not isinstance(k, str):
                    if _names_optimizer(path):
                        r = "optimizer state"
                    elif is_array(v):  # a mapping keyed by integers (snapshots {10: sd, 20: sd}) is searched
                        r = "tensor keyed by a non-string"
                visit(v, [*path, k], r, depth + 1)
            return
        if isinstance(node, (list, tuple)):
            r = reason if reason is not None else ("optimizer state" if _names_optimizer(path) else None)
            for i, v in enumerate(node):
                visit(v, [*path, i], r, depth + 1)

    visit(obj, [], None, 0)
    return mappings, skipped


#: a key naming optimizer state: "optimizer", "optim", "optimizer_state_dict", "g_optimizer"...,
#: not "optimal_model" or "optimized" (models kept under such keys were skipped)
_OPTIM_KEY = re.compile(r"(?:.*[_.\-])?optim(?:izer)?s?(?:[_.\-].*)?")
#: a mapping of gradients saved beside the model (grads, gradients, grad_norms, last_grads...)
_GRAD_KEY = re.compile(r"(?:.*[_.\-])?grad(?:ient)?s?(?:[_.\-].*)?")
#: a mapping of optimizer moments keyed by parameter name ({"exp_avg": {name: m}}): torch.optim's
#: per-parameter state names (Adam/AdamW/NAdam/RAdam exp_avg, exp_avg_sq, max_exp_avg_sq; Adamax
#: exp_inf; SGD momentum_buffer; RMSprop square_avg, grad_avg; Adadelta acc_delta; Adagrad sum;
#: Adafactor row_var, col_var, variance), after any prefix ("adam_exp_avg"), and a few generic
#: whole keys (moments); a model kept as "momentum" (a momentum encoder), "momentum_model",
#: "exp_avg_model" or "ema" is read
_MOMENT_KEY = re.compile(
    r"(?:.*[_.\-])?(?:max_)?(?:exp_avg(?:_sq)?|exp_inf|square_avg|acc_delta|momentum_buffer"
    r"|grad_avg|row_var|col_var)s?|(?:first_|second_)?moments?|sum|variance"
)


#: mappings named like the weights that hold something else, by the key above them
_NOT_WEIGHTS = (
    (_MOMENT_KEY, "optimizer moments (by the key's name), not weights"),
    (_GRAD_KEY, "gradients (by the key's name), not weights"),
)


def _names_optimizer(path: list) -> bool:
    return any(isinstance(p, str) and _OPTIM_KEY.fullmatch(p.lower()) for p in path)


def _parse(key: str, strip: Callable[[str], str] = strip_wrapper_prefix) -> tuple[str, _Group, str] | None:
    """Return (role, group, canonical hh name) for a recurrent-module key, else None."""
    name = strip(key)
    m = _PLAIN.match(name)
    part = None
    if m is None:
        m = _PARAM.match(name)
        if m is None:
            return None
        part = m["part"]
    kind, sn = m["kind"], (m["sn"] if part is None else None)
    k = m["k"]
    suffix = (f"_l{k}" if k is not None else "") + ("_reverse" if m["rev"] else "")
    group = _Group(m["prefix"], suffix, int(k) if k is not None else None, bool(m["rev"]))
    if part is not None:  # parametrizations.<kind><suffix>.<part>
        role = kind + _PARTS[part]
    else:
        role = kind + (sn or "")
    return role, group, f"{m['prefix']}{kind}{suffix}"


def _reason(role: str, primary: str | None = None) -> str:
    if role.startswith("weight_ih"):
        return "input weights (weight_ih)"
    if role.startswith("bias"):
        return "bias"
    if role.startswith("weight_hr"):
        return "projection weights (weight_hr; folded into the recurrent matrices)"
    if role.endswith(("_u", "_v")):
        return "spectral_norm power-iteration vector"
    if role.endswith("_mask"):
        return "pruning mask of torch.nn.utils.prune (folded into the recurrent matrices)"
    if role.endswith(("_g", "_param0")):
        return "weight_norm magnitude g (folded into the recurrent matrices)"
    if role.endswith("_param_base"):
        return "orthogonal parametrization's base"
    if role == "weight_hh" and primary == "weight_hh_raw":
        return "WeightDrop's dropped-out copy (the _raw weight is reported)"
    return "recurrent weight"


def _primary(keys: Mapping[str, str]) -> tuple[str | None, str]:
    """The role of a group's weight_hh tensor that is reported, and how it is stored."""
    if "weight_hh_param0" in keys and "weight_hh_param1" in keys:
        return "weight_hh_param1", "weight_norm"
    if "weight_hh_g" in keys and "weight_hh_v" in keys and "weight_hh_orig" not in keys:
        return "weight_hh_v", "weight_norm"
    if "weight_hh_orig" in keys and "weight_hh_mask" in keys and "weight_hh_u" not in keys:
        return "weight_hh_orig", "pruned"
    if "weight_hh_param" in keys and not ("weight_hh_param_u" in keys and "weight_hh_param_v" in keys):
        return "weight_hh_param", "other"  # orthogonal (a stored base or a hint), else unknown
    for role, how in (
        ("weight_hh_orig", "spectral_norm"),
        ("weight_hh_param", "spectral_norm"),
        ("weight_hh_raw", "plain"),
        ("weight_hh", "plain"),
    ):
        if role in keys:
            return role, how
    return None, "plain"


def _other_reason(key: str, arr: np.ndarray) -> str:
    if arr.ndim == 2 and arr.shape[0] == arr.shape[1] and arr.shape[0] > 0:
        if key.rsplit(".", 1)[-1] == "weight":  # a module's weight: W_hh.weight, fc.weight
            return "not a recurrent weight (square Linear layer)"
        # a bare parameter (recurrent_weight, W): maybe a hand-written recurrence's matrix
        return (
            "square tensor not named like a torch recurrent weight (RNN/LSTM/GRU, cell); to analyse "
            "it as one: np.save('W.npy', W), then spectra analyze W.npy"
        )
    return "not a recurrent weight"


def follows_torch_names(names: Iterable[str]) -> bool:
    """Whether array names follow a torch state_dict's: a ``weight_hh`` with its ``weight_ih`` beside it.

    A ``.npz`` or plain HDF5 file written from a state_dict
    (``np.savez(f, **{k: v.numpy() for k, v in sd.items()})``) keeps torch's names
    (``lstm.weight_hh_l0``, ``cell.weight_hh``); such a file is read with
    :func:`classify_state_dict`, not as bare arrays.
    """
    keys = [k for k in names if isinstance(k, str)]
    strip = _wrapper_stripper(keys)
    roles: dict[tuple[str, str], set[str]] = {}
    for key in keys:
        res = _parse(key, strip)
        if res is not None:
            role, group, _ = res
            roles.setdefault((group.prefix, group.suffix), set()).add(role)
    return any(
        any(r.startswith("weight_hh") for r in rs) and any(r.startswith("weight_ih") for r in rs)
        for rs in roles.values()
    )


def classify_state_dict(
    tensors: Mapping[str, np.ndarray],
    dtypes: Mapping[int, str] | None = None,
    *,
    cell_hints: Mapping[str, str] | None = None,
) -> tuple[list[RecurrentMatrix], list[Skipped], list[Skipped]]:
    """Split one state_dict into recurrent matrices (one per gate) and the rest.

    For gate ``g`` of a layer with hidden size ``H`` the matrix is the row
    block ``A_g = W_hh[g*H:(g+1)*H, :]`` (PyTorch stores ``h_t = f(W_ih x_t +
    W_hh h_{t-1} + b)`` in column-vector form; torch ``nn.LSTM`` docs). With
    ``proj_size=P`` the map from ``h_{t-1}`` (size P) back to the projected
    state is ``A_g = W_hr @ W_hh[g]`` (P x P). Under spectral normalisation
    the effective weight ``W / sigma`` with ``sigma = u^T W v`` (the stored
    power-iteration vectors; Miyato et al. 2018, torch ``spectral_norm`` in
    eval mode) is reported.

    Parameters
    ----------
    tensors : mapping of str to ndarray
        The state_dict (keys as stored, e.g. with a ``module.`` prefix).
    dtypes : mapping of int to str, optional
        ``id(array) -> stored dtype name`` (``float16``, ``bfloat16``...);
        the array's own dtype is used where missing.
    cell_hints : mapping of str to str, optional
        Module path (wrapper-stripped, e.g. ``rnn``) -> cell name
        (``rnn_tanh``, ``rnn_relu``) where the file records it.

    Returns
    -------
    matrices : list of RecurrentMatrix
        In key order, gates in PyTorch order.
    skipped : list of Skipped
        Every other array with the reason.
    refused : list of Skipped
        The entries of `skipped` that are recurrent weights by their name but
        could not be read (their shape, dtype, a parametrization...), so that
        an error can say why no matrix was found.
    """
    dtypes = dtypes or {}
    hints = cell_hints or {}
    groups: dict[tuple[str, str], _Group] = {}
    parsed: dict[str, tuple[str, tuple[str, str]]] = {}
    strip = _wrapper_stripper(tensors)
    hints = {strip(k + ".")[:-1]: v for k, v in hints.items()}  # module paths, as the layers are named
    for key in tensors:
        res = _parse(key, strip)
        if res is None:
            continue
        role, group, _ = res
        gk = (group.prefix, group.suffix)
        groups.setdefault(gk, group).keys.setdefault(role, key)
        parsed[key] = (role, gk)

    # fastai v1's WeightDropout keeps the weight as <P>weight_hh_l0_raw and the dropped-out copy
    # as <P>module.weight_hh_l0: a group of its own, not reported
    dropped = {(g.prefix + "module.", g.suffix) for g in groups.values() if "weight_hh_raw" in g.keys}
    # a chain of parametrizations (weight_norm then spectral_norm, two spectral_norms...) applies
    # each in turn; only a single spectral_norm or weight_norm is read
    chained: dict[tuple[str, str], str] = {}
    for key in tensors:
        hit = _PARAM_ANY.match(strip(key))
        if hit and re.match(r"[1-9]\d*\.", hit["rest"]):  # a second (third...) parametrization
            k, rev = hit["k"], hit["rev"]
            suffix = (f"_l{k}" if k is not None else "") + ("_reverse" if rev else "")
            chained.setdefault((hit["prefix"], suffix), key)
    matrices: list[RecurrentMatrix] = []
    skipped: list[Skipped] = []
    refused: list[Skipped] = []
    for key, arr in tensors.items():
        shape = tuple(arr.shape)
        if key not in parsed:
            skipped.append(Skipped(key, shape, _other_reason(key, arr)))
            continue
        role, gk = parsed[key]
        group = groups[gk]
        primary, how = _primary(group.keys)
        if role == "weight_hh" and gk in dropped:
            skipped.append(Skipped(key, shape, _reason(role, "weight_hh_raw")))
        elif role == primary and gk in chained:
            refused.append(
                Skipped(
                    key,
                    shape,
                    "named like a recurrent weight, but under a chain of parametrizations "
                    f"(e.g. {chained[gk]}): only a single spectral_norm or weight_norm is read",
                )
            )
            skipped.append(refused[-1])
        elif role == primary:
            found, why = _gate_matrices(tensors, dtypes, hints, group, role, how)
            matrices.extend(found)
            if why:
                refused.append(Skipped(key, shape, why))
                skipped.append(refused[-1])
        else:
            skipped.append(Skipped(key, shape, _reason(role, primary)))
    return matrices, skipped, refused


def _signed_cos(x: np.ndarray, y: np.ndarray) -> float:
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    return float(x @ y) / (nx * ny) if nx > 0 and ny > 0 else 0.0


#: a square weight's u, v fit an orientation clearly when the power iteration's identities
#: hold to this cosine there ...
_SN_FIT = 0.99
#: ... or, a step behind the weights (saved after optimizer.step()), to this one with a margin
_SN_LAGGING_FIT, _SN_MARGIN = 0.9, 0.1
#: where both orientations fit, the reading is kept (with a note) when the two sigmas differ by
#: at most this (relative); a review's largest among nearly symmetric weights was 1.3e-2
_SN_SPREAD = 0.02


def _spectral_norm_dim(W: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[int | None, str | None]:
    """Which ``dim`` torch's spectral_norm ran on: 0 (``W_mat = W``) or 1 (``W_mat = W^T``).

    ``u`` has ``W_mat``'s row count and ``v`` its column count, so the shapes decide a
    non-square weight. For a square one, torch's power iteration leaves
    ``u = W_mat v / ||W_mat v||`` and ``v = W_mat^T u / ||W_mat^T u||``, so in the true
    orientation both identities hold (up to the last optimizer step) *with a positive sign*,
    and ``sigma = u^T W_mat v = ||W_mat v|| > 0``. The fit of an orientation is the larger
    signed cosine of the two identities (its sign is that of its sigma). An orientation is
    read when it fits to 0.99 and better than the other, or to 0.9 and by a margin of 0.1
    (vectors a step behind the weights). Vectors that fit both orientations alike (a nearly
    symmetric weight) are read in the better one, with a note giving the ratio of the two
    sigmas (the two readings differ by exactly that factor), when it is within 2%. Anything
    else (vectors saved before any training forward pass, that fit neither orientation, or
    two readings further apart) is refused, and a negative sigma is never divided by.

    Returns
    -------
    dim : {0, 1} or None
        None when the matrix is refused.
    note : str or None
        The reason for a refusal, or a note on a reading that rests on lagging vectors.
    """
    R, C = W.shape
    fits0 = u.shape == (R,) and v.shape == (C,)
    fits1 = u.shape == (C,) and v.shape == (R,)
    if not (fits0 or fits1):
        return None, f"spectral_norm vectors u{u.shape}, v{v.shape} do not fit weight {W.shape}"
    if not (fits0 and fits1):
        dim = 0 if fits0 else 1
        sigma = float(u @ ((W if dim == 0 else W.T) @ v))
        if not sigma > 0:
            return None, _sn_refusal(f"sigma = u^T W_mat v = {sigma:.6g} is not positive", dim)
        return dim, None
    sigmas = (float(u @ (W @ v)), float(u @ (W.T @ v)))
    fit = (
        max(_signed_cos(W @ v, u), _signed_cos(W.T @ u, v)),
        max(_signed_cos(W.T @ v, u), _signed_cos(W @ u, v)),
    )
    best = 1 if fit[1] > fit[0] else 0
    gap = fit[best] - fit[1 - best]
    fits = f"fit {fit[0]:.3f} as dim=0, {fit[1]:.3f} as dim=1"
    if fit[best] >= _SN_FIT and gap >= 1e-3:
        return best, None
    if fit[best] >= _SN_FIT and abs(sigmas[0] - sigmas[1]) <= 1e-6 * max(abs(sigmas[0]), abs(sigmas[1])):
        return 0, None  # both orientations fit, with the same sigma: the same matrix either way
    if fit[best] >= _SN_LAGGING_FIT and gap >= _SN_MARGIN:
        other = sigmas[1 - best]
        if other > 0:
            spread = abs(sigmas[best] - other) / min(sigmas)
            alt = (
                f"; the other orientation would read the same matrix scaled by sigma_{best}/sigma_"
                f"{1 - best} = {sigmas[best] / other:.6g} (up to {_round_up(spread)} relative)"
            )
        else:
            alt = f"; the other orientation's sigma is {other:.6g} (torch's is positive once it has iterated)"
        return best, (
            f"spectral_norm's u, v fit the weight only approximately ({fits}; as after an optimizer "
            f"step): dim={best} assumed, where they fit and sigma is positive{alt}; vectors saved "
            "before any training forward pass (the old spectral_norm starts from random ones) "
            "settle neither reading"
        )
    # both orientations fit (a nearly symmetric weight: identity or symmetric initialisation,
    # about half of such checkpoints in a review): the readings W/sigma_0 and W/sigma_1 differ
    # only by the ratio of the sigmas, a median 4e-5. Read the better fit and say by how much
    # the other would differ, where that is small; refuse where it is not
    if fit[best] >= _SN_LAGGING_FIT and min(sigmas) > 0:
        spread = abs(sigmas[0] - sigmas[1]) / min(sigmas)
        if spread <= _SN_SPREAD:
            return best, (
                f"spectral_norm's u, v fit the weight and its transpose alike ({fits}): dim={best} "
                f"assumed; the other reading is the same matrix scaled by sigma_{best}/sigma_{1 - best} "
                f"= {sigmas[best] / sigmas[1 - best]:.6g}, so every figure is uncertain by up to "
                f"{_round_up(spread)} relative"
            )
    if fit[best] >= _SN_FIT:
        why = "u, v fit the weight and its transpose alike"
    elif fit[best] > 0:
        why = (
            "u, v are not singular vectors of the weight or its transpose "
            "(saved before any training forward pass?)"
        )
    else:
        why = "u^T W v is negative in both orientations"
    return None, _sn_refusal(f"{why} ({fits}; sigma {sigmas[0]:.6g} or {sigmas[1]:.6g})", None)


def _round_up(x: float) -> str:
    """`x` to two significant digits, rounded up (a bound must not shrink when printed)."""
    t = f"{x:.1e}"
    if float(t) < x:
        m, e = t.split("e")
        t = f"{float(m) + 0.1:.1f}e{e}"
    return t


def _sn_refusal(why: str, dim: int | None) -> str:
    on = "" if dim is None else f" (dim={dim})"
    return (
        f"named like a recurrent weight under torch spectral_norm{on}, whose effective weight W / sigma "
        f"the stored power-iteration vectors do not settle: {why}; save the effective weight itself, "
        "under its name: torch.save({'rnn.weight_hh_l0': rnn.weight_hh_l0.detach()}, path)"
    )


def _weight_norm(v: np.ndarray, g: np.ndarray) -> tuple[np.ndarray | None, str]:
    """``g v/||v||`` as torch's weight_norm computes it; the norms' axes follow ``g``'s shape."""
    R, C = v.shape
    # a zero row (column) of v gives NaN there, as in torch (0/0): reported as non-finite
    with np.errstate(divide="ignore", invalid="ignore"):
        if g.size == 1 and R * C > 1:
            return g.reshape(()) * v / np.linalg.norm(v), "norm of the whole tensor"
        if g.shape in ((R, 1), (R,)):
            return g.reshape(R, 1) * v / np.linalg.norm(v, axis=1, keepdims=True), "row norms, dim=0"
        if g.shape == (1, C):
            return g * v / np.linalg.norm(v, axis=0, keepdims=True), "column norms, dim=1"
    return None, f"weight_norm magnitude g of shape {tuple(g.shape)} does not fit weight {(R, C)}"


def _orthogonal(
    tensors: Mapping[str, np.ndarray], group: _Group, X: np.ndarray
) -> tuple[np.ndarray | None, str]:
    """The effective weight of a ``parametrizations.<w>.original`` stored without u/v or g.

    torch's ``orthogonal`` stores ``original`` and (``use_trivialization=True``) ``0.base``,
    never its map (matrix_exp, cayley, householder), and torch refuses to pickle a
    parametrized module, so no file records the map. The weight is read only where the
    map does not matter: a stored base and an ``original`` still at ``-I`` (as registered,
    or after ``module.w = module.w``, which moves the weight into the base), where every map
    gives ``base[:, :k]`` (:mod:`spectra.load.torch_orthogonal`). Otherwise ``(None, reason)``.
    """
    name = f"weight_hh{group.suffix}"
    src = group.keys["weight_hh_param"]
    base_key = group.keys.get("weight_hh_param_base")
    mod = group.prefix[:-1] if group.prefix else "module"
    save = (
        f"save the weight itself (torch.save({{'{group.prefix}{name}': {mod}.{name}.detach()}})), "
        f"or first move it into the base (with torch.no_grad(): {mod}.{name} = {mod}.{name})"
    )
    if base_key is None:
        return None, (
            "named like a recurrent weight but parametrized by something other than spectral_norm "
            "or weight_norm, with nothing else stored (no u/v vectors, no g, no orthogonal base): "
            "a state_dict does not record which parametrization (orthogonal with "
            f"use_trivialization=False? a custom one?): save the weight itself "
            f"(torch.save({{'{group.prefix}{name}': {mod}.{name}.detach()}}))"
        )
    if not trivial_original(X):
        return None, (
            "named like a recurrent weight, under torch's orthogonal parametrization (base "
            f"{base_key} stored), whose map (matrix_exp, cayley or householder) a state_dict does "
            "not record; this trained original gives a different weight under each (torch's "
            f"default here: {default_orthogonal_map(X.shape)}), so none is assumed: {save}"
        )
    base = np.asarray(tensors[base_key], dtype=np.float64)
    try:
        W = orthogonal_weight(X, base, default_orthogonal_map(X.shape))
    except ValueError as exc:
        return None, f"named like a recurrent weight, under torch's orthogonal parametrization: {exc}"
    return W, (
        f"orthogonal: A = base[:, :k] of torch's orthogonal parametrization ({base_key}; {src} is "
        "still -I, so every map gives this); not writable (the stored original is not the weight)"
    )


def _pruned(
    tensors: Mapping[str, np.ndarray], group: _Group, kind: str, orig: np.ndarray
) -> tuple[np.ndarray | None, str]:
    """``orig * mask`` of a weight pruned by ``torch.nn.utils.prune``: the weight torch uses.

    ``prune`` keeps the weight as ``<name>_orig`` and a 0/1 buffer ``<name>_mask``, and recomputes
    ``<name> = <name>_orig * <name>_mask`` in a forward pre-hook (torch ``prune.BasePruningMethod``).
    """
    src, mask_key = group.keys[f"{kind}_orig"], group.keys[f"{kind}_mask"]
    mask = tensors[mask_key]
    if tuple(mask.shape) != tuple(orig.shape):
        return None, (
            f"named like a recurrent weight pruned by torch.nn.utils.prune, but its mask {mask_key} "
            f"{tuple(mask.shape)} does not fit {src} {tuple(orig.shape)}"
        )
    how = f"pruned (torch.nn.utils.prune): orig * mask ({src} * {mask_key})"
    if kind == "weight_hh":  # stabilize writes c * orig: mask * (c * orig) = c * (orig * mask)
        how += "; stabilize writes c * orig, the mask kept (not with svd-clip)"
    return orig * np.asarray(mask, dtype=np.float64), how


def _dtype_name(arr: np.ndarray, dtypes: Mapping[int, str]) -> str:
    return dtypes.get(id(arr), str(arr.dtype))


def _gate_matrices(
    tensors: Mapping[str, np.ndarray],
    dtypes: Mapping[int, str],
    hints: Mapping[str, str],
    group: _Group,
    role: str,
    how: str,
) -> tuple[list[RecurrentMatrix], str | None]:
    src = group.keys[role]
    W_stored = tensors[src]
    if W_stored.ndim != 2 or 0 in W_stored.shape:
        return [], f"named like a recurrent weight but of shape {tuple(W_stored.shape)}, not 2-D"
    if W_stored.size > MAX_ELEMENTS:
        return [], f"recurrent weight too large to analyse ({W_stored.size} elements > {MAX_ELEMENTS})"
    if not np.issubdtype(W_stored.dtype, np.floating):
        return [], f"named like a recurrent weight but of dtype {W_stored.dtype}"
    W = np.asarray(W_stored, dtype=np.float64)
    mask = None  # torch.nn.utils.prune's mask: W is then orig * mask
    notes: list[str] = []
    spectral = how == "spectral_norm"
    if spectral:
        tail = "_param" if role == "weight_hh_param" else ""
        u_key, v_key = group.keys.get(f"weight_hh{tail}_u"), group.keys.get(f"weight_hh{tail}_v")
        if u_key is None or v_key is None:
            return [], "spectral_norm weight without its u/v vectors (effective weight unknown)"
        u = np.asarray(tensors[u_key], dtype=np.float64).ravel()
        v = np.asarray(tensors[v_key], dtype=np.float64).ravel()
        dim, why = _spectral_norm_dim(W, u, v)
        if dim is None:
            return [], why
        sigma = float(u @ ((W if dim == 0 else W.T) @ v))
        W = W / sigma
        on = ", dim=1" if dim else ""
        notes.append(f"spectrally normalised by torch spectral_norm (sigma={sigma:.6g}{on})")
        if why:
            notes.append(why)
    elif how == "weight_norm":
        new_api = role == "weight_hh_param1"
        g_key = group.keys["weight_hh_param0" if new_api else "weight_hh_g"]
        g = np.asarray(tensors[g_key], dtype=np.float64)
        W, how_norm = _weight_norm(W, g)
        if W is None:
            return [], how_norm
        notes.append(
            f"weight_norm: A = g v/||v|| ({how_norm}; g = {g_key}, v = {src}); "
            "not writable (scale g, or remove the wrapper)"
        )
    elif how == "pruned":
        W, why = _pruned(tensors, group, "weight_hh", W)
        if W is None:
            return [], why
        mask = np.asarray(tensors[group.keys["weight_hh_mask"]], dtype=np.float64)
        notes.append(why)
    elif how == "other":
        W, why = _orthogonal(tensors, group, W)
        if W is None:
            return [], why
        notes.append(why)
    elif role == "weight_hh_raw":
        notes.append(f"WeightDrop: {src} is the weight used in evaluation (dropout acts only in training)")

    R, C = W.shape
    hr_key = group.keys.get("weight_hr")
    hr_pruned = None
    if hr_key is None and "weight_hr_orig" in group.keys and "weight_hr_mask" in group.keys:
        hr_key = group.keys["weight_hr_orig"]
        hr_pruned, why = _pruned(tensors, group, "weight_hr", np.asarray(tensors[hr_key], dtype=np.float64))
        if hr_pruned is None:
            return [], why
        notes.append(why)
    if hr_key is None and any(r.startswith("weight_hr") for r in group.keys):
        return [], (
            "named like a recurrent weight, but the LSTM projection weight_hr is under a "
            "parametrization (spectral_norm, weight_norm...): not supported"
        )
    hr = None
    if hr_key is not None:
        hr_arr = tensors[hr_key]
        if hr_arr.ndim != 2 or hr_arr.shape[0] != C or R != 4 * hr_arr.shape[1]:
            return [], (
                f"LSTM projection shapes do not fit: weight_hh {W.shape}, weight_hr {tuple(hr_arr.shape)} "
                "(expected (4H, P) and (P, H))"
            )
        hr = np.asarray(hr_arr, dtype=np.float64) if hr_pruned is None else hr_pruned
        H, gates = hr_arr.shape[1], 4
    else:
        if R % C or R // C not in _CELLS:
            return [], f"weight_hh of shape {(R, C)} is not (gates*hidden, hidden) for 1, 3 or 4 gates"
        H, gates = C, R // C
    for other in ("weight_ih", "bias_ih", "bias_hh"):
        ok = group.keys.get(other)
        if ok is not None and tensors[ok].shape[:1] != (R,):
            return [], (
                f"shape {tuple(tensors[ok].shape)} of {ok} contradicts weight_hh {(R, C)} "
                f"({gates} gates of hidden size {H})"
            )
    cell = _CELLS[gates]
    layer = group.prefix[:-1] if group.prefix.endswith(".") else group.prefix
    if cell == "rnn" and layer in hints:
        cell = hints[layer]
    base = f"{group.prefix}weight_hh{group.suffix}"
    gate_names = GATE_NAMES.get(f"torch-{cell}", ())
    if hr is not None:
        notes.append(
            f"projection: A = weight_hr{group.suffix} @ weight_hh{group.suffix}[gate] "
            f"({C} x {C}; hidden {H} projected to {C})"
        )
    dtype = _dtype_name(W_stored, dtypes)
    if dtype in _QUANTIZED:
        notes.append(f"stored quantized ({dtype}): dequantized by torch (scale and zero point applied)")
    out: list[RecurrentMatrix] = []
    for g in range(gates):
        a, b = g * H, (g + 1) * H
        A = W[a:b]
        if hr is not None:
            A = hr @ A
        finite = bool(np.isfinite(W_stored[a:b]).all()) and bool(np.isfinite(A).all())
        gate, native = gate_names[g] if gate_names else (None, None)
        these = list(notes)
        if not np.isfinite(W_stored[a:b]).all():
            these.append("stored weights hold NaN or Inf")
        elif not finite:  # e.g. weight_norm with a zero row of v: torch's effective weight is NaN there
            these.append("the effective weight holds NaN or Inf (stored weights are finite)")
        out.append(
            RecurrentMatrix(
                id=base if gate is None else f"{base}[{gate}]",
                matrix=np.ascontiguousarray(A),
                layer=layer,
                direction="reverse" if group.reverse else "forward",
                cell=cell,
                gate=gate,
                native_gate=native,
                layer_index=group.layer_index,
                source=group.keys[role],
                block=(a, b) if gates > 1 else None,
                transposed=False,
                dtype=dtype,
                finite=finite,
                spectral_norm=spectral,
                notes=tuple(these),
                # with a projection A is not mask * a stored block (and is not written back)
                mask=None if mask is None or hr is not None else np.ascontiguousarray(mask[a:b]),
            )
        )
    return out, None
