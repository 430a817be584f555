"""Before/after comparison of recurrent matrices: :func:`compare_checkpoints`, :func:`compare_stabilized`.

For every matrix (matched by id) the figures of robustness before and after,
and whether the matrix "got less robust" by a chosen criterion
(:data:`CRITERIA`). The second paper's point is that spectral normalisation
(Algorithm 1) regains stability but loses robustness: dividing by the dominant
eigenvalue's modulus puts that eigenvalue *on* the unit circle, where the
distance to instability ``min_{|z|=1} sigma_min(zI - A)`` is zero.

Figures per matrix (JSON names): ``spectral_radius``, ``norm_2``, ``henrici``
(``dep_F``), ``henrici_relative``, ``pseudospectral_radius[eps]`` for each
``eps`` (default 1e-2 and 1e-1), ``distance_to_instability``, ``kreiss``
(inf when ``rho >= 1``), ``transient_peak`` (``max_k ||A^k||``) and
``transient_peak_k``. They come from :mod:`spectra.normality`,
:mod:`spectra.crisscross` and :mod:`spectra.kreiss` (imported lazily; a figure
whose module is missing is None). Drawing lives in :mod:`spectra.plot.compare`,
the command in ``cli/cmd_stabilize.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from spectra._json import jsonable
from spectra._validate import unusable
from spectra.checkpoint import Checkpoint
from spectra.errors import InvalidArgumentError, SpectraError

__all__ = [
    "CRITERIA",
    "DEFAULT_EPSILONS",
    "SCHEMA_VERSION",
    "Comparison",
    "FigureChange",
    "MatrixComparison",
    "StructureMismatchError",
    "compare_checkpoints",
    "compare_matrices",
    "compare_stabilized",
    "matrix_figures",
]

SCHEMA_VERSION = 1
DEFAULT_EPSILONS: tuple[float, ...] = (1e-2, 1e-1)

Criterion = Literal["distance_to_instability", "kreiss", "transient_peak", "henrici_relative"]

#: criterion -> (figure, direction that means "less robust": -1 fell, +1 rose)
CRITERIA: dict[str, tuple[str, int]] = {
    "distance_to_instability": ("distance_to_instability", -1),
    "kreiss": ("kreiss", +1),
    "transient_peak": ("transient_peak", +1),
    "henrici_relative": ("henrici_relative", +1),
}

#: changes smaller than ``RTOL * max(|before|, |after|) + ATOL`` are not changes
RTOL = 1e-6
ATOL = 1e-12


class StructureMismatchError(SpectraError, ValueError):
    """Two checkpoints to compare do not hold the same matrices (ids or shapes)."""


@dataclass(frozen=True)
class FigureChange:
    """One figure before and after.

    Attributes
    ----------
    before, after : float or None
        The values (None when not available; may be inf).
    change : float or None
        ``after - before`` (None when either is missing or both are inf).
    relative : float or None
        ``change / |before|`` (None when `before` is 0, inf or missing).
    """

    before: float | None
    after: float | None

    @property
    def change(self) -> float | None:
        """``after - before``."""
        if self.before is None or self.after is None:
            return None
        if math.isinf(self.before) and math.isinf(self.after) and self.before == self.after:
            return 0.0
        return self.after - self.before

    @property
    def relative(self) -> float | None:
        """``(after - before) / |before|``."""
        c = self.change
        if c is None or self.before == 0 or math.isinf(self.before):
            return None
        return c / abs(self.before)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (inf spelled ``"inf"``)."""
        return {k: _num(getattr(self, k)) for k in ("before", "after", "change", "relative")}


def _num(x):
    if x is None:
        return None
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return int(x)  # counts stay integers (transient_peak_k)
    return jsonable(float(x))


