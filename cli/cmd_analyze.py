"""``spectra analyze``, ``spectra ls`` and ``spectra extract``."""

from __future__ import annotations

import csv
import io
import math
import os
import warnings

import click
from spectra_cli._common import (
    binary_output_option,
    dinst_floor,
    echo_json,
    eig_error,
    eps_list,
    fmt,
    fmt_bound,
    fmt_bracketed,
    fmt_floor,
    fmt_kappa,
    fmt_kreiss,
    fmt_rho,
    fmt_with_error,
    load_one,
    matrix_option,
    plural,
    progress_bar,
    quiet_option,
    quiet_write_option,
    refuse_existing,
    refuse_input,
    schur_floor,
    table,
    trust_option,
    use_agg,
    warn,
    warn_unused,
)

EPS_HELP = "Comma-separated ε for the pseudospectral radius ρ_ε (default 1e-3,1e-2,1e-1)."


COLUMNS = [
    # (header, key, digits)
    ("n", "n", 0),
    ("rho", "spectral_radius", 4),
    ("|A|_2", "norm_2", 4),
    ("dep_F", "henrici", 4),
    ("dep_F/|A|_F", "henrici_relative", 3),
    ("kappa(V)", "kappa_eigvec", 3),
]
#: accuracy of a criss-cross rho_eps near 1 (its iteration stops at 1e-13 relative; margin for
#: the dense SVDs that confirm it)
RHO_EPS_ERROR = 1e-12
ROBUST_COLUMNS = [
    ("d_inst", "distance_to_instability", 4),
    ("K", "kreiss", 4),
    ("peak", "transient_peak", 4),
    ("k*", "transient_peak_k", 0),
    ("w(A)", "numerical_radius", 4),
]


def _cell(report_dict: dict, key: str, digits: int) -> str:
    m = report_dict
    if key == "n":
        return str(m["shape"][0])
    v = m.get(key)
    if isinstance(v, str):  # "inf" from JSON encoding
        return v
    n = m["shape"][0]
    if key == "spectral_radius":
        err = m.get("spectral_radius_error")
        if not isinstance(err, float):  # a document from before the key: Bauer-Fike
            kap, nrm = m.get("kappa_eigvec"), m.get("norm_2")
            err = eig_error(kap, n, nrm) if isinstance(kap, float) and isinstance(nrm, float) else math.inf
        return fmt_rho(v, err)
    if key == "kappa_eigvec":
        return fmt_kappa(v, n, digits)
    # figures below their rounding level are noise: printed as "<level", not to 4 digits
    if key in ("henrici", "henrici_relative") and isinstance(m.get("norm_fro"), float):
        fro = m["norm_fro"]
        floor = schur_floor(n, fro if key == "henrici" else 1.0)
        # ill-conditioned eigenvalues move sum |lambda|^2, hence dep_F: the measured sensitivity
        dep_err = m.get("henrici_error")
        if isinstance(dep_err, float) and dep_err > 0 and fro > 0:
            floor += dep_err if key == "henrici" else dep_err / fro
        return fmt_floor(v, floor, digits)
    if key == "distance_to_instability" and isinstance(m.get("norm_2"), float):
        floor = dinst_floor(n, m["norm_2"])
        if v == 0 and m.get("marginal"):  # rho = 1 to rounding: 0 only because rho came out >= 1
            return "<" + fmt_bound(floor, 1, up=True)
        return fmt_floor(v, floor, digits)
    if key == "kreiss":
        return fmt_kreiss(m, digits)
    if (
        key == "numerical_radius"
        and isinstance(v, float)
        and isinstance(m.get("numerical_radius_upper"), float)
    ):
        return fmt_bracketed(v, v, m["numerical_radius_upper"], digits)  # digits both ends share
    if key in ("transient_peak", "transient_peak_k") and m.get("transient_peak_is_lower_bound"):
        # the powers stopped short of the peak: sup_k ||A^k|| >= K >= kreiss_lower may say more
        k_lo = m.get("kreiss_lower")
        low = m.get("transient_peak_lower", m.get("transient_peak"))  # each norm less its band
        from_k = isinstance(k_lo, float) and isinstance(low, float) and k_lo > low
        if key == "transient_peak_k":
            return "-" if from_k else str(v)
        return "≥" + fmt_bound(k_lo if from_k else low, digits, up=False)
    if key == "transient_peak":  # the digits rounding leaves (strongly non-normal powers)
        return fmt_with_error(v, m.get("transient_peak_error"), digits)
    return fmt(v, digits) if digits else fmt(v)


