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
import sys
import types

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
    "transient_lower_bound": "spectra.kreiss",
    "KreissResult": "spectra.kreiss",
    "TransientGrowth": "spectra.kreiss",
    "TransientBound": "spectra.kreiss",
    "numerical_radius_bounds": "spectra.numerical_range",
    "PseudospectralResult": "spectra.crisscross",
    "DistanceResult": "spectra.crisscross",
    "compare_checkpoints": "spectra.compare",
    "compare_stabilized": "spectra.compare",
    "StabilizeResult": "spectra.stabilize",
    "transient_growth": "spectra.kreiss",
    "numerical_radius": "spectra.numerical_range",
    "numerical_range": "spectra.numerical_range",
    "stabilize": "spectra.stabilize",
    "stabilize_checkpoint": "spectra.stabilize",
}

__all__ = [
    "Checkpoint",
    "CorruptFileError",
    "DistanceResult",
    "InvalidArgumentError",
    "KreissResult",
    "MatrixNotFoundError",
    "MatrixReport",
    "NoRecurrentWeightsError",
    "NonFiniteError",
    "NonSquareError",
    "PseudospectralResult",
    "PseudospectrumGrid",
    "RecurrentMatrix",
    "SpectraError",
    "StabilizeResult",
    "TransientBound",
    "TransientGrowth",
    "UnsafeFileError",
    "UnsupportedFormatError",
    "WriteError",
    "__version__",
    "analyze",
    "analyze_matrix",
    "compare_checkpoints",
    "compare_stabilized",
    "distance_to_instability",
    "henrici",
    "kreiss_constant",
    "load",
    "load_grid",
    "numerical_radius",
    "numerical_radius_bounds",
    "numerical_range",
    "pseudospectra",
    "pseudospectral_abscissa",
    "pseudospectral_radius",
    "schur_nonnormal",
    "stabilize",
    "stabilize_checkpoint",
    "transient_growth",
    "transient_lower_bound",
]


#: public functions that share their name with the submodule defining them
_CALLABLE_MODULES: tuple[str, ...] = ("load", "numerical_range", "pseudospectra", "stabilize")


class _CallableModule(types.ModuleType):
    """A submodule that can also be called as its namesake function.

    ``spectra.load`` is both the package ``spectra/load/`` and the function
    :func:`spectra.load.load`. Python binds a submodule onto its parent
    whenever it is first imported, which would hide the function; making the
    module itself callable keeps ``spectra.load(path)``,
    ``import spectra.load.keras`` and ``from spectra.load import load`` all working.
    """

    def __call__(self, *args, **kwargs):
        return self.__dict__[self.__name__.rsplit(".", 1)[-1]](*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        if name in _CALLABLE_MODULES and isinstance(value, types.ModuleType):
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spectra' has no attribute {name!r}")
    mod = importlib.import_module(module)
    if name in _CALLABLE_MODULES:
        return globals()[name]  # the callable submodule bound by the import
    value = getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
