"""Benchmark: the pseudospectra grid engine against a per-point dense SVD loop.

Not a test. Prints, for random non-normal matrices (Gaussian/sqrt(n) plus a
strictly upper triangular Gaussian/sqrt(n) part) on a 100 x 100 grid:

(a) seconds of ``scipy.linalg.svdvals(z I - A)`` per grid point, looped (what
    pseudopy and most scripts do); measured on a sub-grid and extrapolated to
    the full grid when that would take too long (marked "extrap."),
(b) seconds of ``spectra.pseudospectra`` on the full grid (Schur included;
    the median of three runs),
the ratio (a)/(b), the max relative difference of (b) against (a) on the
sub-grid, and the engine's arithmetic rate, two ways:

* "eff GF/s" -- the textbook count of the method on the complex Schur form:
  points computed x mean Lanczos steps x 8 n^2 (one step = one solve with
  T_z^* and one with T_z, each n^2/2 complex multiply-adds = 4 n^2 real
  flops), against the rate of a complex128 n x n product (8 n^3 flops), "%zgemm";
* "exec GF/s" -- the flops the engine actually executes on the real Schur
  form (off-diagonal blocks real: 2 n^2 per solve and point; diagonalised
  leaves of size L: 16 n L), against a float64 product's rate, "%dgemm".

The first is what the method costs the textbook way; the engine does about
half of it (real block products), so "%zgemm" can pass 100%.

Times are CPU seconds of this process (``time.process_time``) with
single-threaded BLAS, so that other jobs on a shared machine inflate them less
than wall-clock time; the engine's wall-clock time is printed too.

For real A the engine computes only the rows with y >= 0 of a symmetric grid
(sigma_min(conj(z) I - A) = sigma_min(zI - A)); the "per point" ratio
divides by the points actually computed.

Usage::

    python benchmarks/pseudospectra.py            # n = 64, 128, 256, 512 and n = 2000 on 50 x 50
    python benchmarks/pseudospectra.py --quick    # smaller sub-grids, no n = 2000
    python benchmarks/pseudospectra.py --skip-large
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
import scipy.linalg

from spectra.pseudospectra import auto_bounds, pseudospectra


def test_matrix(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) / np.sqrt(n) + np.triu(rng.standard_normal((n, n)), 1) / np.sqrt(n)


def grid_for(A: np.ndarray, npts: int) -> tuple[np.ndarray, np.ndarray]:
    xmin, xmax, ymin, ymax = auto_bounds(A)
    x = np.linspace(xmin, xmax, npts)
    y = np.linspace(ymin, ymax, npts)
    y = (y - y[::-1]) / 2  # exactly symmetric
    return x, y


def gemm_rate(n: int, repeats: int = 3) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    b = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    best = np.inf
    for _ in range(repeats):
        t = time.process_time()
        a @ b
        best = min(best, time.process_time() - t)
    return 8.0 * n**3 / best / 1e9


def baseline(A: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, float]:
    n = A.shape[0]
    eye = np.eye(n)
    out = np.empty(z.size)
    t = time.process_time()
    for k, zz in enumerate(z):
        out[k] = scipy.linalg.svdvals(zz * eye - A)[-1]
    return out, time.process_time() - t


def dgemm_rate(n: int, repeats: int = 3) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n))
    b = rng.standard_normal((n, 2 * n))
    best = np.inf
    for _ in range(repeats):
        t = time.process_time()
        a @ b
        best = min(best, time.process_time() - t)
    return 4.0 * n**3 / best / 1e9


def run_size(
    n: int,
    npts: int,
    budget_s: float,
    seed: int,
    with_baseline: bool = True,
    tol: float = 1e-8,
    workers: int = 1,
) -> dict:
    A = test_matrix(n, seed)
    x, y = grid_for(A, npts)
    total = x.size * y.size
    runs = []
    for _ in range(3):  # the median of three runs (the machine's noise is +-10% run to run)
        t, c = time.perf_counter(), time.process_time()
        g = pseudospectra(A, x=x, y=y, tol=tol)
        runs.append((time.process_time() - c, time.perf_counter() - t))
    t_engine, wall = sorted(runs)[1]
    row = {"n": n, "grid": f"{x.size}x{y.size}", "engine_s": t_engine, "wall_s": wall, "options": g.options}
    if workers > 1:
        t = time.perf_counter()
        gw = pseudospectra(A, x=x, y=y, tol=tol, workers=workers)
        row["wall_workers_s"] = time.perf_counter() - t
        row["workers_max_diff"] = float(np.max(np.abs(gw.sigma_min - g.sigma_min) / g.sigma_min))
    if with_baseline:
        # time one point to size the sub-grid, then a strided sub-grid of whole rows and columns
        _, t1 = baseline(A, np.array([x[1] + 1j * y[1]]))
        want = int(max(4, min(total, budget_s / max(t1, 1e-6))))
        stride = max(1, int(np.ceil(np.sqrt(total / want))))
        jj, ii = np.meshgrid(np.arange(0, y.size, stride), np.arange(0, x.size, stride), indexing="ij")
        z = x[ii.ravel()] + 1j * y[jj.ravel()]
        ref, t_sub = baseline(A, z)
        got = g.sigma_min[jj.ravel(), ii.ravel()]
        row.update(
            baseline_s=t_sub * total / z.size,
            extrapolated=z.size < total,
            baseline_points=int(z.size),
            max_rel_diff=float(np.max(np.abs(got - ref) / ref)),
        )
    steps = g.options.get("lanczos_steps_mean", 0.0)
    lanczos_points = g.options["points_computed"] - g.options.get("closed_form_points", 0)
    flops = lanczos_points * steps * 8.0 * n * n
    leaf = 16
    executed = lanczos_points * steps * 2 * (2.0 * n * n + 16.0 * n * leaf)
    row["gflops"] = flops / t_engine / 1e9
    row["exec_gflops"] = executed / t_engine / 1e9
    row["gemm_gflops"] = gemm_rate(n)
    row["dgemm_gflops"] = dgemm_rate(n)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short baseline budgets, no n = 2000")
    ap.add_argument("--skip-large", action="store_true", help="skip n = 2000 on a 50 x 50 grid")
    ap.add_argument("--sizes", default="64,128,256,512", help="comma-separated n (default 64,128,256,512)")
    ap.add_argument("--npts", type=int, default=100, help="grid points per side (default 100)")
    ap.add_argument("--budget", type=float, default=None, help="seconds of baseline per size (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-8, help="engine accuracy (default 1e-8)")
    ap.add_argument("--threads", action="store_true", help="leave the BLAS thread count alone")
    ap.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also time the engine with this many threads (wall clock; default 2)",
    )
    args = ap.parse_args(argv)
    budget = args.budget if args.budget is not None else (4.0 if args.quick else 20.0)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(
        f"pseudospectra benchmark: {args.npts}x{args.npts} grid, A = G/sqrt(n) + triu(G', 1)/sqrt(n), "
        f"seed {args.seed}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
        f"tol {args.tol:g}; baseline budget {budget:g} s per size; CPU seconds (process_time)"
    )
    head = (
        f"{'n':>5} {'grid':>8} {'(a) svd loop s':>16} {'(b) engine s':>13} {'wall s':>7} {'ratio':>8} "
        f"{'per-pt ratio':>12} {'max rel diff':>12} {'steps':>6} {'eff GF/s':>8} {'%zgemm':>6} "
        f"{'exec GF/s':>9} {'%dgemm':>6} {f'wall x{args.workers}':>8} {'ratio':>7}"
    )
    print(head)
    print("-" * len(head))
    print(
        f"(the last two columns: wall seconds with {args.workers} worker threads and the ratio of (a)'s CPU "
        "seconds to them; (a) is single-threaded)"
    )
    for n in sizes:
        r = run_size(n, args.npts, budget, args.seed, tol=args.tol, workers=args.workers)
        o = r["options"]
        ratio = r["baseline_s"] / r["engine_s"]
        ww = r.get("wall_workers_s", r["wall_s"])
        per_pt = ratio * o["points_computed"] / o["points"]
        base = f"{r['baseline_s']:.2f}{' extrap.' if r['extrapolated'] else ''}"
        print(
            f"{n:>5} {r['grid']:>8} {base:>16} {r['engine_s']:>13.3f} {r['wall_s']:>7.2f} {ratio:>8.1f} "
            f"{per_pt:>12.1f} "
            f"{r['max_rel_diff']:>12.2e} {o.get('lanczos_steps_mean', 0):>6.2f} {r['gflops']:>8.2f} "
            f"{100 * r['gflops'] / r['gemm_gflops']:>5.0f}% {r['exec_gflops']:>9.2f} "
            f"{100 * r['exec_gflops'] / r['dgemm_gflops']:>5.0f}% {ww:>8.2f} {r['baseline_s'] / ww:>7.1f}"
        )
        sys.stdout.flush()
    if not (args.quick or args.skip_large):
        n = 2000
        r = run_size(n, 50, budget, args.seed, with_baseline=False)
        o = r["options"]
        _, t1 = baseline(test_matrix(n, args.seed), np.array([0.3 + 0.2j, -0.5 + 0.1j]))
        est = t1 / 2 * o["points"]
        print(
            f"n = 2000 on 50x50: engine {r['engine_s']:.1f} s CPU, {r['wall_s']:.1f} s wall "
            f"(Schur {o['seconds_schur']:.1f} s wall; {o['points_computed']} points computed, "
            f"{o.get('lanczos_steps_mean', 0):.2f} Lanczos steps, {r['gflops']:.2f} GFLOP/s vs GEMM "
            f"{r['gemm_gflops']:.2f}); svd loop extrapolated from 2 points: {est:.0f} s "
            f"(ratio {est / r['engine_s']:.0f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
