"""rnn-spectra: what the trained recurrent weights inside a checkpoint really do.

Load a PyTorch or Keras checkpoint (:func:`load`), then per recurrent matrix
(one per layer, direction and gate): spectrum and Henrici departure from
normality (:func:`analyze`, :func:`henrici`), epsilon-pseudospectra
(:func:`pseudospectra`), Kreiss bounds on transient growth
(:func:`kreiss_constant`, :func:`transient_growth`) and spectral normalisation
(:func:`stabilize`).

Heavy submodules are imported on first use, so ``import spectra`` stays fast.
"""

from __future__ import annotations

import importlib
import logging

from spectra.errors import (
    CorruptFileError,
    InvalidArgumentError,
    MatrixNotFoundError,
    NonFiniteError,
    NonSquareError,
    NoRecurrentWeightsError,
    SpectraError,
    UnsafeFileError,
    UnsupportedFormatError,
    WriteError,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

#: public name -> submodule that defines it (imported lazily)
_LAZY: dict[str, str] = {
    "Checkpoint": "spectra.checkpoint",
    "RecurrentMatrix": "spectra.checkpoint",
    "load": "spectra.load",
    "analyze": "spectra.normality",
    "analyze_matrix": "spectra.normality",
    "henrici": "spectra.normality",
    "schur_nonnormal": "spectra.normality",
    "MatrixReport": "spectra.normality",
    "pseudospectra": "spectra.pseudospectra",
    "PseudospectrumGrid": "spectra.pseudospectra",
    "load_grid": "spectra.pseudospectra",
    "pseudospectral_radius": "spectra.crisscross",
    "pseudospectral_abscissa": "spectra.crisscross",
    "distance_to_instability": "spectra.crisscross",
    "kreiss_constant": "spectra.kreiss",
    "transient_growth": "spectra.kreiss",
    "numerical_radius": "spectra.numerical_range",
    "numerical_range": "spectra.numerical_range",
    "stabilize": "spectra.stabilize",
    "stabilize_checkpoint": "spectra.stabilize",
}

__all__ = [
    "Checkpoint",
    "CorruptFileError",
    "InvalidArgumentError",
    "MatrixNotFoundError",
    "MatrixReport",
    "NoRecurrentWeightsError",
    "NonFiniteError",
    "NonSquareError",
    "PseudospectrumGrid",
    "RecurrentMatrix",
    "SpectraError",
    "UnsafeFileError",
    "UnsupportedFormatError",
    "WriteError",
    "__version__",
    "analyze",
    "analyze_matrix",
    "distance_to_instability",
    "henrici",
    "kreiss_constant",
    "load",
    "load_grid",
    "numerical_radius",
    "numerical_range",
    "pseudospectra",
    "pseudospectral_abscissa",
    "pseudospectral_radius",
    "schur_nonnormal",
    "stabilize",
    "stabilize_checkpoint",
    "transient_growth",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spectra' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
