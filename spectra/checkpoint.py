"""The data every loader produces: :class:`Checkpoint` and :class:`RecurrentMatrix`.

Loaders (``spectra.load``) build these; analysis, stabilisation and the CLI
consume them. Nothing here reads files or computes spectra.

Orientation (DESIGN.md): ``RecurrentMatrix.matrix`` is always the ``A`` of the
column-vector recurrence ``h_t = f(A h_{t-1} + B x_t + b)``, shape
``(hidden, hidden)``, one per gate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from spectra.errors import MatrixNotFoundError

__all__ = ["GATE_NAMES", "Checkpoint", "RecurrentMatrix", "Skipped"]

#: Common gate names, per cell type, in each framework's native order:
#: ``(common, native)`` pairs.
GATE_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "torch-lstm": (("input", "i"), ("forget", "f"), ("cell", "g"), ("output", "o")),
    "torch-gru": (("reset", "r"), ("update", "z"), ("new", "n")),
    "keras-lstm": (("input", "i"), ("forget", "f"), ("cell", "c"), ("output", "o")),
    "keras-gru": (("update", "z"), ("reset", "r"), ("new", "h")),
}


@dataclass(frozen=True, eq=False)
class RecurrentMatrix:
    """One square recurrent matrix ``A`` (one gate of one layer and direction).

    Attributes
    ----------
    id : str
        Stable identifier, e.g. ``rnn.weight_hh_l1_reverse[forget]`` or
        ``lstm_1/recurrent_kernel[cell]``; same file, same ids, same order.
    matrix : (n, n) ndarray
        ``A`` in the column-vector orientation, float64 (converted from the
        stored dtype, which is kept in `dtype`).
    layer : str
        The layer's name as the file knows it (module path or Keras layer name).
    layer_index : int or None
        Stacked-layer index (``l{k}`` in PyTorch), None where not applicable.
    direction : {"forward", "reverse"}
        Reverse for the backward half of a bidirectional layer.
    cell : str
        ``rnn`` (PyTorch RNN: tanh or relu), ``rnn_tanh``, ``rnn_relu``,
        ``lstm``, ``gru``, ``simple_rnn``, or ``array`` for a bare matrix.
    gate : str or None
        Common gate name (``input, forget, cell, output`` / ``reset, update,
        new``); None for cells without gates and bare arrays.
    native_gate : str or None
        The framework's own gate letter (``i f g o``, ``r z n``, ``z r h``...).
    source : str
        Name of the tensor in the file it was read from.
    block : tuple of (int, int) or None
        Slice of the source tensor holding this gate: rows ``[a, b)`` of a
        PyTorch ``weight_hh``, columns ``[a, b)`` of a Keras
        ``recurrent_kernel``; None when the whole tensor is the matrix.
    transposed : bool
        True when ``A`` is the transpose of the stored block (Keras).
    dtype : str
        The stored dtype (``float32``, ``float16``, ``bfloat16`` ...).
    finite : bool
        False when the stored weights hold NaN or Inf (then not analysed).
    spectral_norm : bool
        True when the file stores the weight under torch's spectral_norm
        wrapper; `matrix` is then the effective (normalised) weight.
    notes : tuple of str
        Plain-language remarks (projection through ``W_hr``, spectral norm...).
    mask : (n, n) ndarray or None
        For a weight pruned by ``torch.nn.utils.prune``: this block of its
        ``_mask`` buffer, in the orientation of `matrix`, which is then
        ``mask * W`` with ``W`` the block of `source` (``<name>_orig``); None
        for a weight used as stored.
    """

    id: str
    matrix: np.ndarray
    layer: str
    direction: Literal["forward", "reverse"] = "forward"
    cell: str = "array"
    gate: str | None = None
    native_gate: str | None = None
    layer_index: int | None = None
    source: str = ""
    block: tuple[int, int] | None = None
    transposed: bool = False
    dtype: str = "float64"
    finite: bool = True
    spectral_norm: bool = False
    notes: tuple[str, ...] = ()
    mask: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Hidden size (the matrix is ``n x n``)."""
        return int(self.matrix.shape[0])


@dataclass(frozen=True)
class Skipped:
    """An entry of the file that is not a recurrent matrix, and why."""

    name: str
    shape: tuple[int, ...] | None
    reason: str


@dataclass
class Checkpoint:
    """What a loader found in one file.

    Attributes
    ----------
    path : str
        The file read (for HDF5 paths, including ``:/dataset``).
    format : str
        One of ``pytorch-zip``, ``pytorch-legacy``, ``torchscript``,
        ``safetensors``, ``keras-v3``, ``keras-weights-h5``, ``keras-h5``,
        ``npy``, ``npz``, ``hdf5``.
    matrices : list of RecurrentMatrix
        Every recurrent matrix, in file order.
    skipped : list of Skipped
        Every other entry, with the reason it was not reported.
    metadata : dict
        Format-specific facts (framework version, nesting key, ...).
    """

    path: str
    format: str
    matrices: list[RecurrentMatrix] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    def __iter__(self) -> Iterator[RecurrentMatrix]:
        return iter(self.matrices)

    def __len__(self) -> int:
        return len(self.matrices)

    @property
    def ids(self) -> list[str]:
        """The matrix ids, in order."""
        return [m.id for m in self.matrices]

    def __getitem__(self, key: str | int) -> RecurrentMatrix:
        if isinstance(key, int):
            return self.matrices[key]
        for m in self.matrices:
            if m.id == key:
                return m
        raise MatrixNotFoundError(
            f"{self.path}: no matrix with id {key!r}; valid ids: {', '.join(self.ids) or '(none)'}"
        )

    def select(self, ids: list[str] | tuple[str, ...] | None) -> list[RecurrentMatrix]:
        """Return the matrices named by `ids` (all of them when `ids` is empty or None).

        An id may also be a layer/source prefix: ``rnn.weight_hh_l0`` selects
        every gate of that tensor.
        """
        if not ids:
            return list(self.matrices)
        out: list[RecurrentMatrix] = []
        for key in ids:
            hits = [m for m in self.matrices if m.id == key]
            if not hits:
                hits = [m for m in self.matrices if m.source == key or m.id.startswith(key + "[")]
            if not hits:
                self[key]  # raises MatrixNotFoundError with the list of valid ids
            out.extend(h for h in hits if all(h is not o for o in out))
        return out

    def stacked(self, source: str) -> np.ndarray:
        """The stacked ``(gates*n, n)`` matrix of one source tensor, gates in file order."""
        blocks = [m.matrix for m in self.matrices if m.source == source]
        if not blocks:
            raise MatrixNotFoundError(f"{self.path}: no recurrent tensor named {source!r}")
        return np.vstack(blocks)
