"""Linearised noise propagation through a recurrent model (the first paper, Theorem 3).

For the noisy recurrence ``x~_t = F(x~_{t-1}, u_t + w_t)``, ``w_t ~ N(0, Sigma)``
independent in time, and output ``y_t = G(x_t) = C h_t + c``, the first paper's
eqs. (22)-(24) estimate the state and output covariances by

    P_t = J_x P_{t-1} J_x^T + J_u Sigma J_u^T,     R_t = C P_t C^T,     rho_t ~ Tr(R_t),

with the Jacobians ``J_x = dF/dx``, ``J_u = dF/du`` taken on the clean
trajectory. For a one-layer basic RNN ``h_t = phi(A h_{t-1} + B u_t + b)``
they are ``J_x = diag(d_t) A``, ``J_u = diag(d_t) B`` with ``d_t = phi'(.)`` and
the update is the elementwise form of eq. (25),

    P_t = (d_t d_t^T) * (A P_{t-1} A^T + B Sigma B^T),

computed here for a batch of ``S`` sequences as ``(S, n, n)`` tensors with one
batched matmul per step. Other cells (LSTM, GRU, stacked RNNs) use the exact
Jacobians of :meth:`SequenceModel.step` by ``torch.func.jacrev`` + ``vmap``.
Everything is differentiable, so ``Tr(R_T)`` serves as the regulariser of
eq. (28) (:class:`spectra.train.regimes.RobustCov`). ``Sigma = sigma^2 I``
in the units of the recurrent layer's input (standardised inputs for digits
and MNIST, raw ones for the adding problem, embeddings for token tasks); the
initial state is exact (``P_0 = 0``).

Only ``Tr(R_T)`` is needed by the regulariser with ``cov_steps="last"``;
:func:`output_trace` gets it without forming any ``P_t``, by unrolling the
recursion backwards (the adjoint form). Since ``P_T = sum_t Phi_t J_u,t Sigma
J_u,t^T Phi_t^T`` with ``Phi_t = J_x,T ... J_x,t+1``,

    Tr(R_T) = sigma^2 sum_{t=1..T} ||G_t J_u,t||_F^2,   G_T = C,   G_{t-1} = G_t J_x,t,

for ``Sigma = sigma^2 I``; for the basic RNN ``G_t J_u,t = (G_t D_t) B``. The
``G_t`` are ``p x m`` (``p`` outputs) instead of ``m x m``: about ``m/p`` times
fewer flops, equal to the forward propagation up to rounding. One-layer LSTM
and GRU have their transposed Jacobians written out; stacked layers use
vector-Jacobian products of :meth:`SequenceModel.step`.

For a linear recurrence the propagation is exact; :func:`monte_carlo_output_error`
gives the sampled counterpart ``E||y~_t - y_t||^2`` used to check it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spectra.train.errors import TrainConfigError
from spectra.train.models import SequenceModel

__all__ = ["CovariancePropagation", "monte_carlo_output_error", "output_trace", "propagate_covariance"]


@dataclass(frozen=True)
class CovariancePropagation:
    """Result of :func:`propagate_covariance` for ``S`` sequences of ``T`` steps.

    Attributes
    ----------
    P : (S, m, m) Tensor
        State covariance estimate ``P_T`` after the last step.
    R : (S, p, p) Tensor
        Output covariance estimate ``R_T = C P_T C^T`` (eq. 23/26).
    traces : (S, T) Tensor
        ``Tr(R_t)`` for every step ``t = 1..T`` (eq. 24); ``traces[:, -1]`` is
        the robustness estimate of the model's output.
    """

    P: torch.Tensor
    R: torch.Tensor
    traces: torch.Tensor


def _check(model: SequenceModel, u: torch.Tensor, sigma: float) -> None:
    if u.ndim != 3 or u.shape[-1] != model.input_size:
        raise TrainConfigError(
            f"u must be (S, T, {model.input_size}) recurrent-layer inputs, got shape {tuple(u.shape)}"
        )
    if not sigma >= 0:
        raise TrainConfigError(f"sigma must be a non-negative standard deviation, got {sigma}")
    if not float(sigma) * float(sigma) < float("inf"):  # sigma ** 2 raised OverflowError
        raise TrainConfigError(
            f"sigma = {float(sigma):g}: its square overflows float64 (keep sigma below 1e150)"
        )


def propagate_covariance(model: SequenceModel, u: torch.Tensor, sigma: float) -> CovariancePropagation:
    """Propagate ``P_t`` along the clean trajectory of `u` (eqs. 22-26 of the first paper).

    Parameters
    ----------
    model : SequenceModel
        The model; its parameters are used as they are (gradients flow to them).
    u : (S, T, d) Tensor
        Recurrent-layer inputs (``model.inputs(x)``) of ``S`` sequences.
    sigma : float
        Input-noise standard deviation: ``Sigma = sigma^2 I_d``.

    Returns
    -------
    CovariancePropagation
        ``P_T``, ``R_T`` and the per-step traces ``Tr(C P_t C^T)``.

    Raises
    ------
    TrainConfigError
        `u` of the wrong shape, or a negative `sigma`.
    """
    _check(model, u, sigma)
    S, T, _ = u.shape
    C = model.output_matrix()
    var = float(sigma) ** 2
    traces = []
    if model.kind == "rnn" and model.layers == 1:
        A = model.rnn.weight_hh_l0
        B = model.rnn.weight_ih_l0
        pre_in = u @ B.T + (model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0)
        BSB = var * (B @ B.T)
        h = u.new_zeros(S, model.hidden)
        P = u.new_zeros(S, model.hidden, model.hidden)
        relu = model.nonlinearity == "relu"
        for t in range(T):
            pre = pre_in[:, t] + h @ A.T
            if relu:
                h = torch.relu(pre)
                dvec = (pre > 0).to(u.dtype)
            else:
                h = torch.tanh(pre)
                dvec = 1 - h * h
            Q = A @ P @ A.T + BSB  # (S, n, n), eq. (25) before the Hadamard product
            P = dvec[:, :, None] * Q * dvec[:, None, :]
            traces.append(((C @ P) * C).sum(dim=(-2, -1)))
    else:
        from torch.func import jacrev, vmap

        jac = vmap(jacrev(model.step, argnums=(0, 1)))
        x = u.new_zeros(S, model.state_size)
        P = u.new_zeros(S, model.state_size, model.state_size)
        for t in range(T):
            Jx, Ju = jac(x, u[:, t])
            x = model.step(x, u[:, t])
            P = Jx @ P @ Jx.mT + var * (Ju @ Ju.mT)
            traces.append(((C @ P) * C).sum(dim=(-2, -1)))
    R = C @ P @ C.T
    return CovariancePropagation(P=P, R=R, traces=torch.stack(traces, dim=1))


def _output_trace_vjp(model: SequenceModel, u: torch.Tensor, sigma: float) -> torch.Tensor:
    """Adjoint form for any cell: ``G_{t-1} = G_t J_x``, ``Tr(R_T) = sigma^2 sum_t ||G_t J_u||_F^2``.

    The rows of ``G_t J_x`` and ``G_t J_u`` are vector-Jacobian products of
    :meth:`SequenceModel.step`, evaluated for all ``S * p`` rows in one batched
    backward pass per step (``create_graph=True``, so the result stays
    differentiable with respect to the parameters).
    """
    S, T, d = u.shape
    p, m = model.readout.out_features, model.state_size
    with torch.enable_grad():
        xs = [u.new_zeros(S, m)]
        for t in range(T):
            xs.append(model.step(xs[-1], u[:, t]))
        G = model.output_matrix().unsqueeze(0).expand(S, p, m).reshape(S * p, m)
        total = u.new_zeros(S)
        for t in range(T - 1, -1, -1):
            x_in = xs[t].unsqueeze(1).expand(S, p, m).reshape(S * p, m)
            u_in = u[:, t].unsqueeze(1).expand(S, p, d).reshape(S * p, d)
            if not x_in.requires_grad:
                x_in = x_in.detach().requires_grad_(True)
            if not u_in.requires_grad:
                u_in = u_in.detach().requires_grad_(True)
            out = model.step(x_in, u_in)
            gx, gu = torch.autograd.grad(out, (x_in, u_in), grad_outputs=G, create_graph=True)
            total = total + gu.reshape(S, p * d).pow(2).sum(dim=1)
            G = gx
    return float(sigma) ** 2 * total


def _shifted(h: torch.Tensor) -> torch.Tensor:
    """``h_{t-1}`` for ``t = 1..T`` with ``h_0 = 0``: ``(S, T, n)``."""
    return torch.cat([h.new_zeros(h.shape[0], 1, h.shape[2]), h[:, :-1]], dim=1)


def _output_trace_lstm(model: SequenceModel, u: torch.Tensor, sigma: float) -> torch.Tensor:
    """Adjoint form for a one-layer LSTM, state ``(h, c)``, gates ``i f g o`` (PyTorch order).

    ``c_t = f c_{t-1} + i g``, ``h_t = o tanh(c_t)``. For row cotangents
    ``(g_h, g_c)`` of ``(h_t, c_t)``: ``g_c' = g_c + g_h o (1 - tanh^2 c_t)``,
    pre-gate cotangents ``a_i = g_c' g i(1-i)``, ``a_f = g_c' c_{t-1} f(1-f)``,
    ``a_g = g_c' i (1-g^2)``, ``a_o = g_h tanh(c_t) o(1-o)``; then
    ``g_h <- a W_hh``, ``g_c <- g_c' f`` and ``g_u = a W_ih``.
    """
    S, T, _ = u.shape
    n = model.hidden
    rnn = model.rnn
    h, _ = rnn(u)
    pre = u @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + _shifted(h) @ rnn.weight_hh_l0.T + rnn.bias_hh_l0
    gi, gf, gg, go = pre.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(gi), torch.sigmoid(gf), torch.tanh(gg), torch.sigmoid(go)
    cs = []
    c = u.new_zeros(S, n)
    for t in range(T):
        c = f[:, t] * c + i[:, t] * g[:, t]
        cs.append(c)
    c_all = torch.stack(cs, dim=1)
    c_prev = _shifted(c_all)
    tc = torch.tanh(c_all)
    # per-step coefficients, computed for all t at once: (S, T, n) and (S, T, 4n)
    k_c = (o * (1 - tc**2)).unsqueeze(2)
    k_gates = torch.cat([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g**2), tc * o * (1 - o)], dim=-1)
    k_gates = k_gates.unsqueeze(2)
    f_ = f.unsqueeze(2)
    G_h = model.readout.weight.unsqueeze(0).expand(S, -1, -1)  # (S, p, n)
    G_c = torch.zeros_like(G_h)
    ga_all = []
    for t in range(T - 1, -1, -1):
        gct = G_c + G_h * k_c[:, t]
        ga = torch.cat([gct, gct, gct, G_h], dim=-1) * k_gates[:, t]  # (S, p, 4n): a_i, a_f, a_g, a_o
        ga_all.append(ga)
        if t > 0:
            G_h = ga @ rnn.weight_hh_l0
            G_c = gct * f_[:, t]
    gu = torch.stack(ga_all, dim=1) @ rnn.weight_ih_l0  # (S, T, p, d)
    return float(sigma) ** 2 * gu.pow(2).sum(dim=(1, 2, 3))


def _output_trace_gru(model: SequenceModel, u: torch.Tensor, sigma: float) -> torch.Tensor:
    """Adjoint form for a one-layer GRU, gates ``r z n`` (PyTorch order).

    ``h_t = (1-z) m + z h_{t-1}``, ``m = tanh(x_n + r (W_hn h_{t-1} + b_hn))``.
    For the row cotangent ``g`` of ``h_t``: ``a_n = g (1-z)(1-m^2)``,
    ``a_z = g (h_{t-1} - m) z(1-z)``, ``a_r = a_n (W_hn h_{t-1} + b_hn) r(1-r)``;
    then ``g_u = [a_r, a_z, a_n] W_ih`` and
    ``g <- [a_r, a_z, a_n r] W_hh + g z``.
    """
    S, T, _ = u.shape
    rnn = model.rnn
    h, _ = rnn(u)
    h_prev = _shifted(h)
    gi = u @ rnn.weight_ih_l0.T + rnn.bias_ih_l0
    gh = h_prev @ rnn.weight_hh_l0.T + rnn.bias_hh_l0
    ir, iz, in_ = gi.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r = torch.sigmoid(ir + hr)
    z = torch.sigmoid(iz + hz)
    m = torch.tanh(in_ + r * hn)
    # per-step coefficients for all t at once, (S, T, 1, 3n): a = [g, g, g] * k_in, hidden side * k_hid
    k_n = (1 - z) * (1 - m**2)
    k_in = torch.cat([k_n * hn * r * (1 - r), (h_prev - m) * z * (1 - z), k_n], dim=-1).unsqueeze(2)
    k_hid = torch.cat([k_n * hn * r * (1 - r), (h_prev - m) * z * (1 - z), k_n * r], dim=-1).unsqueeze(2)
    z_ = z.unsqueeze(2)
    G = model.readout.weight.unsqueeze(0).expand(S, -1, -1)  # (S, p, n)
    gin_all = []
    for t in range(T - 1, -1, -1):
        G3 = torch.cat([G, G, G], dim=-1)
        gin_all.append(G3 * k_in[:, t])  # [a_r, a_z, a_n]
        if t > 0:
            G = (G3 * k_hid[:, t]) @ rnn.weight_hh_l0 + G * z_[:, t]
    gu = torch.stack(gin_all, dim=1) @ rnn.weight_ih_l0  # (S, T, p, d)
    return float(sigma) ** 2 * gu.pow(2).sum(dim=(1, 2, 3))


def output_trace(model: SequenceModel, u: torch.Tensor, sigma: float) -> torch.Tensor:
    """``Tr(R_T) = Tr(C P_T C^T)`` per sequence, the robustness estimate of eq. (24) at the last step.

    For a one-layer basic RNN it is computed in the adjoint form (module
    docstring): ``G_T = C D_T``, ``G_{t-1} = G_t A D_{t-1}``,
    ``Tr(R_T) = sigma^2 sum_t ||G_t B||_F^2``, batched over sequences as
    ``(S, p, n)`` tensors. One-layer LSTM and GRU use the same recursion
    ``G_{t-1} = G_t J_x`` with the cells' Jacobians written out (the
    transposed chain rule of the PyTorch equations); stacked layers use
    vector-Jacobian products of :meth:`SequenceModel.step`. Differentiable.

    Parameters
    ----------
    model : SequenceModel
        The model.
    u : (S, T, d) Tensor
        Recurrent-layer inputs.
    sigma : float
        Noise standard deviation (``Sigma = sigma^2 I``).

    Returns
    -------
    (S,) Tensor
    """
    _check(model, u, sigma)
    if model.layers == 1 and model.kind == "lstm":
        return _output_trace_lstm(model, u, sigma)
    if model.layers == 1 and model.kind == "gru":
        return _output_trace_gru(model, u, sigma)
    if model.kind != "rnn" or model.layers != 1:
        return _output_trace_vjp(model, u, sigma)
    S, T, _ = u.shape
    n, p = model.hidden, model.readout.out_features
    A = model.rnn.weight_hh_l0
    B = model.rnn.weight_ih_l0
    h, _ = model.rnn(u)  # (S, T, n): the clean trajectory, one fused call
    if model.nonlinearity == "relu":
        d = (h > 0).to(u.dtype)  # relu'(pre) = 1 exactly where h = relu(pre) > 0
    else:
        d = 1 - h * h  # tanh' = 1 - tanh^2
    G = model.readout.weight.unsqueeze(0) * d[:, -1].unsqueeze(1)  # (S, p, n) = C D_T
    Gs = [G]
    for t in range(T - 2, -1, -1):  # G_t = G_{t+1} A D_t, as one (S p, n) x (n, n) product per step
        G = (G.reshape(S * p, n) @ A).reshape(S, p, n) * d[:, t].unsqueeze(1)
        Gs.append(G)
    GB = torch.stack(Gs, dim=1).reshape(S * T * p, n) @ B  # all ||G_t B||_F^2 at once
    total = GB.reshape(S, T * p * B.shape[1]).pow(2).sum(dim=1)
    return float(sigma) ** 2 * total


@torch.no_grad()
def monte_carlo_output_error(
    model: SequenceModel,
    u: torch.Tensor,
    sigma: float,
    *,
    draws: int = 1000,
    seed: int = 0,
    chunk: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampled robustness measure ``rho_T = E||y~_T - y_T||^2`` (the first paper, eq. 7).

    ``y~_T`` is the output for ``u_t + w_t`` with ``w_t ~ N(0, sigma^2 I)``
    drawn independently at every step; ``y_T`` the clean output.

    Parameters
    ----------
    model : SequenceModel
        The model.
    u : (S, T, d) Tensor
        Recurrent-layer inputs.
    sigma : float
        Noise standard deviation.
    draws : int
        Noise draws per sequence.
    seed : int
        Seed of the noise (a private ``torch.Generator``).
    chunk : int
        Draws evaluated per forward pass (fewer when the inputs are large).

    Returns
    -------
    mean, stderr : (S,) Tensor
        Monte-Carlo mean of ``||y~_T - y_T||^2`` per sequence and its standard error.
    """
    _check(model, u, sigma)
    gen = torch.Generator().manual_seed(int(seed))
    S = u.shape[0]
    # y_T by the same forward pass, batch shape included, as the noisy draws: a batch of k*S
    # rows may round differently from one of S rows, and then sigma = 0 would not give 0
    clean: dict[int, torch.Tensor] = {}
    sq = []
    done = 0
    while done < draws:
        k = min(chunk, draws - done, max(1, 4_000_000 // max(1, u.numel())))  # <= ~32 MB of noise
        if k not in clean:
            batch = u.unsqueeze(0).expand(k, *u.shape).reshape(k * S, *u.shape[1:])
            clean[k] = model.from_inputs(batch).reshape(k, S, -1)
        noise = torch.randn((k,) + tuple(u.shape), generator=gen, dtype=u.dtype)
        noisy = model.from_inputs((u.unsqueeze(0) + sigma * noise).reshape(k * S, *u.shape[1:]))
        sq.append(((noisy.reshape(k, S, -1) - clean[k]) ** 2).sum(-1))
        done += k
    e = torch.cat(sq, dim=0)  # (draws, S)
    return e.mean(0), e.std(0, unbiased=True) / max(1, draws) ** 0.5
