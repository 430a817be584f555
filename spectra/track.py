"""Follow the figures of every recurrent matrix across the checkpoints of training runs: :func:`track`.

A *run* is a folder of checkpoints (``epoch_001.pt``, ``epoch_002.pt``, ...
as :mod:`spectra.train` writes them, or any files :func:`spectra.load`
reads; a folder without any is searched below for them, such as
``lightning_logs/version_0/checkpoints``). :func:`discover` finds them from
folders and globs and orders each run by the ``epoch`` of the JSON sidecar
beside each file (``epoch_003.json``), else by a natural sort of the names.
:func:`track` analyses every file (:func:`analyze_checkpoint`; in parallel
through :func:`spectra.parallel.run_tasks`), takes the ``epoch`` a checkpoint
itself stores (Lightning's ``.ckpt``) where no sidecar gives one, ordering
again by it, and returns a :class:`TrackResult` with one row per checkpoint
and matrix.

Figures per matrix (DESIGN.md, Mathematics): spectral radius, ``‖A‖₂``,
Henrici ``dep_F`` and ``dep_F/‖A‖_F``, ``κ(V)`` (always); the distance to
instability, the Kreiss constant, the transient peak ``max_k ‖A^k‖₂`` and
the numerical radius (unless ``fast``); with ``grid_npts`` a pseudospectra
grid (:func:`spectra.pseudospectra`), summarised by the smallest
``σ_min(zI − A)`` at grid points with ``|z| ≥ 1`` (an upper bound on the
distance to instability of a stable matrix, since the minimum over
``|z| ≥ 1`` lies on the circle).

**Cache.** Each file's figures are stored as one JSON file named by the
sha256 of (file content hash, file name, options, package version, hash of
the package's source), in
:func:`default_cache_dir` (``$SPECTRA_CACHE_DIR``, else
``$XDG_CACHE_HOME/rnn-spectra/track``, else ``~/.cache/rnn-spectra/track``)
or the folder given. Keyed by content and name, the cache survives moves to
other folders and copies under the same name; a new version of the code (or a
renamed array file, whose matrix id is its name) computes afresh. It never
writes into the run folders (which may be read-only); an entry that does not
hold what track reads is treated as missing. Re-running on
a grown run analyses only the new or changed files. Failures are not cached.

Plotting lives in :mod:`spectra.plot.track`; the executors in :mod:`spectra.parallel`.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spectra._json import jsonable
from spectra._validate import as_square_matrix, magnitude_problem
from spectra.errors import InvalidArgumentError, UnsupportedFormatError

__all__ = [
    "CHECKPOINT_EXTENSIONS",
    "IDENTITY_KEYS",
    "ROW_KEYS",
    "SCHEMA_VERSION",
    "SEARCH_DEPTH",
    "CheckpointFile",
    "TrackOptions",
    "TrackResult",
    "TrackedFile",
    "analyze_checkpoint",
    "default_cache_dir",
    "discover",
    "track",
]

#: Version of the ``spectra track --json`` document and of the cache entries.
SCHEMA_VERSION = 1

#: File extensions taken from a run folder (a file named explicitly is read whatever its name).
CHECKPOINT_EXTENSIONS: tuple[str, ...] = (
    ".pt",
    ".pth",
    ".bin",
    ".ckpt",
    ".safetensors",
    ".keras",
    ".h5",
    ".hdf5",
    ".npz",
    ".npy",
)

#: Names in a run folder that are not checkpoints of an epoch (optimiser/resume state).
_SKIP_STEMS = ("resume", "optimizer", "optim")

#: How many folder levels below a folder without checkpoints are searched for run folders
#: (``lightning_logs/version_0/checkpoints`` is two below ``lightning_logs``).
SEARCH_DEPTH = 4

#: Columns of :meth:`TrackResult.to_csv`, in order (also the keys of every row).
ROW_KEYS: tuple[str, ...] = (
    "run",
    "regime",
    "file",
    "epoch",
    "step",
    "matrix",
    "layer",
    "direction",
    "gate",
    "n",
    "finite",
    "spectral_radius",
    "norm_2",
    "henrici",
    "henrici_relative",
    "kappa_eigvec",
    "stable",
    "distance_to_instability",
    "kreiss",
    "transient_peak",
    "transient_peak_k",
    "numerical_radius",
    "grid_npts",
    "grid_distance_upper",
)

_BASIC = ("spectral_radius", "norm_2", "henrici", "henrici_relative", "kappa_eigvec", "stable")
_ROBUST = ("distance_to_instability", "kreiss", "transient_peak", "transient_peak_k", "numerical_radius")


@dataclass(frozen=True)
class TrackOptions:
    """What is computed per matrix (part of the cache key).

    Attributes
    ----------
    fast : bool
        Only spectrum, norms and departure from normality.
    grid_npts : int or None
        Also a pseudospectra grid of this many points along its longer side.
    trust : bool
        Let :func:`spectra.load` run pickled code (see its `trust`).
    """

    fast: bool = False
    grid_npts: int | None = None
    trust: bool = False


@dataclass
class CheckpointFile:
    """One checkpoint found by :func:`discover`.

    Attributes
    ----------
    path : str
        The file.
    run : str
        Its run: the folder, as given (normalised).
    regime : str
        ``regime`` of its sidecar, else the run folder's name (for a folder found
        below one given, its path from there: ``version_0/checkpoints``).
    epoch : int or None
        ``epoch`` of its sidecar (after :func:`track`, else the ``epoch`` the
        checkpoint itself stores, as Lightning's ``.ckpt`` do).
    step : int
        1-based position in its run's order.
    """

    path: str
    run: str
    regime: str
    epoch: int | None
    step: int


@dataclass
class TrackedFile(CheckpointFile):
    """A :class:`CheckpointFile` after :func:`track`.

    Attributes
    ----------
    sha256 : str or None
        Hash of the content (None when unreadable).
    cached : bool
        Figures read from the cache (nothing computed).
    format : str or None
        Format detected by :func:`spectra.load`.
    load_seconds, analysis_seconds, analysis_cpu_seconds : float
        Wall time to read the matrices and to compute their figures, and the
        CPU time of the latter, where it ran (for a cached file: as stored).
    error_type, error : str or None
        Exception class and one-line message when the file failed.
    """

    sha256: str | None = None
    cached: bool = False
    format: str | None = None
    load_seconds: float = 0.0
    analysis_seconds: float = 0.0
    analysis_cpu_seconds: float = 0.0
    error_type: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the file was analysed (now or from the cache)."""
        return self.error_type is None


# -- discovery -----------------------------------------------------------------


def _natural_key(name: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t]


def _is_checkpoint_name(name: str) -> bool:
    if name.startswith(".") or name.endswith(".tmp"):
        return False
    if name.split(".", 1)[0].lower() in _SKIP_STEMS:
        return False
    return name.lower().endswith(CHECKPOINT_EXTENSIONS)


def _sidecar(path: str) -> dict:
    """The JSON metadata beside `path` (``x.json`` for ``x.pt`` or ``x.weights.h5``), or {}."""
    p = Path(path)
    # x.json for x.weights.h5 (an extension of two parts), but not model.json for model.e1.pt:
    # that sidecar would be shared by every dotted name beside it
    two = [e for e in (".weights.h5",) if p.name.lower().endswith(e)]
    stems = [p.with_suffix(".json")] + [p.with_name(p.name[: -len(e)] + ".json") for e in two]
    for cand in stems:
        if cand != p and cand.is_file():
            try:
                meta = json.loads(cand.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(meta, dict):
                return meta
    return {}


def _order_key(path: str, epoch: int | None) -> tuple:
    """Files with an epoch by epoch first, then the others in natural name order."""
    return (epoch is None, epoch or 0, _natural_key(os.path.basename(path)))


def _epoch(meta: dict) -> int | None:
    e = meta.get("epoch")
    return e if isinstance(e, int) and not isinstance(e, bool) else None


def _runs_below(folder: str, notes: list[str]) -> list[tuple[str, list[str]]]:
    """The folders below `folder` (at most :data:`SEARCH_DEPTH` levels) holding checkpoints, with them.

    Depth first, sub-folders in natural name order; a folder holding checkpoints is not
    searched further, hidden folders never. A sub-folder that cannot be listed is skipped,
    with a note.
    """
    out: list[tuple[str, list[str]]] = []
    visited = {os.path.realpath(folder)}

    def walk(here: str, depth: int) -> None:
        try:
            names = sorted(os.listdir(here), key=_natural_key)
        except OSError as exc:
            notes.append(f"{here}: cannot list ({exc.strerror or exc}): not searched")
            return
        # real folders first: a link (Lightning's or wandb's 'latest' -> version_1) named before
        # its target would otherwise give the run the link's name and hide the target
        names = [d for d in names if not os.path.islink(os.path.join(here, d))] + [
            d for d in names if os.path.islink(os.path.join(here, d))
        ]
        for d in names:
            sub = os.path.join(here, d)
            if d.startswith(".") or not os.path.isdir(sub) or os.path.realpath(sub) in visited:
                continue
            visited.add(os.path.realpath(sub))  # a link back up is not followed twice
            try:
                files = _checkpoints_in(sub)
            except InvalidArgumentError as exc:
                notes.append(f"{exc}: not searched")
                continue
            if files:
                out.append((sub, files))
            elif depth < SEARCH_DEPTH:
                walk(sub, depth + 1)

    walk(folder, 1)
    return out


def _checkpoints_in(folder: str) -> list[str]:
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise InvalidArgumentError(f"{folder}: cannot list ({exc.strerror or exc})") from None
    return [
        os.path.join(folder, n)
        for n in names
        if _is_checkpoint_name(n) and os.path.isfile(os.path.join(folder, n))
    ]


#: Sidecar facts that identify one model's trajectory: a folder whose checkpoints disagree on
#: any of them holds several models, tracked as one run each.
IDENTITY_KEYS: tuple[str, ...] = ("task", "cell", "regime", "hidden", "layers", "seed")


def _identity(meta: dict) -> tuple | None:
    """The :data:`IDENTITY_KEYS` of a sidecar (None where it says nothing); None without one."""
    if not meta:
        return None
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    values = {
        "task": meta.get("task", config.get("task")),
        "cell": meta.get("cell", model.get("cell")),
        "regime": meta.get("regime"),
        "hidden": model.get("hidden", meta.get("hidden")),
        "layers": model.get("layers", config.get("layers")),
        "seed": meta.get("seed"),
    }
    return tuple(v if isinstance(v, (str, int, float)) else None for v in (values[k] for k in IDENTITY_KEYS))


def _split_by_model(
    run: str, paths: list[str], metas: dict[str, dict]
) -> tuple[dict[str, list[str]], str | None]:
    """Split one folder's files into one run per model identity; return ``({label: paths}, warning)``.

    Files whose sidecars agree on :data:`IDENTITY_KEYS` (files without one beside a single
    model, or all without one, included) stay one run, labelled `run`. Otherwise each group is
    labelled ``run [cell=lstm, regime=stable]`` with the keys that differ (``run [no sidecar]``
    for files without one), and a warning names them.
    """
    ids = {p: _identity(metas[p]) for p in paths}
    distinct = list(dict.fromkeys(ids.values()))
    if len(distinct) <= 1:
        return {run: paths}, None
    known = [i for i in distinct if i is not None]
    if len(known) <= 1:
        # one model, some files without a sidecar (a run stopped between an epoch's checkpoint
        # and its sidecar, or files added by hand): one run, as before the split existed
        return {run: paths}, None
    differ = [j for j in range(len(IDENTITY_KEYS)) if len({i[j] for i in known}) > 1]

    def label(i: tuple | None) -> str:
        if i is None:
            return f"{run} [no sidecar]"
        return f"{run} [{', '.join(f'{IDENTITY_KEYS[j]}={i[j]}' for j in differ)}]"

    groups: dict[str, list[str]] = {}
    for p in paths:
        groups.setdefault(label(ids[p]), []).append(p)
    what = [
        f"{IDENTITY_KEYS[j]} {'/'.join(str(v) for v in dict.fromkeys(i[j] for i in known))}" for j in differ
    ]
    nside = sum(1 for p in paths if ids[p] is None)
    if nside:
        what.append(f"{nside} file(s) without a sidecar")
    warning = (
        f"{run}: its checkpoints are of different models ({'; '.join(what)}): tracked as "
        f"{len(groups)} separate runs, not one training trajectory"
    )
    return groups, warning


def discover(inputs: Sequence[str | os.PathLike]) -> list[CheckpointFile]:
    """Find the checkpoints of one or several runs and order each run.

    A folder whose checkpoints' sidecars disagree on the model (:data:`IDENTITY_KEYS`:
    task, cell, regime, hidden size, layers, seed) is split into one run per model (files
    without a sidecar form a group of their own only beside two or more models), labelled
    ``FOLDER [cell=lstm, regime=stable]``, with a
    :class:`UserWarning` (:func:`track` lists it in ``TrackResult.warnings`` instead).

    Parameters
    ----------
    inputs : sequence of path or glob pattern
        A run folder (its checkpoint files; when it holds none, each folder below
        it that does, down to :data:`SEARCH_DEPTH` levels and not inside hidden
        folders, is a run, such as ``lightning_logs/version_0/checkpoints``), a
        glob (``runs/*/epoch_*.pt``, ``runs/**``;
        matched files are grouped by folder) or one file. Folders contribute
        files with a :data:`CHECKPOINT_EXTENSIONS` extension, skipping hidden
        and temporary files and ``resume.pt``; JSON sidecars are metadata.

    Returns
    -------
    list of CheckpointFile
        Runs in the order first named; inside a run, files with a sidecar
        ``epoch`` by epoch first, then the others in natural name order
        (``ckpt_2`` before ``ckpt_10``). A file named twice is kept once.

    Raises
    ------
    UnsupportedFormatError
        An input that does not exist (as :func:`spectra.load` says of a missing file).
    InvalidArgumentError
        A glob that matches nothing, a folder with no checkpoint, or no
        checkpoint at all.
    """
    import warnings

    found, notes = _discover(inputs)
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    return found


def _discover(inputs: Sequence[str | os.PathLike]) -> tuple[list[CheckpointFile], list[str]]:
    """:func:`discover`, returning its warnings instead of emitting them."""
    runs: dict[str, list[str]] = {}
    seen: set[str] = set()
    notes: list[str] = []
    #: default regime of a run folder found below a folder given: its path from there
    below: dict[str, str] = {}

    def add(run: str, path: str) -> None:
        real = os.path.realpath(path)
        if real in seen:
            return
        seen.add(real)
        runs.setdefault(os.path.normpath(run), []).append(path)

    def add_folder(folder: str, *, strict: bool) -> None:
        files = _checkpoints_in(folder)
        if files:
            for f in files:
                add(folder, f)
            return
        found = _runs_below(folder, notes)
        for sub, files in found:
            below.setdefault(os.path.normpath(sub), os.path.relpath(sub, folder).replace(os.sep, "/"))
            for f in files:
                add(sub, f)
        if not found and strict:
            raise InvalidArgumentError(
                f"{folder}: no checkpoint files in this folder or in its sub-folders down to "
                f"{SEARCH_DEPTH} levels, hidden ones aside (looked for {', '.join(CHECKPOINT_EXTENSIONS)})"
            )

    for inp in inputs:
        s = os.fspath(inp)
        if glob.has_magic(s) and not os.path.exists(s):
            matches = sorted(glob.glob(s, recursive=True), key=_natural_key)
            if not matches:
                raise InvalidArgumentError(f"{s}: the pattern matches no file")
            for m in matches:
                if os.path.isdir(m):
                    add_folder(m, strict=False)
                elif _is_checkpoint_name(os.path.basename(m)):
                    add(os.path.dirname(m) or ".", m)
        elif os.path.isdir(s):
            add_folder(s, strict=True)
        elif os.path.isfile(s):
            add(os.path.dirname(s) or ".", s)
        else:
            # as spectra.load says of a missing file (exit code 3 on the command line)
            raise UnsupportedFormatError(f"{s}: no such file or folder")
    out: list[CheckpointFile] = []
    for folder, all_paths in runs.items():
        metas = {p: _sidecar(p) for p in all_paths}
        epochs = {p: _epoch(metas[p]) for p in all_paths}
        default_regime = below.get(folder) or os.path.basename(os.path.abspath(folder)) or folder
        groups, note = _split_by_model(folder, all_paths, metas)
        if note:
            notes.append(note)
        for run, paths in groups.items():
            order = sorted(paths, key=lambda p: _order_key(p, epochs[p]))
            # a file without a sidecar beside one model takes that model's regime (with the folder's
            # name it was drawn as a regime of its own)
            said = {r for p in paths if isinstance(r := metas[p].get("regime"), str) and r}
            run_regime = next(iter(said)) if len(said) == 1 else default_regime
            for step, p in enumerate(order, start=1):
                regime = metas[p].get("regime")
                out.append(
                    CheckpointFile(
                        path=p,
                        run=run,
                        regime=regime if isinstance(regime, str) and regime else run_regime,
                        epoch=epochs[p],
                        step=step,
                    )
                )
    if not out:
        raise InvalidArgumentError(
            f"no checkpoint found in {', '.join(map(os.fspath, inputs)) or '(nothing)'}"
        )
    return out, notes


# -- analysis of one file (runs in the workers) ---------------------------------


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _grid_distance_upper(a, npts: int) -> float:
    """Smallest σ_min(zI − A) over the points of a pseudospectra grid with ``|z| ≥ 1`` (inf if none)."""
    import numpy as np

    from spectra.pseudospectra import auto_bounds, pseudospectra

    # the unit box always: the bound needs grid points with |z| >= 1, even for a matrix of tiny norm
    g = pseudospectra(a, npts=npts, bounds=auto_bounds(a, unit_box=True))
    outside = np.abs(g.z) >= 1.0
    return float(g.sigma_min[outside].min()) if outside.any() else math.inf


def analyze_checkpoint(
    path: str | os.PathLike, *, fast: bool = False, grid_npts: int | None = None, trust: bool = False
) -> dict[str, Any]:
    """Figures of every recurrent matrix of one checkpoint, as plain Python data.

    Parameters
    ----------
    path : path
        Any file :func:`spectra.load` reads.
    fast, grid_npts, trust
        As in :class:`TrackOptions`.

    Returns
    -------
    dict
        ``sha256`` (of the bytes read), ``format``, ``load_seconds``,
        ``analysis_seconds`` (wall) and ``analysis_cpu_seconds`` (CPU time of
        this process: below the wall time when the cores are shared), ``epoch``
        (the integer ``epoch`` the checkpoint itself stores, as Lightning's
        ``.ckpt`` and many training loops' dicts do; None without one), and
        ``matrices``: one dict per matrix with ``id``, ``layer``, ``direction``,
        ``gate``, ``n``, ``finite`` and the figures (None for a matrix with
        NaN/Inf weights).

    Raises
    ------
    SpectraError
        Whatever :func:`spectra.load` raises for the file.
    """
    import numpy as np

    from spectra.crisscross import distance_to_instability
    from spectra.load import load
    from spectra.normality import analyze_matrix, robustness_figures

    sha = file_sha256(path)
    t0 = time.perf_counter()
    ckpt = load(path, trust=trust)
    t1, c1 = time.perf_counter(), time.process_time()
    mats = []
    for m in ckpt.matrices:
        # complex matrices (arrays from .npz) keep their imaginary part
        a = as_square_matrix(m.matrix, allow_nonfinite=True)
        d: dict[str, Any] = {
            "id": m.id,
            "layer": m.layer,
            "direction": m.direction,
            "gate": m.gate,
            "n": int(a.shape[0]),
            # out of double precision's range here counts as not finite: listed, not analysed
            "finite": bool(m.finite and np.all(np.isfinite(a)) and magnitude_problem(a) is None),
        }
        if d["finite"]:
            r = analyze_matrix(a, id=m.id, stored_dtype=m.dtype)
            d.update({k: getattr(r, k) for k in _BASIC})
            if not fast:
                d["distance_to_instability"] = float(distance_to_instability(a).value)
                d.update(robustness_figures(a, (), {"kreiss"}, m.dtype))
            if grid_npts is not None:
                d["grid_npts"] = int(grid_npts)
                d["grid_distance_upper"] = _grid_distance_upper(a, grid_npts)
        mats.append({k: (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()})
    t2, c2 = time.perf_counter(), time.process_time()
    return {
        "sha256": sha,
        "format": ckpt.format,
        "epoch": _epoch(ckpt.metadata),
        "load_seconds": t1 - t0,
        "analysis_seconds": t2 - t1,
        "analysis_cpu_seconds": c2 - c1,
        "matrices": mats,
    }


def _analyze_task(args: tuple[str, TrackOptions]) -> dict[str, Any]:
    """Worker entry point of :func:`track` (module level, so it pickles)."""
    path, opts = args
    return analyze_checkpoint(path, fast=opts.fast, grid_npts=opts.grid_npts, trust=opts.trust)


# -- cache ----------------------------------------------------------------------


def default_cache_dir() -> Path:
    """The cache folder of :func:`track`.

    ``$SPECTRA_CACHE_DIR``, else ``$XDG_CACHE_HOME/rnn-spectra/track``, else
    ``~/.cache/rnn-spectra/track``.
    """
    env = os.environ.get("SPECTRA_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnn-spectra" / "track"


_CODE: list[str] = []


def code_fingerprint() -> str:
    """SHA-256 of the source that computes the figures (``spectra`` but plot/ and train/), once per process.

    Part of every cache key: a change of the code that computes the figures invalidates what
    it cached (``__version__`` alone stayed ``0.1.0`` across changes that moved numbers).
    """
    if not _CODE:
        root = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for f in sorted(root.rglob("*.py")):
            if f.relative_to(root).parts[0] in ("plot", "train"):  # they compute no figure
                continue
            h.update(f.relative_to(root).as_posix().encode() + b"\0")
            h.update(f.read_bytes() + b"\0")
        _CODE.append(h.hexdigest())
    return _CODE[0]


def cache_key(sha256: str, options: TrackOptions, name: str = "") -> str:
    """Name of the cache entry of a file with content hash `sha256` analysed with `options`.

    The key also holds the file's `name` (an array file's matrix id is its name) and
    :func:`code_fingerprint`.
    """
    import spectra

    doc = {
        "schema": SCHEMA_VERSION,
        "sha256": sha256,
        "options": asdict(options),
        "version": spectra.__version__,
        "code": code_fingerprint(),
        "name": os.path.basename(name),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _usable(value: dict) -> bool:
    """Whether a cached value has the shape :func:`track` reads (a hand-edited entry may not)."""
    try:
        return (
            isinstance(value["format"], str)
            and all(isinstance(value[k], (int, float)) for k in ("load_seconds", "analysis_seconds"))
            and isinstance(value["matrices"], list)
            and all(isinstance(m, dict) and isinstance(m["id"], str) for m in value["matrices"])
        )
    except (KeyError, TypeError):
        return False


class _Cache:
    """JSON files ``<dir>/<key[:2]>/<key>.json``, written atomically."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            doc = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("key") != key or not isinstance(doc.get("value"), dict):
            return None
        return doc["value"] if _usable(doc["value"]) else None

    def put(self, key: str, value: dict) -> None:
        """Store `value`; raises OSError when the folder is not writable."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".entry-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"key": key, "value": value}, f)  # Infinity/NaN round-trip in Python
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


# -- the result -------------------------------------------------------------------


@dataclass(eq=False)
class TrackResult:
    """Figures per checkpoint and matrix for one or several runs.

    Attributes
    ----------
    files : list of TrackedFile
        Every checkpoint, in run order, with its status.
    rows : list of dict
        One per (checkpoint, matrix) of the analysed files, keyed by :data:`ROW_KEYS`.
    options : TrackOptions
    warnings : list of str
        E.g. a cache that could not be written.
    """

    files: list[TrackedFile]
    rows: list[dict[str, Any]]
    options: TrackOptions
    warnings: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[TrackedFile]:
        """The files that could not be analysed."""
        return [f for f in self.files if not f.ok]

    @property
    def runs(self) -> list[str]:
        """Run labels in order."""
        return list(dict.fromkeys(f.run for f in self.files))

    def to_json(self) -> dict[str, Any]:
        """The ``spectra track --json`` document (inf spelled ``"inf"``)."""
        import spectra

        files = []
        for f in self.files:
            d = asdict(f)
            d["file"] = d.pop("path")
            files.append(d)
        return jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "version": spectra.__version__,
                "options": asdict(self.options),
                "files": files,
                "rows": self.rows,
                "warnings": list(self.warnings),
            }
        )

    def to_csv(self) -> str:
        """One line per row, columns :data:`ROW_KEYS` (empty for a figure not computed)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(ROW_KEYS)
        for r in self.rows:
            w.writerow(
                [
                    "" if r.get(k) is None else (repr(r[k]) if isinstance(r[k], float) else r[k])
                    for k in ROW_KEYS
                ]
            )
        return buf.getvalue()

    def plot(self, **kwargs):
        """Draw the figures against epoch: :func:`spectra.plot.track.plot_track`."""
        from spectra.plot.track import plot_track

        return plot_track(self, **kwargs)


def _rows(f: CheckpointFile, value: dict) -> list[dict[str, Any]]:
    out = []
    for m in value["matrices"]:
        row = {k: None for k in ROW_KEYS}
        row.update(run=f.run, regime=f.regime, file=f.path, epoch=f.epoch, step=f.step, matrix=m["id"])
        row.update({k: v for k, v in m.items() if k in ROW_KEYS and k != "id"})
        out.append(row)
    return out


def _take_stored_epochs(files: list[TrackedFile], values: dict[int, dict]) -> list[int]:
    """Give a file without a sidecar epoch the one its checkpoint stores; return the new order.

    A run whose files gained an epoch is ordered again as :func:`discover` orders (by epoch,
    then by name), its steps renumbered; the order of the runs is kept.
    """
    gained: set[str] = set()
    for i, f in enumerate(files):
        stored = _epoch(values.get(i) or {})
        if f.epoch is None and stored is not None:
            f.epoch = stored
            gained.add(f.run)
    by_run: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        by_run.setdefault(f.run, []).append(i)
    order: list[int] = []
    for run, idx in by_run.items():
        if run in gained:
            idx = sorted(idx, key=lambda i: _order_key(files[i].path, files[i].epoch))
            for step, i in enumerate(idx, start=1):
                files[i].step = step
        order.extend(idx)
    return order


def _same_epoch_notes(files: list[TrackedFile]) -> list[str]:
    """One note per run where several files give the same epoch.

    Lightning's last.ckpt beside epoch=N.ckpt: different weights drawn at one epoch.
    """
    seen: dict[tuple[str, int], list[str]] = {}
    for f in files:
        if f.epoch is not None:
            seen.setdefault((f.run, f.epoch), []).append(os.path.basename(f.path))
    return [
        f"{run}: epoch {ep} is given by {len(names)} files ({', '.join(names)}); each is tracked "
        "as its own point at that epoch"
        for (run, ep), names in seen.items()
        if len(names) > 1
    ]


def track(
    inputs: Sequence[str | os.PathLike],
    *,
    fast: bool = False,
    grid_npts: int | None = None,
    trust: bool = False,
    jobs: int | None = None,
    scheduler: Any = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress=None,
) -> TrackResult:
    """Analyse every checkpoint of one or several training runs.

    Parameters
    ----------
    inputs : sequence of path or glob
        Run folders, globs or files (see :func:`discover`).
    fast : bool
        Only spectrum, norms and departure from normality (no distance to
        instability, Kreiss constant or transient peak).
    grid_npts : int, optional
        Also compute a pseudospectra grid of this many points per side for
        every matrix (its time counts in ``analysis_seconds``); reported as
        ``grid_distance_upper``.
    trust : bool
        Allow pickled code (see :func:`spectra.load`).
    jobs : int, optional
        Local worker processes (default: the usable cores; 1 = serial).
    scheduler : str or distributed.Client, optional
        Run on a Dask cluster instead (``"tcp://HOST:PORT"``); the workers
        must see the files at the same paths.
    cache : bool
        Read and write the result cache (module docstring).
    cache_dir : path, optional
        Cache folder (default :func:`default_cache_dir`).
    progress : callable, optional
        ``progress(done, total)`` over all files (cached ones count at once).

    Returns
    -------
    TrackResult
        A file that cannot be read or analysed is listed in ``failures``
        with its error and contributes no row; the others are unaffected.

    Raises
    ------
    InvalidArgumentError
        Bad inputs (see :func:`discover`), `grid_npts` below 2, bad `jobs`
        or an unreachable scheduler.
    """
    if grid_npts is not None and (
        isinstance(grid_npts, bool) or not isinstance(grid_npts, int) or grid_npts < 2
    ):
        raise InvalidArgumentError(
            f"grid_npts: {grid_npts!r}; expected an integer >= 2 (or None for no grid)"
        )
    from spectra.parallel import run_tasks

    opts = TrackOptions(fast=bool(fast), grid_npts=grid_npts, trust=bool(trust))
    found, notes = _discover(inputs)
    store = _Cache(cache_dir if cache_dir is not None else default_cache_dir()) if cache else None
    files = [TrackedFile(**asdict(f)) for f in found]
    values: dict[int, dict] = {}
    pending: list[int] = []
    for i, f in enumerate(files):
        try:
            f.sha256 = file_sha256(f.path)
        except OSError as exc:
            f.error_type, f.error = (
                "UnsupportedFormatError",
                f"{f.path}: cannot be read ({exc.strerror or exc})",
            )
            continue
        hit = store.get(cache_key(f.sha256, opts, f.path)) if store is not None else None
        if hit is not None:
            values[i], f.cached = hit, True
        else:
            pending.append(i)
    total = len(files)
    first = total - len(pending)
    if progress is not None and first:
        progress(first, total)
    outcomes = run_tasks(
        _analyze_task,
        [(os.path.abspath(files[i].path), opts) for i in pending],  # workers may have another cwd
        jobs=jobs,
        scheduler=scheduler,
        progress=None if progress is None else (lambda done, _n: progress(first + done, total)),
    )
    warnings: list[str] = list(notes)
    cache_failed = False
    for i, o in zip(pending, outcomes):
        f = files[i]
        if not o.ok:
            f.error_type, f.error = o.error_type, o.error
            continue
        values[i] = o.value
        if store is not None and o.value["sha256"] == f.sha256 and not cache_failed:
            try:
                store.put(cache_key(f.sha256, opts, f.path), o.value)
            except OSError as exc:
                cache_failed = True
                warnings.append(f"cache {store.dir}: not written ({exc.strerror or exc})")
    order = _take_stored_epochs(files, values)
    warnings.extend(_same_epoch_notes([files[i] for i in order]))
    rows: list[dict[str, Any]] = []
    for i in order:
        f, v = files[i], values.get(i)
        if v is None:
            continue
        f.format, f.load_seconds, f.analysis_seconds = v["format"], v["load_seconds"], v["analysis_seconds"]
        f.analysis_cpu_seconds = v.get("analysis_cpu_seconds", 0.0)
        rows.extend(_rows(f, v))
    return TrackResult(files=[files[i] for i in order], rows=rows, options=opts, warnings=warnings)