def _unreliable_rho_eps(m: dict, key: str, v) -> str:
    """A criss-cross rho_eps it flags unreliable, to the digits its a-priori bracket settles.

    ``rho + eps <= rho_eps <= min(rho + eps kappa(V), ||A||_2 + eps)`` (every eigenvalue's
    eps-disc lies in the pseudospectrum, which Bauer-Fike keeps within eps kappa(V) of the
    spectrum): a normal matrix is settled to all its digits at any eps; where the bracket
    settles none, ``~`` and one digit.
    """
    rho, kap, nrm = m.get("spectral_radius"), m.get("kappa_eigvec"), m.get("norm_2")
    if not (isinstance(v, float) and all(isinstance(t, float) for t in (rho, nrm))):
        return "~" + fmt(v, 1)
    eps = float(key)
    lo = rho + eps
    hi = nrm + eps
    if isinstance(kap, float) and math.isfinite(kap):
        hi = min(hi, rho + eps * kap)
    shown = fmt_bracketed(min(max(v, lo), hi), lo, hi)
    return "~" + fmt(v, 1) if shown.startswith("~") else shown


def _render_table(doc: dict) -> str:
    mats = doc["matrices"]
    eps_keys: list[str] = []
    for m in mats:
        for k in (m.get("pseudospectral_radius") or {}).keys():
            if k not in eps_keys:
                eps_keys.append(k)
    cols = list(COLUMNS)
    header = ["id", *(c[0] for c in cols)]
    header += [f"rho_eps({k})" for k in eps_keys]
    robust = [c for c in ROBUST_COLUMNS if any(c[1] in m for m in mats)]
    header += [c[0] for c in robust] + ["verdict"]
    rows = []
    for m in mats:
        if not m["finite"]:
            rows.append(
                [m["id"], str(m["shape"][0])]
                + ["-"] * (len(header) - 3)
                + ["not analysed (NaN/Inf, or out of the float range)"]
            )
            continue
        row = [m["id"]] + [_cell(m, key, d) for _, key, d in cols]
        pr = m.get("pseudospectral_radius") or {}
        ok = m.get("pseudospectral_radius_reliable") or {}
        # near 1, with the digits that tell rho_eps from 1 (0.99997 is not "1.000" beside a stable
        # rho); where the criss-cross is not reliable (eps below 1e-9 ||A||_2), "~" and one digit
        row += [
            pr[k]
            if isinstance(pr.get(k), str)
            else (
                _unreliable_rho_eps(m, k, pr[k]) if ok.get(k) is False else fmt_rho(pr.get(k), RHO_EPS_ERROR)
            )
            for k in eps_keys
        ]
        row += [_cell(m, key, d) for _, key, d in robust]
        if m.get("marginal"):
            row.append("marginal (rho = 1)")
        else:
            err, rho = m.get("spectral_radius_error"), m.get("spectral_radius")
            if isinstance(err, float) and isinstance(rho, float) and err >= abs(rho - 1):
                # ill-conditioned eigenvalues: rounding may have carried rho across 1 either way
                row.append("not resolved (rho within rounding of 1)")
            else:
                verdict = "stable" if m["stable"] else "UNSTABLE (rho > 1)"
                if m.get("rho_within_storage_rounding"):
                    # bfloat16/float16 weights: rounding them may have carried rho across 1
                    verdict += f", within {m.get('dtype')} rounding of 1"
                row.append(verdict)
        rows.append(row)
    what = "recurrent matrix" if len(mats) == 1 else "recurrent matrices"
    lines = [f"{doc['source']}  ({doc['format']}, {len(mats)} {what})", ""]
    lines.append(table(rows, header))
    lines.append("")
    lines.append(
        "rho: spectral radius; dep_F: Henrici departure from normality (Schur); "
        "kappa(V): eigenvector condition number (inf: defective, or beyond 1/u)"
    )
    if any(c.startswith(("<", "≥")) for r in rows for c in r[1:]):
        lines.append(
            "<x: below the rounding level x (not resolved); ≥x: a lower bound (kappa(V) beyond what "
            "rounding resolves; powers stopped before the peak was proved; "
            "K not certified -- the cells gave up and n > 64: spectra kreiss --certify yes runs the "
            "circle level sets; "
            "rho = 1 to rounding: no upper bound is provable -- "
            "or beyond what double precision resolves)"
        )
    if any(c.startswith("~") for r in rows for c in r[1:]):
        lines.append(
            "~x: approximate, first digit only: rho_eps where the criss-cross is not reliable (eps "
            "below 1e-9 |A|_2, or it did not converge; --json: pseudospectral_radius_reliable) and "
            "rho + eps <= rho_eps <= rho + eps kappa(V) settles no digit, or a figure whose computed "
            "bracket settles none"
        )
    if eps_keys or robust:
        lines.append(
            "rho_eps: pseudospectral radius; d_inst: distance to instability min_|z|=1 sigma_min(zI-A) "
            "(0 when rho >= 1); K: Kreiss constant; peak/k*: max_k |A^k|_2 and where; w(A): numerical radius"
        )
    return "\n".join(lines)


