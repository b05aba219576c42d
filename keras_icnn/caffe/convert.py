"""Convert Caffe models to Keras ``.weights.h5`` files (+ JSON manifest).

``keras-icnn convert-caffe --prototxt P --caffemodel M --out W.weights.h5``
builds the Keras model described by ``P`` (:func:`~keras_icnn.caffe.
build_model`), loads ``M`` into it (:func:`~keras_icnn.caffe.
load_caffe_weights`), and writes

* ``W.weights.h5`` -- ``model.save_weights`` output, loadable with
  ``model.load_weights`` into the same architecture (for VGG19 also into
  :func:`keras_icnn.models.vgg19`, for the DeepSim generator into
  :func:`keras_icnn.generators.deepsim_fc7`: Keras matches weights by layer
  order and class, and these models have the same weight layers);
* ``W.weights.json`` -- a manifest: SHA-256 of the source files and of the
  weights file, and every weight layer's name, class, Caffe type and Keras
  weight shapes.

Both files are written to a temporary file in the target directory first and
moved into place with ``os.replace``, so a crash never leaves a half-written
file under the final name.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import os
import sys

import keras

from keras_icnn.caffe.builder import build_model
from keras_icnn.caffe.reader import CaffeFormatError, load_net
from keras_icnn.caffe.weights import caffe_weight_type, load_caffe_weights
from keras_icnn.io.atomic import atomic_path

__all__ = [
    "add_convert_parser",
    "convert_caffe",
    "main_convert",
    "manifest_path",
    "save_converted_weights",
    "sha256_file",
]

_SUFFIX = ".weights.h5"


def manifest_path(out_path: str | os.PathLike) -> str:
    """``W.weights.h5`` -> ``W.weights.json``."""
    out = os.fspath(out_path)
    if not out.endswith(_SUFFIX):
        raise ValueError(
            f"out: Keras weights files must end with '{_SUFFIX}', got {out!r}"
        )
    return out[: -len(".h5")] + ".json"


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _source_info(path) -> dict | None:
    if path is None or not isinstance(path, (str, os.PathLike)):
        return None
    path = os.fspath(path)
    return {
        "file": os.path.basename(path),
        "path": os.path.abspath(path),
        "bytes": os.path.getsize(path),
        "sha256": sha256_file(path),
    }


def _layer_records(model, caffe_types=None) -> list[dict]:
    records = []
    for layer in model.layers:
        if not layer.weights:
            continue
        records.append(
            {
                "name": layer.name,
                "class": type(layer).__name__,
                "caffe_type": (caffe_types or {}).get(layer.name, caffe_weight_type(layer)),
                "weights": [
                    {"name": w.path if hasattr(w, "path") else w.name,
                     "shape": [int(d) for d in w.shape]}
                    for w in layer.weights
                ],
            }
        )
    return records


def save_converted_weights(
    model: keras.Model,
    out_path: str | os.PathLike,
    *,
    prototxt=None,
    caffemodel=None,
    report: dict | None = None,
) -> dict:
    """Atomically save ``model``'s weights and a manifest next to them.

    ``prototxt`` / ``caffemodel`` are the source file paths recorded (with
    SHA-256) in the manifest; ``report`` is :func:`load_caffe_weights`'s
    return value.  Returns the manifest dict.
    """
    out = os.fspath(out_path)
    mpath = manifest_path(out)
    with atomic_path(out, suffix=_SUFFIX, makedirs=True) as tmp:
        model.save_weights(tmp)
    manifest = _manifest(model, out, prototxt, caffemodel, report or {})
    with atomic_path(mpath, makedirs=True) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")
    return manifest


def _package_version() -> str | None:
    """The installed keras-icnn version, or None when it is not installed."""
    try:
        return importlib.metadata.version("keras-icnn")
    except Exception:  # noqa: BLE001 - e.g. running from a source tree
        return None


_LAYOUT = (
    "NHWC; Conv2D kernels (kh, kw, in, out); Conv2DTranspose kernels "
    "(kh, kw, out, in); Dense kernels (in, out), rows in the order of "
    "the model's flattening"
)


def _manifest(model, out: str, prototxt, caffemodel, report: dict) -> dict:
    """The manifest of the weights file ``out`` just written from ``model``."""
    return {
        "format": "keras-icnn caffe conversion",
        "format_version": 1,
        "created_utc": datetime.datetime.now(datetime.timezone.utc)
        .replace(microsecond=0).isoformat(),
        "keras_icnn_version": _package_version(),
        "keras_version": keras.__version__,
        "model_name": model.name,
        "weights_file": os.path.basename(out),
        "weights_sha256": sha256_file(out),
        "sources": {
            "prototxt": _source_info(prototxt),
            "caffemodel": _source_info(caffemodel),
        },
        "inputs": [
            {"name": t.name, "shape": [d for d in t.shape[1:]]} for t in model.inputs
        ],
        "layers": _layer_records(model),
        "flatten_permuted": list(report.get("flatten_permuted", [])),
        "unused_caffe_layers": list(report.get("unused", [])),
        "layout": _LAYOUT,
    }


def convert_caffe(
    prototxt,
    caffemodel,
    out: str | os.PathLike,
    *,
    model: keras.Model | None = None,
) -> dict:
    """Convert a Caffe model to ``out`` (``*.weights.h5``) + manifest.

    Args:
        prototxt: the network ``.prototxt`` (path).  May be None when
            ``model`` is given.
        caffemodel: the trained ``.caffemodel`` (path).
        out: output path; must end with ``.weights.h5``.  The manifest goes
            to the same name with ``.weights.json``.
        model: optional Keras model to load the weights into instead of the
            one built from ``prototxt`` (e.g. ``deepsim_fc7()``).

    Returns:
        The manifest dict (also written to disk).
    """
    manifest_path(out)  # validates the suffix before any work
    if prototxt is None and model is None:
        raise ValueError("convert_caffe needs a prototxt or a model")
    for label, path in (("prototxt", prototxt), ("caffemodel", caffemodel)):
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"{label} must be a path, got {type(path).__name__}")
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"{label} file not found: {os.fspath(path)}")
    if caffemodel is None:
        raise ValueError("convert_caffe needs a caffemodel path")
    net = None
    if prototxt is not None:
        net, _ = load_net(prototxt, "prototxt")
    if model is None:
        model = build_model(net)
    report = load_caffe_weights(model, caffemodel, prototxt=net)
    return save_converted_weights(
        model, out, prototxt=prototxt, caffemodel=caffemodel, report=report
    )


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--prototxt", required=True,
                        help="Caffe network description (.prototxt)")
    parser.add_argument("--caffemodel", required=True,
                        help="Caffe trained weights (.caffemodel)")
    parser.add_argument("--out", required=True,
                        help="output Keras weights file (must end with .weights.h5); "
                        "a .weights.json manifest is written next to it")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out file (and its manifest)")
    parser.set_defaults(func=_run)
    return parser


def _existing_output(ns: argparse.Namespace) -> str | None:
    """The first of ``--out`` and its manifest that exists, unless ``--overwrite``."""
    if getattr(ns, "overwrite", False) or not ns.out.endswith(_SUFFIX):
        return None
    return next((p for p in (ns.out, manifest_path(ns.out)) if os.path.lexists(p)), None)


def _run(ns: argparse.Namespace) -> int:
    existing = _existing_output(ns)
    if existing is not None:
        print(f"keras-icnn convert-caffe: error: {existing} exists; use --overwrite to "
              "replace it, or another --out", file=sys.stderr)
        return 2
    try:
        manifest = convert_caffe(ns.prototxt, ns.caffemodel, ns.out)
    except (CaffeFormatError, ValueError, TypeError, OSError) as exc:
        print(f"keras-icnn convert-caffe: error: {exc}", file=sys.stderr)
        return 1
    n_layers = len(manifest["layers"])
    print(f"wrote {ns.out} ({n_layers} weight layers) and {manifest_path(ns.out)}")
    if manifest["flatten_permuted"]:
        print("  rows permuted C,H,W -> H,W,C for: "
              + ", ".join(manifest["flatten_permuted"]))
    if manifest["unused_caffe_layers"]:
        print("  caffemodel layers not in the prototxt: "
              + ", ".join(manifest["unused_caffe_layers"]))
    return 0


def add_convert_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``convert-caffe`` sub-command to an argparse ``subparsers``.

    The parser's default ``func`` takes the parsed namespace and returns the
    exit status: ``ns.func(ns)``.
    """
    parser = subparsers.add_parser(
        "convert-caffe",
        help="convert a Caffe prototxt + caffemodel to a Keras .weights.h5",
        description=__doc__.split("\n\n")[0],
    )
    return _configure(parser)


def main_convert(args: list[str] | None = None) -> int:
    """``keras-icnn convert-caffe`` entry point; returns the exit status."""
    parser = _configure(
        argparse.ArgumentParser(
            prog="keras-icnn convert-caffe",
            description="Convert a Caffe prototxt + caffemodel to a Keras "
            ".weights.h5 file and a .weights.json manifest.",
        )
    )
    try:
        ns = parser.parse_args(args)
    except SystemExit as exc:  # --help or a usage error
        return int(exc.code or 0)
    return ns.func(ns)
