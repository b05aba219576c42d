"""Downloading the published Caffe models used by keras-icnn.

Files go to the Keras cache (``$KERAS_HOME`` or ``~/.keras``), sub-directory
``keras_icnn``, through ``keras.utils.get_file``.  When a download fails the
error explains how to fetch the file by hand and pass its path instead.
"""

from __future__ import annotations

import os
import shutil
import zipfile

import keras

from keras_icnn.errors import WeightsUnavailableError
from keras_icnn.io.atomic import atomic_path

__all__ = [
    "CACHE_SUBDIR",
    "DEEPSIM_URL",
    "DEEPSIM_FC7_MEMBER",
    "VGG19_CAFFEMODEL_URL",
    "VGG19_PROTOTXT_URL",
    "extract_zip_member",
    "fetch_deepsim_fc7_caffemodel",
    "fetch_vgg19_caffemodel",
    "keras_cache_dir",
]

#: Oxford VGG's Caffe release of VGG19 (Simonyan & Zisserman, ILSVRC-2014).
VGG19_CAFFEMODEL_URL = (
    "http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/"
    "VGG_ILSVRC_19_layers.caffemodel"
)
#: The matching deploy prototxt (Caffe Model Zoo gist 3785162f95cd2d5fee77).
VGG19_PROTOTXT_URL = (
    "https://gist.githubusercontent.com/ksimonyan/3785162f95cd2d5fee77/raw/"
    "f02f8769e64494bcd3d7e97d5d747ac275825721/VGG_ILSVRC_19_layers_deploy.prototxt"
)
#: Dosovitskiy & Brox (2016) DeePSiM generators (pool5, fc6, fc7, ...).
DEEPSIM_URL = (
    "https://lmb.informatik.uni-freiburg.de/resources/binaries/"
    "arxiv2016_alexnet_inversion_with_gans/release_deepsim_v0.zip"
)
#: Path suffix of the fc7 generator weights inside ``release_deepsim_v0.zip``.
DEEPSIM_FC7_MEMBER = "fc7/generator.caffemodel"
CACHE_SUBDIR = "keras_icnn"


def _cache_root(cache_dir=None) -> str:
    """The root ``keras.utils.get_file`` stores under: ``cache_dir``, else ``$KERAS_HOME`` or
    ``~/.keras``, and, as Keras does, ``/tmp/.keras`` when that is not writable.  It is passed
    to ``get_file`` explicitly, so that lookups and downloads agree."""
    if cache_dir is None:
        cache_dir = os.environ.get("KERAS_HOME") or os.path.join(
            os.path.expanduser("~"), ".keras"
        )
    cache_dir = os.fspath(cache_dir)
    probe = cache_dir if os.path.exists(cache_dir) else os.path.dirname(cache_dir) or "."
    return cache_dir if os.access(probe, os.W_OK) else os.path.join("/tmp", ".keras")


def keras_cache_dir(cache_dir: str | os.PathLike | None = None) -> str:
    """The directory this package's downloads and conversions are cached in."""
    return os.path.join(_cache_root(cache_dir), CACHE_SUBDIR)


def _get_file(fname, origin, cache_dir, manual_hint):
    try:
        return keras.utils.get_file(
            fname, origin, cache_subdir=CACHE_SUBDIR, cache_dir=cache_dir
        )
    except Exception as exc:  # noqa: BLE001 - network, HTTP, disk errors
        raise WeightsUnavailableError(
            f"could not download {fname} from {origin} ({type(exc).__name__}: "
            f"{exc}). {manual_hint}"
        ) from exc


def fetch_vgg19_caffemodel(cache_dir: str | os.PathLike | None = None) -> str:
    """Path to ``VGG_ILSVRC_19_layers.caffemodel``, downloading it if needed.

    The file (about 548 MB) comes from :data:`VGG19_CAFFEMODEL_URL`.
    """
    hint = (
        f"Download it manually from {VGG19_CAFFEMODEL_URL} and pass its path "
        "(e.g. keras_icnn.vgg19(weights='/path/to/VGG_ILSVRC_19_layers."
        "caffemodel')), or place it in "
        f"{keras_cache_dir(cache_dir)}/."
    )
    return _get_file("VGG_ILSVRC_19_layers.caffemodel", VGG19_CAFFEMODEL_URL,
                     _cache_root(cache_dir), hint)


def extract_zip_member(zip_path: str | os.PathLike, suffix: str,
                       dest: str | os.PathLike) -> str:
    """Extract the single member of ``zip_path`` whose name ends with
    ``suffix`` to ``dest`` (atomically) and return ``dest``.

    Raises ValueError naming the archive when the member is missing or
    ambiguous, or when the archive is damaged.
    """
    zip_path, dest = os.fspath(zip_path), os.fspath(dest)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            matches = [
                n for n in archive.namelist()
                if n == suffix or n.endswith("/" + suffix)
            ]
            if len(matches) != 1:
                raise ValueError(
                    f"{zip_path}: expected exactly one member ending with "
                    f"'{suffix}', found {matches or 'none'}"
                )
            with atomic_path(dest, makedirs=True) as tmp, open(tmp, "wb") as out, \
                    archive.open(matches[0]) as src:
                shutil.copyfileobj(src, out, 1 << 20)
    except zipfile.BadZipFile as exc:
        raise ValueError(
            f"{zip_path}: not a valid zip archive ({exc}); delete it and "
            "download it again"
        ) from exc
    return dest


def fetch_deepsim_fc7_caffemodel(cache_dir: str | os.PathLike | None = None) -> str:
    """Path to the DeepSim fc7 generator ``generator.caffemodel``.

    Downloads ``release_deepsim_v0.zip`` (:data:`DEEPSIM_URL`) into the Keras
    cache if needed and extracts ``fc7/generator.caffemodel`` next to it as
    ``deepsim_fc7_generator.caffemodel``.
    """
    target = os.path.join(keras_cache_dir(cache_dir), "deepsim_fc7_generator.caffemodel")
    if os.path.isfile(target):
        return target
    hint = (
        f"Download release_deepsim_v0.zip manually from {DEEPSIM_URL}, "
        f"extract {DEEPSIM_FC7_MEMBER} and pass its path, e.g. "
        "keras_icnn.generators.deepsim_fc7(weights='/path/to/fc7/"
        "generator.caffemodel') (or convert it once with `keras-icnn "
        "convert-caffe` and pass the .weights.h5)."
    )
    zip_path = _get_file("release_deepsim_v0.zip", DEEPSIM_URL, _cache_root(cache_dir), hint)
    target = os.path.join(os.path.dirname(zip_path), "deepsim_fc7_generator.caffemodel")
    try:
        return extract_zip_member(zip_path, DEEPSIM_FC7_MEMBER, target)
    except ValueError as exc:
        raise WeightsUnavailableError(f"{exc}. {hint}") from exc
