"""Kreiss constant and transient growth against one 100x100 pseudospectra grid.

Run:  OMP_NUM_THREADS=1 python benchmarks/kreiss.py [--sizes 64 128 256 512] [--certify-max-n 512]

For each n: a random non-normal matrix (Gaussian/sqrt(n) plus a strictly upper
triangular Gaussian part) scaled to spectral radius 0.95. Printed side by side
(CPU seconds of this process, time.process_time, with OMP_NUM_THREADS=1: on a
shared machine wall-clock time measures the neighbours; same process, same matrix):

* ``K value``   -- kreiss_constant(A, certify=False, transient=tg): grid search +
  BFGS ascent (its upper bound sup_k ||A^k|| reuses the transient norms);
* ``K cert``    -- kreiss_constant(A, certify=True): value plus the certificate
  (spectra._kreiss_certificate: a walk over circles, one level set each) of
  upper/lower - 1 <= 1e-6 (only for n <= --certify-max-n); ``cert/grid`` is its
  time over the grid's (the issue's goal: below 1);
* ``transient`` -- transient_growth(A) with the default horizon;
* ``grid``      -- spectra.pseudospectra(A, npts=100) (10^4 sigma_min values),
  the baseline (one warm-up call first); "missing" when the module is absent.

``local check`` re-evaluates f(z) = (|z| - 1)/sigma_min(zI - A) by dense SVD
(numpy, independent of the library) on a 5x5 stencil of radius 1e-3 |z*| around
the reported maximiser and prints max(f)/K - 1 (<= ~0 means no better point nearby).

Measured 2026-11-22, fourth session (shared 2-core machine, OMP_NUM_THREADS=1,
seed 0, CPU seconds; columns: n, K, K value s, K cert s, upper/lower-1,
transient s, peak, k*, grid s, value/grid, cert/grid, circles, local check)::

     64  2.08588801  0.07   0.32  9.00e-07  0.02   4.879  6  0.18  0.40   1.78  21  -6.0e-15
    128  3.03209231  0.17   1.02  9.00e-07  0.10   8.675  5  0.42  0.40   2.39  20   1.1e-14
    256  3.46784020  0.50   4.12  9.00e-07  0.56  10.660  4  0.85  0.59   4.82  15   1.4e-14
    512  4.84038593  1.85  18.63  9.00e-07  3.66  14.865  7  3.26  0.57   5.71  15  -2.9e-15

(Sixth session, Schur form by real Schur + rsf2csf: cert/grid 1.61 / 2.36 / 4.69 / 5.46,
same K, brackets and circles. Two more runs: cert/grid 1.49 / 2.52 / 4.52 / 5.56 and
1.20 / 2.22 / 4.39 / 5.59;
the third session's code: 2.11 / 2.95 / 7.53 / 11.03. Tenth session, same matrices: cert/grid
1.48 / 2.45 / 4.43 / 5.93, value/grid 0.38 / 0.49 / 0.51 / 0.52, same K, brackets and circles.
With the Lanczos norms of transient_growth, 15:32: transient 0.05 / 0.11 / 0.23 / 1.15 s.
Twelfth session, idle machine: cert/grid 2.31 / 3.03 / 4.71 / 5.73, value/grid 0.76 / 0.74 /
0.55 / 0.55, same K, brackets and circles.) The value (search +
ascent) takes about half the grid's time. The certified 1e-6 bracket costs
1.2-1.8 grids at n = 64, 2.1-2.9 at n = 128 and 4.4-5.7 at n = 256..512: 15-21
circle level sets, each a 2n x 2n eigenproblem (O(n^3); 0.72 s at n = 512,
where the grid is 10^4 O(n^2) triangular solves). The goal "faster than the
grid" is missed at every size; README.md (Performance) says why fewer
circles are not to be had from this method.
"""

from __future__ import annotations

import argparse
import os
import re
import time

import numpy as np

from spectra.kreiss import kreiss_constant, transient_growth


