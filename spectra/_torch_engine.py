"""The pseudospectra engine in torch: batched inverse Lanczos on a CPU or CUDA device.

:func:`torch_sigma_min` is the torch port of the first numpy engine (complex
Schur form, :class:`spectra._triangular.ShiftedTriangular`, a shared random
start vector, no warm starts; the numpy engine has since moved to
:mod:`spectra._shifted` and :mod:`spectra._lanczos`): for the complex Schur factor ``T``
and many shifts ``z_j``, ``sigma_min(z_j I - T) = theta_max^{-1/2}`` with
``theta_max`` the largest eigenvalue of ``(T_z^* T_z)^{-1}``, by Lanczos
(Trefethen, Acta Numerica 1999, sec. 5; Wright & Trefethen, SISC 2001).

Everything runs on the chosen torch device in complex128/float64: the blocked
triangular solves (off-diagonal blocks stored on the device once and applied
with one matrix-matrix product over all points; leaf blocks row by row, each
row one matrix-vector product over the points, or, the default on CUDA, one
batched ``torch.linalg.solve_triangular`` per leaf), the Lanczos recurrence, the
top Ritz value of the tridiagonal matrices (Newton from above), the
Kato-Temple residual check, and the dense fallback (``torch.linalg.svdvals``)
for points within rounding of an eigenvalue or not converged in ``maxiter``
steps. The host sees only a few flags per Lanczos step (which points
finished) and the result. Points are processed in batches sized to a memory
budget: a fraction of the free memory on CUDA (``torch.cuda.mem_get_info``),
a fixed number of bytes on the CPU.

torch is imported lazily: this module imports without it, and the first call
raises :class:`MissingDependencyError` when it is absent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from spectra.errors import InvalidArgumentError, SpectraError

__all__ = ["MissingDependencyError", "resolve_device", "torch_sigma_min"]

_EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)
#: bytes of working memory one batch may use on the CPU (the numpy engine's budget)
_CPU_BYTES = 192 * 2**20
#: fraction of the free device memory one batch may use on CUDA
_CUDA_FRACTION = 0.5
#: complex n-vectors held per point in a Lanczos batch (q, q_prev, w, 1/(z - t_ii), its conjugate,
#: temporaries of the recurrence and of the column compaction)
_VECTORS_PER_POINT = 12
#: most points in one batch
_MAX_BATCH = 1 << 17

_CUDA_UNAVAILABLE = (
    "CUDA not available: torch.cuda.is_available() is False; use --device cpu or omit --device"
)


class MissingDependencyError(SpectraError, ImportError):
    """An optional dependency (here torch, for ``device=``) is not installed."""


def _import_torch():
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            "the torch engine (device=..., --device) needs torch, which is not installed: "
            "pip install 'rnn-spectra[torch]', or omit --device for the numpy engine"
        ) from None
    return torch


def resolve_device(device) -> Any:
    """The ``torch.device`` named by `device`, checked to be usable.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"`` or ``"cuda:K"``.

    Returns
    -------
    torch.device
        With an explicit index for CUDA.

    Raises
    ------
    MissingDependencyError
        If torch is not installed.
    InvalidArgumentError
        If `device` is not a device name, names a device type other than cpu
        or cuda (the engine needs complex128), or CUDA (or that CUDA device)
        is not available.
    """
    torch = _import_torch()
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device.strip())
        except (RuntimeError, ValueError):
            raise InvalidArgumentError(
                f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:1', got {device!r}"
            ) from None
    else:
        raise InvalidArgumentError(
            "device must be a string such as 'cpu', 'cuda' or 'cuda:1', "
            f"got {type(device).__name__} {device!r}"
        )
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise InvalidArgumentError(
            f"device {device!r}: only 'cpu' and 'cuda' devices are supported (the engine needs complex128)"
        )
    if not torch.cuda.is_available():
        raise InvalidArgumentError(_CUDA_UNAVAILABLE)
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if index >= count:
        raise InvalidArgumentError(
            f"CUDA device {index} not available: torch.cuda.device_count() is {count} "
            f"(valid: {', '.join(f'cuda:{k}' for k in range(count))})"
        )
    return torch.device("cuda", index)


def _budget(torch, dev, memory_bytes: int | None) -> int:
    """Bytes of working memory one batch may use."""
    if memory_bytes is not None:
        return int(memory_bytes)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(_CUDA_FRACTION * free)
    return _CPU_BYTES


# ----------------------------------------------------------------------------- triangular solves


class _ShiftedTriangular:
    """``(z_j I - T)^{-1}`` and ``(z_j I - T)^{-*}`` applied to the columns of an ``(n, m)`` tensor.

    The torch counterpart of :class:`spectra._triangular.ShiftedTriangular`:
    recursive blocked substitution (Golub & Van Loan, 4th ed., sec. 3.1.4),
    flattened here into a list of steps computed once. Off-diagonal blocks
    (stored contiguous on the device) update ``X[top] += T[top, bottom] @
    X[bottom]`` for all points in one ``addmm_``. Leaf blocks (at most `leaf`
    rows) are solved either row by row (``"rows"``: one ``addmv_`` and one
    scaling per row, vectorised over the points; the numpy engine's way) or
    by one batched triangular solve over the points (``"trsm"``:
    ``torch.linalg.solve_triangular`` on the ``(m, b, b)`` stack of
    ``z_j I - T[leaf, leaf]``: about ``leaf`` times fewer kernel launches,
    for a GPU). Both are backward stable substitutions.
    """

    def __init__(self, T, *, leaf: int = 16, leaf_method: str = "rows") -> None:
        if leaf_method not in ("rows", "trsm"):
            raise InvalidArgumentError(f"leaf_method must be 'rows' or 'trsm', got {leaf_method!r}")
        self.n = int(T.shape[0])
        self.leaf = max(1, int(leaf))
        self.leaf_method = leaf_method
        self.T = T.contiguous()
        self.TH = T.conj().transpose(0, 1).contiguous()  # resolve_conj by the copy
        self.diag = T.diagonal().clone()
        self.nbytes = 16 * self.n * self.n * 2
        # steps of the upper (back) and lower (forward) substitutions, in execution order
        self._upper: list[tuple] = []
        self._lower: list[tuple] = []
        self._plan_upper(0, self.n)
        self._plan_lower(0, self.n)

    def _split(self, s: int, e: int) -> int:
        if e - s > 2 * self.leaf:
            half = (e - s) // 2
            return s + max(self.leaf, (half // self.leaf) * self.leaf)
        return s + (e - s) // 2

    def _plan_upper(self, s: int, e: int) -> None:
        if e - s <= self.leaf:
            if self.leaf_method == "trsm":
                self._upper.append(("trsm", s, e, -self.T[s:e, s:e]))
            else:
                rows = [(i, self.T[i, i + 1 : e] if i + 1 < e else None, e) for i in range(e - 1, s - 1, -1)]
                self._upper.append(("rows", rows))
            return
        mid = self._split(s, e)
        self._plan_upper(mid, e)
        self._upper.append(("gemm", s, mid, e, self.T[s:mid, mid:e].contiguous()))
        self._plan_upper(s, mid)

    def _plan_lower(self, s: int, e: int) -> None:
        if e - s <= self.leaf:
            if self.leaf_method == "trsm":
                self._lower.append(("trsm", s, e, -self.TH[s:e, s:e]))
            else:
                rows = [(i, self.TH[i, s:i] if i > s else None, s) for i in range(s, e)]
                self._lower.append(("rows", rows))
            return
        mid = self._split(s, e)
        self._plan_lower(s, mid)
        self._lower.append(("gemm", s, mid, e, self.TH[mid:e, s:mid].contiguous()))
        self._plan_lower(mid, e)

    def solve(self, X, dinv, z) -> None:
        """Overwrite ``X[:, j]`` with ``(z_j I - T)^{-1} X[:, j]``; ``dinv[i, j] = 1/(z_j - T[i, i])``."""
        for step in self._upper:
            kind = step[0]
            if kind == "gemm":
                _, s, mid, e, B = step
                X[s:mid].addmm_(B, X[mid:e])
            elif kind == "rows":
                for i, row, e in step[1]:
                    xi = X[i]
                    if row is not None:
                        xi.addmv_(X[i + 1 : e].transpose(0, 1), row)
                    xi.mul_(dinv[i])
            else:
                _leaf_trsm(X, z, *step[1:], upper=True)

    def solve_adjoint(self, X, dinvc, zc) -> None:
        """Overwrite ``X[:, j]`` with ``(z_j I - T)^{-*} X[:, j]``; `dinvc`, `zc`: conj of `dinv`, `z`."""
        for step in self._lower:
            kind = step[0]
            if kind == "gemm":
                _, s, mid, e, B = step
                X[mid:e].addmm_(B, X[s:mid])
            elif kind == "rows":
                for i, row, s in step[1]:
                    xi = X[i]
                    if row is not None:
                        xi.addmv_(X[s:i].transpose(0, 1), row)
                    xi.mul_(dinvc[i])
            else:
                _leaf_trsm(X, zc, *step[1:], upper=False)


def _leaf_trsm(X, z, s: int, e: int, minus_block, *, upper: bool) -> None:
    """``X[s:e, j] <- (z_j I - block)^{-1} X[s:e, j]``: one batched triangular solve over the points."""
    import torch

    M = minus_block.expand(z.numel(), e - s, e - s).clone()
    M.diagonal(dim1=-2, dim2=-1).add_(z[:, None])
    sol = torch.linalg.solve_triangular(M, X[s:e].transpose(0, 1).unsqueeze(-1), upper=upper)
    X[s:e].copy_(sol.squeeze(-1).transpose(0, 1))


# ----------------------------------------------------------------------------- Lanczos


def _top_ritz_value(torch, alpha, beta, lower, upper, guess, rtol: float):
    """Largest eigenvalue of each ``tridiag(beta, alpha, beta)`` (columns), by Newton from above.

    Port of :func:`spectra._triangular.top_ritz_value` (Wilkinson, *The
    Algebraic Eigenvalue Problem*, ch. 7): ``p'/p`` from the LDL^T pivots
    ``r_i = l - alpha_i - beta_{i-1}^2 / r_{i-1}``; all ``r_i > 0`` iff ``l``
    is above the largest root; the iteration stops when ``k * step <= rtol * l``.
    """
    k = alpha.shape[0]
    hi = upper.clone()
    lo = torch.minimum(lower, hi)
    lam = hi.clone() if guess is None else torch.minimum(torch.maximum(guess, lo), hi)
    a, bb = alpha, beta * beta
    idx = None  # None: every column is still iterating
    for it in range(100):
        la = lam if idx is None else lam[idx]
        hi_i = hi if idx is None else hi[idx]
        lo_i = lo if idx is None else lo[idx]
        r = la - a[0]
        u = 1.0 / r
        S = u.clone()
        rmin = r.clone()
        for i in range(1, k):
            g = bb[i - 1] / r
            r = la - a[i] - g
            u = torch.addcmul(torch.ones_like(g), g, u) / r
            S += u
            rmin = torch.minimum(rmin, r)
        step = 1.0 / S
        valid = (rmin > 0) & torch.isfinite(step)
        h = torch.where(valid, la, hi_i)
        l_ = torch.where(valid, lo_i, torch.maximum(lo_i, la))
        # a guess below the root restarts from the safe upper bound; later failures bisect
        fallback = h if (it == 0 and guess is not None) else 0.5 * (l_ + h)
        new = torch.where(valid, la - step, fallback)
        new = torch.where(valid & ~(new > l_), 0.5 * (l_ + h), new)
        done = (valid & (k * step <= rtol * la)) | (h - l_ <= 4 * _EPS * h)
        # NaN/Inf columns (overflowed solves; finished columns awaiting compaction) cannot converge:
        # stop them now rather than after 100 iterations (the result is non-finite either way)
        done |= ~torch.isfinite(la)
        res = torch.where(done & ~valid, h, new)
        if idx is None:
            hi, lo, lam = h, l_, res
        else:
            hi[idx], lo[idx], lam[idx] = h, l_, res
        keep = torch.nonzero(~done).flatten()
        if keep.numel() == 0:  # a host sync per Newton step (not per solve)
            break
        if keep.numel() < done.numel():
            idx = keep if idx is None else idx[keep]
            a, bb = a[:, keep], bb[:, keep]
    return lam


def _residual_ok(torch, alphas, betas, beta_k, idx, tol: float, budget: int):
    """Kato-Temple check of the top Ritz value of each chosen column (port of the numpy one).

    For the Ritz pair ``(theta_1, y)`` of ``T_k`` the residual is
    ``r = beta_k |y_k|`` and some eigenvalue lies within ``min(r, r^2/gap)``
    (Parlett, *The Symmetric Eigenvalue Problem*, thm. 11.7.1 and sec. 13.2);
    Ritz values within `tol` of ``theta_1`` count as one cluster.
    """
    k = len(alphas)
    A = torch.stack(alphas)  # (k, m)
    B = torch.stack(betas[: k - 1]) if k > 1 else None
    out = torch.empty(idx.numel(), dtype=torch.bool, device=idx.device)
    chunk = max(1, budget // (8 * k * k * 4))
    d = torch.arange(k, device=idx.device)
    for c in range(0, idx.numel(), chunk):
        sub = idx[c : c + chunk]
        p = sub.numel()
        Tk = torch.zeros((p, k, k), dtype=torch.float64, device=idx.device)
        Tk[:, d, d] = A[:, sub].T
        if k > 1:
            b = B[:, sub].T
            Tk[:, d[:-1], d[1:]] = b
            Tk[:, d[1:], d[:-1]] = b
        w, U = torch.linalg.eigh(Tk)
        th1 = w[:, -1:]
        cluster = th1 - w <= tol * th1
        r2 = (beta_k[sub, None] * U[:, -1, :].abs()) ** 2
        r = torch.sqrt(torch.where(cluster, r2, torch.zeros_like(r2)).sum(dim=1))
        below = torch.where(cluster, torch.full_like(w, -math.inf), w).amax(dim=1)
        gap = th1[:, 0] - below
        err = torch.minimum(r, r * r / gap.clamp_min(_TINY))
        out[c : c + p] = err <= tol * th1[:, 0]
    return out


def _inverse_lanczos(torch, solver, z, v0, *, tol, maxiter, budget, on_done):
    """Port of the first numpy engine's batched inverse Lanczos (its stopping rules and outputs)."""
    dev = z.device
    n = solver.n
    m = z.numel()
    f64 = torch.float64
    sigma = torch.full((m,), math.nan, dtype=f64, device=dev)
    converged = torch.zeros(m, dtype=torch.bool, device=dev)
    steps = torch.zeros(m, dtype=torch.int64, device=dev)
    if m == 0:
        return sigma, converged, steps
    tol_theta = tol / 5.0
    ritz_rtol = float(np.clip(tol_theta * 1e-3, 4 * _EPS, 1e-12))
    v0 = v0 / torch.linalg.vector_norm(v0)

    ids = torch.arange(m, device=dev)  # original index of each column; -1 once it has finished
    dinv = 1.0 / (z[None, :] - solver.diag[:, None])
    dinvc = torch.conj_physical(dinv)
    zl, zlc = z.clone(), torch.conj_physical(z)  # shifts of the live columns and their conjugates
    q = v0[:, None].expand(n, m).contiguous()
    q_prev = torch.zeros_like(q)
    w = q.clone()  # the vector the next step's solves overwrite
    beta_prev = torch.zeros(m, dtype=f64, device=dev)
    alphas: list = []
    betas: list = []
    scale = torch.ones(m, dtype=f64, device=dev)
    theta = torch.zeros(m, dtype=f64, device=dev)  # top Ritz value, divided by `scale`
    change_prev = torch.full((m,), math.inf, dtype=f64, device=dev)
    inf = torch.tensor(math.inf, dtype=f64, device=dev)
    for k in range(1, maxiter + 1):
        solver.solve_adjoint(w, dinvc, zlc)
        solver.solve(w, dinv, zl)
        alpha = torch.linalg.vecdot(q, w, dim=0).real  # Re(q^H w) per column
        w.addcmul_(q, alpha.to(w.dtype), value=-1)
        if k > 1:
            w.addcmul_(q_prev, beta_prev.to(w.dtype), value=-1)
        beta = torch.linalg.vector_norm(w, dim=0)
        if k == 1:
            scale = alpha.clone()
        a_s = alpha / scale
        b_s = beta / scale
        alphas.append(a_s)
        if k == 1:
            theta_new = a_s.clone()
        else:
            # Ritz bound: top eig of [[theta, beta], [beta, alpha]] (arrowhead argument)
            bl = betas[-1]
            half = 0.5 * (theta - a_s)
            upper = (0.5 * (theta + a_s) + torch.sqrt(half * half + bl * bl)) * (1.0 + 1e-10)
            # likely bound: the last change again, doubled (Lanczos converges geometrically)
            guess = theta * (1.0 + 2.0 * change_prev.clamp_max(1.0)) if k > 2 else None
            theta_new = _top_ritz_value(
                torch, torch.stack(alphas), torch.stack(betas), theta, upper, guess, ritz_rtol
            )
        betas.append(b_s)
        live = ids >= 0
        finite = torch.isfinite(theta_new) & torch.isfinite(beta) & (scale > 0) & torch.isfinite(scale)
        change = torch.where(theta_new > 0, (theta_new - theta) / theta_new, inf).clamp_min(0.0)
        rho = torch.where(change_prev > 0, change / change_prev, torch.zeros_like(change))
        extrap = torch.where(rho < 1, change * rho / (1 - rho).clamp_min(1e-300), inf)
        breakdown = b_s <= 64 * _EPS * theta_new.clamp_min(1.0)
        cand = finite & live & (change <= tol_theta) & (extrap <= tol_theta) & ~breakdown
        if k >= 2:
            idx = torch.nonzero(cand).flatten()
            if idx.numel():
                # a small change can be a plateau (clustered top eigenvalues): confirm with the
                # Ritz residual and gap, error <= min(r, r^2/gap) (Parlett ch. 11)
                ok = _residual_ok(torch, alphas, betas, b_s, idx, tol_theta, budget)
                cand[idx[~ok]] = False
        else:
            cand[:] = False
        conv = finite & live & (cand | breakdown)
        fail = ~finite | (k == maxiter)
        leave = (conv | fail) & live
        theta = theta_new
        change_prev = change
        gone = torch.nonzero(leave).flatten()
        if gone.numel():
            gi = ids[gone]
            ok = conv[gone]
            sigma[gi[ok]] = 1.0 / torch.sqrt(theta[gone[ok]] * scale[gone[ok]])
            converged[gi[ok]] = True
            steps[gi] = k
            ids[gone] = -1
            if on_done is not None:
                nok = int(ok.sum())
                if nok:
                    on_done(nok)
        cols = torch.nonzero(ids >= 0).flatten()
        nlive = cols.numel()
        if nlive == 0:
            break
        beta_prev = beta
        if nlive <= 0.8 * ids.numel():  # drop finished columns (copies: not every step)
            ids = ids[cols]
            alphas = [a[cols] for a in alphas]
            betas = [b[cols] for b in betas]
            scale, theta = scale[cols], theta[cols]
            change_prev, beta_prev = change_prev[cols], beta_prev[cols]
            q, w = w[:, cols], q[:, cols]
            dinv, dinvc = dinv[:, cols], dinvc[:, cols]
            zl, zlc = zl[cols], zlc[cols]
            q.div_(torch.where(beta_prev > 0, beta_prev, torch.ones_like(beta_prev)))
            q_prev = w
            w = q.clone()
        else:
            # q_prev <- q, q <- w / beta, w <- copy of the new q
            w.div_(torch.where(beta > 0, beta, torch.ones_like(beta)))
            spare = q_prev
            spare.copy_(w)
            q_prev, q, w = q, w, spare
    return sigma, converged, steps


# ----------------------------------------------------------------------------- the engine


def _dense_sigma_min(torch, T, z, *, budget: int, on_done):
    """``sigma_min(z_j I - T)`` by batched ``torch.linalg.svdvals`` on the device, in chunks."""
    n = T.shape[0]
    out = torch.empty(z.numel(), dtype=torch.float64, device=T.device)
    chunk = max(1, budget // (16 * n * n * 3))
    for c in range(0, z.numel(), chunk):
        zz = z[c : c + chunk]
        stack = (-T).expand(zz.numel(), n, n).clone()
        stack.diagonal(dim1=-2, dim2=-1).add_(zz[:, None])
        out[c : c + zz.numel()] = torch.linalg.svdvals(stack)[:, -1]
        if on_done is not None:
            on_done(int(zz.numel()))
    return out


def torch_sigma_min(
    T: np.ndarray,
    z: np.ndarray,
    *,
    tol: float,
    maxiter: int,
    seed: int,
    device,
    on_done: Callable[[int], None] | None = None,
    stats: dict | None = None,
    memory_bytes: int | None = None,
    leaf: int = 16,
    leaf_method: str = "auto",
) -> np.ndarray:
    """``sigma_min(z_j I - T)`` for every point, by batched inverse Lanczos in torch.

    The contract of :func:`spectra.pseudospectra.pseudospectra`: every
    value within `tol` (relative) of a dense SVD's, above rounding level.

    Parameters
    ----------
    T : (n, n) ndarray, complex
        Upper triangular complex Schur factor (only the upper triangle is read).
    z : (m,) ndarray, complex
        The points.
    tol : float
        Relative accuracy wanted.
    maxiter : int
        Most Lanczos steps per point; points not converged by then, and
        points within ``1e-13 ||T||_F`` of an eigenvalue, get a dense SVD.
    seed : int
        Seed of the shared random start vector (the numpy engine's vector).
    device : str or torch.device
        ``"cpu"``, ``"cuda"`` or ``"cuda:K"``.
    on_done : callable, optional
        Called with the number of points that just finished.
    stats : dict, optional
        Filled with ``method`` (``"lanczos-torch"``), ``lanczos_steps_mean``,
        ``lanczos_steps_max``, ``dense_fallback_points``, ``device``,
        ``leaf_method``, ``batch_points`` (points per Lanczos batch) and
        ``batches``.
    memory_bytes : int, optional
        Working memory one batch may use (default: half the free memory on
        CUDA, 192 MiB on the CPU).
    leaf : int
        Size of the diagonal blocks of the blocked substitution.
    leaf_method : {"auto", "rows", "trsm"}
        How those blocks are solved: row by row (``rows``, the numpy
        engine's way, fastest on a CPU) or by one batched
        ``torch.linalg.solve_triangular`` per block (``trsm``, fewer kernel
        launches); ``auto``: ``trsm`` on CUDA, ``rows`` on the CPU.

    Returns
    -------
    (m,) ndarray, float64

    Raises
    ------
    MissingDependencyError
        If torch is not installed.
    InvalidArgumentError
        If `device` is invalid or unavailable (see :func:`resolve_device`),
        or `leaf_method` is not one of the above.
    """
    torch = _import_torch()
    dev = resolve_device(device)
    if leaf_method == "auto":
        leaf_method = "trsm" if dev.type == "cuda" else "rows"
    T = np.triu(np.asarray(T, dtype=np.complex128))
    z = np.asarray(z, dtype=np.complex128).ravel()
    n, m = T.shape[0], z.size
    if stats is None:
        stats = {}
    rng = np.random.default_rng(seed)
    # the numpy engine's start vector: random phases, equal magnitudes (see pseudospectra._engine_sigma_min)
    v0 = np.exp(2j * np.pi * rng.random(n))
    tnorm = float(np.linalg.norm(T))

    Td = torch.as_tensor(T, device=dev)
    zd = torch.as_tensor(z, device=dev)
    solver = _ShiftedTriangular(Td, leaf=leaf, leaf_method=leaf_method)
    budget = max(1, _budget(torch, dev, memory_bytes) - solver.nbytes)
    # points within rounding of an eigenvalue: T_z is (nearly) singular; dense SVD
    near = torch.empty(m, dtype=torch.bool, device=dev)
    step = max(1, budget // (16 * n * 2))
    for c in range(0, m, step):
        dist = (zd[c : c + step, None] - solver.diag[None, :]).abs().amin(dim=1)
        near[c : c + step] = dist <= 1e-13 * max(tnorm, _TINY)
    todo = torch.nonzero(~near).flatten()
    out = torch.full((m,), math.nan, dtype=torch.float64, device=dev)
    steps_all = torch.zeros(m, dtype=torch.int64, device=dev)
    fallback = [torch.nonzero(near).flatten()]
    per_point = 16 * n * _VECTORS_PER_POINT + 16 * maxiter
    if leaf_method == "trsm":  # the (b, b) matrix of each point and the solution's copies
        per_point += 16 * (solver.leaf + 2) * solver.leaf
    batch = int(max(1, min(_MAX_BATCH, budget // per_point)))
    v0d = torch.as_tensor(v0, device=dev)
    nbatches = 0
    for c in range(0, todo.numel(), batch):
        idx = todo[c : c + batch]
        sig, conv, steps = _inverse_lanczos(
            torch, solver, zd[idx], v0d, tol=tol, maxiter=maxiter, budget=budget, on_done=on_done
        )
        out[idx[conv]] = sig[conv]
        steps_all[idx] = steps
        fallback.append(idx[~conv])
        nbatches += 1
    fb = torch.cat(fallback)
    if fb.numel():
        out[fb] = _dense_sigma_min(torch, Td, zd[fb], budget=budget, on_done=on_done)
    lan = steps_all[todo].double()
    stats.update(
        method="lanczos-torch",
        lanczos_steps_mean=float(lan.mean()) if lan.numel() else 0.0,
        lanczos_steps_max=int(lan.max()) if lan.numel() else 0,
        dense_fallback_points=int(fb.numel()),
        device=str(dev),
        leaf_method=leaf_method,
        batch_points=batch,
        batches=nbatches,
    )
    return out.cpu().numpy()
