"""The costly figures of ``spectra analyze`` (rho_eps, d_inst, w(A)) at n = 128..512.

Run:  OMP_NUM_THREADS=1 python benchmarks/robustness_figures.py [--sizes 128 256 512]

For each n, the benchmark matrix of ``benchmarks/kreiss.py`` (Gaussian/sqrt(n)
plus a strictly upper triangular Gaussian part, spectral radius 0.95); CPU
seconds of this process (time.process_time, one BLAS thread), same process,
same matrix:

* ``rho_eps``  -- pseudospectral_radius at eps = 1e-3, 1e-2, 1e-1 (summed), as
  shipped: radial searches by Brent's method on sigma_min (O(n^2) estimates on
  the Schur factor for n > 96, each root checked by one SVD);
* ``rho_eps eig`` -- the same as the code did before the seventh session: Mengi &
  Overton's radial search, the largest real eigenvalue of a 2n x 2n matrix per arc
  (``crisscross._outermost_crossing``), and no boundary ascent before the circles;
  ``eig/shipped`` is the ratio, and ``max rel diff`` the largest relative
  difference of the two results over the three eps;
* ``d_inst``   -- distance_to_instability (level sets started at a local minimum);
* ``w(A)``     -- numerical_radius (a cutting plane on the support lines of W(A),
  certified to 1e-12 or the eigensolver's rounding, since the eleventh session; before
  it, 49 samples and Brent's method around the best, to 1e-9).

Measured 2026-11-22, seventh session (idle 2-core machine, seed 0)::

       n  rho_eps s  rho_eps eig s  eig/shipped  max rel diff  d_inst s  w(A) s
     128       0.43           1.15         2.71       6.7e-15      0.05    0.08
     256       1.31           5.59         4.27       3.8e-15      0.34    0.58
     512       8.27          22.91         2.77       2.3e-14      1.50    3.98

Eleventh session (2-core machine shared with other work, so CPU seconds rose a little
everywhere): 128: 0.45 / 1.23 / 0.07 / 0.08 s, 256: 1.43 / 6.40 / 0.39 / 0.49 s, 512:
9.19 / 25.94 / 1.53 / 4.65 s. The old and the new numerical radius in one process (same
matrices, then the n = 1024 matrix of ``analyze`` below): 0.18 -> 0.07 s, 1.05 -> 0.64 s,
7.81 -> 5.18 s, 38.47 -> 16.18 s, with brackets 5e-10 -> 3e-12..6e-11 wide. Real shifts for
the circle level sets of real A (eleventh session) took rho_eps at n = 1024 from 38.7 to
21.6 s (eps = 1e-3) and d_inst from 28.2 to 14.9 s, values unchanged; all the figures of
``spectra analyze`` for one n = 1024 matrix (Gaussian plus strictly upper part, rho 0.97)
went from 220 to 125 CPU seconds.

Before the seventh session (same matrix, n = 512): d_inst 4.86 s. What
remains of rho_eps is mostly the circle level sets (1-2 per eps, a 2n x 2n
eigenproblem each, ~0.8 s at n = 512) and the dense SVDs that pick their shifts,
classify their arcs and check the radial roots.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

# the benchmark matrices and the CPU-time helper of benchmarks/kreiss.py (run from the
# repository root: this script's directory is on sys.path)
from kreiss import matrix, timed

from spectra import crisscross as cc
from spectra.crisscross import distance_to_instability, pseudospectral_radius
from spectra.numerical_range import numerical_radius

EPSILONS = (1e-3, 1e-2, 1e-1)


def eig_radial(search, phi, eps, t_inside, scale, norm2):
    """Mengi & Overton's radial search: the outermost crossing on the ray (a 2n x 2n eig)."""
    A = search.A
    C = A * np.exp(-1j * phi) if phi else A
    return cc._outermost_crossing(C, eps, t_inside, scale)


def radii(A: np.ndarray) -> list[float]:
    return [pseudospectral_radius(A, eps).value for eps in EPSILONS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}")
    head = (
        f"{'n':>4} {'rho_eps s':>10} {'rho_eps eig s':>14} {'eig/shipped':>12} {'max rel diff':>13} "
        f"{'d_inst s':>9} {'w(A) s':>7}"
    )
    print(head)
    print("-" * len(head))
    shipped, ascent = cc._ray_crossing, cc._boundary_ascent
    for n in args.sizes:
        A = matrix(n, args.seed)
        r_new, t_new = timed(radii, A)
        cc._ray_crossing, cc._boundary_ascent = eig_radial, lambda search, z0, *rest: z0
        try:
            r_eig, t_eig = timed(radii, A)
        finally:
            cc._ray_crossing, cc._boundary_ascent = shipped, ascent
        diff = max(abs(a - b) / abs(b) for a, b in zip(r_new, r_eig))
        _, t_d = timed(distance_to_instability, A)
        _, t_w = timed(numerical_radius, A)
        print(
            f"{n:4d} {t_new:10.2f} {t_eig:14.2f} {t_eig / t_new:12.2f} {diff:13.1e} {t_d:9.2f} {t_w:7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
