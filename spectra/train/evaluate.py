"""Trained models under input noise: accuracy curves, Table I thresholds, the robustness measure.

* :func:`evaluate_noise` — accuracy (classification) or MSE and accuracy at
  tolerance (adding) when Gaussian noise ``w_t ~ N(0, a^2 I)`` is added to the
  recurrent layer's input at every step; ``a`` is a **standard deviation** in
  the units of that input (:func:`amplitude_units`): standardised inputs for
  digits and MNIST (the first paper's code adds noise of that std to
  normalised inputs), the raw U(0, 1) values and 0/1 markers for the adding
  problem, the embeddings for token tasks. Averaged over ``repeats`` draws
  from a seeded generator.
* :func:`noise_thresholds` — the first paper's Table I metric: the amplitude at
  which the misclassification (adding: the miss rate, ``|error| >= 0.04``)
  reaches 3 %, 5 % and 10 %, by linear
  interpolation between the evaluated amplitudes.
* :func:`robustness` — the first paper's robustness measure
  ``rho_T = E||y~_T - y_T||^2``: the linearised estimate ``Tr(R_T)``
  (Theorem 3, :mod:`.covariance`) next to a Monte-Carlo estimate.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from spectra.train.errors import TrainConfigError
from spectra.train.models import SequenceModel
from spectra.train.tasks import ADDING_TOLERANCE, Split, Task

__all__ = [
    "NoiseCurve",
    "RobustnessReport",
    "amplitude_units",
    "error_label",
    "evaluate_noise",
    "noise_thresholds",
    "robustness",
]

#: Misclassification levels of the first paper's Table I.
TABLE_I_LEVELS = (0.03, 0.05, 0.10)


def amplitude_units(task: Task) -> str:
    """What a noise amplitude (a standard deviation) is measured against for `task`, in words."""
    if task.tokens:
        return "std of Gaussian noise added to the token embeddings at every step"
    if task.name == "adding":
        return (
            "std of Gaussian noise added at every step to the raw inputs (not standardised: "
            "value in U(0, 1), std about 0.29, and a 0/1 marker, which gets the noise too)"
        )
    return "std of Gaussian noise added to the standardised inputs (mean 0, std 1) at every step"


def error_label(task: Task) -> tuple[str, str]:
    """``(short, definition)`` of the error rate ``1 - accuracy`` of `task` (a table header, a sentence)."""
    if task.kind == "regression":
        return (
            f"miss |err|>={ADDING_TOLERANCE:g}",
            f"miss rate: fraction with |prediction - target| >= {ADDING_TOLERANCE:g}",
        )
    return "misclass", "misclassification: fraction of wrongly classified sequences"


@dataclass(frozen=True)
class NoiseCurve:
    """Metrics of a model under input noise of each amplitude.

    Attributes
    ----------
    amplitudes : (K,) ndarray
        Noise standard deviations, in the units of the model's input (:func:`amplitude_units`).
    accuracy, accuracy_std : (K,) ndarray
        Mean accuracy over the draws and its standard deviation across draws
        (regression: fraction with ``|error| < 0.04``). With one draw
        (``repeats=1``) the standard deviation is undefined: NaN at every
        amplitude above 0 (amplitude 0 is deterministic: 0).
    misclassification : (K,) ndarray
        ``1 - accuracy`` (regression: the miss rate, fraction with ``|error| >= 0.04``).
    mse : (K,) ndarray or None
        Mean squared error (regression tasks only).

        At an amplitude where the model's output overflowed (NaN or Inf for some
        sequence of some draw, at amplitudes far beyond the inputs' scale in float32)
        `accuracy`, `accuracy_std`, `misclassification` and `mse` are NaN: such an output is
        no prediction (the argmax of NaN logits is class 0).
    repeats : int
        Noise draws per amplitude (amplitude 0 is evaluated once).
    seed : int
        Seed of the draws.
    split : str
        The split evaluated.
    n : int
        Sequences in the split.
    nonfinite : (K,) ndarray or None
        Fraction of the sequence draws at each amplitude whose output was NaN or Inf.
    """

    amplitudes: np.ndarray
    accuracy: np.ndarray
    accuracy_std: np.ndarray
    misclassification: np.ndarray
    mse: np.ndarray | None
    repeats: int
    seed: int
    split: str
    n: int
    nonfinite: np.ndarray | None = None


@torch.no_grad()
def evaluate_noise(
    model: SequenceModel,
    task: Task,
    amplitudes: Sequence[float],
    *,
    split: str = "test",
    repeats: int = 5,
    seed: int = 0,
    batch_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> NoiseCurve:
    """Accuracy (and MSE) of `model` when ``u_t + a w_t``, ``w_t ~ N(0, I)``, is fed at every step.

    The same draws ``w`` (repeat ``r`` uses a generator seeded by
    ``(seed, r)``) are used for every amplitude, so the curve is smooth in ``a``.

    Parameters
    ----------
    model : SequenceModel
        Trained model.
    task : Task
        Its task (for the split and the metric).
    amplitudes : sequence of float
        Noise standard deviations ``a >= 0``.
    split : {"train", "val", "test"}
        Which split.
    repeats : int
        Noise draws per amplitude.
    seed : int
        Seed of the draws.
    batch_size : int
        Sequences per forward pass.
    progress : callable, optional
        ``progress(done, total)`` after each batch of each repeat.

    Returns
    -------
    NoiseCurve
        NaN metrics at amplitudes where an output overflowed (:attr:`NoiseCurve.nonfinite`).

    Raises
    ------
    TrainConfigError
        Negative or non-finite amplitudes, ``repeats < 1``, unknown split.

    Warns
    -----
    RuntimeWarning
        Some output was NaN or Inf (the amplitudes where it was, and how often).
    """
    amps = np.asarray(list(amplitudes), dtype=np.float64)
    if amps.ndim != 1 or amps.size == 0 or not np.all(np.isfinite(amps)) or np.any(amps < 0):
        raise TrainConfigError(
            f"noise amplitudes must be finite standard deviations >= 0, got {list(amplitudes)}"
        )
    if repeats < 1:
        raise TrainConfigError(f"repeats must be at least 1, got {repeats}")
    data: Split = task.split(split)
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(data.x))
    y = torch.from_numpy(np.ascontiguousarray(data.y))
    dtype = next(model.parameters()).dtype
    K, N = amps.size, len(x)
    correct = np.zeros((K, repeats))
    sqerr = np.zeros((K, repeats))
    bad = np.zeros((K, repeats))  # sequences whose output is NaN or Inf
    total, done = repeats * max(1, -(-N // batch_size)), 0
    for r in range(repeats):
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, r]).generate_state(1)[0]))
        for i in range(0, N, batch_size):
            u = model.inputs(x[i : i + batch_size]).to(dtype)
            w = torch.randn(u.shape, generator=gen, dtype=dtype)
            yb = y[i : i + batch_size]
            for k, a in enumerate(amps):
                if a == 0 and r > 0:
                    continue
                out = model.from_inputs(u + float(a) * w)
                bad[k, r] += float((~torch.isfinite(out).all(dim=-1)).sum())
                if task.kind == "regression":
                    err = out - yb
                    correct[k, r] += float((err.abs() < ADDING_TOLERANCE).all(dim=-1).sum())
                    sqerr[k, r] += float((err**2).sum())
                else:
                    correct[k, r] += float((out.argmax(-1) == yb).sum())
            done += 1
            if progress is not None:
                progress(done, total)
    acc = correct / N
    zero = amps == 0
    acc[zero] = acc[zero][:, :1]  # amplitude 0 is deterministic: evaluated once
    sqerr[zero] = sqerr[zero][:, :1]
    bad[zero] = bad[zero][:, :1]
    acc[bad > 0] = np.nan  # NaN logits are no prediction: their argmax (class 0) is not counted
    sqerr[bad > 0] = np.nan
    nonfinite = bad.mean(1) / max(1, N)
    if np.any(nonfinite > 0):
        hit = ", ".join(f"{a:g} ({100 * f:.3g}% of the sequences)" for a, f in zip(amps, nonfinite) if f > 0)
        warnings.warn(
            f"the model's output overflowed to NaN/Inf ({str(dtype).replace('torch.', '')}) at noise "
            f"amplitude {hit}: no prediction, so the accuracy there is reported as nan",
            RuntimeWarning,
            stacklevel=2,
        )
    std = acc.std(1)
    if repeats == 1:  # the spread of one draw is undefined (0.0 read as "no spread")
        std[~zero] = np.nan
    p = task.n_outputs
    return NoiseCurve(
        amplitudes=amps,
        accuracy=acc.mean(1),
        accuracy_std=std,
        misclassification=1 - acc.mean(1),
        mse=(sqerr / (N * p)).mean(1) if task.kind == "regression" else None,
        repeats=repeats,
        seed=seed,
        split=split,
        n=N,
        nonfinite=nonfinite,
    )


def noise_thresholds(
    amplitudes: Sequence[float], misclassification: Sequence[float], levels: Sequence[float] = TABLE_I_LEVELS
) -> dict[float, float | None]:
    """Noise amplitude at which the misclassification first reaches each level (first paper, Table I).

    Linear interpolation between consecutive evaluated amplitudes (sorted
    ascending): for the first ``k`` with ``e_k < L <= e_{k+1}``,
    ``a = a_k + (L - e_k) (a_{k+1} - a_k) / (e_{k+1} - e_k)``. Amplitudes whose
    misclassification is NaN (the outputs overflowed, :func:`evaluate_noise`) are left out.

    Parameters
    ----------
    amplitudes : (K,) sequence of float
        Evaluated amplitudes.
    misclassification : (K,) sequence of float
        Misclassification rate at each amplitude (fractions in [0, 1]).
    levels : sequence of float
        Levels (fractions; Table I: 0.03, 0.05, 0.10).

    Returns
    -------
    dict
        ``level -> amplitude``; the smallest amplitude when the error is
        already at the level there; None when the level is never reached in
        the evaluated range (or no misclassification is a number).

    Raises
    ------
    TrainConfigError
        Arrays of different lengths or empty.
    """
    a = np.asarray(amplitudes, dtype=np.float64)
    e = np.asarray(misclassification, dtype=np.float64)
    if a.shape != e.shape or a.ndim != 1 or a.size == 0:
        raise TrainConfigError(
            f"amplitudes and misclassification must be equal-length 1-D; got {a.shape}, {e.shape}"
        )
    order = np.argsort(a, kind="stable")
    a, e = a[order], e[order]
    keep = ~np.isnan(e)
    a, e = a[keep], e[keep]
    out: dict[float, float | None] = {}
    for level in levels:
        L = float(level)
        if a.size == 0:
            out[L] = None
            continue
        if e[0] >= L:
            out[L] = float(a[0])
            continue
        hit = None
        for k in range(a.size - 1):
            if e[k] < L <= e[k + 1]:
                hit = float(a[k] + (L - e[k]) * (a[k + 1] - a[k]) / (e[k + 1] - e[k]))
                break
        out[L] = hit
    return out


@dataclass(frozen=True)
class RobustnessReport:
    """Linearised and sampled robustness measure for ``S`` sequences.

    Attributes
    ----------
    sigma : float
        Input-noise standard deviation (``Sigma = sigma^2 I``).
    estimate : (S,) ndarray
        ``Tr(R_T)`` from the linearised propagation (Theorem 3, eqs. 22-24).
    monte_carlo, monte_carlo_stderr : (S,) ndarray
        Sampled ``E||y~_T - y_T||^2`` and its standard error.
    draws : int
        Noise draws per sequence.
    seed : int
        Seed of the draws.
    """

    sigma: float
    estimate: np.ndarray
    monte_carlo: np.ndarray
    monte_carlo_stderr: np.ndarray
    draws: int
    seed: int

    @property
    def mean_estimate(self) -> float:
        """Mean of ``Tr(R_T)`` over the sequences."""
        return float(self.estimate.mean())

    @property
    def mean_monte_carlo(self) -> float:
        """Mean of the Monte-Carlo estimate over the sequences."""
        return float(self.monte_carlo.mean())

    @property
    def mean_monte_carlo_stderr(self) -> float:
        """Standard error of :attr:`mean_monte_carlo` (independent draws per sequence)."""
        return float(np.sqrt((self.monte_carlo_stderr**2).sum()) / max(1, self.monte_carlo_stderr.size))


def robustness(
    model: SequenceModel, x: torch.Tensor | np.ndarray, sigma: float, *, draws: int = 500, seed: int = 0
) -> RobustnessReport:
    """The first paper's robustness measure of `model` on inputs `x`: ``Tr(R_T)`` and Monte Carlo.

    Computed in float64 on a copy of the model.

    Parameters
    ----------
    model : SequenceModel
        Trained model.
    x : (S, T, d) or (S, T) array
        Inputs (token ids for token tasks).
    sigma : float
        Noise standard deviation at every step, in the units of the model's input
        (:func:`amplitude_units`).
    draws : int
        Monte-Carlo draws per sequence.
    seed : int
        Seed of the draws.

    Returns
    -------
    RobustnessReport

    Raises
    ------
    TrainConfigError
        Negative `sigma` or ``draws < 2``.
    """
    import copy

    from spectra.train.covariance import monte_carlo_output_error, propagate_covariance

    if not sigma >= 0 or draws < 2:
        raise TrainConfigError(f"need sigma >= 0 and draws >= 2, got sigma={sigma}, draws={draws}")
    m = copy.deepcopy(model).double().eval()
    xt = torch.as_tensor(np.asarray(x))
    with torch.no_grad():
        u = m.inputs(xt).double()
        est = propagate_covariance(m, u, sigma).traces[:, -1]
    mc, se = monte_carlo_output_error(m, u, sigma, draws=draws, seed=seed)
    return RobustnessReport(
        sigma=float(sigma),
        estimate=est.numpy().copy(),
        monte_carlo=mc.numpy().copy(),
        monte_carlo_stderr=se.numpy().copy(),
        draws=draws,
        seed=seed,
    )
