"""Paired training module: produce checkpoints under the regimes of the two papers.

=================  =====================================================================
module             holds
=================  =====================================================================
``tasks``          the tasks (adding, digits, mnist, sentiment) and :func:`load_task`
``fetch``          on-demand, checksum-pinned fetch of MNIST and the tweet corpus
``models``         :class:`SequenceModel` (``rnn`` = ``nn.RNN/LSTM/GRU``) and :func:`build_model`
``covariance``     linearised covariance propagation (first paper, eqs. 22-26)
``regimes``        regular, stable, power-norm, robust-cov, robust-bound, noise
``loop``           :class:`TrainConfig` and :func:`train`
``checkpoints``    per-epoch files, sidecar metadata, :func:`load_trained`
``evaluate``       accuracy under input noise, Table I thresholds, robustness measure
=================  =====================================================================

Every name below is imported lazily (torch is only imported on use).
"""

from __future__ import annotations

import importlib

#: public name -> submodule that defines it
_LAZY: dict[str, str] = {
    "REGIMES": "spectra.train.regimes",
    "TASKS": "spectra.train.tasks",
    "Task": "spectra.train.tasks",
    "TrainConfig": "spectra.train.loop",
    "TrainResult": "spectra.train.loop",
    "build_model": "spectra.train.models",
    "evaluate_noise": "spectra.train.evaluate",
    "load_task": "spectra.train.tasks",
    "load_trained": "spectra.train.checkpoints",
    "make_regime": "spectra.train.regimes",
    "noise_thresholds": "spectra.train.evaluate",
    "propagate_covariance": "spectra.train.covariance",
    "robustness": "spectra.train.evaluate",
    "train": "spectra.train.loop",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spectra.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