def _render_csv(doc: dict, figures, epsilons) -> str:
    """One CSV row per matrix; the columns depend on the options only (`figures`, `epsilons`).

    A file whose matrices all hold NaN has the same header as any other (empty cells), so
    CSV files of several checkpoints can be joined.
    """
    keys = [
        "id",
        "layer",
        "direction",
        "gate",
        "native_gate",
        "cell",
        "n",
        "finite",
        "spectral_radius",
        "norm_2",
        "norm_fro",
        "henrici",
        "henrici_relative",
        "schur_nonnormal_fro",
        "kappa_eigvec",
        "stable",
        "marginal",
    ]
    from spectra.normality import FIGURE_KEYS, eps_label

    per_eps = ("pseudospectral_radius", "pseudospectral_radius_reliable")
    flags = "pseudospectra" in figures
    eps_keys = sorted(dict.fromkeys(eps_label(e) for e in epsilons), key=float) if flags else []
    # every scalar figure analyze computes (the pseudospectral radii have their own columns above)
    extra = [k for f in figures for k in FIGURE_KEYS.get(f, ()) if k not in per_eps]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    # columns added later go last, so readers by position keep working
    late = ["spectral_radius_error", "henrici_error"]
    w.writerow(
        keys
        + [f"pseudospectral_radius_{k}" for k in eps_keys]
        + extra
        + ([f"pseudospectral_radius_reliable_{k}" for k in eps_keys] if flags else [])
        + late
    )
    for m in doc["matrices"]:
        row = [m["shape"][0] if k == "n" else m.get(k) for k in keys]
        pr = m.get("pseudospectral_radius") or {}
        ok = m.get("pseudospectral_radius_reliable") or {}
        row += [pr.get(k) for k in eps_keys] + [m.get(k) for k in extra]
        row += ([ok.get(k) for k in eps_keys] if flags else []) + [m.get(k) for k in late]
        w.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    return buf.getvalue().rstrip("\n")


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=True, allow_dash=False, readable=False))
@matrix_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout (schema_version 1).")
@click.option("--csv", "as_csv", is_flag=True, help="One CSV row per matrix on stdout.")
@click.option(
    "--fast",
    is_flag=True,
    help="Only spectrum, norms and non-normality (skip pseudospectral and Kreiss figures).",
)
@click.option("--eps", callback=eps_list(None), metavar="LIST", help=EPS_HELP)
@click.option(
    "--plots",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Also write one pseudospectra figure per matrix (PNG) into DIR, named after its id "
    "(NAME.2.png where two ids give one name).",
)
@trust_option
@quiet_option
def analyze(checkpoint, matrices, as_json, as_csv, fast, eps, plots, trust, quiet):
    """Figures of every recurrent matrix in CHECKPOINT, one row per matrix.

    CHECKPOINT is a PyTorch file (state_dict, training checkpoint, TorchScript,
    legacy), .safetensors, a Keras .keras/.weights.h5/.h5 file, a .npy/.npz
    array file, or an HDF5 dataset given as FILE.h5:/path/to/dataset.

    Each matrix is the A of h_t = f(A h_{t-1} + B x_t + b), one per layer,
    direction and gate. Columns: spectral radius rho (stable when < 1;
    "marginal" when rho = 1 to rounding, e.g. an orthogonal matrix), 2-norm,
    Henrici departure from normality dep_F = ||N||_F of the Schur form
    A = Q (D + N) Q* (0 for a normal matrix; relative form in [0, 1]),
    eigenvector condition number, pseudospectral radius rho_eps (how far an
    eps-perturbation can push the eigenvalues), the distance to instability
    (the smallest perturbation that puts an eigenvalue on the unit circle), the
    Kreiss constant K and the peak of ||A^k||_2 (transient growth).

    \b
    Examples:
      spectra analyze model.pt
      spectra analyze model.keras --json > report.json
      spectra analyze model.pt --matrix 'lstm.weight_hh_l0[forget]' --fast
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv are exclusive")
    import spectra
    from spectra.normality import DEFAULT_EPSILONS, FIGURES

    if fast:
        warn_unused(["eps"], "with --fast (no pseudospectral radii are computed)")
    figures = ("basic",) if fast else FIGURES
    eps = eps or DEFAULT_EPSILONS
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ckpt = load_one(checkpoint, trust)
        report = spectra.analyze(
            ckpt,
            matrices=matrices or None,
            figures=figures,
            epsilons=eps,
            progress=progress_bar("analyze (figures)", quiet or as_json or as_csv),
        )
    for w in report.warnings:
        warn(w)
    doc = report.to_dict()
    if as_json:
        echo_json(doc)
    elif as_csv:
        click.echo(_render_csv(doc, figures, eps))
    else:
        click.echo(_render_table(doc))
    if plots:
        _write_plots(checkpoint, ckpt, report, plots, quiet)


def _write_plots(checkpoint: str, ckpt, report, directory: str, quiet: bool) -> None:
    use_agg()
    import matplotlib.pyplot as plt

    import spectra
    from spectra.plot.pseudospectra import save_figure

    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        from spectra.errors import WriteError

        why = exc.strerror or exc
        raise WriteError(f"--plots {directory}: the folder could not be created ({why})") from None
    drawn = [m for m in report.matrices if m.finite]
    names = plot_names([m.id for m in drawn])
    todo = [(m, os.path.join(directory, names[m.id])) for m in drawn]
    for _, path in todo:  # said before the first grid is computed
        refuse_input(path, [checkpoint])
    owner = {name.casefold(): mid for mid, name in names.items()}
    for m, path in todo:
        plain = _safe_name(m.id) + ".png"
        if names[m.id] != plain:  # said even with -q: the name does not say which matrix it is
            warn(f"{m.id}: figure written as {path} ({plain} is {owner[plain.casefold()]}'s)")
        grid = spectra.pseudospectra(ckpt[m.id].matrix, matrix_id=m.id)
        # as `spectra pseudospectra` draws one matrix: same size, title and resolution
        fig, ax = plt.subplots(figsize=(5.5, 4.8))
        grid.plot(ax=ax)
        fig.suptitle(os.path.basename(os.path.normpath(checkpoint)))  # which file drew it
        try:
            save_figure(fig, path)
        finally:
            plt.close(fig)
        if not quiet:
            click.echo(f"wrote {path} ({m.id})", err=True)


def _safe_name(matrix_id: str) -> str:
    """`matrix_id` as a file name: characters other than letters, digits and ``._-`` as ``_``."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in matrix_id).strip("_")
    return safe or "matrix"


