"""Epsilon-pseudospectra of a matrix on a grid: :func:`pseudospectra`.

The epsilon-pseudospectrum of ``A`` is (Trefethen & Embree 2005, ch. 2)::

    L_eps(A) = {z : sigma_min(zI - A) < eps} = {z : ||(zI - A)^{-1}|| > 1/eps}

and this module evaluates ``sigma_min(zI - A)`` at every point of a
rectangular grid, so that the boundaries of ``L_eps`` are contour lines of
``log10 sigma_min``. The method is EigTool's (Wright & Trefethen, SISC 2001):
one Schur factorisation ``A = Q S Q*``, then per point inverse Lanczos on
``(S_z^* S_z)^{-1}``, ``S_z = zI - S``, batched over many points. What is ours:
for real ``A`` the real Schur form, so the block updates of the triangular
solves are real matrix products (half the arithmetic); diagonal blocks solved by
diagonalisation where that is well conditioned (:mod:`spectra._shifted`); each
grid row started from the Ritz vectors of the two rows below (linear
extrapolation), and a Kato-Temple stopping rule (:mod:`spectra._lanczos`); a
closed form with a Weyl error bound for (nearly) normal ``A``; the per-point
bookkeeping of every Lanczos step in compiled loops (:mod:`spectra._kernels`,
numba; ``SPECTRA_NUMBA=0`` runs the numpy twins). Below ``dense_below`` rows
a batched dense SVD is cheaper and is used instead.

Here: the grid, its automatic bounds and levels, the data object
:class:`PseudospectrumGrid` with ``.plot()`` and ``.save()``, and
:func:`load_grid`. Elsewhere: drawing (:mod:`spectra.plot.pseudospectra`),
pseudospectral radius and abscissa (:mod:`spectra.crisscross`).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.linalg

from spectra._lanczos import lanczos_sigma_min
from spectra._progress import Progress
from spectra._shifted import shifted_solver
from spectra._validate import as_square_matrix
from spectra.errors import CorruptFileError, InvalidArgumentError, UnsupportedFormatError, WriteError

__all__ = [
    "PseudospectrumGrid",
    "auto_bounds",
    "default_levels",
    "default_npts",
    "load_grid",
    "pseudospectra",
    "resolved_floor",
]

_EPS = np.finfo(np.float64).eps
_FORMAT = "rnn-spectra/pseudospectrum-grid"
_FORMAT_VERSION = 1
#: bytes of working memory one batch of Lanczos points may use
_BATCH_BYTES = 192 * 2**20
#: bytes of stacked matrices one dense-SVD chunk may use
_DENSE_BYTES = 32 * 2**20
#: the Lanczos engines are asked for tol / _TOL_MARGIN, but for no less than _TOL_FLOOR (the
#: default tol, 1e-8, is used as given): their stopping test met tol only to within 2-6x
_TOL_MARGIN = 100.0
_TOL_FLOOR = 1e-8


@dataclass(eq=False)
class PseudospectrumGrid:
    """``sigma_min(zI - A)`` on a grid, ready to be contoured.

    Attributes
    ----------
    x : (nx,) ndarray
        Real parts of the grid points, increasing.
    y : (ny,) ndarray
        Imaginary parts of the grid points, increasing.
    sigma_min : (ny, nx) ndarray
        ``sigma_min[j, i] = sigma_min((x[i] + 1j*y[j]) I - A)``, float64. The
        boundary of the epsilon-pseudospectrum is the contour
        ``sigma_min = eps``.
    eigenvalues : (n,) ndarray, complex
        Eigenvalues of ``A`` (the diagonal of its complex Schur form).
    levels : (L,) ndarray
        ``log10(eps)`` of the contours to draw (chosen or given).
    options : dict
        What was used and what it took: ``method`` (``lanczos`` or ``svd``),
        ``tol``, ``maxiter``, ``dense_below``, ``seed``, ``bounds``, ``nx``,
        ``ny``, ``points``, ``points_computed`` (fewer when rows were
        mirrored), ``mirrored_rows``, ``lanczos_steps_mean``,
        ``lanczos_steps_max``, ``dense_fallback_points``, and for the numpy
        engine ``warm_started_points``, ``closed_form_points`` (normal to
        within the tolerance: no Lanczos), ``chains``, ``workers`` (threads
        used), ``leaves`` (how the diagonal blocks are solved: ``eig``,
        ``row``, ``pair``); ``seconds_schur`` (Schur form and block set-up),
        ``seconds`` (wall clock).
    matrix_id : str or None
        Identifier of the matrix (e.g. ``rnn.weight_hh_l0[forget]``).
    title : str or None
        Free-form label for plots.
    n : int
        Size of ``A``.
    """

    x: np.ndarray
    y: np.ndarray
    sigma_min: np.ndarray
    eigenvalues: np.ndarray
    levels: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)
    matrix_id: str | None = None
    title: str | None = None
    n: int = 0

    @property
    def z(self) -> np.ndarray:
        """The grid points ``x[i] + 1j*y[j]`` as a ``(ny, nx)`` complex array."""
        return self.x[None, :] + 1j * self.y[:, None]

    @property
    def log10_sigma(self) -> np.ndarray:
        """``log10(sigma_min)``, ``(ny, nx)``; exact zeros become ``-inf``."""
        with np.errstate(divide="ignore"):
            return np.log10(self.sigma_min)

    def plot(
        self,
        ax=None,
        *,
        levels: Sequence[float] | np.ndarray | None = None,
        colorbar: bool = True,
        unit_circle: bool = True,
        title: str | None = None,
        filled: bool = False,
        overlay: Sequence[tuple[np.ndarray, np.ndarray, str]] | None = None,
    ):
        """Draw the contours; see :func:`spectra.plot.pseudospectra.plot_pseudospectra`."""
        from spectra.plot.pseudospectra import plot_pseudospectra

        return plot_pseudospectra(
            self,
            ax=ax,
            levels=levels,
            colorbar=colorbar,
            unit_circle=unit_circle,
            title=title,
            filled=filled,
            overlay=overlay,
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the grid to a ``.npz`` file that :func:`load_grid` reads back.

        Raises
        ------
        WriteError
            If the file cannot be written.
        """
        meta = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "matrix_id": self.matrix_id,
            "title": self.title,
            "n": int(self.n),
            "options": self.options,
        }
        try:
            with open(path, "wb") as f:
                np.savez_compressed(
                    f,
                    x=np.asarray(self.x, dtype=np.float64),
                    y=np.asarray(self.y, dtype=np.float64),
                    sigma_min=np.asarray(self.sigma_min, dtype=np.float64),
                    eigenvalues=np.asarray(self.eigenvalues, dtype=np.complex128),
                    levels=np.asarray(self.levels, dtype=np.float64),
                    meta=np.array(json.dumps(meta, default=_json_default)),
                )
        except OSError as exc:
            raise WriteError(f"{os.fspath(path)}: cannot write the pseudospectrum grid ({exc})") from None


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def load_grid(path: str | os.PathLike) -> PseudospectrumGrid:
    """Read a grid written by :meth:`PseudospectrumGrid.save`.

    Parameters
    ----------
    path : str or path-like
        A ``.npz`` file.

    Returns
    -------
    PseudospectrumGrid

    Raises
    ------
    OSError
        If the file does not exist or cannot be read.
    UnsupportedFormatError
        If the file is a readable ``.npz`` but not a pseudospectrum grid.
    CorruptFileError
        If it is not a readable ``.npz`` or its arrays are inconsistent.
    """
    p = os.fspath(path)
    need = {"x", "y", "sigma_min", "eigenvalues", "levels", "meta"}
    try:
        data = np.load(p, allow_pickle=False)
    except OSError:
        raise
    except Exception as exc:  # ValueError, zipfile.BadZipFile, EOFError ...
        raise CorruptFileError(f"{p}: not a readable .npz file ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise UnsupportedFormatError(f"{p}: a single .npy array, not a pseudospectrum grid (.npz)")
    try:
        names = set(data.files)
        if not need <= names:
            raise UnsupportedFormatError(
                f"{p}: not a pseudospectrum grid (needs arrays {sorted(need)}, has {sorted(names)})"
            )
        arrays = {k: data[k] for k in need}
    except UnsupportedFormatError:
        raise
    except Exception as exc:
        raise CorruptFileError(f"{p}: corrupt grid file ({exc})") from None
    finally:
        data.close()
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"{p}: unreadable metadata in the grid file ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        what = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise UnsupportedFormatError(f"{p}: not a pseudospectrum grid (format {what!r})")
    x, y, s = arrays["x"], arrays["y"], arrays["sigma_min"]
    if x.ndim != 1 or y.ndim != 1 or s.shape != (y.size, x.size):
        raise CorruptFileError(
            f"{p}: inconsistent grid: x {x.shape}, y {y.shape}, sigma_min {s.shape} "
            "(sigma_min must be (len(y), len(x)))"
        )
    if arrays["levels"].ndim != 1 or arrays["levels"].size == 0:
        raise CorruptFileError(
            f"{p}: the grid file holds no contour levels (levels {arrays['levels'].shape})"
        )
    return PseudospectrumGrid(
        x=x,
        y=y,
        sigma_min=s,
        eigenvalues=arrays["eigenvalues"],
        levels=arrays["levels"],
        options=dict(meta.get("options") or {}),
        matrix_id=meta.get("matrix_id"),
        title=meta.get("title"),
        n=int(meta.get("n") or 0),
    )


# ----------------------------------------------------------------------------- the engine


def pseudospectra(
    A,
    *,
    x: Sequence[float] | np.ndarray | None = None,
    y: Sequence[float] | np.ndarray | None = None,
    bounds: Sequence[float] | None = None,
    npts: int | tuple[int, int] | None = None,
    levels: Sequence[float] | np.ndarray | None = None,
    tol: float = 1e-8,
    method: Literal["auto", "lanczos", "svd"] = "auto",
    dense_below: int = 55,
    maxiter: int | None = None,
    seed: int = 0,
    workers: int = 1,
    device: str | None = None,
    progress: Progress | None = None,
    matrix_id: str | None = None,
    title: str | None = None,
) -> PseudospectrumGrid:
    r"""Smallest singular value of ``zI - A`` on a grid of points ``z``.

    .. math:: \sigma_{\min}(zI - A), \qquad z = x_i + \mathrm{i}\, y_j,

    whose sublevel sets are the epsilon-pseudospectra
    ``{z : sigma_min(zI - A) < eps}`` (Trefethen & Embree 2005, eq. (2.2)).
    One complex Schur factorisation ``A = Q T Q*`` (Golub & Van Loan, 4th ed.,
    sec. 7.5), then per point the largest eigenvalue ``theta`` of
    ``(T_z^* T_z)^{-1}`` by Lanczos with batched triangular solves,
    ``sigma_min = theta^{-1/2}`` (Trefethen, Acta Numerica 1999, sec. 5; Wright
    & Trefethen, SISC 2001). For real ``A`` only points with ``y >= 0`` are
    computed where the grid holds the mirror point, since
    ``sigma_min(conj(z) I - A) = sigma_min(zI - A)``.

    Parameters
    ----------
    A : (n, n) array_like or RecurrentMatrix
        The matrix (real or complex; computed in float64/complex128). A
        :class:`~spectra.checkpoint.RecurrentMatrix` also supplies `matrix_id`.
    x, y : (nx,) and (ny,) array_like, optional
        Grid lines, used exactly as given (increasing, finite). Where one is
        missing it comes from `bounds` and `npts`.
    bounds : (4,) sequence of float, optional
        ``(xmin, xmax, ymin, ymax)``. Default: the numerical-range box of ``A``
        (which contains every ``L_eps`` padded by ``eps``; Trefethen & Embree
        thm. 17.5) padded by 10% of its size (and by ``10**max(levels)`` when
        `levels` are given), joined with ``[-1.1, 1.1]^2`` so the unit circle
        shows; symmetric about the real axis for real ``A``.
    npts : int or (int, int), optional
        Points along the longer side (the other side gets the same spacing),
        or ``(nx, ny)``. Default 100 for ``n <= 512``, 60 up to 1024, else 40.
    levels : sequence of float, optional
        ``log10(eps)`` of the contours. Default: :func:`default_levels`.
    tol : float
        Relative accuracy wanted of every value against a dense SVD, in
        ``[1e-12, 0.1]`` (default ``1e-8``). It is met for values above
        ``eps ||A|| / tol``; smaller values carry the absolute error
        ``~ n eps ||A||`` of any backward-stable method, a dense SVD's included.
        The Lanczos engines are run at ``tol/100`` (not below ``1e-8``): run at
        `tol` itself their stopping test missed it by 2-6x at loose tolerances.
        Limit (of every Krylov method): where the two smallest singular values
        of ``zI - A`` agree to about ``1e-5`` relative (e.g. points nearly
        equidistant from two eigenvalues of a nearly normal ``A``), Lanczos
        cannot tell them apart in few steps and the value can be off by up to
        their difference. Measured on ``0.97 Q`` (``Q`` orthogonal, n = 100)
        plus Gaussian noise of norm ``delta``, 40 x 40 grid: 2 of 1600 points
        off, by 1.2e-6 (``delta = 1e-7``) and 5.9e-5 (``delta = 1e-4``)
        relative; exactly normal matrices take the closed form and are exact
        to rounding; random non-normal and trained matrices showed no such
        points. For a *real* nearly normal ``A`` every point of the real axis
        is equidistant from each conjugate pair, so a whole grid row can be
        affected (n = 64, 21 x 21 grid: the row y = 0, up to 4.6e-6 relative).
        Worse where ``A`` holds two nearly equal blocks (an invariant subspace
        each: a warm start from the neighbouring point's vector lies almost
        inside one block, and its small random part reaches the other slowly):
        ``blockdiag(G, G + 1e-4 R)``, n = 128, 41 x 41 grid: 116 of 1681
        points off by more than 1e-6, at most 3.7e-3 relative, at gaps of 1e-3
        and more between the two smallest singular values (never by more than
        that gap). Use ``method="svd"`` where such a structure is suspected
        (an ensemble or copies of a layer stacked block-diagonally).
    method : {"auto", "lanczos", "svd"}
        ``auto``: dense batched SVD when ``n < dense_below``, else Lanczos.
    dense_below : int
        Size below which ``auto`` uses the dense SVD (EigTool uses 55).
    maxiter : int, optional
        Most Lanczos steps per point (default ``max(100, n // 2)``, about where
        a dense SVD becomes cheaper); points not converged by then (and points
        within rounding of an eigenvalue) are computed by a dense SVD.
    seed : int
        Seed of the shared random Lanczos start vector.
    workers : int
        Threads that share the grid (default 1), used from ``n = 200`` up
        (below, a step is mostly small numpy calls holding the GIL and threads
        only contend). Rows are shared out in chains; the products release the
        GIL. Measured on 2 idle cores: 1.07-1.27x less wall time with 2 workers at
        n = 256 and 512. Results do not depend on it beyond rounding.
    device : str, optional
        ``None`` (default): the numpy engine. A torch device (``"cpu"``,
        ``"cuda"``, ``"cuda:1"``): the same method in torch, complex128,
        chunked to fit the device's memory (needs torch; see
        :mod:`spectra._torch_engine`). Ignored when the dense SVD is used.
    progress : callable, optional
        ``progress(done, total)`` called as points finish.
    matrix_id, title : str, optional
        Labels stored in the result.

    Returns
    -------
    PseudospectrumGrid
        With ``sigma_min`` of shape ``(ny, nx)``.

    Raises
    ------
    NonSquareError
        If `A` is not a non-empty square matrix.
    NonFiniteError
        If `A` holds NaN or Inf.
    ValueError
        If `x`, `y`, `bounds`, `npts`, `levels`, `tol`, `method` or `maxiter`
        is invalid (the message says what is allowed).

    Examples
    --------
    >>> import numpy as np
    >>> from spectra import pseudospectra
    >>> g = pseudospectra(np.array([[0.5, 1.0], [0.0, 0.5]]), npts=41)
    >>> g.sigma_min.shape
    (41, 41)
    """
    t0 = time.perf_counter()
    if hasattr(A, "matrix") and hasattr(A, "id"):
        matrix_id = matrix_id if matrix_id is not None else A.id
        A = A.matrix
    A = as_square_matrix(A, "A")
    n = A.shape[0]
    real = not np.iscomplexobj(A)
    if method not in ("auto", "lanczos", "svd"):
        raise InvalidArgumentError(f"method must be 'auto', 'lanczos' or 'svd', got {method!r}")
    if not (isinstance(tol, (int, float)) and 1e-12 <= tol <= 0.1):
        raise InvalidArgumentError(f"tol must be a number in [1e-12, 0.1], got {tol!r}")
    if not (isinstance(workers, (int, np.integer)) and not isinstance(workers, bool) and workers >= 1):
        raise InvalidArgumentError(f"workers must be an integer >= 1, got {workers!r}")
    if maxiter is None:
        maxiter = max(100, n // 2)
    if not (isinstance(maxiter, (int, np.integer)) and not isinstance(maxiter, bool) and maxiter >= 2):
        raise InvalidArgumentError(f"maxiter must be an integer >= 2 or None, got {maxiter!r}")
    lev = None if levels is None else _check_levels(levels)
    use_dense = method == "svd" or (method == "auto" and n < dense_below)

    xs, ys, used_bounds = _grid(A, real, x, y, bounds, npts, lev)
    # the engines work with vectors of size sigma^-2 (Lanczos on (T_z^* T_z)^{-1}), whose squared
    # norms leave the float64 range for ||A|| beyond ~1e77 or below ~1e-77: scale A and the grid
    # by a power of two (exact), and sigma_min back
    scale = _power_of_two_scale(A)
    As = A * scale if scale != 1.0 else A

    t_schur = 0.0
    T = solver = None
    if use_dense:
        eigenvalues = scipy.linalg.eigvals(As)
    elif device is not None:
        ts = time.perf_counter()
        T, _ = scipy.linalg.schur(As, output="complex")
        eigenvalues = np.diag(T).copy()
        t_schur = time.perf_counter() - ts
    else:
        ts = time.perf_counter()
        solver, eigenvalues = shifted_solver(As, leaf=_LEAF)
        t_schur = time.perf_counter() - ts

    Z = xs[None, :] + 1j * ys[:, None]
    # rows to compute and rows mirrored from them (real A only)
    rows = np.arange(ys.size)
    source = rows.copy()
    if real:
        where = {float(v): j for j, v in enumerate(ys) if v >= 0}
        for j, v in enumerate(ys):
            if v < 0 and float(-v) in where:
                source[j] = where[float(-v)]
    compute_rows = np.flatnonzero(source == rows)
    zc = Z[compute_rows].ravel() * scale
    # points far beyond the (scaled) matrix: sigma_min ~ |z| would leave the engines' range; each
    # gets a dense SVD at its own power-of-two scale, and the engines a stand-in on the same ray
    far = np.abs(zc) > _FAR
    if np.any(far):
        z_far = zc[far].copy()
        zc = zc.copy()
        zc[far] = z_far / np.abs(z_far) * _FAR
    total = zc.size
    done = [0]

    def report(k: int) -> None:
        done[0] += k
        if progress is not None:
            progress(done[0], total)

    stats: dict[str, Any] = {}
    # the engines stop at tol_in: a loose tol let Lanczos stop before the smallest singular value
    # emerged from the start vector (a review: 6.4e-3 off at tol = 1e-3, random n = 300, where the
    # two smallest differ by 0.64%; the torch engine missed by 2-6x at every loose tol)
    tol_in = min(tol, max(tol / _TOL_MARGIN, _TOL_FLOOR))
    if use_dense:
        sig = _dense_sigma_min(As, zc, on_done=report)
        stats.update(method="svd")
    elif device is not None:
        from spectra._torch_engine import torch_sigma_min

        sig = torch_sigma_min(
            T, zc, tol=tol_in, maxiter=int(maxiter), seed=seed, device=device, on_done=report, stats=stats
        )
    else:
        sig = _engine_sigma_min(
            solver,
            eigenvalues,
            zc,
            row_len=xs.size,
            tol=tol_in,
            maxiter=int(maxiter),
            seed=seed,
            on_done=report,
            stats=stats,
            workers=int(workers),
        )
    if np.any(far):
        sig = np.array(sig, dtype=np.float64, copy=True)
        sig[far] = _far_sigma_min(As, z_far)
    if scale != 1.0:
        sig, eigenvalues = sig / scale, eigenvalues / scale
    S = np.empty(Z.shape)
    S[compute_rows] = sig.reshape(compute_rows.size, xs.size)
    S[rows] = S[source]
    if lev is None:
        lev = default_levels(S, norm=float(np.linalg.norm(A)), floor=resolved_floor(xs, ys, S, eigenvalues))
    options = {
        "method": stats.pop("method"),
        "tol": float(tol),
        "maxiter": int(maxiter),
        "dense_below": int(dense_below),
        "seed": int(seed),
        "workers": int(workers),
        "bounds": [float(b) for b in used_bounds],
        "nx": int(xs.size),
        "ny": int(ys.size),
        "points": int(Z.size),
        "points_computed": int(total),
        "mirrored_rows": int(rows.size - compute_rows.size),
        **stats,
        "seconds_schur": round(t_schur, 6),
        "seconds": round(time.perf_counter() - t0, 6),
    }
    return PseudospectrumGrid(
        x=xs,
        y=ys,
        sigma_min=S,
        eigenvalues=eigenvalues,
        levels=lev,
        options=options,
        matrix_id=matrix_id,
        title=title,
        n=n,
    )


#: matrices and grids whose largest entry lies within this many binary orders of 1 are used as
#: given; others are scaled by a power of two first (see :func:`_power_of_two_scale`)
_SCALE_FREE_BITS = 32


#: grid points beyond this modulus (after the matrix's scaling) get a dense SVD of their own
_FAR = 2.0**_SCALE_FREE_BITS


def _power_of_two_scale(A: np.ndarray) -> float:
    """``2**-e`` bringing the largest ``|A_ij|`` into ``[1/2, 1)``; 1 when it is near 1.

    ``sigma_min(s z I - s A) = s sigma_min(zI - A)`` exactly for ``s`` a power of two (barring
    underflow of entries far below the largest, which are below the rounding of any method).
    """
    m = float(np.max(np.abs(A)))
    if not m > 0.0 or 2.0**-_SCALE_FREE_BITS <= m <= 2.0**_SCALE_FREE_BITS:
        return 1.0
    return math.ldexp(1.0, -math.frexp(m)[1])


def _far_sigma_min(A: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``sigma_min(zI - A)`` by dense SVDs, each point at its own power-of-two scale (``|z| >> ||A||``)."""
    out = np.empty(z.size)
    eye = np.eye(A.shape[0])
    for k, zk in enumerate(z):
        e = math.frexp(abs(zk))[1]
        s = math.ldexp(1.0, -e)
        out[k] = math.ldexp(float(scipy.linalg.svdvals(s * zk * eye - s * A, check_finite=False)[-1]), e)
    return out


def _dense_sigma_min(M: np.ndarray, z: np.ndarray, *, on_done=None) -> np.ndarray:
    """``sigma_min(z_j I - M)`` by batched LAPACK SVDs (values only), in chunks."""
    n = M.shape[0]
    out = np.empty(z.size)
    chunk = max(1, _DENSE_BYTES // (16 * n * n))
    idx = np.arange(n)
    for c in range(0, z.size, chunk):
        zz = z[c : c + chunk]
        stack = np.broadcast_to(-M.astype(np.complex128), (zz.size, n, n)).copy()
        stack[:, idx, idx] += zz[:, None]
        out[c : c + zz.size] = np.linalg.svd(stack, compute_uv=False)[:, -1]
        if on_done is not None:
            on_done(int(zz.size))
    return out


#: Lanczos vectors kept per point for its Ritz vector (the warm start of its neighbour)
_HISTORY_CAP = 40
#: weight of the random part of a warm start (the rest: the neighbour's Ritz vector)
_WARM_NOISE = 0.05
#: largest diagonal block of the Schur factor solved by diagonalisation
_LEAF = 16
#: smallest n for which worker threads are used
_THREADS_FROM_N = 200
#: points per batch (one row from each chain): enough columns for efficient matrix products
_BATCH_POINTS = 800


def _extrapolate(v1: np.ndarray, v0: np.ndarray | None) -> np.ndarray:
    """Start vectors for the next row from the Ritz vectors of the last two: ``2 v1 - v0``.

    Singular vectors are defined up to a phase: ``v0`` is first turned to
    ``v1``'s phase (``v0^H v1`` real positive). Linear extrapolation makes the
    start error O(h^2) instead of O(h) on a smooth branch (measured: 4-6% fewer
    Lanczos steps at n = 128..512). Where the two rows disagree
    (``|v0^H v1| <= 0.9``: a crossing of singular values, or no vector) the
    last row's vector is used alone.
    """
    if v0 is None:
        return v1
    c = np.einsum("ij,ij->j", v0.conj(), v1)
    a = np.abs(c)
    ok = a > 0.9
    phase = np.where(ok, c / np.where(ok, a, 1.0), 0.0)
    out = v1 + np.where(ok, v1 - v0 * phase, 0.0)
    nrm = np.linalg.norm(out, axis=0)
    return np.where(nrm > 0, out / np.where(nrm > 0, nrm, 1.0), v1)


def _engine_sigma_min(
    solver,
    eigenvalues: np.ndarray,
    z: np.ndarray,
    *,
    row_len: int,
    tol: float,
    maxiter: int,
    seed: int,
    on_done,
    stats: dict,
    workers: int = 1,
) -> np.ndarray:
    """Batched inverse Lanczos over grid rows, each row warm-started from the one before.

    `z` holds whole grid rows of `row_len` points, in order of increasing
    ``y``. The rows are cut into contiguous chains; one batch holds the next
    row of every chain, and each point starts from the Ritz vector of the
    point below it in its chain (the right singular vector there, a close
    approximation of the one wanted when the grid is fine), extrapolated
    linearly from the two rows below where they agree, plus a small random
    part (so that no direction is missing from the start); the first row of a
    chain starts from a fixed random vector. A batch stops when only a few
    slow points are left; they restart from their current Ritz vectors in the
    next batch. With ``workers > 1`` the chains are shared out among threads
    (numpy and BLAS release the GIL in the solves). Points within rounding of
    an eigenvalue, and points that do not converge in `maxiter` steps, are
    computed by a dense SVD of ``zI - S``.
    """
    n = solver.n
    out = np.full(z.size, np.nan)
    rng = np.random.default_rng(seed)
    # random phases, equal magnitudes: in the Schur basis no component is small, so a
    # (nearly) normal A, whose singular vectors are (nearly) Schur vectors, cannot start
    # Lanczos almost orthogonal to the wanted vector (the misconvergence of Krylov methods)
    v_rand = np.exp(2j * np.pi * rng.random(n))
    noise = np.exp(2j * np.pi * rng.random((n, row_len))) * (_WARM_NOISE / np.sqrt(n))
    snorm = float(np.linalg.norm(solver.S))
    dist = np.full(z.size, np.inf)
    for c in range(0, z.size, 4096):
        dist[c : c + 4096] = np.min(np.abs(z[c : c + 4096, None] - eigenvalues[None, :]), axis=1)
    near = dist <= 1e-13 * max(snorm, np.finfo(float).tiny)
    # (nearly) normal A: the block-diagonal part of the Schur form gives sigma_min to within
    # ||S - D||_F (Weyl), in closed form; used where that is below tol/10 of the value
    exact = np.zeros(z.size, dtype=bool)
    if n > 1:
        rest_norm = float(np.linalg.norm(np.triu(solver.S, 2)))
        if rest_norm <= 1e-3 * tol * snorm:
            sig_bd, rest_norm = solver.block_diagonal_sigma(z)
            exact = sig_bd * (0.1 * tol) >= rest_norm
            out[exact] = sig_bd[exact]
            if on_done is not None and np.any(exact):
                on_done(int(exact.sum()))
    near &= ~exact

    nrows = max(1, z.size // row_len)
    per_point = 16 * n * (_HISTORY_CAP // 2 + 6)
    workers = max(1, int(workers))
    target = int(max(64, min(_BATCH_POINTS, _BATCH_BYTES // (per_point * workers))))
    nchains = max(1, min(nrows, workers * max(1, target // row_len)))
    chains = [c for c in np.array_split(np.arange(nrows), nchains) if c.size]
    # a step costs ~n^2 per point plus a fixed overhead: below this many live points, stop
    min_live = int(np.clip(2e7 / (n * n), 16, max(16, target // 4)))
    steps_all = np.zeros(z.size, dtype=np.int64)
    fallback = [np.flatnonzero(near)]
    lock = threading.Lock()

    def done(k: int) -> None:
        if on_done is not None:
            with lock:
                on_done(k)

    def lanczos(idx, V0, *, final):
        sig, conv, steps, ritz, stopped = lanczos_sigma_min(
            solver,
            z[idx],
            V0,
            tol=tol,
            maxiter=maxiter,
            want_vectors=True,
            history_cap=_HISTORY_CAP,
            min_live=0 if final else min_live,
            on_done=done,
        )
        out[idx[conv]] = sig[conv]
        steps_all[idx] += steps
        fallback.append(idx[~conv & ~stopped])
        return ritz, stopped

    def sweep(my_chains: list[np.ndarray]) -> int:
        """Run the waves of some chains (one worker); returns the number of warm starts."""
        warm = 0
        prev: list[np.ndarray | None] = [None] * len(my_chains)  # Ritz vectors of each chain's last row
        prev2: list[np.ndarray | None] = [None] * len(my_chains)  # and of the row before it
        pend_idx = np.zeros(0, dtype=np.int64)  # points stopped early, and their restart vectors
        pend_vec = np.zeros((n, 0), dtype=np.complex128)
        nwaves = max(c.size for c in my_chains)
        for wave in range(nwaves):
            idx_parts, start_parts, live_chains = [pend_idx], [pend_vec], []
            for ci, rows in enumerate(my_chains):
                if wave >= rows.size:
                    continue
                cols = rows[wave] * row_len + np.arange(row_len)
                keep = ~near[cols] & ~exact[cols]
                V0 = np.repeat(v_rand[:, None], row_len, axis=1)
                if prev[ci] is not None:
                    have = np.any(prev[ci] != 0, axis=0)
                    before = None if prev2[ci] is None else prev2[ci][:, have]
                    V0[:, have] = _extrapolate(prev[ci][:, have], before) + noise[:, have]
                    warm += int(np.count_nonzero(have & keep))
                idx_parts.append(cols[keep])
                start_parts.append(V0[:, keep])
                live_chains.append((ci, keep))
            idx = np.concatenate(idx_parts)
            # the last wave runs every point to the end (stragglers of the one before included)
            ritz, stopped = lanczos(idx, np.concatenate(start_parts, axis=1), final=wave == nwaves - 1)
            pend_idx = idx[stopped]
            pend_vec = ritz[:, stopped]
            bare = ~np.any(pend_vec != 0, axis=0)
            pend_vec[:, bare] = v_rand[:, None]
            # hand each chain its Ritz vectors (points near an eigenvalue keep the ones from below)
            off = int(idx_parts[0].size)
            for ci, keep in live_chains:
                k = int(keep.sum())
                nxt = np.zeros((n, row_len), dtype=np.complex128) if prev[ci] is None else prev[ci].copy()
                nxt[:, keep] = ritz[:, off : off + k]
                prev2[ci] = prev[ci]
                prev[ci] = nxt
                off += k
        return warm

    # below n ~ 256 a Lanczos step is mostly small numpy calls that hold the GIL: threads
    # only contend (measured: 2 threads 1.2x slower at n = 128, 1.07-1.27x faster at n = 256, 512)
    nworkers = max(1, min(int(workers), len(chains))) if n >= _THREADS_FROM_N else 1
    if nworkers == 1:
        warm_points = sweep(chains)
    else:
        groups = [chains[i::nworkers] for i in range(nworkers)]
        solver.threads = True
        try:
            with ThreadPoolExecutor(max_workers=nworkers) as pool:
                warm_points = sum(pool.map(sweep, groups))
        finally:
            solver.threads = False
    fb = np.concatenate(fallback)
    if fb.size:
        out[fb] = _dense_sigma_min(solver.S, z[fb], on_done=on_done)
    lan = steps_all[~near & ~exact]
    lan = lan[lan > 0]
    stats.update(
        method="lanczos",
        lanczos_steps_mean=float(lan.mean()) if lan.size else 0.0,
        lanczos_steps_max=int(lan.max()) if lan.size else 0,
        dense_fallback_points=int(fb.size),
        warm_started_points=int(warm_points),
        workers=nworkers,
        closed_form_points=int(exact.sum()),
        chains=len(chains),
        leaves=dict(solver.leaf_kinds),
    )
    return out


# ----------------------------------------------------------------------------- grid and levels


def _check_levels(levels) -> np.ndarray:
    lev = np.asarray(levels, dtype=np.float64).ravel()
    if lev.size == 0 or not np.all(np.isfinite(lev)):
        raise InvalidArgumentError(
            f"levels must be a non-empty list of finite log10(eps) values, got {levels!r}"
        )
    return np.unique(lev)


def _check_axis(v, name: str) -> np.ndarray:
    a = np.array(v, dtype=np.float64)  # a copy: the grid never aliases the caller's array
    if a.ndim != 1 or a.size < 1 or not np.all(np.isfinite(a)):
        raise InvalidArgumentError(
            f"{name} must be a non-empty 1-D array of finite numbers, got shape {a.shape}"
        )
    if a.size > 1 and not np.all(np.diff(a) > 0):
        raise InvalidArgumentError(f"{name} must be strictly increasing")
    return a


def default_npts(n: int) -> int:
    """Default points along the longer side of the grid for an ``n x n`` matrix."""
    return 100 if n <= 512 else (60 if n <= 1024 else 40)


def _grid(A, real, x, y, bounds, npts, lev):
    """Grid lines from explicit `x`/`y`, `bounds`, or the automatic box."""
    if bounds is not None:
        b = np.asarray(bounds, dtype=np.float64).ravel()
        if b.size != 4 or not np.all(np.isfinite(b)) or not (b[0] < b[1] and b[2] < b[3]):
            raise InvalidArgumentError(
                f"bounds must be four finite numbers (xmin, xmax, ymin, ymax) with xmin < xmax "
                f"and ymin < ymax, got {bounds!r}"
            )
        box = [float(v) for v in b]
    elif x is not None and y is not None:
        box = None
    else:
        box = auto_bounds(A, levels=lev)
    if npts is None:
        nx = ny = None
        side = default_npts(A.shape[0])
    elif isinstance(npts, (int, np.integer)) and not isinstance(npts, bool) and npts >= 2:
        nx = ny = None
        side = int(npts)
    elif (
        isinstance(npts, (tuple, list))
        and len(npts) == 2
        and all(isinstance(v, (int, np.integer)) and v >= 2 for v in npts)
    ):
        nx, ny = int(npts[0]), int(npts[1])
        side = max(nx, ny)
    else:
        raise InvalidArgumentError(f"npts must be an integer >= 2 or a pair (nx, ny) of them, got {npts!r}")
    if box is not None and nx is None:
        w, h = box[1] - box[0], box[3] - box[2]
        if w >= h:  # the same spacing along both axes
            nx, ny = side, max(2, int(round((side - 1) * h / w)) + 1)
        else:
            nx, ny = max(2, int(round((side - 1) * w / h)) + 1), side
    xs = _check_axis(x, "x") if x is not None else np.linspace(box[0], box[1], nx)
    if y is not None:
        ys = _check_axis(y, "y")
    else:
        ys = np.linspace(box[2], box[3], ny)
        if box[2] == -box[3]:
            ys = (ys - ys[::-1]) / 2  # exactly symmetric, so real A mirrors half the grid
    used = (float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1]))
    return xs, ys, used


#: the box of :func:`auto_bounds` is joined with the unit box only when ``W(A)`` (padded by the
#: largest given eps) reaches this far from 0: the unit circle of a matrix with ``||A|| ~ 0.05``
#: would leave its pseudospectra filling 5% of the window
UNIT_BOX_REACH = 0.3


def auto_bounds(
    A, *, levels: np.ndarray | None = None, unit_box: bool | None = None
) -> tuple[float, float, float, float]:
    """Default plotting box ``(xmin, xmax, ymin, ymax)`` for the pseudospectra of `A`.

    The numerical range ``W(A)`` lies in the box
    ``[lmin(H), lmax(H)] x [lmin(K), lmax(K)]`` with ``H = (A + A*)/2`` and
    ``K = (A - A*)/(2i)``, and ``L_eps(A)`` lies in ``W(A) + eps``-disc
    (Trefethen & Embree 2005, thm. 17.5). The box is padded by
    ``max(10% of its larger side (at least 0.1), 10**max(levels))`` and joined
    with ``[-1.1, 1.1]^2`` (the unit circle, the stability boundary, in view);
    ``W(A)`` then stays at least 5% of the box's larger side inside it, and
    the shorter side is at least a third of the longer (no thin strips); for
    real `A` it is symmetric about the real axis. When ``W(A)`` padded by
    ``10**max(levels)`` stays within :data:`UNIT_BOX_REACH` of 0 (a matrix of
    tiny norm, its pseudospectra far inside the unit circle), the box is fitted
    to ``W(A)`` instead, padded by 30% of its size, and the unit box is left out
    (unless `unit_box` is True).

    Parameters
    ----------
    A : (n, n) array_like
        The matrix.
    levels : array_like, optional
        ``log10(eps)`` levels that must be enclosed.
    unit_box : bool, optional
        Join the box with the unit box: always (True), never (False), or only
        when ``W(A) + 10**max(levels)`` reaches :data:`UNIT_BOX_REACH` (None).

    Returns
    -------
    tuple of 4 floats
    """
    A = as_square_matrix(A, "A")
    H = (A + A.conj().T) / 2
    K = (A - A.conj().T) / 2j
    h = scipy.linalg.eigvalsh(H)
    k = scipy.linalg.eigvalsh(K)
    xmin, xmax, ymin, ymax = h[0], h[-1], k[0], k[-1]
    top = 10.0 ** float(np.max(levels)) if levels is not None and len(levels) else 0.0
    reach = max(abs(xmin), abs(xmax), abs(ymin), abs(ymax))
    if unit_box is None:
        unit_box = not 0.0 < reach + top < UNIT_BOX_REACH
    if not unit_box:  # fitted to W(A): a tiny matrix fills the window, the unit circle outside it
        size = max(xmax - xmin, ymax - ymin, reach, 1e-300)
        pad = max(0.3 * size, top)
        xmin, xmax, ymin, ymax = xmin - pad, xmax + pad, ymin - pad, ymax + pad
        half = 0.5 * max(xmax - xmin, ymax - ymin)  # a square: a thin W(A) gives no strip
        cx, cy = 0.5 * (xmin + xmax), 0.5 * (ymin + ymax)
        xmin, xmax, ymin, ymax = cx - half, cx + half, cy - half, cy + half
        if not np.iscomplexobj(A):
            ymax = max(abs(ymin), abs(ymax))
            ymin = -ymax
        return float(xmin), float(xmax), float(ymin), float(ymax)
    # at least 10% of the unit disc's radius: a point-like W(A) (a multiple of I, a 1x1 matrix)
    # off the unit box would otherwise put the eigenvalue on the frame
    size = max(xmax - xmin, ymax - ymin, 1e-3 * float(np.abs(A).max()), 1.0)
    pad = 0.1 * size
    if levels is not None and len(levels):
        pad = max(pad, 10.0 ** float(np.max(levels)))
    wx0, wx1, wy0, wy1 = xmin, xmax, ymin, ymax
    xmin, xmax = min(xmin - pad, -1.1), max(xmax + pad, 1.1)
    ymin, ymax = min(ymin - pad, -1.1), max(ymax + pad, 1.1)
    # joined with the unit box, W(A) far out on the real axis (diag(100, 101)) left a 100 x 3
    # strip with an eigenvalue 0.1 from its frame: W(A) at least 5% of the larger side inside,
    # and neither side below a third of the other
    span = max(xmax - xmin, ymax - ymin)
    xmin, xmax = min(xmin, wx0 - 0.05 * span), max(xmax, wx1 + 0.05 * span)
    ymin, ymax = min(ymin, wy0 - 0.05 * span), max(ymax, wy1 + 0.05 * span)
    span = max(xmax - xmin, ymax - ymin)
    for lo_hi in ("x", "y"):
        a, b = (xmin, xmax) if lo_hi == "x" else (ymin, ymax)
        if b - a < span / 3:
            c, half = 0.5 * (a + b), span / 6
            a, b = c - half, c + half
        if lo_hi == "x":
            xmin, xmax = a, b
        else:
            ymin, ymax = a, b
    if not np.iscomplexobj(A):
        ymax = max(abs(ymin), abs(ymax))
        ymin = -ymax
    return float(xmin), float(xmax), float(ymin), float(ymax)


#: radius, in grid spacings, of the disc about each eigenvalue that a resolved level's region holds
#: (the grid points within it are at least two spacings out, so the smallest contour drawn is
#: about five grid spacings across: at 1.5 a Jordan block's innermost level, at --npts 60, was a
#: 2.5-spacing polygon)
RESOLVED_CELLS = 2.5


def resolved_floor(
    x: np.ndarray,
    y: np.ndarray,
    sigma_min: np.ndarray,
    eigenvalues: np.ndarray,
    *,
    cells: float = RESOLVED_CELLS,
) -> float:
    r"""Lowest ``log10(eps)`` whose contours the grid resolves around every eigenvalue.

    Every eigenvalue lies in every eps-pseudospectrum, so every level's
    contour should enclose every eigenvalue. For small eps the component about
    a simple eigenvalue ``lambda_i`` is close to a disc of radius
    ``eps kappa_i`` (``kappa_i = 1/|y_i^* x_i|`` for unit left and right
    eigenvectors, the eigenvalue condition number; Trefethen & Embree 2005,
    ch. 52); once that radius is below a grid spacing the contour shrinks to a
    speck or vanishes, depending on where the grid points fall. Rather than
    estimate the radius from ``kappa_i``, this measures it on the grid: a
    level must exceed ``sigma_min`` at every grid point within `cells` grid
    spacings of every eigenvalue inside the window, so that each component
    drawn is at least that wide and holds its eigenvalue (the four corners of
    the eigenvalue's grid cell lie inside it).

    Parameters
    ----------
    x : (nx,) ndarray
        Real parts of the grid lines, increasing.
    y : (ny,) ndarray
        Imaginary parts of the grid lines, increasing.
    sigma_min : (ny, nx) ndarray
        ``sigma_min(zI - A)`` on the grid.
    eigenvalues : (n,) array_like
        Eigenvalues of ``A``; those outside the window are ignored.
    cells : float
        Radius of the disc, in grid spacings (the larger of the local spacings
        along x and y).

    Returns
    -------
    float
        ``log10`` of the largest ``sigma_min`` in those discs: levels above
        it are resolved. ``-inf`` when no eigenvalue lies in the window or the
        grid has fewer than two lines along an axis.

    Examples
    --------
    >>> import numpy as np
    >>> from spectra import pseudospectra
    >>> from spectra.pseudospectra import resolved_floor
    >>> g = pseudospectra(np.diag([0.5, -0.5]), npts=41)
    >>> h = g.x[1] - g.x[0]
    >>> bool(abs(10 ** resolved_floor(g.x, g.y, g.sigma_min, g.eigenvalues) - 2.3 * h) < 0.01)
    True
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    s = np.asarray(sigma_min, dtype=np.float64)
    ev = np.asarray(eigenvalues).ravel()
    if x.size < 2 or y.size < 2 or ev.size == 0 or s.shape != (y.size, x.size):
        return -math.inf
    worst, inside = 0.0, 0
    for lam in ev:
        re, im = float(np.real(lam)), float(np.imag(lam))
        if not (x[0] <= re <= x[-1] and y[0] <= im <= y[-1]):
            continue
        inside += 1
        i = min(max(int(np.searchsorted(x, re)), 1), x.size - 1)
        j = min(max(int(np.searchsorted(y, im)), 1), y.size - 1)
        r = cells * max(x[i] - x[i - 1], y[j] - y[j - 1])
        i0, i1 = np.searchsorted(x, re - r), np.searchsorted(x, re + r, side="right")
        j0, j1 = np.searchsorted(y, im - r), np.searchsorted(y, im + r, side="right")
        near = (x[i0:i1] - re)[None, :] ** 2 + (y[j0:j1] - im)[:, None] ** 2 <= r * r
        if np.any(near):
            worst = max(worst, float(np.max(s[j0:j1, i0:i1][near])))
    if not inside:
        return -math.inf
    return math.log10(max(worst, np.finfo(float).tiny))


def frame_min(values: np.ndarray) -> float:
    """The smallest of a (ny, nx) grid's values on its frame (a contour below it closes inside)."""
    return float(np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]]).min())


def default_levels(
    sigma_min: np.ndarray,
    *,
    norm: float = 1.0,
    max_levels: int = 8,
    floor: float | None = None,
) -> np.ndarray:
    """EigTool-like ``log10(eps)`` levels for a grid of ``sigma_min`` values.

    The top level is the largest whose contour is closed inside the grid
    (below the minimum of ``sigma_min`` on the grid's edge), the bottom one
    the largest of the grid's minimum, ``top - 7``, ``log10(1e-13 norm)``
    (rounding level) and `floor` (strictly above it: the lowest level the grid
    resolves, :func:`resolved_floor`); levels sit on multiples of the first
    step among 0.25, 0.5, 1 that gives at most `max_levels` of them. When no
    contour closes inside the grid (the eigenvalues lie outside it), one level
    halfway through the data's range; when no closed level is resolved, the
    top one alone.

    Parameters
    ----------
    sigma_min : (ny, nx) ndarray
        Grid values.
    norm : float
        A norm of ``A`` (sets the rounding floor).
    max_levels : int
        Most levels returned.
    floor : float, optional
        Every level returned lies above it (unless no closed one does).

    Returns
    -------
    (L,) ndarray
        Increasing ``log10(eps)`` values, at least one.
    """
    s = np.asarray(sigma_min, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        raise InvalidArgumentError("sigma_min holds NaN or Inf: no levels can be chosen from it")
    with np.errstate(divide="ignore"):
        logs = np.log10(np.maximum(s, np.finfo(float).tiny))
    if s.ndim == 2 and min(s.shape) >= 2:
        top = frame_min(logs)
    else:
        top = float(logs.max())
    rounding = math.log10(max(1e-13 * norm, np.finfo(float).tiny))
    bottom = max(float(logs.min()), top - 7.0, rounding)
    if bottom >= top:
        # no contour closes inside the grid (the eigenvalues lie outside it): one level
        # halfway through the data, so that at least something is drawn
        # (never below the rounding level: a zoom where every value is noise gets no contour)
        mid = max(0.5 * (float(logs.min()) + float(logs.max())), rounding)
        return np.array([round(mid, 2)])
    resolved = floor is not None and floor > -math.inf
    if resolved and floor >= top:  # the grid resolves no closed level: the top one alone
        return np.array([0.25 * math.floor(top / 0.25 + 1e-9)])
    for step in (0.25, 0.5, 1.0):
        lo, hi = math.ceil(bottom / step - 1e-9), math.floor(top / step + 1e-9)
        if resolved:
            lo = max(lo, math.floor(floor / step) + 1)  # strictly above the floor
        if hi - lo + 1 <= max_levels:
            break
    lo = max(lo, hi - max_levels + 1)
    if hi < lo:
        return np.array([step * hi])
    return step * np.arange(lo, hi + 1, dtype=np.float64)
