"""Evaluating a whole study: a tree of reconstructions written the cookbook's way.

Layout (the cookbook's ``recon_icnn_image_*.py`` / ``recon_eval_image.py``)::

    <recon_dir>/<subject>/<roi>/recon_image-<label>.tiff   # decoded features
    <recon_dir>/recon_image-<label>.tiff                   # true features (no subject / ROI)
    <true_dir>/<label>.JPEG                                # the true (stimulus) images

For each subject x ROI, :func:`evaluate_study` computes the cookbook's metrics
(:data:`keras_icnn.evaluation.metrics.COOKBOOK_METRICS`, plus optional network-feature columns,
:mod:`keras_icnn.evaluation.feature_identification`) and writes, in ``output_dir`` (default:
``recon_dir``, where the cookbook writes its ``quality.pkl.gz``):

* ``quality.csv``: one row per image and metric, columns ``subject, roi, label, metric,
  value`` (``subject`` and ``roi`` empty for true-feature reconstructions; values in full
  precision, ``nan`` where undefined);
* ``quality_profile_correlation.npz``: the pixel profile correlation, one value per pixel and
  channel (``[H, W, 3]``) per subject x ROI (``keys`` ``[K, 2]`` subject/roi, ``profile_<k>``);
* ``quality_summary.csv`` (``subject, roi, metric, n, mean, sem``) and
  ``quality_summary.txt`` (the same as a plain-text table, also printed): mean +- standard
  error of the mean (``std(ddof=1) / sqrt(n)``) over the images, NaN values left out (``n``
  counts the finite values); for the profile correlation over the pixels and channels;
* ``quality_figures/<subject>/<roi>.png`` (``quality_figures/reconstructions.png`` without
  subject / ROI): true images above their reconstructions.

As in the cookbook, the images are read as 8-bit RGB (``Image.convert("RGB")``) and every true
image is resized to the reconstructions' size with Pillow's bicubic ``Image.resize`` (values
rounded to 0-255); all true images found in ``true_dir`` are the candidates of the pairwise
identification.  A subject x ROI pair already in ``quality.csv`` is skipped (the cookbook
skips a pair that has rows in its results file) unless ``redo=True``.  Files are written
atomically; existing files that this module did not write are never replaced unless
``overwrite=True``.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import re

import numpy as np

from keras_icnn.evaluation import feature_identification, metrics

__all__ = ["ReconSet", "StudyResult", "find_recon_sets", "load_true_images", "evaluate_study",
           "read_results", "summarize", "format_summary", "RESULT_COLUMNS", "SUMMARY_COLUMNS",
           "OUTPUT_NAMES"]

RESULT_COLUMNS = ("subject", "roi", "label", "metric", "value")
SUMMARY_COLUMNS = ("subject", "roi", "metric", "n", "mean", "sem")
#: The files and folder written in ``output_dir``.
OUTPUT_NAMES = {"results": "quality.csv", "profile": "quality_profile_correlation.npz",
                "summary_csv": "quality_summary.csv", "summary_txt": "quality_summary.txt",
                "figures": "quality_figures"}
_TXT_HEADER = "# keras-icnn study evaluation summary"
_PROFILE = metrics.COOKBOOK_METRICS[0]


@dataclasses.dataclass(frozen=True)
class ReconSet:
    """The reconstructions of one subject x ROI (``""`` for both without them)."""

    subject: str
    roi: str
    directory: str
    files: tuple
    labels: tuple


@dataclasses.dataclass
class StudyResult:
    """What :func:`evaluate_study` did: the paths it wrote, the pairs it evaluated or skipped,
    and the summary (rows of :data:`SUMMARY_COLUMNS`, and the plain-text table)."""

    output_dir: str
    paths: dict
    evaluated: list
    skipped: list
    summary: list
    table: str


def _check_dir(path, name) -> str:
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"{name}: expected a directory path, got {path!r}")
    if not os.path.isdir(path):
        raise ValueError(f"{name}: {os.fspath(path)} is not a directory")
    return os.fspath(path)


def _check_ext(ext, name) -> str:
    if not isinstance(ext, str) or not ext.lstrip(".") or os.sep in ext:
        raise ValueError(f"{name}: expected a file extension such as 'tiff', got {ext!r}")
    return ext.lstrip(".")


def _recon_files(directory, ext, prefix, single_trial):
    """``(labels, files)`` of the reconstructions ``<prefix><label>.<ext>`` in ``directory``,
    sorted by file name; ``single_trial`` also drops a ``sample<k>-`` part of the label."""
    if not os.path.isdir(directory):
        return (), ()
    names = sorted(n for n in os.listdir(directory)
                   if n.startswith(prefix) and n.endswith("." + ext)
                   and os.path.isfile(os.path.join(directory, n)))
    labels = [n[len(prefix):-len(ext) - 1] for n in names]
    if single_trial:
        labels = [re.sub(r"sample(\d+)-", "", lab) for lab in labels]
    return tuple(labels), tuple(os.path.join(directory, n) for n in names)


def _subdirs(directory):
    return sorted(n for n in os.listdir(directory)
                  if not n.startswith(".") and os.path.isdir(os.path.join(directory, n)))


def find_recon_sets(recon_dir, subjects=None, rois=None, ext="tiff", prefix="recon_image-",
                    single_trial=False) -> list:
    """The :class:`ReconSet` of each subject x ROI under ``recon_dir``.

    ``subjects`` / ``rois``: lists of names (every pair of them must have reconstructions), or
    None to take the folders that hold reconstructions.  With neither given and reconstructions
    directly in ``recon_dir``: one set without subject / ROI.  Labels are the file names
    without ``prefix`` and extension (``single_trial``: also without ``sample<k>-``, as the
    cookbook).  ``ValueError`` if none is found.
    """
    recon_dir = _check_dir(recon_dir, "recon_dir")
    ext = _check_ext(ext, "recon_ext")
    if not isinstance(prefix, str):
        raise ValueError(f"recon_prefix: expected a string, got {prefix!r}")
    subjects, rois = _names(subjects, "subjects"), _names(rois, "rois")
    if subjects is None and rois is None:
        labels, files = _recon_files(recon_dir, ext, prefix, single_trial)
        if labels:
            return [ReconSet("", "", recon_dir, files, labels)]
    sets = []
    for subject in subjects or [d for d in _subdirs(recon_dir) if d != OUTPUT_NAMES["figures"]]:
        sub_dir = os.path.join(recon_dir, subject)
        if subjects is not None and not os.path.isdir(sub_dir):
            raise ValueError(f"subjects: no folder {sub_dir} for subject {subject!r}")
        for roi in rois or (_subdirs(sub_dir) if os.path.isdir(sub_dir) else []):
            labels, files = _recon_files(os.path.join(sub_dir, roi), ext, prefix, single_trial)
            if labels:
                sets.append(ReconSet(subject, roi, os.path.join(sub_dir, roi), files, labels))
            elif rois is not None and (subjects is not None or os.path.isdir(
                    os.path.join(sub_dir, roi))):
                raise ValueError(f"no reconstructions {prefix}<label>.{ext} in "
                                 f"{os.path.join(sub_dir, roi)} (subject {subject!r}, ROI {roi!r})")
    if not sets:
        raise ValueError(f"recon_dir: no reconstructions found: expected "
                         f"{recon_dir}/<subject>/<roi>/{prefix}<label>.{ext} or "
                         f"{recon_dir}/{prefix}<label>.{ext}")
    return sets


def _names(names, what):
    if names is None:
        return None
    names = [names] if isinstance(names, str) else list(names)
    bad = [n for n in names if not isinstance(n, str) or not n or os.sep in n]
    if bad or not names:
        raise ValueError(f"{what}: expected a non-empty list of folder names, got {names!r}")
    return names


def _load_images(files, size=None) -> np.ndarray:
    """Images as float64 ``[N, H, W, 3]``, 8-bit RGB values (resized to ``size``)."""
    from keras_icnn.io import load_image

    out = []
    for path in files:
        img = load_image(path, size=size)
        if not np.all(np.isfinite(img)):
            raise ValueError(f"{path}: the image contains NaN or Inf")
        if out and img.shape != out[0].shape:
            raise ValueError(f"{path}: image size {img.shape[:2]} differs from "
                             f"{out[0].shape[:2]} of {files[0]}")
        out.append(img)
    return np.stack(out).astype(np.float64)


def load_true_images(true_dir, size, ext="JPEG"):
    """``(labels, images)``: every ``<label>.<ext>`` in ``true_dir`` (sorted by name), read as
    8-bit RGB and resized to ``size`` ``(H, W)`` with Pillow's bicubic filter (the cookbook's
    ``Image.open(f).convert("RGB").resize(size)``); images float64 ``[M, H, W, 3]``."""
    true_dir = _check_dir(true_dir, "true_dir")
    ext = _check_ext(ext, "true_ext")
    labels = _true_labels(true_dir, ext)
    files = [os.path.join(true_dir, f"{lab}.{ext}") for lab in labels]
    return labels, _load_images(files, size)


def _check_labels(rset, true_labels, true_dir, ext):
    known = set(true_labels)
    missing = [lab for lab in dict.fromkeys(rset.labels) if lab not in known]
    if missing:
        raise ValueError(f"missing true image for label {missing[0]!r} of {rset.directory}: "
                         f"expected {os.path.join(true_dir, missing[0] + '.' + ext)}"
                         + (f" ({len(missing)} labels missing)" if len(missing) > 1 else ""))
    if len(rset.labels) < 2:
        raise ValueError(f"{rset.directory}: needs at least 2 reconstructions (profile "
                         f"correlation and pairwise identification), got {len(rset.labels)}")


def _set_images(rset, truth):
    """``(recon, true_labels, true_images, own)``: the reconstructions of ``rset``, all true
    images at their size, and the position of each reconstruction's own true image."""
    recon = _load_images(rset.files)
    true_labels, true_images = truth(recon.shape[1:3])
    own = metrics.label_positions(len(recon), len(true_labels), rset.labels, true_labels)
    return recon, true_labels, true_images, own


