"""Round trips: stabilise a checkpoint made by the real framework, load the result in that framework.

Every file is made at test time by torch / keras 3 (torch backend). The checks:
only the recurrent weights change, they equal the expected scaled blocks
(computed here from the framework's own tensors with dense float64 eigenvalues),
the input file is byte-identical afterwards, and the framework's forward pass
of a plain RNN matches a numpy recurrence with the stabilised matrix.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest
import torch

import spectra
from spectra.checkpoint import Checkpoint, RecurrentMatrix
from spectra.errors import SpectraError, UnsafeFileError, WriteError
from spectra.stabilize import stabilize_checkpoint
from spectra.writeback import write_matrices

torch.set_num_threads(1)

N_IN, N = 3, 4


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def rho(A) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(A))))


def exact_scaled(A: np.ndarray, target: float = 1.0) -> np.ndarray:
    """The oracle of method='exact': A * target / rho(A) when rho(A) > target."""
    r = rho(A)
    return A * (target / r) if r > target else A


def expected_torch_hh(W: np.ndarray) -> np.ndarray:
    """Per-gate exact scaling of a stacked PyTorch weight_hh (rows = gates)."""
    W = np.asarray(W, dtype=np.float64)
    n = W.shape[1]
    return np.vstack([exact_scaled(W[k : k + n]) for k in range(0, W.shape[0], n)])


def expected_keras_rk(U: np.ndarray) -> np.ndarray:
    """Per-gate exact scaling of a Keras recurrent_kernel (columns = gates, A = block.T)."""
    U = np.asarray(U, dtype=np.float64)
    n = U.shape[0]
    return np.hstack([exact_scaled(U[:, k : k + n].T).T for k in range(0, U.shape[1], n)])


# ============================================================== PyTorch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(N_IN, N)
        self.lstm = torch.nn.LSTM(N_IN, N, num_layers=2)
        self.gru = torch.nn.GRU(N_IN, N, bidirectional=True)
        self.head = torch.nn.Linear(N, 2)


def make_net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    net = Net().double()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "weight_hh" in name:
                p.mul_(6.0)  # push spectral radii above 1 so stabilisation changes them
    return net.float()


def check_torch_state(before: dict, after: dict) -> int:
    """Only weight_hh tensors changed, to the expected blocks; returns how many changed."""
    assert set(before) == set(after)
    changed = 0
    for k, t in before.items():
        u = after[k]
        assert u.dtype == t.dtype and u.shape == t.shape, k
        if "weight_hh" in k:
            exp = torch.from_numpy(expected_torch_hh(t.double().numpy())).to(t.dtype)
            torch.testing.assert_close(u, exp, rtol=2e-7, atol=1e-7)
            changed += not torch.equal(u, t)
        else:
            assert torch.equal(u, t), k
    return changed


def check_rnn_forward(net: Net) -> None:
    """The framework's RNN forward pass equals h_t = tanh(W_ih x + b_ih + A h + b_hh)."""
    x = torch.randn(6, 2, N_IN, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y, _ = net.rnn(x)
    sd = {k: v.double().numpy() for k, v in net.rnn.state_dict().items()}
    A = sd["weight_hh_l0"]
    assert rho(A) <= 1.0 + 1e-6
    h = np.zeros((2, N))
    for t in range(x.shape[0]):
        h = np.tanh(
            x[t].double().numpy() @ sd["weight_ih_l0"].T + sd["bias_ih_l0"] + h @ A.T + sd["bias_hh_l0"]
        )
        np.testing.assert_allclose(y[t].double().numpy(), h, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def net() -> Net:
    return make_net()


def _no_temp_left(directory) -> None:
    assert not [p for p in os.listdir(directory) if p.endswith(".tmp")]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_state_dict_round_trip(tmp_path, net, legacy):
    src, out = tmp_path / "net.pt", tmp_path / "stable.pt"
    torch.save(net.state_dict(), src, _use_new_zipfile_serialization=not legacy)
    digest = sha(src)
    changes = stabilize_checkpoint(src, out, method="exact")
    assert sha(src) == digest
    assert zipfile.is_zipfile(out) != legacy  # same serialization as the input
    after = torch.load(out, weights_only=True)
    assert check_torch_state(net.state_dict(), after) > 0
    assert any(c.changed for c in changes)
    for c in changes:
        assert c.spectral_radius_after <= 1.0 + 1e-9
    net2 = make_net(seed=5)
    net2.load_state_dict(after)
    check_rnn_forward(net2)
    _no_temp_left(tmp_path)


def test_torch_nested_lightning_dict_keeps_everything(tmp_path):
    net = make_net(seed=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = sum(p.sum() for p in net.parameters())
    loss.backward()
    opt.step()
    opt.zero_grad()
    ckpt = {
        "epoch": 7,
        "global_step": 70,
        "state_dict": {"model." + k: v for k, v in net.state_dict().items()},
        "optimizer_states": [opt.state_dict()],
        "hyper_parameters": {"hidden": N, "regime": "power"},
    }
    src, out = tmp_path / "lightning.ckpt", tmp_path / "stable.ckpt"
    torch.save(ckpt, src)
    digest = sha(src)
    stabilize_checkpoint(src, out, method="exact")
    assert sha(src) == digest
    back = torch.load(out, weights_only=True)
    assert back["epoch"] == 7 and back["global_step"] == 70
    assert back["hyper_parameters"] == {"hidden": N, "regime": "power"}
    so, sn = ckpt["optimizer_states"][0], back["optimizer_states"][0]
    assert so["param_groups"] == sn["param_groups"]
    for i, st in so["state"].items():
        for key, val in st.items():
            assert torch.equal(sn["state"][i][key], val)
    assert check_torch_state(ckpt["state_dict"], back["state_dict"]) > 0


@pytest.mark.parametrize("wrapper", ["_orig_mod.", "module."])
def test_torch_wrapped_model_inside_lightning_is_written_under_its_keys(tmp_path, wrapper):
    # ids drop the wrapper (model.rnn.weight_hh_l0), the file keeps it (model._orig_mod.rnn...)
    net = make_net(seed=2)
    sd = {f"model.{wrapper}{k}": v for k, v in net.state_dict().items()}
    src, out = tmp_path / "wrapped.ckpt", tmp_path / "stable.ckpt"
    torch.save({"epoch": 3, "state_dict": sd}, src)
    changes = stabilize_checkpoint(src, out, method="exact")
    assert any(c.id == "model.rnn.weight_hh_l0" for c in changes) and any(c.changed for c in changes)
    back = torch.load(out, weights_only=True)
    assert back["epoch"] == 3 and list(back["state_dict"]) == list(sd)
    assert check_torch_state(sd, back["state_dict"]) > 0


def test_safetensors_round_trip_keeps_metadata(tmp_path, net):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    src, out = tmp_path / "net.safetensors", tmp_path / "stable.safetensors"
    sd = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(sd, str(src), metadata={"format": "pt", "note": "kept"})
    digest = sha(src)
    stabilize_checkpoint(src, out, method="exact")
    assert sha(src) == digest
    assert check_torch_state(sd, load_file(str(out))) > 0
    with safe_open(str(out), "pt") as f:
        assert f.metadata() == {"format": "pt", "note": "kept"}
    net2 = make_net(seed=3)
    net2.load_state_dict(load_file(str(out)))
    check_rnn_forward(net2)


def test_safetensors_bf16_rounds_like_torch(tmp_path):
    from safetensors.torch import load_file, save_file

    g = torch.Generator().manual_seed(2)
    W = (3.0 * torch.randn(N, N, generator=g)).to(torch.bfloat16)
    other = torch.randn(N, N_IN, generator=g).to(torch.bfloat16)
    src, out = tmp_path / "bf16.safetensors", tmp_path / "out.safetensors"
    save_file({"rnn.weight_hh_l0": W, "rnn.weight_ih_l0": other}, str(src))
    ck = Checkpoint(
        path=str(src),
        format="safetensors",
        matrices=[
            RecurrentMatrix(
                id="rnn.weight_hh_l0",
                matrix=W.double().numpy(),
                layer="rnn",
                source="rnn.weight_hh_l0",
                dtype="bfloat16",
            )
        ],
    )
    new = exact_scaled(W.double().numpy())
    write_matrices(ck, src, out, {"rnn.weight_hh_l0": new})
    back = load_file(str(out))
    assert back["rnn.weight_hh_l0"].dtype == torch.bfloat16
    assert torch.equal(back["rnn.weight_hh_l0"], torch.from_numpy(new).to(torch.bfloat16))
    assert torch.equal(back["rnn.weight_ih_l0"], other)


def test_torchscript_needs_trust(tmp_path, net):
    src, out = tmp_path / "net.ts", tmp_path / "stable.ts"
    scripted = torch.jit.script(net)
    scripted.save(str(src))
    with pytest.raises(UnsafeFileError):
        stabilize_checkpoint(src, out, method="exact")
    assert not out.exists()
    stabilize_checkpoint(src, out, method="exact", trust=True)
    back = torch.jit.load(str(out))
    assert check_torch_state(net.state_dict(), back.state_dict()) > 0


def test_refuses_overwrite_and_same_file(tmp_path, net):
    src, out = tmp_path / "net.pt", tmp_path / "exists.pt"
    torch.save(net.state_dict(), src)
    out.write_bytes(b"precious")
    with pytest.raises(WriteError, match="exists"):
        stabilize_checkpoint(src, out)
    assert out.read_bytes() == b"precious"
    with pytest.raises(WriteError, match="input"):
        stabilize_checkpoint(src, src, force=True)
    stabilize_checkpoint(src, out, method="exact", force=True)
    assert check_torch_state(net.state_dict(), torch.load(out, weights_only=True)) > 0
    _no_temp_left(tmp_path)


def test_refuses_spectral_norm_and_projection(tmp_path):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(N_IN, N, proj_size=2)
    src = tmp_path / "proj.pt"
    torch.save(lstm.state_dict(), src)
    with pytest.raises(SpectraError, match="projection"):
        stabilize_checkpoint(src, tmp_path / "out.pt")
    rnn = torch.nn.utils.spectral_norm(torch.nn.RNN(N_IN, N), name="weight_hh_l0")
    src2 = tmp_path / "sn.pt"
    torch.save(rnn.state_dict(), src2)
    with pytest.raises(SpectraError, match="spectral_norm"):
        stabilize_checkpoint(src2, tmp_path / "out2.pt")
    assert not (tmp_path / "out.pt").exists() and not (tmp_path / "out2.pt").exists()


def test_orthogonal_and_quantized_weights_are_left_out_or_refused(tmp_path):
    # both are now read (the orthogonal one as registered); writing a rescaled matrix into
    # `original` gave a wrong file, and into a qint8 tensor an internal error. Left out of the
    # default selection (as when they were not read: the other layers are still stabilised),
    # refused when named
    import warnings

    from spectra.stabilize import StabilizeWarning

    torch.manual_seed(0)
    rnn = torch.nn.RNN(N_IN, N, num_layers=2)
    with torch.no_grad():
        rnn.weight_hh_l1.mul_(4)  # rho well above 1: the exact method changes it
    torch.nn.utils.parametrizations.orthogonal(rnn, "weight_hh_l0")
    src = tmp_path / "orth.pt"
    torch.save(rnn.state_dict(), src)
    before = torch.load(src, weights_only=True)
    with pytest.warns(StabilizeWarning, match="orthogonal parametrization"):
        stabilize_checkpoint(src, tmp_path / "out.pt", method="exact", target=0.5)
    after = torch.load(tmp_path / "out.pt", weights_only=True)
    W = before["weight_hh_l1"].double().numpy()
    exp = torch.from_numpy(W * (0.5 / rho(W))).float()
    torch.testing.assert_close(after["weight_hh_l1"], exp, rtol=2e-7, atol=1e-7)
    for k in before:
        if k != "weight_hh_l1":
            assert torch.equal(after[k], before[k]), k
    with pytest.raises(SpectraError, match="orthogonal parametrization"):
        stabilize_checkpoint(src, tmp_path / "out2.pt", method="exact", target=0.5, matrices=["weight_hh_l0"])
    gru = torch.nn.GRU(N_IN, N)
    sd = dict(gru.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates quantize_per_tensor
        sd["weight_hh_l0"] = torch.quantize_per_tensor(sd["weight_hh_l0"], 0.01, 0, torch.qint8)
    src3 = tmp_path / "q.pt"
    torch.save(sd, src3)
    with pytest.raises(SpectraError, match="stored quantized"):
        stabilize_checkpoint(
            src3, tmp_path / "out3.pt", method="exact", target=0.1, matrices=["weight_hh_l0[new]"]
        )
    assert not (tmp_path / "out2.pt").exists() and not (tmp_path / "out3.pt").exists()


LSTM_GATES, GRU_GATES = ("input", "forget", "cell", "output"), ("reset", "update", "new")


class Pruned(torch.nn.Module):
    """An LSTM and a GRUCell with their recurrent weights pruned by torch.nn.utils.prune."""

    def __init__(self, seed: int = 0):
        super().__init__()
        import torch.nn.utils.prune as prune

        torch.manual_seed(seed)
        self.lstm = torch.nn.LSTM(N_IN, N, num_layers=2)  # layer 1 stays unpruned
        self.cell = torch.nn.GRUCell(N_IN, N)
        with torch.no_grad():
            for w in (self.lstm.weight_hh_l0, self.lstm.weight_hh_l1, self.cell.weight_hh):
                w.mul_(6.0)  # rho well above 1: every method changes them
        prune.l1_unstructured(self.lstm, "weight_hh_l0", amount=0.4)
        prune.random_unstructured(self.cell, "weight_hh", amount=0.3)

    def effective(self) -> dict[str, np.ndarray]:
        """The recurrent weights torch uses: orig * mask, recomputed by prune's forward pre-hook."""
        with torch.no_grad():
            self.lstm(torch.zeros(1, 1, N_IN))
            self.cell(torch.zeros(1, N_IN))
        return {
            "lstm.weight_hh_l0": self.lstm.weight_hh_l0.detach().double().numpy(),
            "lstm.weight_hh_l1": self.lstm.weight_hh_l1.detach().double().numpy(),
            "cell.weight_hh": self.cell.weight_hh.detach().double().numpy(),
        }


@pytest.mark.parametrize("stacked", [False, True], ids=["per-gate", "stacked"])
@pytest.mark.parametrize("method", ["exact", "power", "spectral-norm"])
def test_pruned_weights_are_written_as_scaled_orig(tmp_path, method, stacked):
    # review finding: a checkpoint pruned by torch.nn.utils.prune (weight_hh_l0_orig + _mask) was
    # left out ("0 of 0 matrices changed", exit 0) although c * (mask * orig) = mask * (c * orig):
    # written as c * orig with the mask kept, torch's weight is the stabilised matrix
    src, out = tmp_path / "pruned.pt", tmp_path / "stable.pt"
    torch.save(Pruned().state_dict(), src)
    before, digest = torch.load(src, weights_only=True), sha(src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # power: convergence notes
        changes = stabilize_checkpoint(src, out, method=method, stacked=stacked)
    assert sha(src) == digest
    assert len(changes) == 2 * 4 + 3
    pruned = [c for c in changes if c.source.endswith("_orig")]
    assert len(pruned) == 4 + 3 and sum(c.changed for c in pruned) >= 4  # power: 1 step, a low estimate
    after = torch.load(out, weights_only=True)
    assert set(after) == set(before)
    net = Pruned(seed=7)  # same architecture, other weights: all of them come from the file
    net.load_state_dict(after)
    eff = net.effective()
    for c in changes:
        name, gate = c.id.split("[")
        g = (GRU_GATES if name == "cell.weight_hh" else LSTM_GATES).index(gate[:-1])
        # torch's effective weight is the matrix the library reports, bit for bit
        np.testing.assert_array_equal(eff[name][g * N : (g + 1) * N], c.after)
    for name in ("lstm.weight_hh_l0", "cell.weight_hh"):
        orig, mask = name + "_orig", before[name + "_mask"]
        assert torch.equal(after[name + "_mask"], mask) and (mask == 0).any()
        W0, W1 = before[orig].double().numpy(), after[orig].double().numpy()
        for g, c in enumerate(c for c in changes if c.id.startswith(name + "[")):
            rows = slice(g * N, (g + 1) * N)
            # every entry of orig, pruned ones too, scaled by the one factor of the gate
            np.testing.assert_allclose(W1[rows], c.scale * W0[rows], rtol=3e-7)
            if method == "exact" and not stacked:  # independent oracle: rho(mask * orig) = 1
                A = (mask.double().numpy() * W1)[rows]
                assert rho(A) == pytest.approx(1.0, abs=1e-6) and rho(A) <= 1.0
                eff_before = (mask.double().numpy() * W0)[rows]
                np.testing.assert_allclose(A, exact_scaled(eff_before), rtol=3e-7, atol=1e-7)
    for k, t in before.items():
        if "weight_hh" not in k or k.endswith("_mask"):
            assert torch.equal(after[k], t), k
    _no_temp_left(tmp_path)


def test_pruned_weights_are_not_written_by_svd_clip(tmp_path):
    # svd-clip's clipped matrix is nonzero where the mask is 0: no weight_orig gives it
    from spectra.stabilize import StabilizeWarning

    src = tmp_path / "pruned.pt"
    torch.save(Pruned().state_dict(), src)
    # the unpruned layer is still written, the pruned ones left out with a warning
    with pytest.warns(StabilizeWarning, match="svd-clip's clipped matrix is nonzero where the mask is 0"):
        changes = stabilize_checkpoint(src, tmp_path / "out.pt", method="svd-clip")
    assert {c.source for c in changes} == {"lstm.weight_hh_l1"}
    with pytest.raises(SpectraError, match="svd-clip's clipped matrix") as e:
        stabilize_checkpoint(src, tmp_path / "out2.pt", method="svd-clip", matrices=["cell.weight_hh"])
    assert "--method exact, power or spectral-norm" in str(e.value)
    # nothing else to write: refused, not "0 of 0 matrices changed"
    lstm = torch.nn.LSTM(N_IN, N)
    torch.nn.utils.prune.l1_unstructured(lstm, "weight_hh_l0", amount=0.3)
    torch.save(lstm.state_dict(), tmp_path / "one.pt")
    with pytest.raises(SpectraError, match="0 of 4 recurrent matrices can be written back"):
        stabilize_checkpoint(tmp_path / "one.pt", tmp_path / "out3.pt", method="svd-clip")
    assert not (tmp_path / "out2.pt").exists() and not (tmp_path / "out3.pt").exists()


def test_write_matrices_refuses_a_pruned_matrix_nonzero_where_masked(tmp_path):
    src = tmp_path / "pruned.pt"
    torch.save(Pruned().state_dict(), src)
    ck = spectra.load(src)
    m = ck["cell.weight_hh[new]"]
    assert m.mask is not None and (m.mask == 0).any()
    with pytest.raises(SpectraError, match="pruning mask"):
        write_matrices(ck, src, tmp_path / "out.pt", {m.id: np.ones((N, N))})
    assert not (tmp_path / "out.pt").exists()
    # a matrix zero where masked is written through the mask; without a factor the pruned entries stay
    new = 0.5 * m.matrix
    write_matrices(ck, src, tmp_path / "out.pt", {m.id: new})
    before, after = torch.load(src, weights_only=True), torch.load(tmp_path / "out.pt", weights_only=True)
    rows = slice(2 * N, 3 * N)
    kept = before["cell.weight_hh_mask"][rows] != 0
    W0, W1 = before["cell.weight_hh_orig"][rows], after["cell.weight_hh_orig"][rows]
    torch.testing.assert_close(W1[kept], 0.5 * W0[kept])
    assert torch.equal(W1[~kept], W0[~kept])
    assert torch.equal(after["cell.weight_hh_orig"][: 2 * N], before["cell.weight_hh_orig"][: 2 * N])


def test_only_orthogonal_weights_are_refused_not_written_as_nothing(tmp_path):
    # review finding: every matrix left out gave "wrote ... (0 of 0 matrices changed)" and exit 0
    gru = torch.nn.GRU(N_IN, N)
    torch.nn.utils.parametrizations.orthogonal(gru, "weight_hh_l0")
    src = tmp_path / "orth.pt"
    torch.save(gru.state_dict(), src)
    with pytest.raises(SpectraError, match="0 of 3 recurrent matrices can be written back") as e:
        stabilize_checkpoint(src, tmp_path / "out.pt", method="exact")
    assert "orthogonal parametrization" in str(e.value) and "weight_hh_l0[new]" in str(e.value)
    assert not (tmp_path / "out.pt").exists()


def test_stacked_uses_one_factor_per_tensor(tmp_path, net):
    src, out = tmp_path / "net.pt", tmp_path / "stacked.pt"
    torch.save(net.state_dict(), src)
    stabilize_checkpoint(src, out, method="exact", stacked=True, matrices=["lstm.weight_hh_l0"])
    after = torch.load(out, weights_only=True)
    W = net.state_dict()["lstm.weight_hh_l0"].double().numpy()
    top = max(rho(W[k : k + N]) for k in range(0, 4 * N, N))
    exp = torch.from_numpy(W * (1.0 / top) if top > 1 else W).float()
    torch.testing.assert_close(after["lstm.weight_hh_l0"], exp, rtol=2e-7, atol=1e-7)
    for k, v in net.state_dict().items():  # nothing else selected, nothing else changed
        if k != "lstm.weight_hh_l0":
            assert torch.equal(after[k], v), k


# ============================================================== numpy


def test_npy_and_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    A = (3.0 * rng.standard_normal((5, 5))).astype(np.float32)
    B = rng.standard_normal((5, 5)).astype(np.float32) * 3
    src = tmp_path / "w.npy"
    np.save(src, A)
    stabilize_checkpoint(src, tmp_path / "o.npy", method="exact")
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), exact_scaled(A.astype(np.float64)), rtol=1e-6)
    src2 = tmp_path / "w.npz"
    np.savez_compressed(src2, W_hh=A, other=B)
    digest = sha(src2)
    stabilize_checkpoint(src2, tmp_path / "o.npz", method="exact", matrices=["W_hh"])
    assert sha(src2) == digest
    with np.load(tmp_path / "o.npz") as z:
        assert z["W_hh"].dtype == np.float32
        np.testing.assert_allclose(z["W_hh"], exact_scaled(A.astype(np.float64)), rtol=1e-6)
        np.testing.assert_array_equal(z["other"], B)


# ============================================================== Keras 3 (torch backend)


@pytest.fixture(scope="module")
def keras_models():
    import keras

    keras.utils.set_random_seed(0)
    T = 5
    rnn = keras.Sequential(
        [
            keras.Input((T, N_IN)),
            keras.layers.SimpleRNN(N, return_sequences=True, name="rnn"),
            keras.layers.Dense(2, name="head"),
        ]
    )
    gated = keras.Sequential(
        [
            keras.Input((T, N_IN)),
            keras.layers.LSTM(N, return_sequences=True, name="lstm"),
            keras.layers.GRU(N, name="gru"),
        ]
    )
    for model in (rnn, gated):
        for layer in model.layers:
            w = layer.get_weights()
            if len(w) >= 2 and w[1].ndim == 2 and w[1].shape[0] == N and layer.name != "head":
                w[1] = w[1] * 6.0  # recurrent kernel: rho > 1
                layer.set_weights(w)
    return keras, rnn, gated


def keras_weights(model) -> dict[str, np.ndarray]:
    return {f"{layer.name}/{v.name}": np.array(v.numpy()) for layer in model.layers for v in layer.weights}


def check_keras(before: dict, after: dict) -> int:
    assert set(before) == set(after)
    changed = 0
    for k, w in before.items():
        if k.endswith("recurrent_kernel"):
            # (exact scaling may be lowered by a few float32 ulps so the stored rho stays <= 1)
            np.testing.assert_allclose(after[k], expected_keras_rk(w), rtol=1e-6, atol=1e-7, err_msg=k)
            changed += not np.array_equal(after[k], w)
        else:
            np.testing.assert_array_equal(after[k], w, err_msg=k)
    return changed


def check_simple_rnn_forward(model) -> None:
    x = np.random.default_rng(4).standard_normal((2, 5, N_IN)).astype(np.float32)
    y = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    K, U, b = (np.float64(w) for w in model.get_layer("rnn").get_weights())
    Wd, bd = (np.float64(w) for w in model.get_layer("head").get_weights())
    assert rho(U.T) <= 1.0 + 1e-6
    h = np.zeros((2, N))
    for t in range(5):
        h = np.tanh(x[:, t] @ K + h @ U + b)  # row-vector convention: A = U.T
        np.testing.assert_allclose(y[:, t], h @ Wd + bd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["keras", "weights.h5", "h5"])
def test_keras_round_trip(tmp_path, keras_models, kind):
    keras, rnn, gated = keras_models
    for name, model in (("rnn", rnn), ("gated", gated)):
        src, out = tmp_path / f"{name}.{kind}", tmp_path / f"{name}_stable.{kind}"
        if kind == "weights.h5":
            model.save_weights(src)
        else:
            model.save(src)
        digest = sha(src)
        stabilize_checkpoint(src, out, method="exact")
        assert sha(src) == digest
        if kind == "weights.h5":
            fresh = keras.models.clone_model(model)
            fresh.load_weights(out)
        else:
            fresh = keras.saving.load_model(out, compile=False)
        assert check_keras(keras_weights(model), keras_weights(fresh)) > 0
        if name == "rnn":
            check_simple_rnn_forward(fresh)
        if kind == "keras":
            with zipfile.ZipFile(src) as a, zipfile.ZipFile(out) as b:
                assert a.namelist() == b.namelist()
                for member in a.namelist():
                    if member != "model.weights.h5":
                        assert a.read(member) == b.read(member)


# ============================================================== plain HDF5


@pytest.mark.parametrize("suffix", ["", ":/rnn/W_hh"], ids=["file", "dataset-path"])
def test_plain_hdf5_round_trip(tmp_path, suffix):
    import h5py

    rng = np.random.default_rng(0)
    W = (3.0 * rng.standard_normal((5, 5))).astype(np.float32)
    X = rng.standard_normal((5, 3))
    src, out = tmp_path / "plain.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        f["rnn/W_hh"] = W
        f["rnn/W_xh"] = X
        f.attrs["note"] = "kept"
    digest = sha(src)
    stabilize_checkpoint(f"{src}{suffix}", out, method="exact")
    assert sha(src) == digest
    with h5py.File(out, "r") as f:
        assert f.attrs["note"] == "kept"
        assert f["rnn/W_hh"].dtype == np.float32
        np.testing.assert_allclose(f["rnn/W_hh"][...], exact_scaled(W.astype(np.float64)), rtol=1e-6)
        np.testing.assert_array_equal(f["rnn/W_xh"][...], X)


def test_plain_hdf5_integer_and_complex_datasets(tmp_path):
    # an integer dataset was written back truncated to integers (mostly zeros), silently
    import h5py

    N = np.array([[3, 10, 0], [0, 2, 7], [1, 0, 4]], dtype=np.int32)
    rng = np.random.default_rng(1)
    C = rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4))
    src, out = tmp_path / "ints.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        f["W"] = N
        f["W"].attrs["unit"] = "counts"
        f["C"] = C
    with pytest.warns(RuntimeWarning, match="written as float64"):
        stabilize_checkpoint(src, out, method="exact")
    with h5py.File(out, "r") as f:
        assert f["W"].dtype == np.float64 and f["W"].attrs["unit"] == "counts"
        np.testing.assert_allclose(f["W"][...], N / _rho(N), rtol=1e-12)
        assert np.iscomplexobj(f["C"][...])
        np.testing.assert_allclose(f["C"][...], C / _rho(C), rtol=1e-12)


# ============================================================== orientation through the power method


def power_oracle(A: np.ndarray, iterations: int, seed: int = 0) -> float:
    """|Rayleigh quotient| after `iterations` power steps from the documented start vector."""
    v = np.random.default_rng(seed).standard_normal(A.shape[0])
    v /= np.linalg.norm(v)
    for _ in range(iterations):
        v = A @ v
        v /= np.linalg.norm(v)
    return abs(v @ A @ v)


def test_power_method_sees_column_vector_orientation(tmp_path, keras_models):
    # The power iterates of A and A.T differ, so this checks that the matrix stabilised is the A of
    # h_t = f(A h_{t-1} + ...): weight_hh itself for PyTorch, recurrent_kernel.T for Keras.
    A = np.diag([2.0, -1.5, 0.5, 0.3]) + np.triu(np.full((N, N), 1.5), 1)  # non-normal
    lam = power_oracle(A, 2)
    assert lam > 1 and abs(lam - power_oracle(A.T, 2)) > 0.1  # the test tells A from A.T
    exp = A / lam

    torch.manual_seed(0)
    rnn_t = torch.nn.RNN(N_IN, N)
    with torch.no_grad():
        rnn_t.weight_hh_l0.copy_(torch.from_numpy(A))
    src, out = tmp_path / "rnn.pt", tmp_path / "out.pt"
    torch.save(rnn_t.state_dict(), src)
    stabilize_checkpoint(src, out, method="power", iterations=2)
    got = torch.load(out, weights_only=True)["weight_hh_l0"].double().numpy()
    np.testing.assert_allclose(got, exp, rtol=1e-6, atol=1e-7)

    keras, rnn, _ = keras_models
    model = keras.models.clone_model(rnn)
    w = rnn.get_layer("rnn").get_weights()
    model.get_layer("rnn").set_weights([w[0], A.T.astype(np.float32), w[2]])  # h @ U with U = A.T
    ksrc, kout = tmp_path / "rnn.weights.h5", tmp_path / "rnn_out.weights.h5"
    model.save_weights(ksrc)
    stabilize_checkpoint(ksrc, kout, method="power", iterations=2)
    fresh = keras.models.clone_model(rnn)
    fresh.load_weights(kout)
    got = np.float64(fresh.get_layer("rnn").get_weights()[1])
    np.testing.assert_allclose(got, exp.T, rtol=1e-6, atol=1e-7)


def _rho(a):
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(a, dtype=np.complex128)))))