def matrix(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n)) / np.sqrt(n) + np.triu(rng.standard_normal((n, n)), 1)
    return 0.95 * M / np.max(np.abs(np.linalg.eigvals(M)))


def timed(fn, *args, **kw):
    t = time.process_time()
    out = fn(*args, **kw)
    return out, time.process_time() - t


def local_check(A: np.ndarray, z: complex, K: float) -> float:
    n = A.shape[0]
    h = 1e-3 * abs(z)
    best = -np.inf
    for dx in np.linspace(-h, h, 5):
        for dy in np.linspace(-h, h, 5):
            zz = z + complex(dx, dy)
            if abs(zz) <= 1:
                continue
            s = np.linalg.svd(zz * np.eye(n) - A, compute_uv=False)[-1]
            best = max(best, (abs(zz) - 1) / s)
    return best / K - 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--certify-max-n", type=int, default=512)
    ap.add_argument(
        "--levelset-max-n",
        type=int,
        default=0,
        help="also time method='levelset' (the circle walk) up to this n",
    )
    ap.add_argument("--repeat", type=int, default=3, help="interleaved (grid, certificate) runs; medians")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    try:
        from spectra.pseudospectra import pseudospectra
    except ImportError:
        pseudospectra = None
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}")
    if pseudospectra is not None:
        pseudospectra(matrix(min(args.sizes), args.seed), npts=20)  # warm-up (imports, first calls)
    kreiss_constant(matrix(48, args.seed + 1), certify=True)  # warm-up (the Lanczos kernels)
    head = (
        f"{'n':>4} {'K':>12} {'K value s':>10} {'K cert s':>9} {'upper/lower-1':>14} {'values':>7} "
        f"{'transient s':>11} {'peak':>8} {'k*':>4} {'grid s':>8} {'value/grid':>10} {'cert/grid':>9} "
        f"{'levelset/grid':>13} {'circles':>7} {'local check':>12}"
    )
    print(head)
    print("-" * len(head))
    for n in args.sizes:
        A = matrix(n, args.seed)
        tg, t_tg = timed(transient_growth, A)
        kv, t_val = timed(kreiss_constant, A, certify=False, transient=tg)
        t_grid = t_cert = None
        grids, certs = [], []
        kc = None
        for _ in range(max(1, args.repeat)):
            if pseudospectra is not None:
                grids.append(timed(pseudospectra, A, npts=100)[1])
            if n <= args.certify_max_n:
                kc, t = timed(kreiss_constant, A, certify=True)
                certs.append(t)
        if grids:
            t_grid = float(np.median(grids))
        if certs:
            t_cert = float(np.median(certs))
            gap = f"{kc.upper / kc.lower - 1:.2e}" + ("" if kc.certified else "!")
            found = re.search(r"(\d+) sigma_min values", kc.message)
            values = found.group(1) if found else "?"
            cert = f"{t_cert:9.2f}"
        else:
            gap, cert, values = "-", "-".rjust(9), "-"
        lratio, circles = "-", "-"
        if n <= args.levelset_max_n:
            kl, t_lev = timed(kreiss_constant, A, certify=True, method="levelset")
            found = re.search(r"(\d+) circles", kl.message)
            circles = found.group(1) if found else "?"
            lratio = f"{t_lev / t_grid:.2f}" if t_grid else f"{t_lev:.2f}s"
        if t_grid is not None:
            grid = f"{t_grid:8.2f}"
            ratio = f"{t_val / t_grid:10.2f}"
            cratio = f"{t_cert / t_grid:9.2f}" if t_cert is not None else "-".rjust(9)
        else:
            grid, ratio, cratio = "missing".rjust(8), "-".rjust(10), "-".rjust(9)
        chk = local_check(A, kv.z, kv.value) if kv.z is not None else float("nan")
        print(
            f"{n:4d} {kv.value:12.8f} {t_val:10.2f} {cert} {gap:>14} {values:>7} {t_tg:11.2f} "
            f"{tg.peak:8.3f} {tg.peak_k:4d} {grid} {ratio} {cratio} {lratio:>13} {circles:>7} {chk:12.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