@dataclass(eq=False)
class MatrixComparison:
    """The comparison of one matrix.

    Attributes
    ----------
    id : str
        Matrix id.
    figures : dict of str to FigureChange
        Figure name -> before/after (``pseudospectral_radius[0.01]`` etc.).
    less_robust : bool or None
        By the comparison's criterion; None when that figure is unavailable
        or the matrix is not finite.
    notes : list of str
        Warnings (non-finite weights, missing modules, stabilisation notes).
    stabilize : dict or None
        For :func:`compare_stabilized`: method, estimate, scale (the factor applied; None
        for ``svd-clip``, which applies no single factor), changed.
    before, after : (n, n) ndarray
        The two matrices (not in the JSON).
    lower_bounds : dict of str to (bool, bool)
        Figure name -> whether its before / after value is only a lower bound
        (a transient peak the powers did not prove; K beyond what double
        precision resolves). Not in the JSON (its notes say so).
    """

    id: str
    figures: dict[str, FigureChange]
    less_robust: bool | None
    notes: list[str] = field(default_factory=list)
    stabilize: dict[str, Any] | None = None
    before: np.ndarray | None = None
    after: np.ndarray | None = None
    lower_bounds: dict[str, tuple[bool, bool]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d: dict[str, Any] = {
            "id": self.id,
            "less_robust": self.less_robust,
            "figures": {k: v.to_dict() for k, v in self.figures.items()},
            "notes": list(self.notes),
        }
        if self.stabilize is not None:
            d["stabilize"] = {k: _num(v) if isinstance(v, float) else v for k, v in self.stabilize.items()}
        return d


@dataclass(eq=False)
class Comparison:
    """Before/after figures of every matrix, and the verdict.

    Attributes
    ----------
    before, after : str
        What was compared (paths, or ``"<path> --stabilize <method>"``).
    criterion : str
        Key of :data:`CRITERIA` deciding "less robust".
    epsilons : tuple of float
        The ``eps`` of the pseudospectral radii.
    matrices : list of MatrixComparison
        In checkpoint order.
    """

    before: str
    after: str
    criterion: str
    epsilons: tuple[float, ...]
    matrices: list[MatrixComparison]

    @property
    def less_robust(self) -> list[str]:
        """Ids of the matrices that got less robust."""
        return [m.id for m in self.matrices if m.less_robust]

    @property
    def exit_code(self) -> int:
        """1 when some matrix got less robust, else 0 (the ``spectra compare`` convention)."""
        return 1 if self.less_robust else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with ``schema_version``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "before": self.before,
            "after": self.after,
            "criterion": self.criterion,
            "epsilons": list(self.epsilons),
            "less_robust": self.less_robust,
            "matrices": [m.to_dict() for m in self.matrices],
        }


# --------------------------------------------------------------------------- figures


def _eps_key(eps: float) -> str:
    from spectra.normality import eps_label

    return f"pseudospectral_radius[{eps_label(eps)}]"


#: figures, notes, and which figures are only lower bounds
_Measured = tuple[dict[str, "float | None"], list[str], dict[str, bool]]


def matrix_figures(
    A, epsilons: Sequence[float] = DEFAULT_EPSILONS
) -> tuple[dict[str, float | None], list[str]]:
    """Compute the robustness figures of one matrix.

    ``rho(A)``, ``||A||_2``, ``dep_F(A)``, ``dep_F(A)/||A||_F``
    (:func:`spectra.normality.analyze_matrix`), ``rho_eps(A)`` for each eps and
    ``min_{|z|=1} sigma_min(zI - A)`` (:mod:`spectra.crisscross`), the Kreiss
    constant ``sup_{|z|>1} (|z|-1) ||(zI-A)^{-1}||`` and ``max_k ||A^k||``
    (:mod:`spectra.kreiss`); Trefethen & Embree, chs. 14-16.

    Parameters
    ----------
    A : (n, n) array_like
        Finite matrix.
    epsilons : sequence of float
        The ``eps`` of the pseudospectral radii.

    Returns
    -------
    figures : dict of str to float or None
        The figures of :func:`spectra.normality.robustness_figures` (the same
        as ``spectra analyze``); ``transient_peak`` is inf and
        ``transient_peak_k`` None when ``K`` is infinite.
    notes : list of str
        The figures' own warnings (a transient peak that is only a lower bound, ...),
        caught here rather than emitted.
    """
    figs, notes, _ = _measure(A, epsilons)
    return figs, notes


def _measure(A, epsilons: Sequence[float]) -> _Measured:
    """:func:`matrix_figures`, and which figures are only lower bounds (figure name -> bool)."""
    import warnings

    a = np.asarray(A, dtype=np.float64 if not np.iscomplexobj(A) else np.complex128)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figs, notes, lower = _figures(a, epsilons)
    return figs, [*notes, *(str(w.message) for w in caught)], lower


