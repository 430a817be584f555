"""Covariance propagation (first paper, eqs. 22-26) against closed forms, Monte Carlo and autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectra.train.covariance import monte_carlo_output_error, propagate_covariance
from spectra.train.models import build_model

torch.set_num_threads(1)


def _linear_regime(model, scale_a: float = 0.4, bias: float = 50.0, seed: int = 0):
    """Make a ReLU RNN linear along its trajectories: small weights, large positive bias."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.rnn.named_parameters():
            if name.startswith("weight_hh"):
                n = p.shape[0]
                p.copy_(scale_a * torch.randn(p.shape, generator=g, dtype=p.dtype) / n**0.5)
            elif name.startswith("weight_ih"):
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) / p.shape[1] ** 0.5)
            elif name.startswith("bias_ih"):
                p.fill_(bias)
            else:
                p.zero_()
    return model


def test_step_reproduces_framework_forward():
    torch.manual_seed(0)
    for cell in ("rnn", "rnn-relu", "lstm", "gru"):
        for layers in (1, 2):
            m = build_model(cell, 3, 2, 5, layers, seed=1).double()
            u = torch.randn(4, 7, 3, dtype=torch.float64)
            out, _ = m.rnn(u)
            x = u.new_zeros(4, m.state_size)
            for t in range(7):
                x = m.step(x, u[:, t])
            top = (layers - 1) * 5 * (2 if cell == "lstm" else 1)
            torch.testing.assert_close(x[:, top : top + 5], out[:, -1], rtol=0, atol=1e-12)
            # the output matrix picks the top layer's h: C x + c equals the model output
            y = x @ m.output_matrix().T + m.readout.bias
            torch.testing.assert_close(y, m.from_inputs(u), rtol=0, atol=1e-12)


