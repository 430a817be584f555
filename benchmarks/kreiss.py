"""Kreiss constant and transient growth against one 100x100 pseudospectra grid.

Run:  OMP_NUM_THREADS=1 python benchmarks/kreiss.py [--sizes 64 128 256 512] [--certify-max-n 512]
      [--levelset-max-n 0] [--repeat 3]

For each n: a random non-normal matrix (Gaussian/sqrt(n) plus a strictly upper
triangular Gaussian part) scaled to spectral radius 0.95. Printed side by side
(CPU seconds of this process, time.process_time, with OMP_NUM_THREADS=1: on a
shared machine wall-clock time measures the neighbours; same process, same matrix):

* ``K value``   -- kreiss_constant(A, certify=False, transient=tg): grid search +
  BFGS ascent (its upper bound sup_k ||A^k|| reuses the transient norms);
* ``K cert``    -- kreiss_constant(A, certify=True): the certificate of
  upper/lower - 1 <= 1e-6 by square cells (spectra._kreiss_cells; search and
  proof in one; ``values``: its sigma_min values), the median of --repeat runs
  (only for n <= --certify-max-n); ``cert/grid`` is its median time over the
  grid's (the issue's goal: below 1);
* ``levelset/grid`` -- kreiss_constant(A, certify=True, method="levelset"), the
  search and the circle walk of spectra._kreiss_certificate (one level set per
  circle; ``circles``), once, for n <= --levelset-max-n;
* ``transient`` -- transient_growth(A) with the default horizon;
* ``grid``      -- spectra.pseudospectra(A, npts=100) (10^4 sigma_min values),
  the baseline: --repeat runs interleaved with the certificate's (this VM's
  speed drifts by 15% over minutes), the median; one warm-up call first.

``local check`` re-evaluates f(z) = (|z| - 1)/sigma_min(zI - A) by dense SVD
(numpy, independent of the library) on a 5x5 stencil of radius 1e-3 |z*| around
the maximiser of the uncertified value and prints max(f)/K - 1 (<= ~0 means no
better point nearby).

Measured 2026-11-23, thirteenth session, idle machine, 08:23
(``--levelset-max-n 512``; columns n, K, K cert s, upper/lower-1, values, grid s,
cert/grid, levelset/grid, circles)::

      64  2.08588801  0.08  9.00e-07  1572  0.12  0.69  2.32  21
     128  3.03209231  0.20  9.00e-07  2805  0.32  0.61  2.69  20
     256  3.46784020  0.49  9.00e-07  3676  0.84  0.59  5.35  15
     512  4.84038593  2.50  9.00e-07  5994  3.50  0.71  5.54  15

(K value s 0.05 / 0.22 / 0.52 / 1.67, value/grid 0.43 / 0.67 / 0.62 / 0.48; local check
3.5e-14 / 4.8e-14 / 8.7e-14 / 1.2e-13.)

The cells meet the goal at every size (README.md, Performance, has the method
and earlier runs); the circle walk, the certificate of sessions 3-12, took
1.2-2.3 grids at n = 64 and 4.4-5.7 at n = 256..512.
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