def _evaluate_set(rset, truth, nets, batch_size):
    """``(recon, true_own, {metric: [N]}, profile [H, W, 3])`` for one subject x ROI."""
    recon, true_labels, true_images, own = _set_images(rset, truth)
    res = metrics.cookbook_metrics(recon, true_images, rset.labels, true_labels, resize=False)
    profile = res.pop(_PROFILE)
    if nets:
        res.update(feature_identification.feature_metrics(
            recon, true_images, nets, rset.labels, true_labels, batch_size=batch_size))
    return recon, true_images[own], res, profile


def _fmt(v) -> str:
    return repr(float(v))


def read_results(path) -> list:
    """The rows of a ``quality.csv`` as dicts (``value`` a float); ``ValueError`` if the file
    is not one (header other than :data:`RESULT_COLUMNS`)."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if tuple(header or ()) != RESULT_COLUMNS:
            raise ValueError(f"{os.fspath(path)}: not a keras-icnn results file (header "
                             f"{header}, expected {list(RESULT_COLUMNS)})")
        rows = []
        for k, row in enumerate(reader, start=2):
            if len(row) != len(RESULT_COLUMNS):
                raise ValueError(f"{os.fspath(path)}, line {k}: expected "
                                 f"{len(RESULT_COLUMNS)} fields, got {len(row)}")
            rows.append(dict(zip(RESULT_COLUMNS[:4], row[:4]), value=float(row[4])))
    return rows


def _write_csv(path, columns, rows):
    from keras_icnn.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for row in rows:
                w.writerow([_fmt(row[c]) if isinstance(row[c], float) else row[c]
                            for c in columns])


def _read_profiles(path) -> dict:
    if not os.path.exists(path):
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = z["keys"]
            return {(str(s), str(r)): z[f"profile_{k}"] for k, (s, r) in enumerate(keys)}
    except Exception as exc:
        raise ValueError(f"{path}: not a keras-icnn profile-correlation file ({exc})") from None


def _write_profiles(path, profiles):
    from keras_icnn.io import atomic_path

    keys = np.array([list(k) for k in profiles], dtype=str).reshape(-1, 2)
    arrays = {f"profile_{k}": v for k, v in enumerate(profiles.values())}
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, keys=keys, **arrays)


def _stats(values):
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    n = int(v.size)
    mean = float(v.mean()) if n else float("nan")
    sem = float(v.std(ddof=1) / np.sqrt(n)) if n >= 2 else float("nan")
    return n, mean, sem


def summarize(rows, profiles=None) -> list:
    """Summary rows (dicts of :data:`SUMMARY_COLUMNS`) of result rows (:func:`read_results`):
    per subject x ROI and metric, ``n`` finite values, their mean and s.e.m.  ``profiles``
    (``{(subject, roi): [H, W, C]}``) adds the pixel profile correlation (over pixels)."""
    groups = {}
    for row in rows:
        groups.setdefault((row["subject"], row["roi"]), {}).setdefault(
            row["metric"], []).append(row["value"])
    for key, profile in (profiles or {}).items():
        groups.setdefault(key, {})[_PROFILE] = profile
    order = {m: k for k, m in enumerate(metrics.COOKBOOK_METRICS)}
    out = []
    for (subject, roi), by_metric in groups.items():
        for name in sorted(by_metric, key=lambda m: order.get(m, len(order))):
            n, mean, sem = _stats(by_metric[name])
            out.append({"subject": subject, "roi": roi, "metric": name, "n": n,
                        "mean": mean, "sem": sem})
    return out


def format_summary(summary, title=None) -> str:
    """The summary rows as a plain-text table: subject, ROI, metric, ``mean ± sem``, n."""
    lines = [(r["subject"] or "-", r["roi"] or "-", r["metric"],
              f"{r['mean']:.4f} ± {r['sem']:.4f}", str(r["n"])) for r in summary]
    head = ("subject", "roi", "metric", "mean ± s.e.m.", "n")
    widths = [max(len(x[k]) for x in [head] + lines) for k in range(5)]
    fmt = lambda x: "  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip()  # noqa: E731
    body = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(x) for x in lines]
    top = [_TXT_HEADER] + ([f"# {title}"] if title else [])
    return "\n".join(top + body) + "\n"


def _figure_path(paths, key) -> str:
    subject, roi = key
    if not subject and not roi:
        return os.path.join(paths["figures"], "reconstructions.png")
    return os.path.join(paths["figures"], subject or "-", f"{roi or '-'}.png")


def _draw(paths, key, true_own, recon, labels):
    from keras_icnn.evaluation.plots import plot_reconstructions

    path = _figure_path(paths, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    title = " / ".join(k or "-" for k in key) if any(key) else "true-feature reconstructions"
    plot_reconstructions(true_own, recon, titles=list(labels), ncols=min(len(recon), 10),
                         path=path, title=title)
    return path


def _is_ours(path, kind) -> bool:
    """Whether an existing output file was written by this module (checked by its header)."""
    try:
        if kind == "summary_csv":
            with open(path, newline="") as f:
                return tuple(next(csv.reader(f), ())) == SUMMARY_COLUMNS
        if kind == "summary_txt":
            with open(path, encoding="utf-8") as f:
                return f.readline().rstrip("\n") == _TXT_HEADER
        if kind == "profile":
            _read_profiles(path)  # ValueError if it is not ours
            return True
        return os.path.isdir(path)
    except (OSError, ValueError, UnicodeDecodeError, csv.Error):
        return False


def _open_outputs(output_dir, overwrite):
    """``(paths, rows, profiles)``: the output paths and the results already there; refuses to
    replace files that are not this module's (unless ``overwrite``)."""
    from keras_icnn.io.paths import check_output_dir

    output_dir = check_output_dir(output_dir, "output_dir")
    paths = {k: os.path.join(output_dir, v) for k, v in OUTPUT_NAMES.items()}
    rows, ours = [], False
    if os.path.exists(paths["results"]):
        try:
            rows, ours = read_results(paths["results"]), True
        except (ValueError, OSError, UnicodeDecodeError, csv.Error) as exc:
            if not overwrite:
                raise ValueError(f"{exc}; not overwriting it: pass overwrite=True or another "
                                 "output_dir") from None
    for kind in ("profile", "summary_csv", "summary_txt", "figures"):
        path = paths[kind]
        if os.path.exists(path) and not overwrite and not (ours and _is_ours(path, kind)):
            why = "was not written by keras-icnn" if ours else (
                f"exists but there are no keras-icnn results ({OUTPUT_NAMES['results']}) beside it")
            raise ValueError(f"{path} {why}: not overwriting it; pass overwrite=True or "
                             "another output_dir")
    profiles = _read_profiles(paths["profile"]) if ours else {}
    os.makedirs(output_dir, exist_ok=True)
    return paths, (rows if ours else []), profiles