def test_stabilize_keeps_complex_and_promotes_integer_arrays(tmp_path):
    # complex weights lost their imaginary part on writing, integer ones were written as zeros
    rng = np.random.default_rng(0)
    C = rng.standard_normal((5, 5)) + 1j * rng.standard_normal((5, 5))
    np.save(tmp_path / "c.npy", C)
    stabilize_checkpoint(tmp_path / "c.npy", tmp_path / "c_out.npy", method="exact")
    out = np.load(tmp_path / "c_out.npy")
    assert np.iscomplexobj(out) and _rho(out) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(out, C / _rho(C), rtol=1e-12)
    N = np.array([[3, 10, 0], [0, 2, 7], [1, 0, 4]], dtype=np.int64)
    np.save(tmp_path / "i.npy", N)
    with pytest.warns(RuntimeWarning, match="written as float64"):
        stabilize_checkpoint(tmp_path / "i.npy", tmp_path / "i_out.npy", method="exact")
    out = np.load(tmp_path / "i_out.npy")
    assert out.dtype == np.float64 and _rho(out) == pytest.approx(1.0, rel=1e-12)


def test_stabilize_exact_reports_rho_as_stored_in_float32(tmp_path):
    # the reported rho after was that of the float64 result; the float32 file's rho differed
    # (often just above 1, so analyze called the written weights unstable)
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(8, 24)
    with torch.no_grad():
        lstm.weight_hh_l0.mul_(8.0)  # every gate's rho above 1
    torch.save(lstm.state_dict(), tmp_path / "l.pt")
    changes = stabilize_checkpoint(tmp_path / "l.pt", tmp_path / "l_out.pt", method="exact")
    W = torch.load(tmp_path / "l_out.pt")["weight_hh_l0"].numpy()
    assert W.dtype == np.float32
    assert all(c.changed for c in changes)
    for g, c in enumerate(changes):
        rho_file = _rho(W[24 * g : 24 * (g + 1)].astype(np.float64))
        assert c.spectral_radius_after == pytest.approx(rho_file, rel=1e-13)
        if c.changed:
            assert 1 - 1e-5 < rho_file <= 1.0