def plot_names(ids: list[str]) -> dict[str, str]:
    """One distinct ``.png`` file name per matrix id, for ``analyze --plots``.

    Ids become :func:`_safe_name`; where two give the same name (``enc/lstm`` and
    ``enc_lstm``, or names that differ only in case, one file on a case-insensitive file
    system), an id that needed no change keeps the plain name and the others get ``.2``,
    ``.3``, ... before ``.png``.
    """
    taken: set[str] = set()
    out: dict[str, str] = {}
    # ids that are already file names first: they keep their own name
    for mid in sorted(ids, key=lambda i: _safe_name(i) != i):
        stem = _safe_name(mid)
        name, k = f"{stem}.png", 1
        while name.casefold() in taken:
            k += 1
            name = f"{stem}.{k}.png"
        taken.add(name.casefold())
        out[mid] = name
    return out


@click.command(name="ls")
@click.argument("checkpoint", type=click.Path(dir_okay=True, readable=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@trust_option
@click.option("--quiet", "-q", is_flag=True, help="Accepted as in the other commands (ls shows no progress).")
def ls(checkpoint, as_json, trust, quiet):
    """List what CHECKPOINT holds: its format, every recurrent matrix, and what was skipped and why.

    A file without any recurrent matrix is listed all the same (every entry
    skipped, with its reason), then the error says so (exit code 5).

    \b
    Example:
      spectra ls model.pt
    """
    from spectra.errors import NoRecurrentWeightsError

    try:
        ckpt = load_one(checkpoint, trust)
    except NoRecurrentWeightsError as exc:
        if exc.checkpoint is None:
            raise
        # what the file holds, so that the tensor names can be found; the error (exit 5) follows
        _echo_listing(exc.checkpoint, as_json)
        raise
    _echo_listing(ckpt, as_json)


def _echo_listing(ckpt, as_json: bool) -> None:
    """``spectra ls``'s output for `ckpt`: JSON, or the matrices and the skipped entries as tables."""
    if as_json:
        echo_json(
            {
                "schema_version": 1,
                "source": ckpt.path,
                "format": ckpt.format,
                "matrices": [
                    {
                        "id": m.id,
                        "layer": m.layer,
                        "layer_index": m.layer_index,
                        "direction": m.direction,
                        "cell": m.cell,
                        "gate": m.gate,
                        "native_gate": m.native_gate,
                        "shape": list(m.matrix.shape),
                        "source": m.source,
                        "block": list(m.block) if m.block else None,
                        "transposed": m.transposed,
                        "dtype": m.dtype,
                        "finite": m.finite,
                        "spectral_norm": m.spectral_norm,
                        "notes": list(m.notes),
                    }
                    for m in ckpt.matrices
                ],
                "skipped": [
                    {"name": s.name, "shape": list(s.shape) if s.shape else None, "reason": s.reason}
                    for s in ckpt.skipped
                ],
            }
        )
        return
    click.echo(f"{ckpt.path}: {ckpt.format}")
    click.echo("")
    click.echo(f"recurrent matrices ({len(ckpt.matrices)}){':' if ckpt.matrices else ''}")
    rows = []
    for m in ckpt.matrices:
        gate = f"{m.gate} ({m.native_gate})" if m.gate else "-"
        flags = []
        if not m.finite:
            flags.append("NaN/Inf")
        if m.spectral_norm:
            flags.append("spectral_norm")
        flags.extend(m.notes)
        rows.append([m.id, f"{m.n}x{m.n}", m.cell, m.direction, gate, m.source, m.dtype, "; ".join(flags)])
    if rows:
        click.echo(
            table(
                rows,
                ["id", "shape", "cell", "direction", "gate", "source tensor", "dtype", "notes"],
                right=[False] * 8,
            )
        )
    click.echo("")
    click.echo(f"skipped ({len(ckpt.skipped)}):")
    if ckpt.skipped:
        srows = [[s.name, "x".join(map(str, s.shape)) if s.shape else "-", s.reason] for s in ckpt.skipped]
        click.echo(table(srows, ["name", "shape", "reason"], right=[False] * 3))


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=True, readable=False))
@binary_output_option("Output .npz file.")
@matrix_option
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@trust_option
@quiet_write_option
def extract(checkpoint, output, matrices, force, trust, quiet):
    """Write every recurrent matrix of CHECKPOINT to an .npz file, keyed by id.

    Matrices are float64 (complex128 when complex) in the column-vector orientation of
    h_t = f(A h_{t-1} + B x_t + b) (one per gate), so np.load(OUTPUT)[id] is A.

    \b
    Example:
      spectra extract model.keras -o mats.npz
      python -c "import numpy as np; print(np.load('mats.npz').files)"
    """
    import numpy as np

    import spectra
    from spectra._atomic import atomic_write
    from spectra.writeback import check_output

    ckpt = spectra.load(checkpoint, trust=trust)
    chosen = ckpt.select(list(matrices) or None)
    refuse_input(output, [checkpoint])
    refuse_existing(output, force)
    check_output(checkpoint, output, force=force)

    def write(tmp: str) -> None:
        # complex matrices stay complex (a cast to float64 dropped their imaginary parts)
        arrays = {
            m.id: np.asarray(m.matrix, dtype=np.complex128 if np.iscomplexobj(m.matrix) else np.float64)
            for m in chosen
        }
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(output, write, force=force)
    if not quiet:
        click.echo(f"wrote {plural(len(chosen), 'matrix', 'matrices')} to {output}", err=True)