def test_linear_rnn_covariance_is_exact_closed_form():
    n, d, T, sigma = 6, 3, 9, 0.3
    m = _linear_regime(build_model("rnn-relu", d, 2, n, 1, seed=0).double())
    u = torch.randn(3, T, d, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    A = m.rnn.weight_hh_l0.detach().numpy()
    B = m.rnn.weight_ih_l0.detach().numpy()
    C = m.readout.weight.detach().numpy()
    # pre-activations are positive along the trajectory: ReLU acts as the identity
    out, _ = m.rnn(u)
    assert float(out.detach().min()) > 0
    res = propagate_covariance(m, u, sigma)
    # oracle 1: P_t = A P A^T + B Sigma B^T in numpy float64
    P = np.zeros((n, n))
    traces = []
    for _ in range(T):
        P = A @ P @ A.T + sigma**2 * B @ B.T
        traces.append(np.trace(C @ P @ C.T))
    # oracle 2: the exact covariance of a linear system, sum_k A^k B Sigma B^T A^kT
    exact = sum(
        np.linalg.matrix_power(A, k) @ (sigma**2 * B @ B.T) @ np.linalg.matrix_power(A, k).T for k in range(T)
    )
    np.testing.assert_allclose(exact, P, rtol=1e-12, atol=1e-14)
    for s in range(3):
        np.testing.assert_allclose(res.P[s].detach().numpy(), exact, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(res.traces[s].detach().numpy(), traces, rtol=1e-10)
        np.testing.assert_allclose(res.R[s].detach().numpy(), C @ exact @ C.T, rtol=1e-10, atol=1e-13)


def test_linear_two_layer_rnn_generic_path_is_exact():
    n, d, T, sigma = 4, 2, 6, 0.5
    m = _linear_regime(build_model("rnn-relu", d, 3, n, 2, seed=3).double(), seed=4)
    u = torch.randn(2, T, d, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    A1, A2 = (getattr(m.rnn, f"weight_hh_l{k}").detach().numpy() for k in (0, 1))
    B1, W2 = m.rnn.weight_ih_l0.detach().numpy(), m.rnn.weight_ih_l1.detach().numpy()
    # stacked linear system x = [h1; h2]: h1' = A1 h1 + B1 u; h2' = A2 h2 + W2 h1'
    Jx = np.block([[A1, np.zeros((n, n))], [W2 @ A1, A2]])
    Ju = np.vstack([B1, W2 @ B1])
    P = np.zeros((2 * n, 2 * n))
    for _ in range(T):
        P = Jx @ P @ Jx.T + sigma**2 * Ju @ Ju.T
    res = propagate_covariance(m, u, sigma)
    for s in range(2):
        np.testing.assert_allclose(res.P[s].detach().numpy(), P, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("cell", ["rnn-relu", "rnn", "lstm", "gru"])
def test_covariance_matches_monte_carlo(cell):
    torch.manual_seed(0)
    m = build_model(cell, 3, 2, 6, 1, seed=5).double()
    with torch.no_grad():
        for name, p in m.rnn.named_parameters():
            if name.startswith("weight"):
                p.mul_(2.5)  # leave the near-zero regime so that the Jacobians matter
    u = torch.randn(3, 8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    sigma = 1e-3  # small enough that the linearisation error is far below the sampling error
    est = propagate_covariance(m, u, sigma).traces[:, -1].detach()
    mc, se = monte_carlo_output_error(m, u, sigma, draws=10000, seed=7)
    assert torch.all(se < 0.02 * mc)  # the comparison below is meaningful (~1.4 % sampling error)
    assert torch.all((est - mc).abs() < 4 * se), (est - mc) / se


@pytest.mark.parametrize("cell", ["rnn", "rnn-relu", "lstm", "gru"])
def test_gradient_matches_finite_differences(cell):
    m = build_model(cell, 2, 2, 3, 1, seed=8).double()
    u = torch.randn(2, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    names = ["rnn.weight_hh_l0", "rnn.weight_ih_l0", "readout.weight"]
    params = dict(m.named_parameters())
    base = {k: params[k].detach().clone() for k in names}

    def f(*tensors):
        for k, t in zip(names, tensors):
            obj, attr = (m.rnn, k.split(".", 1)[1]) if k.startswith("rnn.") else (m.readout, "weight")
            delattr(obj, attr)
            setattr(obj, attr, t)
        try:
            return propagate_covariance(m, u, 0.3).traces.sum()
        finally:
            for k in names:
                obj, attr = (m.rnn, k.split(".", 1)[1]) if k.startswith("rnn.") else (m.readout, "weight")
                delattr(obj, attr)
                setattr(obj, attr, torch.nn.Parameter(base[k].clone()))

    inputs = tuple(base[k].clone().requires_grad_(True) for k in names)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_monte_carlo_is_zero_without_noise_and_scales_with_variance():
    m = build_model("gru", 2, 2, 4, 1, seed=1).double()
    u = torch.randn(2, 5, 2, dtype=torch.float64)
    mc0, _ = monte_carlo_output_error(m, u, 0.0, draws=10)
    assert torch.all(mc0 == 0)
    est1 = propagate_covariance(m, u, 0.1).traces[:, -1]
    est2 = propagate_covariance(m, u, 0.2).traces[:, -1]
    torch.testing.assert_close(est2, 4 * est1)  # linear in Sigma = sigma^2 I


def test_adjoint_trace_equals_closed_form_and_forward_propagation():
    from spectra.train.covariance import output_trace

    n, d, T, sigma = 7, 3, 8, 0.4
    m = _linear_regime(build_model("rnn-relu", d, 4, n, 1, seed=11).double(), seed=12)
    u = torch.randn(3, T, d, dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    A, B, C = (t.detach().numpy() for t in (m.rnn.weight_hh_l0, m.rnn.weight_ih_l0, m.readout.weight))
    P = np.zeros((n, n))
    for _ in range(T):
        P = A @ P @ A.T + sigma**2 * B @ B.T
    np.testing.assert_allclose(output_trace(m, u, sigma).detach().numpy(), np.trace(C @ P @ C.T), rtol=1e-10)
    for cell in ("rnn", "rnn-relu"):
        m = build_model(cell, d, 4, n, 1, seed=14).double()
        with torch.no_grad():
            m.rnn.weight_hh_l0.mul_(3.0)
        fwd = propagate_covariance(m, u, sigma).traces[:, -1]
        torch.testing.assert_close(output_trace(m, u, sigma), fwd, rtol=1e-10, atol=0)


@pytest.mark.parametrize("cell,layers", [("lstm", 1), ("gru", 1), ("lstm", 2), ("gru", 2), ("rnn", 2)])
def test_adjoint_trace_generic_cells_equal_forward_propagation(cell, layers):
    from spectra.train.covariance import output_trace

    m = build_model(cell, 3, 4, 5, layers, seed=17).double()
    u = torch.randn(4, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(18))
    fwd = propagate_covariance(m, u, 0.2).traces[:, -1]
    torch.testing.assert_close(output_trace(m, u, 0.2), fwd, rtol=1e-10, atol=0)


@pytest.mark.parametrize("cell,layers", [("rnn", 1), ("rnn-relu", 1), ("lstm", 1), ("gru", 1), ("gru", 2)])
def test_adjoint_trace_gradient_matches_finite_differences(cell, layers):
    from spectra.train.covariance import output_trace

    m = build_model(cell, 2, 3, 4, layers, seed=15).double()
    u = torch.randn(2, 5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(16))
    A0, B0, C0 = (t.detach().clone() for t in (m.rnn.weight_hh_l0, m.rnn.weight_ih_l0, m.readout.weight))

    def f(A, B, C):
        for obj, attr, t in (
            (m.rnn, "weight_hh_l0", A),
            (m.rnn, "weight_ih_l0", B),
            (m.readout, "weight", C),
        ):
            delattr(obj, attr)
            setattr(obj, attr, t)
        return output_trace(m, u, 0.3).sum()

    inputs = tuple(t.clone().requires_grad_(True) for t in (A0, B0, C0))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)