def _figures(
    a: np.ndarray, epsilons: Sequence[float]
) -> tuple[dict[str, float | None], list[str], dict[str, bool]]:
    """The figures of :func:`_measure` (its warnings not caught here)."""
    from spectra.normality import analyze_matrix, eps_label, robustness_figures

    rep = analyze_matrix(a)
    figs: dict[str, float | None] = {
        "spectral_radius": rep.spectral_radius,
        "norm_2": rep.norm_2,
        "henrici": rep.henrici,
        "henrici_relative": rep.henrici_relative,
    }
    extra = robustness_figures(a, epsilons, {"pseudospectra", "kreiss"})
    for eps in epsilons:
        figs[_eps_key(eps)] = extra["pseudospectral_radius"][eps_label(eps)]
    for key in ("distance_to_instability", "kreiss", "transient_peak", "transient_peak_k"):
        figs[key] = extra[key]
    k, k_lo, k_hi = extra.get("kreiss"), extra.get("kreiss_lower"), extra.get("kreiss_certified_upper")
    # found by search but not certified (the cells gave up and n > 64, rho = 1 to rounding):
    # attained, so a lower bound
    uncertified = (
        isinstance(k, float)
        and math.isfinite(k)
        and isinstance(k_lo, float)
        and not (k_hi <= k_lo * (1 + 1e-5))
    )
    lower = {
        "transient_peak": bool(extra.get("transient_peak_is_lower_bound")),
        "kreiss": extra.get("kreiss_resolved") is False or uncertified,
    }
    notes = (
        ["K beyond what double precision resolves: the value is only a lower bound"]
        if extra.get("kreiss_resolved") is False
        else []
    )
    shaky = [k for k, ok in (extra.get("pseudospectral_radius_reliable") or {}).items() if not ok]
    if shaky:
        notes.append(
            f"rho_eps for eps = {', '.join(shaky)} is approximate: eps is below 1e-9 ||A||_2, where the "
            "criss-cross is not reliable (Burke, Lewis & Overton), or its iteration did not converge"
        )
    return figs, notes, lower


def _less_robust(figures: dict[str, FigureChange], criterion: str) -> bool | None:
    name, direction = CRITERIA[criterion]
    fc = figures.get(name)
    if fc is None or fc.before is None or fc.after is None:
        return None
    b, a = fc.before, fc.after
    if math.isinf(b) or math.isinf(a):
        if b == a:
            return False
        return (a > b) if direction > 0 else (a < b)
    tol = RTOL * max(abs(a), abs(b)) + ATOL
    return (a - b > tol) if direction > 0 else (b - a > tol)


def _check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise InvalidArgumentError(
            f"criterion must be one of {', '.join(repr(c) for c in CRITERIA)}; got {criterion!r}"
        )


def compare_matrices(
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    criterion: Criterion = "distance_to_instability",
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    before_label: str = "before",
    after_label: str = "after",
) -> Comparison:
    """Compare matrices pairwise: figures before and after, and which got less robust.

    A matrix got less robust when its criterion figure moved the wrong way by
    more than ``1e-6`` relative (:data:`CRITERIA`): ``distance_to_instability``
    fell, or ``kreiss``, ``transient_peak`` or ``henrici_relative`` rose.

    Parameters
    ----------
    pairs : sequence of (id, (n, n) ndarray, (n, n) ndarray)
        Id, matrix before, matrix after.
    criterion : {"distance_to_instability", "kreiss", "transient_peak", "henrici_relative"}
        What "less robust" means.
    epsilons : sequence of float
        The ``eps`` of the pseudospectral radii ``rho_eps``.
    before_label, after_label : str
        Recorded in the result.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        Unknown `criterion`, or an epsilon that is not positive.
    StructureMismatchError
        A pair whose matrices differ in shape.
    """
    _check_criterion(criterion)
    eps = tuple(float(e) for e in epsilons)
    if any(not (e > 0) for e in eps):
        raise InvalidArgumentError(f"epsilons must be positive, got {epsilons!r}")
    out: list[MatrixComparison] = []
    for key, b, a in pairs:
        b = np.asarray(b)
        a = np.asarray(a)
        if b.shape != a.shape:
            raise StructureMismatchError(f"{key}: shape {b.shape} before but {a.shape} after")
        why = unusable(b) or unusable(a)
        if why:
            out.append(MatrixComparison(key, {}, None, [f"{why}: not compared"], None, b, a))
            continue
        fb, nb, lb = _measure(b, eps)
        fa, na, la = _measure(a, eps)
        figs = {k: FigureChange(fb[k], fa[k]) for k in fb}
        notes = [f"before: {n}" for n in nb] + [f"after: {n}" for n in na]
        lower = {k: (lb[k], la[k]) for k in lb}
        out.append(MatrixComparison(key, figs, _less_robust(figs, criterion), notes, None, b, a, lower))
    return Comparison(before_label, after_label, criterion, eps, out)


