"""The trained model: (embedding) + ``torch.nn.RNN/LSTM/GRU`` named ``rnn`` + linear readout.

The readout acts on the last hidden state of the top layer, ``y_T = C h_T + c``,
as in the first paper (its eq. 1 with ``G`` linear). The recurrent module is
the attribute ``rnn``, so state-dict keys read ``rnn.weight_hh_l0`` and every
checkpoint is readable by :func:`spectra.load`.

:meth:`SequenceModel.step` re-implements one time step of all layers on a
flat state vector, with the equations of the PyTorch documentation; the
covariance propagation (:mod:`spectra.train.covariance`) differentiates it.
Tests check it reproduces ``nn.RNN/LSTM/GRU``'s own forward pass.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from spectra.train.errors import TrainConfigError

__all__ = ["CELLS", "SequenceModel", "build_model", "recurrent_blocks"]

#: Cell names: ``rnn`` (tanh, alias ``rnn-tanh``), ``rnn-relu``, ``lstm``, ``gru``.
CELLS = ("rnn", "rnn-tanh", "rnn-relu", "lstm", "gru")

_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class SequenceModel(nn.Module):
    """Recurrent classifier/regressor ``y = C h_T + c``.

    Parameters
    ----------
    cell : str
        One of :data:`CELLS`.
    n_inputs : int
        Features per step ``d`` (or vocabulary size when `tokens`).
    n_outputs : int
        Output size ``p`` (classes, or 1 for regression).
    hidden : int
        Hidden size ``n`` of every layer.
    layers : int
        Stacked recurrent layers.
    tokens : bool
        If true, inputs are token ids and an ``nn.Embedding(n_inputs,
        embed_dim, padding_idx=0)`` (attribute ``embedding``) feeds the
        recurrent layer; input noise is then added to the embeddings.
    embed_dim : int
        Embedding width (token tasks only).

    Attributes
    ----------
    rnn : nn.RNN or nn.LSTM or nn.GRU
        The recurrent module (``batch_first=True``).
    readout : nn.Linear
        ``C`` and ``c``.
    """

    def __init__(
        self,
        cell: str,
        n_inputs: int,
        n_outputs: int,
        hidden: int,
        layers: int = 1,
        *,
        tokens: bool = False,
        embed_dim: int = 32,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise TrainConfigError(f"unknown cell {cell!r}; valid cells: {', '.join(CELLS)}")
        if hidden < 1 or layers < 1:
            raise TrainConfigError(
                f"hidden and layers must be positive, got hidden={hidden}, layers={layers}"
            )
        self.cell = cell
        self.kind = "lstm" if cell == "lstm" else "gru" if cell == "gru" else "rnn"
        self.nonlinearity = "relu" if cell == "rnn-relu" else "tanh"
        self.hidden = hidden
        self.layers = layers
        self.tokens = tokens
        d = embed_dim if tokens else n_inputs
        self.input_size = d
        if tokens:
            self.embedding = nn.Embedding(n_inputs, embed_dim, padding_idx=0)
        if self.kind == "lstm":
            self.rnn = nn.LSTM(d, hidden, num_layers=layers, batch_first=True)
        elif self.kind == "gru":
            self.rnn = nn.GRU(d, hidden, num_layers=layers, batch_first=True)
        else:
            self.rnn = nn.RNN(d, hidden, num_layers=layers, nonlinearity=self.nonlinearity, batch_first=True)
        self.readout = nn.Linear(hidden, n_outputs)

    # -- forward ---------------------------------------------------------------------------------
    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Return the recurrent layer's input sequence ``u`` ``(N, T, d)`` (embeds token ids)."""
        return self.embedding(x) if self.tokens else x

    def from_inputs(self, u: torch.Tensor) -> torch.Tensor:
        """Outputs ``y_T = C h_T + c`` ``(N, p)`` for recurrent-layer inputs `u` ``(N, T, d)``."""
        out, _ = self.rnn(u)
        return self.readout(out[:, -1, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(N, p)`` for inputs `x` (``(N, T, d)`` floats or ``(N, T)`` token ids)."""
        return self.from_inputs(self.inputs(x))

    # -- flat-state step (for the covariance propagation) ---------------------------------------
    @property
    def state_size(self) -> int:
        """Length ``m`` of the flat state: ``L*n`` (RNN, GRU) or ``2*L*n`` (LSTM: ``h`` and ``c``)."""
        return self.layers * self.hidden * (2 if self.kind == "lstm" else 1)

    def output_matrix(self) -> torch.Tensor:
        """``C`` acting on the flat state: ``(p, m)``, the readout on the top layer's ``h``."""
        n, p = self.hidden, self.readout.out_features
        C = self.readout.weight.new_zeros((p, self.state_size))
        top = (self.layers - 1) * n * (2 if self.kind == "lstm" else 1)
        return C.index_copy(1, torch.arange(top, top + n, device=C.device), self.readout.weight)

    def step(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One time step of every layer on the flat state ``x_t = F(x_{t-1}, u_t)``.

        Parameters
        ----------
        state : (..., m) Tensor
            Concatenated per-layer states ``[h^1, (c^1), h^2, ...]``.
        u : (..., d) Tensor
            The input at this step.

        Returns
        -------
        (..., m) Tensor
            The next state; equals ``nn.RNN/LSTM/GRU`` (PyTorch documentation equations).
        """
        n = self.hidden
        inp = u
        parts = []
        width = 2 * n if self.kind == "lstm" else n
        for k in range(self.layers):
            s = state[..., k * width : (k + 1) * width]
            w_ih = getattr(self.rnn, f"weight_ih_l{k}")
            w_hh = getattr(self.rnn, f"weight_hh_l{k}")
            b_ih = getattr(self.rnn, f"bias_ih_l{k}")
            b_hh = getattr(self.rnn, f"bias_hh_l{k}")
            if self.kind == "rnn":
                pre = F.linear(inp, w_ih, b_ih) + F.linear(s, w_hh, b_hh)
                h = torch.relu(pre) if self.nonlinearity == "relu" else torch.tanh(pre)
                parts.append(h)
            elif self.kind == "lstm":
                h0, c0 = s[..., :n], s[..., n:]
                gates = F.linear(inp, w_ih, b_ih) + F.linear(h0, w_hh, b_hh)
                i, f, g, o = gates.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                parts += [h, c]
            else:
                gi = F.linear(inp, w_ih, b_ih)
                gh = F.linear(s, w_hh, b_hh)
                ir, iz, in_ = gi.chunk(3, dim=-1)
                hr, hz, hn = gh.chunk(3, dim=-1)
                r = torch.sigmoid(ir + hr)
                z = torch.sigmoid(iz + hz)
                cand = torch.tanh(in_ + r * hn)
                h = (1 - z) * cand + z * s
                parts.append(h)
            inp = h
        return torch.cat(parts, dim=-1)


def build_model(
    cell: str,
    n_inputs: int,
    n_outputs: int,
    hidden: int,
    layers: int = 1,
    *,
    tokens: bool = False,
    embed_dim: int = 32,
    seed: int = 0,
) -> SequenceModel:
    """Build a :class:`SequenceModel` with PyTorch's default initialisation drawn from `seed`.

    The global torch RNG is left as it was (``torch.random.fork_rng``).

    Raises
    ------
    TrainConfigError
        Unknown cell or non-positive sizes.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SequenceModel(cell, n_inputs, n_outputs, hidden, layers, tokens=tokens, embed_dim=embed_dim)


def recurrent_blocks(model: SequenceModel) -> list[tuple[str, int, torch.Tensor]]:
    """Every recurrent weight ``weight_hh_l{k}`` with its gate count: ``(name, gates, tensor)``.

    Gate ``g`` of ``(name, gates, W)`` is the ``(n, n)`` block ``W[g*n:(g+1)*n]``
    (PyTorch order: LSTM ``i f g o``, GRU ``r z n``).
    """
    gates = _GATES[model.kind]
    return [(name, gates, p) for name, p in model.rnn.named_parameters() if name.startswith("weight_hh_l")]
