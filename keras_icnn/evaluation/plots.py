"""Figures: reconstructions next to the originals, and loss curves.

matplotlib (a dependency of keras-icnn) is imported only
when a function here is called.  The figures are plain ``matplotlib.figure.Figure`` objects
rendered with the Agg backend: they work without a display, are not registered with pyplot
(no global state, nothing to close in loops), display in Jupyter when returned, and are
written with ``path=`` (atomically; format from the extension) or ``fig.savefig``.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import numpy as np

from keras_icnn.validation import numeric_array

__all__ = ["plot_reconstructions", "plot_loss"]


def _new_figure(figsize):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("keras_icnn.plots needs matplotlib: pip install matplotlib "
                          "(it is a dependency of keras-icnn)") from exc
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    from keras_icnn.io.atomic import atomic_path
    from keras_icnn.io.paths import check_file_name, file_extension

    check_file_name(path)
    fmt = file_extension(path).lstrip(".")
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"{os.fspath(path)}: unsupported figure extension {('.' + fmt)!r}; "
                         f"expected one of {sorted('.' + k for k in supported)}")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=fig.dpi, bbox_inches="tight")


def _as_display_batch(x, name):
    from keras_icnn.imaging import to_uint8

    if x is None:
        return None
    if isinstance(x, (list, tuple)):  # a list of images, possibly of different sizes
        if not x:
            raise ValueError(f"{name}: expected at least one image, got an empty list")
        out = []
        for k, item in enumerate(x):
            one = _as_display_batch(item, f"{name}[{k}]")
            if len(one) != 1:
                raise ValueError(f"{name}[{k}]: expected one image [H, W, 3]")
            out.extend(one)
        return out
    a = numeric_array(x, name, "images")
    if a.ndim == 3 and a.shape[-1] in (1, 3):
        a = a[None]
    elif a.ndim == 3:  # [N, H, W] grayscale
        a = a[..., None]
    if a.ndim != 4 or a.shape[-1] not in (1, 3) or a.size == 0:
        raise ValueError(f"{name}: expected RGB images [N, H, W, 3] (or one [H, W, 3]), "
                         f"got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or Inf (they would show as black pixels)")
    imgs = to_uint8(a)
    return [i[..., 0] if i.shape[-1] == 1 else i for i in imgs]


def plot_reconstructions(originals, reconstructions, titles=None, path=None, layout="rows",
                         ncols=None, figsize=None, row_labels=("original", "reconstruction"),
                         title=None):
    """Show reconstructions with their originals.

    ``originals`` / ``reconstructions``: RGB 0-255 images ``[N, H, W, 3]`` (or lists of
    ``[H, W, 3]`` of different sizes); ``originals`` may be ``None`` (reconstructions only).
    Images are shown after clipping to 0-255 and rounding to uint8 (no normalisation: pass the
    images through ``imaging.normalise_img`` first if that is wanted).

    ``layout="rows"``: originals in one row, reconstructions in the row below, ``ncols``
    images per row (default all ``N``; more images wrap onto further row pairs).
    ``layout="pairs"``: original | reconstruction side by side, ``ncols`` pairs per row
    (default ``min(N, 4)``).  ``titles``: one string per image pair.  ``path``: also save the
    figure there (atomically).  ``title``: a title above the whole figure.  Returns the
    ``matplotlib.figure.Figure``.
    """
    recs, origs, titles = _check_plot_args(originals, reconstructions, titles, layout, ncols)
    grid_rows, grid_cols, cell = _grid(len(recs), ncols, layout, origs is not None)
    if figsize is None:
        figsize = (1.8 * grid_cols, 1.9 * grid_rows + 0.2)
    fig = _new_figure(figsize)
    axes = fig.subplots(grid_rows, grid_cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(len(recs)):
        items = [(1, recs[i])] if origs is None else [(0, origs[i]), (1, recs[i])]
        for which, img in items:
            r, c = cell(i, which)
            _show_image(axes[r, c], img)
            _label_cell(axes[r, c], which, c, None if titles is None else titles[i], layout,
                        row_labels, origs is not None)
    if title is not None:
        fig.suptitle(str(title), fontsize=9)
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig


def _check_plot_args(originals, reconstructions, titles, layout, ncols):
    """Validate the arguments of :func:`plot_reconstructions`; returns the images as uint8
    lists (``originals`` may be ``None``) and the titles as a list of strings (or ``None``)."""
    recs = _as_display_batch(reconstructions, "reconstructions")
    if recs is None:
        raise ValueError("reconstructions: expected images, got None")
    origs = _as_display_batch(originals, "originals")
    n = len(recs)
    if origs is not None and len(origs) != n:
        raise ValueError(f"originals and reconstructions: expected the same number of images, "
                         f"got {len(origs)} and {n}")
    if titles is not None:
        if isinstance(titles, str):
            titles = [titles]
        titles = [str(t) for t in titles]
        if len(titles) != n:
            raise ValueError(f"titles: expected {n} titles (one per image), got {len(titles)}")
    if layout not in ("rows", "pairs"):
        raise ValueError(f"layout: expected 'rows' or 'pairs', got {layout!r}")
    if ncols is not None and (isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer))
                              or ncols < 1):
        raise ValueError(f"ncols: expected a positive int, got {ncols!r}")
    return recs, origs, titles


def _grid(n, ncols, layout, with_originals):
    """``(rows, columns, cell)`` of the subplot grid for ``n`` image pairs; ``cell(i, which)``
    gives the ``(row, column)`` of image ``i``'s original (``which=0``) or reconstruction
    (``which=1``)."""
    if layout == "rows" or not with_originals:
        per_item = 2 if with_originals else 1
        cols = min(n, ncols or n)
        blocks = -(-n // cols)  # row groups

        def cell(i, which):
            block, col = divmod(i, cols)
            return block * per_item + (which if with_originals else 0), col

        return blocks * per_item, cols, cell
    cols = min(n, ncols or min(n, 4))

    def cell(i, which):
        row, col = divmod(i, cols)
        return row, col * 2 + which

    return -(-n // cols), cols * 2, cell


def _show_image(ax, img):
    """Draw one uint8 image (RGB, or grayscale ``[H, W]``) in ``ax``, framed, without ticks."""
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255,
              interpolation="nearest")
    ax.axis("on")
    ax.set_xticks([])
    ax.set_yticks([])


def _label_cell(ax, which, col, title, layout, row_labels, with_originals):
    """Title (``title`` may be ``None``) and row label of the cell of an original
    (``which=0``) or a reconstruction (``which=1``) in grid column ``col``."""
    if title is not None and (not with_originals or which == 0 or layout == "pairs"):
        if layout == "pairs" and with_originals:
            ax.set_title(f"{title}\n{row_labels[which]}", fontsize=8)
        else:
            ax.set_title(title, fontsize=8)
    if with_originals and layout == "rows" and col == 0:
        ax.set_ylabel(row_labels[which], fontsize=8)


def _loss_series(history_or_dict) -> dict:
    h = history_or_dict
    if hasattr(h, "history") and isinstance(getattr(h, "history"), Mapping):
        h = h.history  # keras.callbacks.History
    if isinstance(h, Mapping):
        keys = [k for k in h if isinstance(k, str) and (k == "loss" or k.endswith("_loss"))]
        if not keys:
            raise ValueError(f"history: no 'loss' or '<layer>_loss' entries; keys: {list(h)}")
        series = {}
        for k in keys:
            try:
                v = np.asarray(h[k], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise ValueError(f"history[{k!r}]: expected a sequence of numbers") from None
            if v.size == 0:
                continue
            series[k] = v
        if not series:
            raise ValueError("history: all loss entries are empty")
        return series
    try:
        v = np.asarray(h, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("history_or_dict: expected a keras History, a dict of loss lists or a "
                         f"1-D array of losses, got {type(history_or_dict).__name__}") from None
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"history_or_dict: expected a non-empty 1-D array of losses, got shape {v.shape}")
    return {"loss": v}


def plot_loss(history_or_dict, path=None, log=True, title=None, figsize=(6, 4)):
    """Plot loss curves against the iteration.

    Accepts a ``keras.callbacks.History``, a dict of lists like ``History.history`` (the keys
    ``'loss'`` and every ``'<name>_loss'`` are plotted; ``'loss'`` drawn thicker) or a 1-D
    array of losses.  ``log=True`` uses a logarithmic y axis (falls back to linear, with a
    warning, when a plotted value is <= 0).  ``path``: also save the figure (atomically).
    Returns the ``matplotlib.figure.Figure``.
    """
    series = _loss_series(history_or_dict)
    fig = _new_figure(figsize)
    ax = fig.add_subplot(1, 1, 1)
    for k, v in series.items():
        ax.plot(np.arange(len(v)), v, label=k, linewidth=2.0 if k == "loss" else 1.0)
    if log:
        finite = np.concatenate([v[np.isfinite(v)] for v in series.values()])
        if finite.size and np.all(finite > 0):
            ax.set_yscale("log")
        else:
            warnings.warn("plot_loss: losses <= 0 (or none finite); using a linear y axis",
                          stacklevel=2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(str(title))
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
    return fig