def _as_checkpoint(x: str | os.PathLike | Checkpoint, trust: bool) -> Checkpoint:
    if isinstance(x, Checkpoint):
        return x
    from spectra.load import load

    return load(x, trust=trust)


def compare_checkpoints(
    before: str | os.PathLike | Checkpoint,
    after: str | os.PathLike | Checkpoint,
    *,
    matrices: Sequence[str] | None = None,
    criterion: Criterion = "distance_to_instability",
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    trust: bool = False,
) -> Comparison:
    """Compare two checkpoints of the same network matrix by matrix (matched by id).

    Parameters
    ----------
    before, after : path or Checkpoint
        The two checkpoints (any formats :func:`spectra.load` reads).
    matrices : sequence of str, optional
        Ids (or tensor names) to compare; all when None or empty.
    criterion, epsilons
        As in :func:`compare_matrices`.
    trust : bool
        Passed to :func:`spectra.load`.

    Returns
    -------
    Comparison

    Raises
    ------
    StructureMismatchError
        The ids of the two checkpoints differ (the message lists the ids only
        in one of them) or a matrix changed shape.
    MatrixNotFoundError
        An id in `matrices` is not in `before`.
    """
    cb, ca = _as_checkpoint(before, trust), _as_checkpoint(after, trust)
    ids_b, ids_a = cb.ids, ca.ids
    if set(ids_b) != set(ids_a):
        only_b = [i for i in ids_b if i not in set(ids_a)]
        only_a = [i for i in ids_a if i not in set(ids_b)]
        raise StructureMismatchError(
            f"{cb.path} and {ca.path} do not hold the same matrices: only in the first: "
            f"{', '.join(only_b) or '(none)'}; only in the second: {', '.join(only_a) or '(none)'}"
        )
    sel = cb.select(list(matrices) if matrices else None)
    pairs = [(m.id, m.matrix, ca[m.id].matrix) for m in sel]
    return compare_matrices(
        pairs, criterion=criterion, epsilons=epsilons, before_label=cb.path, after_label=ca.path
    )


def compare_stabilized(
    ckpt: str | os.PathLike | Checkpoint,
    *,
    method: str = "power",
    iterations: int = 1,
    target: float = 1.0,
    seed: int = 0,
    matrices: Sequence[str] | None = None,
    stacked: bool = False,
    criterion: Criterion = "distance_to_instability",
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    trust: bool = False,
) -> Comparison:
    """Compare a checkpoint's matrices with their stabilised versions, without writing a file.

    The "after" matrices are those :func:`spectra.stabilize.stabilize_checkpoint`
    would write with the same arguments: rounded to each matrix's stored dtype
    (float32, float16...), as the file would hold them.

    Parameters
    ----------
    ckpt : path or Checkpoint
        The checkpoint.
    method, iterations, target, seed, matrices, stacked
        As in :func:`spectra.stabilize.stabilize_matrices`.
    criterion, epsilons
        As in :func:`compare_matrices`.
    trust : bool
        Passed to :func:`spectra.load`.

    Returns
    -------
    Comparison
        Each :class:`MatrixComparison` has ``stabilize`` (method, estimate,
        scale, changed) and the stabilisation warnings in ``notes``.

    Raises
    ------
    UnknownMethodError
        Unknown `method`.
    MatrixNotFoundError
        An id in `matrices` is not in the checkpoint.
    """
    from spectra.stabilize import as_written, stabilize_matrices

    _check_criterion(criterion)
    ck = _as_checkpoint(ckpt, trust)
    changes = stabilize_matrices(
        ck,
        method=method,
        iterations=iterations,
        target=target,
        seed=seed,
        matrices=matrices,
        stacked=stacked,
        warn=False,
    )
    # the matrices as `spectra stabilize` would write them (rounded to the stored dtype)
    changes = as_written(changes, ck, method, target, stacked)
    label = f"{ck.path} --stabilize {method}"
    result = compare_matrices(
        [(c.id, c.before, c.after) for c in changes],
        criterion=criterion,
        epsilons=epsilons,
        before_label=ck.path,
        after_label=label,
    )
    for mc, c in zip(result.matrices, changes):
        mc.stabilize = {
            "method": c.method,
            "iterations": iterations,
            "target": float(target),
            "estimate": c.estimate,
            # svd-clip clips singular values: no one factor was applied (c.scale is target/sigma_max)
            "scale": None if c.method == "svd-clip" else c.scale,
            "changed": c.changed,
        }
        mc.notes.extend(c.warnings)
    return result
