"""Benchmark: the torch pseudospectra engine on a GPU (``device="cuda"``) against the numpy CPU engine.

Not a test. For random non-normal matrices (Gaussian/sqrt(n) plus a strictly
upper triangular Gaussian/sqrt(n) part, as in ``benchmarks/pseudospectra.py``)
on an exactly symmetric grid over the automatic bounds, prints per size:

(a) wall seconds of ``spectra.pseudospectra(A, x=x, y=y)`` (the numpy engine,
    single-threaded BLAS), on the full grid or, with ``--cpu-stride S``, on
    the sub-grid ``x[::S], y[::S]`` and extrapolated per computed point to
    the full grid (marked "extrap."; the Schur time is counted once),
(b) wall seconds of ``spectra.pseudospectra(A, x=x, y=y, device=...)`` on the
    full grid (complex Schur on the CPU included, shown separately; CUDA is
    initialised by a small warm-up run first and synchronised after),
the ratio (a)/(b), the ratio without the (shared) Schur time, and the
largest relative difference between (a) and (b) on the points of (a).

Modes::

    python benchmarks/gpu.py                   # CUDA: n = 1024, 2048 on 200 x 200
    python benchmarks/gpu.py --cpu-stride 4    # CUDA, numpy engine on a 50 x 50 sub-grid, extrapolated
    python benchmarks/gpu.py --cpu-torch       # torch on the CPU: n = 256, 512 on 100 x 100
    python benchmarks/gpu.py --tune            # also: leaf solves row by row vs batched trsm, leaf sizes

Without CUDA (``torch.cuda.is_available()`` False) the script says so and
stops unless ``--cpu-torch`` is given; ``--cpu-torch`` compares CPU torch with
the numpy engine (one thread each) so the script and the engine run anywhere.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if "--threads" not in sys.argv:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
from pseudospectra import grid_for, test_matrix  # the sibling benchmark's matrices and grids

from spectra.pseudospectra import pseudospectra


def timed(A, x, y, device, tol, sync) -> tuple[object, float]:
    t = time.perf_counter()
    g = pseudospectra(A, x=x, y=y, tol=tol, device=device)
    sync()
    return g, time.perf_counter() - t


def run_size(n: int, npts: int, device: str, stride: int, seed: int, tol: float, sync) -> dict:
    A = test_matrix(n, seed)
    x, y = grid_for(A, npts)
    g_dev, t_dev = timed(A, x, y, device, tol, sync)
    xs, ys = x[::stride], y[::stride]
    g_np, t_np = timed(A, xs, ys, None, tol, lambda: None)
    o_np, o_dev = g_np.options, g_dev.options
    schur_np = o_np["seconds_schur"]
    if stride > 1:  # extrapolate the per-point Lanczos time to the points the full grid computes
        per_point = (t_np - schur_np) / o_np["points_computed"]
        t_np_full = schur_np + per_point * o_dev["points_computed"]
    else:
        t_np_full = t_np
    got = g_dev.sigma_min[::stride, ::stride]
    ref = g_np.sigma_min
    return {
        "n": n,
        "grid": f"{x.size}x{y.size}",
        "points": o_dev["points_computed"],
        "np_s": t_np_full,
        "np_schur_s": schur_np,
        "np_extrap": stride > 1,
        "np_points": o_np["points_computed"],
        "np_steps": o_np.get("lanczos_steps_mean", 0.0),
        "dev_s": t_dev,
        "schur_s": o_dev["seconds_schur"],
        "dev_steps": o_dev.get("lanczos_steps_mean", 0.0),
        "dev_fallback": o_dev.get("dense_fallback_points", 0),
        "dev_batches": o_dev.get("batches", 0),
        "dev_batch_points": o_dev.get("batch_points", 0),
        "leaf_method": o_dev.get("leaf_method", ""),
        "max_rel_diff": float(np.max(np.abs(got - ref) / ref)),
    }


def tune(n: int, npts: int, device: str, seed: int, tol: float, sync) -> None:
    """Seconds of the Lanczos part alone for each leaf method and leaf size (the Schur factor is shared)."""
    import scipy.linalg

    from spectra._torch_engine import torch_sigma_min

    A = test_matrix(n, seed)
    x, y = grid_for(A, npts)
    T, _ = scipy.linalg.schur(A, output="complex")
    z = (x[None, :] + 1j * y[y >= 0][:, None]).ravel()  # the points a real A computes
    ref = None
    for method, leaf in (("rows", 16), ("trsm", 16), ("trsm", 32), ("trsm", 64)):
        stats: dict = {}
        t = time.perf_counter()
        sig = torch_sigma_min(
            T, z, tol=tol, maxiter=max(100, n // 2), seed=0, device=device, stats=stats,
            leaf=leaf, leaf_method=method,
        )  # fmt: skip
        sync()
        dt = time.perf_counter() - t
        ref = sig if ref is None else ref
        diff = np.max(np.abs(sig - ref) / ref)
        print(
            f"  tune n={n} {z.size} points: leaf_method={method:<4} leaf={leaf:<3} {dt:8.3f} s  "
            f"steps {stats['lanczos_steps_mean']:.2f}  max rel diff to the first {diff:.1e}"
        )
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="torch device for (b) (default cuda)")
    ap.add_argument(
        "--cpu-torch",
        action="store_true",
        help="compare torch on the CPU with the numpy engine (default sizes 256,512 on 100 x 100)",
    )
    ap.add_argument(
        "--sizes", default=None, help="comma-separated n (default 1024,2048; 256,512 with --cpu-torch)"
    )
    ap.add_argument(
        "--npts", type=int, default=None, help="grid points per side (default 200; 100 with --cpu-torch)"
    )
    ap.add_argument(
        "--cpu-stride",
        type=int,
        default=1,
        help="numpy engine on the sub-grid x[::S], y[::S], extrapolated (default 1: the full grid)",
    )
    ap.add_argument(
        "--tune",
        action="store_true",
        help="also time the Lanczos part for leaf methods rows/trsm and leaf sizes 16, 32, 64",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-8, help="engine accuracy (default 1e-8)")
    ap.add_argument("--threads", action="store_true", help="leave the BLAS/torch thread counts alone")
    args = ap.parse_args(argv)

    import torch

    if not args.threads:
        torch.set_num_threads(1)
    if args.cpu_torch:
        device = "cpu"
        sizes, npts = "256,512", 100
        sync = lambda: None  # noqa: E731
    else:
        if not torch.cuda.is_available():
            print(
                "CUDA not available: torch.cuda.is_available() is False (torch "
                f"{torch.__version__}); nothing measured. Run with --cpu-torch to compare torch on the CPU "
                "with the numpy engine."
            )
            return 1
        device = args.device
        sizes, npts = "1024,2048", 200
        sync = torch.cuda.synchronize
        # warm-up: CUDA context, cuBLAS/cuSOLVER handles, kernels (not timed)
        pseudospectra(test_matrix(64, 1), npts=8, method="lanczos", device=device)
        sync()
    sizes = [int(s) for s in (args.sizes or sizes).split(",") if s.strip()]
    npts = args.npts or npts
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "CPU"
    print(
        f"torch engine on {device} ({name}, torch {torch.__version__}, torch threads "
        f"{torch.get_num_threads()}) vs numpy engine (OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', '(unset)')}); {npts}x{npts} grid, "
        f"A = G/sqrt(n) + triu(G', 1)/sqrt(n), seed {args.seed}, tol {args.tol:g}; "
        "wall seconds, Schur included"
    )
    head = (
        f"{'n':>5} {'grid':>8} {'points':>7} {'(a) numpy s':>15} {'(b) torch s':>12} {'Schur s':>8} "
        f"{'ratio':>7} {'ratio-Schur':>11} {'max rel diff':>12} {'steps a/b':>11} {'fallback':>8} "
        f"{'batches':>7} {'leaves':>6}"
    )
    print(head)
    print("-" * len(head))
    for n in sizes:
        r = run_size(n, npts, device, max(1, args.cpu_stride), args.seed, args.tol, sync)
        a = f"{r['np_s']:.2f}{' extrap.' if r['np_extrap'] else ''}"
        ratio = r["np_s"] / r["dev_s"]
        ratio_ls = (r["np_s"] - r["np_schur_s"]) / max(r["dev_s"] - r["schur_s"], 1e-9)
        print(
            f"{n:>5} {r['grid']:>8} {r['points']:>7} {a:>15} {r['dev_s']:>12.2f} {r['schur_s']:>8.2f} "
            f"{ratio:>7.2f} {ratio_ls:>11.2f} {r['max_rel_diff']:>12.2e} "
            f"{r['np_steps']:>5.2f}/{r['dev_steps']:<5.2f} {r['dev_fallback']:>8} "
            f"{r['dev_batches']:>7} {r['leaf_method']:>6}"
        )
        sys.stdout.flush()
        if args.tune:
            tune(n, npts, device, args.seed, args.tol, sync)
    return 0


if __name__ == "__main__":
    sys.exit(main())