def test_stored_rounding_matches_torch():
    from spectra.stabilize import _round_to

    x = np.random.default_rng(0).standard_normal(1000) * 10.0 ** np.random.default_rng(1).uniform(-5, 5, 1000)
    for name, tdt in (("bfloat16", torch.bfloat16), ("float16", torch.float16), ("float32", torch.float32)):
        np.testing.assert_array_equal(_round_to(x, name), torch.tensor(x).to(tdt).double().numpy())


def test_torch_output_is_the_same_file_every_time(tmp_path):
    # torch.save by name put the random temporary file's name inside the zip
    torch.manual_seed(0)
    torch.save(torch.nn.GRU(2, 3).state_dict(), tmp_path / "g.pt")
    stabilize_checkpoint(tmp_path / "g.pt", tmp_path / "o1.pt", method="spectral-norm")
    stabilize_checkpoint(tmp_path / "g.pt", tmp_path / "o2.pt", method="spectral-norm")
    assert (tmp_path / "o1.pt").read_bytes() == (tmp_path / "o2.pt").read_bytes()


def test_stacked_exact_gives_one_factor_per_stored_tensor(tmp_path):
    # rounding to float32 lifted some gates' rho above 1 and only those gates were scaled down
    # further: one stored tensor held gates with different factors
    found = 0
    for seed in range(12):
        torch.manual_seed(seed)
        lstm = torch.nn.LSTM(3, 24, num_layers=1)
        with torch.no_grad():
            lstm.weight_hh_l0.mul_(8.0)
        src, out = tmp_path / f"l{seed}.pt", tmp_path / f"o{seed}.pt"
        torch.save(lstm.state_dict(), src)
        changes = stabilize_checkpoint(src, out, method="exact", stacked=True)
        assert all(c.changed for c in changes)
        scales = {c.scale for c in changes}
        assert len(scales) == 1, scales
        (scale,) = scales
        before = torch.load(src, weights_only=True)["weight_hh_l0"].double().numpy()
        after = torch.load(out, weights_only=True)["weight_hh_l0"]
        # the stored tensor is the whole float32 tensor times that one factor, rounded
        np.testing.assert_array_equal(after.numpy(), (before * scale).astype(np.float32))
        rhos = [rho(after.double().numpy()[g * 24 : (g + 1) * 24]) for g in range(4)]
        assert max(rhos) <= 1.0
        found += min(abs(c.spectral_radius_after - 1.0) for c in changes) < 1e-6
    assert found  # some tensors were at the target to rounding: where the gates' factors diverged


