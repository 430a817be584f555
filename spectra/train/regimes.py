"""Training regimes: a registry ``name -> class`` (:data:`REGIMES`, :func:`make_regime`).

Each regime is a small dataclass whose fields are its options and which acts
through four hooks the training loop calls:

``perturb(u, generator)``  change the recurrent layer's input during training (noise)
``penalty(model, u, epoch)`` a term added to the loss (robust-cov, robust-bound)
``after_step(model)``      after every optimiser step (stable)
``after_epoch(model, epoch, seed)`` at the end of every epoch (power-norm)

================ ===================================================================== ==================
name             what it does                                                          source
================ ===================================================================== ==================
``regular``      nothing                                                               first paper, VII
``stable``       clip the singular values of every recurrent matrix (each gate block   first paper, Remark
                 of ``weight_hh_l{k}``) to at most ``clip`` after every step           4 and its ref. [6]
``power-norm``   at the end of every epoch, one power iteration estimates the          second paper,
                 dominant eigenvalue of each gate block and divides it by ``|lambda|`` Algorithm 1
                 when ``|lambda| > target`` (only scaling down; ``power_scale=
                 "always"``: every epoch, as the paper's Algorithm 1)
``robust-cov``   loss + ``cov_mu * Tr(C P_T C^T)`` with ``P_T`` propagated by eqs.     first paper, eq. 28
                 (22)-(25) (:mod:`spectra.train.covariance`)
``robust-bound`` loss + ``bound_mu / N_e * Omega_T`` (Lipschitz upper bound of the      first paper, eq. 29
                 last step only; eq. 29 sums over every step)
``noise``        Gaussian noise of std ``noise_std`` added to the inputs in training    baseline
================ ===================================================================== ==================

Regimes combine with ``+`` (``stable+noise``, ``robust-cov+power-norm``);
options are shared by name, so each regime's option names are distinct.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch

from spectra.train.errors import TrainConfigError
from spectra.train.models import SequenceModel, recurrent_blocks

__all__ = [
    "POWER_SCALES",
    "REGIMES",
    "CompositeRegime",
    "Noise",
    "PowerNorm",
    "Regime",
    "Regular",
    "RobustBound",
    "RobustCov",
    "Stable",
    "make_regime",
    "register_regime",
    "robustness_bound",
]


class Regime:
    """Base class: a regime that does nothing (subclasses override the hooks they need)."""

    name: ClassVar[str] = "regular"

    def options(self) -> dict:
        """The regime's options as a plain dict (for the metadata)."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}

    def check(self, model: SequenceModel) -> None:
        """Raise :class:`TrainConfigError` if the regime cannot act on `model`."""

    def perturb(self, u: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return the training input ``u`` ``(N, T, d)`` the model sees (default: unchanged)."""
        return u

    def penalty(self, model: SequenceModel, u: torch.Tensor, epoch: int) -> torch.Tensor | None:
        """Return a scalar added to the loss, or None (`u` is the clean batch input, `epoch` 0-based)."""
        return None

    def after_step(self, model: SequenceModel) -> None:
        """Act on the weights after every optimiser step."""

    def after_epoch(self, model: SequenceModel, epoch: int, seed: int) -> dict:
        """Act on the weights at the end of epoch `epoch` (0-based); return facts for the metadata."""
        return {}


@dataclass
class Regular(Regime):
    """Plain training: no constraint, no penalty (the first paper's "regular learning")."""

    name: ClassVar[str] = "regular"


def _gate_blocks(model: SequenceModel):
    """``(id, W, rows)`` per gate block, with the ids :func:`spectra.load` gives the saved checkpoint.

    ``rnn.weight_hh_l0`` for a basic RNN, ``rnn.weight_hh_l0[forget]`` for a gate (common gate
    names in PyTorch order, :data:`spectra.checkpoint.GATE_NAMES`), so the facts recorded in a
    sidecar join with ``spectra ls/analyze/track`` output.
    """
    from spectra.checkpoint import GATE_NAMES

    n = model.hidden
    names = {3: GATE_NAMES["torch-gru"], 4: GATE_NAMES["torch-lstm"]}
    for name, gates, W in recurrent_blocks(model):
        for g in range(gates):
            mid = f"rnn.{name}" if gates == 1 else f"rnn.{name}[{names[gates][g][0]}]"
            yield mid, W, slice(g * n, (g + 1) * n)


@dataclass
class Stable(Regime):
    """Stable training: ``A <- U min(S, clip) V^T`` for every gate block after every step.

    The first paper (Remark 4, Section VII) trims the singular values of ``A``
    to 1 after each iteration, following its reference [6]; its published code
    used 0.99. Default ``clip = 1``. Then ``||A||_2 <= clip`` holds after every step,
    of the weights as stored (float32): the clipped matrix is computed in float64,
    and where rounding it to the weights' dtype lifts ``sigma_max`` above ``clip``
    (by about 1e-8 in float32) it is scaled down by a few units of roundoff first,
    as :func:`spectra.stabilize.stabilize_checkpoint` does for ``svd-clip``.
    """

    name: ClassVar[str] = "stable"
    clip: float = 1.0

    def __post_init__(self) -> None:
        if not self.clip > 0:
            raise TrainConfigError(f"stable: --clip (clip) must be positive, got {self.clip}")

    @torch.no_grad()
    def after_step(self, model: SequenceModel) -> None:
        """Clip the singular values of each ``(n, n)`` gate block of every ``weight_hh_l{k}``."""
        for _, W, rows in _gate_blocks(model):
            A = W[rows].double()
            U, s, Vh = torch.linalg.svd(A)
            if s[0] > self.clip:
                W[rows] = _norm_at_most((U * s.clamp(max=self.clip)) @ Vh, self.clip, W.dtype)


def _norm_at_most(A: torch.Tensor, bound: float, dtype: torch.dtype) -> torch.Tensor:
    """`A` (float64, ``||A||_2 <= bound``) rounded to `dtype`, with ``||.||_2 <= bound`` kept there.

    Rounding moves ``sigma_max`` by about the unit roundoff, often just above `bound`; the
    matrix is then scaled by ``(bound / sigma_max)(1 - 2u)`` and rounded again until the
    rounded matrix satisfies the bound (once is almost always enough; the logic of
    ``spectra.stabilize._as_stored``).
    """
    stored = A.to(dtype)
    if dtype == torch.float64:
        return stored
    u = torch.finfo(dtype).eps
    mult = 1.0
    for _ in range(16):
        top = float(torch.linalg.matrix_norm(stored.double(), ord=2))
        if top <= bound:
            break
        mult *= (bound / top) * (1 - 2 * u)
        stored = (A * mult).to(dtype)
    return stored


#: ``power_scale`` values of :class:`PowerNorm`.
POWER_SCALES = ("above-target", "always")


@dataclass
class PowerNorm(Regime):
    """Power-method spectral normalisation at the end of every epoch (second paper, Algorithm 1).

    Per gate block ``A`` of every ``weight_hh_l{k}``: estimate the dominant
    eigenvalue by ``iterations`` power steps and its Rayleigh quotient
    (:func:`spectra.stabilize.stabilize`, ``method="power"``; the paper fixes
    ``iterations = 1``), then ``A <- A * target/|lambda|``:

    * ``power_scale="above-target"`` (default): only when ``|lambda| > target``
      (only scaling down). Afterwards the estimate of every block is at most
      ``target`` (the estimate is homogeneous: ``lambda(cA) = c lambda(A)``).
      On non-normal gate blocks a one-step estimate often lies far below the
      spectral radius, so this can leave most blocks untouched.
    * ``power_scale="always"``: every epoch, whatever the estimate, as the
      paper's Algorithm 1 and DESIGN.md write it (``W <- W/|lambda|``). The
      default differs because a one-step estimate far below ``|lambda|`` (0.02
      on a fresh LSTM gate) then scales the block *up* (50x).
    """

    name: ClassVar[str] = "power-norm"
    iterations: int = 1
    target: float = 1.0
    power_scale: Literal["above-target", "always"] = "above-target"

    def __post_init__(self) -> None:
        if self.iterations < 1 or not self.target > 0:
            raise TrainConfigError(
                f"power-norm: --iterations (iterations) must be >= 1 and --target (target) > 0, "
                f"got {self.iterations}, {self.target}"
            )
        if self.power_scale not in POWER_SCALES:
            raise TrainConfigError(
                f"power-norm: --power-scale (power_scale) must be one of {', '.join(POWER_SCALES)}; "
                f"got {self.power_scale!r}"
            )

    @torch.no_grad()
    def after_epoch(self, model: SequenceModel, epoch: int, seed: int) -> dict:
        """Normalise every gate block; return what was done.

        Returns
        -------
        dict
            ``rescaled`` (blocks whose scale is not 1), ``blocks``, ``power_scale`` and
            ``matrices``: ``{matrix id: {"estimate", "scale", "rescaled", "seed",
            "spectral_radius_before", "spectral_radius_after", "warnings"}}``, keyed by the
            ids of :func:`spectra.load`. Convergence remarks of the one-step power method
            (expected with ``iterations=1``) go into ``warnings``, not into Python warnings.
        """
        from spectra.stabilize import stabilize

        blocks = {}
        for i, (mid, W, rows) in enumerate(_gate_blocks(model)):
            A = W[rows].double().cpu().numpy()
            block_seed = int(np.random.SeedSequence([seed, epoch, i]).generate_state(1)[0])
            res = stabilize(
                A, method="power", iterations=self.iterations, target=self.target, seed=block_seed, warn=False
            )
            new, scale, rho_after = res.matrix, res.scale, res.spectral_radius_after
            notes = list(res.warnings)
            if self.power_scale == "always" and not res.changed:
                if res.estimate > 0:  # the paper's unconditional W <- W / |lambda| (here: * target)
                    scale = self.target / res.estimate
                    new = A * scale
                    rho_after = float(np.max(np.abs(np.linalg.eigvals(new))))
                else:
                    notes.append("power estimate 0 (A v = 0): left unchanged")
            W[rows] = torch.as_tensor(new, dtype=W.dtype)
            blocks[mid] = {
                "estimate": res.estimate,
                "scale": scale,
                "rescaled": scale != 1.0,
                "seed": block_seed,
                "spectral_radius_before": res.spectral_radius_before,
                "spectral_radius_after": rho_after,
                "warnings": notes,
            }
        return {
            "rescaled": sum(b["rescaled"] for b in blocks.values()),
            "blocks": len(blocks),
            "power_scale": self.power_scale,
            "matrices": blocks,
        }


@dataclass
class RobustCov(Regime):
    """Regularisation by the covariance estimate (first paper, Section VI-A, eq. 28).

    ``loss + cov_mu * mean_s Tr(C P_T^(s) C^T)`` over the first
    ``cov_sequences`` sequences of each batch (the paper's code: 5), with
    ``Sigma = cov_sigma^2 I`` in input units and ``P_T`` propagated by
    eqs. (22)-(25). ``cov_steps="last"`` (default; what the paper's code
    does, since the models here read out the last step only) uses ``t = T``,
    computed in the equivalent adjoint form
    (:func:`spectra.train.covariance.output_trace`, about 2x a regular step
    for the paper's ReLU RNN-60); ``"all"`` sums ``Tr(R_t)`` over
    ``t = 1..T`` as eq. (28) is written, by the forward propagation
    (:func:`spectra.train.covariance.propagate_covariance`, slower). The
    sequences are the first of each shuffled batch, and their mean (not sum)
    is weighted by ``cov_mu``.
    """

    name: ClassVar[str] = "robust-cov"
    cov_mu: float = 0.01
    cov_sigma: float = 1.0
    cov_sequences: int = 5
    cov_steps: Literal["last", "all"] = "last"

    def __post_init__(self) -> None:
        if (
            self.cov_mu < 0
            or self.cov_sigma < 0
            or self.cov_sequences < 1
            or self.cov_steps not in ("last", "all")
        ):
            raise TrainConfigError(
                "robust-cov: need --cov-mu >= 0, --cov-sigma >= 0, --cov-sequences >= 1, --cov-steps in "
                "{last, all} (cov_mu, cov_sigma, cov_sequences, cov_steps); "
                f"got {self.cov_mu}, {self.cov_sigma}, {self.cov_sequences}, {self.cov_steps!r}"
            )
        _check_square(self.cov_sigma, "--cov-sigma", "cov_sigma")

    def penalty(self, model: SequenceModel, u: torch.Tensor, epoch: int) -> torch.Tensor:
        """``cov_mu * mean_s Tr(R^(s))`` on ``u[:cov_sequences]`` (differentiable)."""
        from spectra.train.covariance import output_trace, propagate_covariance

        us = u[: self.cov_sequences]
        if self.cov_steps == "last":
            per_seq = output_trace(model, us, self.cov_sigma)
        else:
            per_seq = propagate_covariance(model, us, self.cov_sigma).traces.sum(dim=1)
        return self.cov_mu * per_seq.mean()


def _check_square(value: float, flag: str, name: str) -> None:
    """Refuse a standard deviation whose square (the variance the regime uses) overflows float64.

    Said when the regime is made, before any data is loaded; the same bound as
    :func:`spectra.train.covariance.propagate_covariance` (``sigma ** 2`` raised OverflowError).
    """
    if not float(value) * float(value) < math.inf:
        raise TrainConfigError(
            f"{flag} ({name}) = {float(value):g}: its square overflows float64 (keep it below 1e150)"
        )


def robustness_bound(
    A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, T: int, trace_sigma: float, trace_gamma: float = 0.0
) -> torch.Tensor:
    """Upper bound of the robustness measure for a basic RNN (first paper, eqs. 16 and 29).

    ``Omega_T = ||C||^2 (||A||^{2T} Tr(Gamma) + sum_{i=0}^{T-1} ||A||^{2i} ||B||^2 Tr(Sigma))``,
    spectral norms, computed in float64 (differentiable).

    Parameters
    ----------
    A : (n, n) Tensor
        Recurrent matrix.
    B : (n, d) Tensor
        Input matrix.
    C : (p, n) Tensor
        Readout matrix.
    T : int
        Horizon (sequence length).
    trace_sigma : float
        ``Tr(Sigma)`` of the input noise (``d sigma^2`` for ``sigma^2 I``).
    trace_gamma : float
        ``Tr(Gamma)`` of the initial-state uncertainty (0: ``h_0 = 0`` known).

    Returns
    -------
    0-d float64 Tensor
    """
    a2 = torch.linalg.matrix_norm(A.double(), ord=2) ** 2
    b2 = torch.linalg.matrix_norm(B.double(), ord=2) ** 2
    c2 = torch.linalg.matrix_norm(C.double(), ord=2) ** 2
    powers = a2 ** torch.arange(T, dtype=torch.float64)
    return c2 * (a2**T * trace_gamma + powers.sum() * b2 * trace_sigma)


@dataclass
class RobustBound(Regime):
    """Regularisation by the Lipschitz upper bound (first paper, Section VI-B, eq. 29).

    ``loss + bound_mu / N_e * Omega_T`` with ``N_e = epoch + 1`` (the weight
    ``0.015/(epoch+1)`` of the paper's code), ``Sigma = bound_sigma^2 I_d`` and
    ``Gamma = bound_gamma^2 I_n``. Defined for one-layer basic RNNs only.

    **Deviation from eq. (29):** eq. (29) sums ``L(y_t) + mu/N_e Omega_t`` over
    the steps ``t = 1..T``; here the penalty is the last step's bound
    ``Omega_T`` alone, since the models read out (and the loss sees) only the last
    step ``y_T``, as :class:`RobustCov`'s default ``cov_steps="last"`` does for
    eq. (28). Unlike ``robust-cov`` (``cov_steps="all"``) no option gives the sum.

    ``Omega_T`` is the paper's eq. (16) as printed: it carries ``Tr(Sigma)``
    (``d`` for unit noise) and sums ``||A||^{2i}`` over ``i = 0..T-1``. The
    authors' published code (``robustBound_Update``) leaves ``Tr(Sigma)`` out
    and sums ``i = 1..T``: its penalty is about ``d/||A||^2`` times weaker
    (8x for the digits task, 24x for MNIST at ``||A|| = 1``). Pass
    ``bound_sigma = 1/sqrt(d)`` for the code's ``Tr(Sigma) = 1``.
    """

    name: ClassVar[str] = "robust-bound"
    bound_mu: float = 0.015
    bound_sigma: float = 1.0
    bound_gamma: float = 0.0

    def __post_init__(self) -> None:
        if self.bound_mu < 0 or self.bound_sigma < 0 or self.bound_gamma < 0:
            raise TrainConfigError(
                "robust-bound: --bound-mu, --bound-sigma and --bound-gamma (bound_mu, bound_sigma, "
                "bound_gamma) must be >= 0"
            )
        _check_square(self.bound_sigma, "--bound-sigma", "bound_sigma")
        _check_square(self.bound_gamma, "--bound-gamma", "bound_gamma")

    def check(self, model: SequenceModel) -> None:
        """Only one-layer basic RNNs have the bound of eq. (16)."""
        if model.kind != "rnn" or model.layers != 1:
            raise TrainConfigError(
                f"robust-bound is defined for one-layer basic RNNs (cell rnn or rnn-relu, layers=1); "
                f"got cell={model.cell}, layers={model.layers}"
            )

    def penalty(self, model: SequenceModel, u: torch.Tensor, epoch: int) -> torch.Tensor:
        """``bound_mu/(epoch+1) * Omega_T`` with ``T = u.shape[1]``."""
        d, n = model.input_size, model.hidden
        omega = robustness_bound(
            model.rnn.weight_hh_l0,
            model.rnn.weight_ih_l0,
            model.readout.weight,
            int(u.shape[1]),
            d * self.bound_sigma**2,
            n * self.bound_gamma**2,
        )
        return (self.bound_mu / (epoch + 1) * omega).to(u.dtype)


@dataclass
class Noise(Regime):
    """Gaussian input-noise augmentation: train on ``u + noise_std * N(0, I)`` (fresh every batch)."""

    name: ClassVar[str] = "noise"
    noise_std: float = 0.3

    def __post_init__(self) -> None:
        if not self.noise_std >= 0:
            raise TrainConfigError(f"noise: --noise-std (noise_std) must be >= 0, got {self.noise_std}")

    def perturb(self, u: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``u + noise_std * w``, ``w ~ N(0, I)`` from `generator`."""
        return u + self.noise_std * torch.randn(u.shape, generator=generator, dtype=u.dtype)


@dataclass
class CompositeRegime(Regime):
    """Several regimes at once: perturbations chained, penalties summed, hooks in order."""

    parts: list[Regime] = field(default_factory=list)

    @property
    def spec(self) -> str:
        """The ``a+b`` name."""
        return "+".join(p.name for p in self.parts)

    def options(self) -> dict:
        """Union of the parts' options."""
        out: dict = {}
        for p in self.parts:
            out.update(p.options())
        return out

    def check(self, model: SequenceModel) -> None:
        """Check every part."""
        for p in self.parts:
            p.check(model)

    def perturb(self, u: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Apply every part's perturbation."""
        for p in self.parts:
            u = p.perturb(u, generator)
        return u

    def penalty(self, model: SequenceModel, u: torch.Tensor, epoch: int) -> torch.Tensor | None:
        """Sum of the parts' penalties (None if none has one)."""
        terms = [t for t in (p.penalty(model, u, epoch) for p in self.parts) if t is not None]
        return sum(terms[1:], terms[0]) if terms else None

    def after_step(self, model: SequenceModel) -> None:
        """Every part's step hook."""
        for p in self.parts:
            p.after_step(model)

    def after_epoch(self, model: SequenceModel, epoch: int, seed: int) -> dict:
        """Every part's epoch hook; facts keyed by part name."""
        out = {}
        for p in self.parts:
            info = p.after_epoch(model, epoch, seed)
            if info:
                out[p.name] = info
        return out


#: Registry of regimes by name.
REGIMES: dict[str, type[Regime]] = {}


def register_regime(cls: type[Regime]) -> type[Regime]:
    """Add a regime class to :data:`REGIMES` under ``cls.name`` (usable as a decorator)."""
    REGIMES[cls.name] = cls
    return cls


for _cls in (Regular, Stable, PowerNorm, RobustCov, RobustBound, Noise):
    register_regime(_cls)


def make_regime(spec: str, options: Mapping[str, object] | None = None) -> CompositeRegime:
    """Build the regime named `spec` (``"stable"``, ``"stable+noise"``...) with `options`.

    Parameters
    ----------
    spec : str
        Registry names joined by ``+``; ``regular`` only on its own.
    options : mapping, optional
        Option values by field name (``clip``, ``iterations``, ``target``,
        ``power_scale``, ``cov_mu``, ``cov_sigma``, ``cov_sequences``, ``cov_steps``,
        ``bound_mu``, ``bound_sigma``, ``bound_gamma``, ``noise_std``).

    Returns
    -------
    CompositeRegime
        Always a composite (of one part for a single name).

    Raises
    ------
    TrainConfigError
        Unknown name, repeated name, ``regular`` combined with another, an
        option no chosen regime takes, or an invalid option value.
    """
    names = [s.strip() for s in str(spec).split("+") if s.strip()]
    if not names:
        raise TrainConfigError(f"empty regime; valid regimes: {', '.join(REGIMES)}")
    for nm in names:
        if nm not in REGIMES:
            raise TrainConfigError(
                f"unknown regime {nm!r}; valid regimes: {', '.join(REGIMES)} (join with +)"
            )
    if len(set(names)) != len(names):
        raise TrainConfigError(f"regime {spec!r} names a regime twice")
    if "regular" in names and len(names) > 1:
        raise TrainConfigError(f"regime {spec!r}: 'regular' cannot be combined with other regimes")
    opts = dict(options or {})
    nonfinite = sorted(k for k, v in opts.items() if isinstance(v, float) and not math.isfinite(v))
    if nonfinite:  # --target inf trained a whole epoch before failing; --noise-std inf "diverged"
        raise TrainConfigError(
            f"option(s) {', '.join('--' + k.replace('_', '-') for k in nonfinite)} must be finite numbers"
        )
    parts = []
    used: set[str] = set()
    for nm in names:
        cls = REGIMES[nm]
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in opts.items() if k in fields}
        used |= set(kw)
        parts.append(cls(**kw))
    unused = sorted(set(opts) - used)
    if unused:
        flags = ", ".join("--" + u.replace("_", "-") for u in unused)
        raise TrainConfigError(
            f"{'option' if len(unused) == 1 else 'options'} {flags} ({', '.join(unused)}) "
            f"{'does' if len(unused) == 1 else 'do'} not apply to regime {spec!r}"
        )
    return CompositeRegime(parts=parts)