def _record(paths, rows, profiles, key, res, labels, profile):
    """Replace the rows and profile of ``key`` and write both files (the results last: a pair
    counts as done once it is in ``quality.csv``)."""
    rows = [r for r in rows if (r["subject"], r["roi"]) != key]
    for name, values in res.items():
        rows += [{"subject": key[0], "roi": key[1], "label": lab, "metric": name,
                  "value": float(v)} for lab, v in zip(labels, values)]
    profiles = {**{k: v for k, v in profiles.items() if k != key}, key: profile}
    _write_profiles(paths["profile"], profiles)
    _write_csv(paths["results"], RESULT_COLUMNS, rows)
    return rows, profiles


def _true_loader(true_dir, ext):
    """A function ``size -> (labels, images)`` that reads the true images once per size."""
    cache = {}

    def load(size):
        size = tuple(int(v) for v in size)
        if size not in cache:
            cache[size] = load_true_images(true_dir, size, ext)
        return cache[size]

    return load


def _log_means(log, res, profile):
    if log is None:
        return
    for name, values in {_PROFILE: profile, **res}.items():
        log(f"  mean {name}: {_stats(values)[1]:.4f}")


def evaluate_study(recon_dir, true_dir, output_dir=None, subjects=None, rois=None,
                   true_ext="JPEG", recon_ext="tiff", recon_prefix="recon_image-",
                   single_trial=False, features=None, models=None, figures=True, redo=False,
                   overwrite=False, batch_size=32, log=print) -> StudyResult:
    """Evaluate every subject x ROI of a reconstruction tree against the true images (see the
    module docstring for the layout, the metrics and the files written).

    ``subjects`` / ``rois``: as in :func:`find_recon_sets`.  ``features``: network-feature
    columns to add (names of :data:`feature_identification.PRESETS`, with ``models`` as in
    :func:`feature_identification.load_feature_nets`; a network that cannot be loaded is left
    out with a message).  ``figures``: draw the true/reconstructed figures.  ``redo``:
    re-evaluate pairs already in the results.  ``overwrite``: replace output files that this
    module did not write.  ``log``: where progress and the summary table go (None: silent).
    Returns a :class:`StudyResult`.
    """
    sets = find_recon_sets(recon_dir, subjects, rois, recon_ext, recon_prefix, single_trial)
    true_dir, true_ext = _check_dir(true_dir, "true_dir"), _check_ext(true_ext, "true_ext")
    true_labels = _true_labels(true_dir, true_ext)
    for rset in sets:  # every label has its true image before any work
        _check_labels(rset, true_labels, true_dir, true_ext)
    paths, rows, profiles = _open_outputs(recon_dir if output_dir is None else output_dir,
                                          overwrite)
    nets = (feature_identification.load_feature_nets(features, models, log=log)
            if features else {})
    state = {"rows": rows, "profiles": profiles, "evaluated": [], "skipped": []}
    done = {(r["subject"], r["roi"]) for r in rows}
    truth = _true_loader(true_dir, true_ext)
    for rset in sets:
        key = (rset.subject, rset.roi)
        _emit(log, f"Subject: {rset.subject or '-'} - ROI: {rset.roi or '-'}")
        if key in done and not redo:
            _emit(log, "  already evaluated: skipped (redo=True evaluates it again)")
            state["skipped"].append(key)
            if figures and not os.path.exists(_figure_path(paths, key)):
                recon, _, true_images, own = _set_images(rset, truth)
                _draw(paths, key, true_images[own], recon, rset.labels)
            continue
        _evaluate_pair(rset, truth, nets, batch_size, paths, state, figures, log)
    return _finish(paths, state, (recon_dir, true_dir), log)


