"""The public surface: ``spectra.__all__`` is pinned and every name resolves."""

from __future__ import annotations

import subprocess
import sys

import spectra

EXPECTED = {
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
    "transient_lower_bound",
    "KreissResult",
    "TransientGrowth",
    "TransientBound",
    "numerical_radius_bounds",
    "PseudospectralResult",
    "DistanceResult",
    "compare_checkpoints",
    "compare_stabilized",
    "StabilizeResult",
}


def test_all_is_pinned_and_sorted():
    assert set(spectra.__all__) == EXPECTED
    assert list(spectra.__all__) == sorted(spectra.__all__)


def test_every_public_name_resolves():
    for name in spectra.__all__:
        assert getattr(spectra, name) is not None, name


def test_errors_subclass_builtins():
    assert issubclass(spectra.UnsupportedFormatError, ValueError)
    assert issubclass(spectra.UnsafeFileError, PermissionError)
    assert issubclass(spectra.MatrixNotFoundError, KeyError)
    for name in spectra.__all__:
        obj = getattr(spectra, name)
        if isinstance(obj, type) and name.endswith("Error"):
            assert issubclass(obj, spectra.SpectraError)


def test_import_is_light():
    """``import spectra`` pulls in neither torch, scipy, matplotlib nor click."""
    heavy = "('torch', 'scipy', 'matplotlib', 'click', 'keras', 'h5py')"
    code = f"import spectra, sys; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_functions_named_like_their_modules_stay_callable(tmp_path):
    """Importing a submodule first must not hide ``spectra.load``/``stabilize``/``pseudospectra``."""
    code = """
import numpy as np, sys
import spectra.load.arrays as arrays          # submodule first
import spectra.stabilize, spectra.pseudospectra, spectra.numerical_range
import spectra
np.save(sys.argv[1], np.diag([0.5, 2.0]))
ck = spectra.load(sys.argv[1])
r = spectra.stabilize(ck[0].matrix, method="exact")
g = spectra.pseudospectra(np.eye(2) * 0.5, npts=8)
assert len(spectra.numerical_range(np.eye(2))) > 0
from spectra.load import load
print(len(ck), round(r.spectral_radius_after, 12), g.sigma_min.shape,
      load is spectra.load.load, arrays.__name__)
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a.npy")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["1", "1.0"]
    assert "True" in out.stdout and "spectra.load.arrays" in out.stdout