def test_a_target_so_small_the_weights_underflow_is_warned(tmp_path):
    from spectra.stabilize import StabilizeWarning

    torch.manual_seed(0)
    rnn = torch.nn.RNN(3, 6)
    src, out = tmp_path / "r.pt", tmp_path / "o.pt"
    torch.save(rnn.state_dict(), src)
    with pytest.warns(StabilizeWarning, match="underflows to 0 in float32"):
        stabilize_checkpoint(src, out, method="exact", target=1e-300)
    assert not torch.load(out, weights_only=True)["weight_hh_l0"].any()  # what the warning says
    with warnings.catch_warnings():
        warnings.simplefilter("error", StabilizeWarning)
        stabilize_checkpoint(src, tmp_path / "o2.pt", method="exact", target=1e-30)  # representable


@pytest.mark.parametrize("method", ["spectral-norm", "svd-clip"])
@pytest.mark.parametrize("stacked", [False, True], ids=["per-gate", "stacked"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_norm_methods_keep_their_bound_in_the_stored_dtype(tmp_path, method, stacked, dtype):
    # rounding to bfloat16 left ||A||_2 = 1.0026 after svd-clip / spectral-norm (found by a review):
    # the file must hold what the method promises, ||A||_2 <= 1 (of the stacked tensor when stacked)
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(3, 16).to(dtype)
    with torch.no_grad():
        lstm.weight_hh_l0.mul_(6.0)
    src, out = tmp_path / "l.pt", tmp_path / "o.pt"
    torch.save(lstm.state_dict(), src)
    changes = stabilize_checkpoint(src, out, method=method, stacked=stacked)
    assert all(c.changed for c in changes)
    W = torch.load(out, weights_only=True)["weight_hh_l0"].double().numpy()  # exactly as stored
    blocks = [W] if stacked else [W[g * 16 : (g + 1) * 16] for g in range(4)]
    norms = [np.linalg.norm(B, 2) for B in blocks]
    assert max(norms) <= 1.0
    # and no lower than rounding needs: within a few units in the dtype's last place
    u = {torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10, torch.float32: 2.0**-23}[dtype]
    assert max(norms) >= 1.0 - 16 * u