def _emit(log, message):
    if log is not None:
        log(message)


def _true_labels(true_dir, ext) -> list:
    names = sorted(n for n in os.listdir(true_dir)
                   if n.endswith("." + ext) and os.path.isfile(os.path.join(true_dir, n)))
    if not names:
        raise ValueError(f"true_dir: no true images *.{ext} in {true_dir}")
    return [n[:-len(ext) - 1] for n in names]


def _evaluate_pair(rset, truth, nets, batch_size, paths, state, figures, log):
    """Evaluate one subject x ROI, record it, draw its figure."""
    key = (rset.subject, rset.roi)
    recon, true_own, res, profile = _evaluate_set(rset, truth, nets, batch_size)
    state["rows"], state["profiles"] = _record(paths, state["rows"], state["profiles"], key,
                                               res, rset.labels, profile)
    _emit(log, f"  {len(recon)} reconstructions")
    _log_means(log, res, profile)
    if figures:
        _draw(paths, key, true_own, recon, rset.labels)
    state["evaluated"].append(key)


def _finish(paths, state, dirs, log) -> StudyResult:
    """Write the summary (CSV and text) of all recorded results; print it."""
    from keras_icnn.io import atomic_path

    summary = summarize(state["rows"], state["profiles"])
    table = format_summary(summary, title=f"{dirs[0]} vs true images in {dirs[1]}")
    _write_csv(paths["summary_csv"], SUMMARY_COLUMNS, summary)
    with atomic_path(paths["summary_txt"]) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(table)
    _emit(log, table.rstrip("\n"))
    return StudyResult(os.path.dirname(paths["results"]), paths, state["evaluated"],
                       state["skipped"], summary, table)
