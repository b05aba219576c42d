"""The published settings, as data.

Each preset names what is optimised (``param``), how (``optimizer``, with its default number of
iterations), where a run starts (``initial``) and how layers are weighted (``layer_weight``), in
the same serialised form that ``get_config()`` writes (``{"class_name", "config"}``).  The seed
functions (``icnn_gd`` ...), ``Reconstructor.from_preset``, ``keras-icnn reconstruct --preset``
and the notebooks read them from here.  ``"upper": "act_range"`` marks a preset that needs the
per-unit latent upper bounds of the paper (``act_range/3x/fc7.txt``), given by the user.

Sources: the original iCNN functions' defaults (KamitaniLab/icnn), the paper's scripts
(Shen et al. 2019, DeepImageReconstruction) and the later brain-decoding cookbook
(``reconstruction/recon_icnn_image_gd.py``).
"""
from __future__ import annotations

import copy

__all__ = ["PRESETS", "get", "names", "needs_latent_upper", "ACT_RANGE"]

#: the value of a preset's latent ``upper`` bound that the user must supply (the paper's
#: per-unit ``act_range/3x/fc7.txt``)
ACT_RANGE = "act_range"


def _gd(lr, decay, blur, iterations):
    transforms = [{"class_name": "Decay", "config": {"rate": decay}}]
    if blur is not None:
        transforms.append({"class_name": "GaussianBlur", "config": {"sigma": blur}})
    return {"class_name": "MomentumGD", "config": {
        "learning_rate": lr, "momentum": [0.9, 0.9], "grad_normalize": True,
        "transforms": transforms, "iterations": iterations}}


def _lbfgsb(iterations):
    return {"class_name": "ScipyLBFGSB", "config": {"iterations": iterations}}


_PIXELS = {"class_name": "Pixels", "config": {"bounds": None}}
_VALID_PIXELS = {"class_name": "Pixels", "config": {"bounds": "valid"}}
_LIBRARY_LATENT = {"class_name": "Generator", "config": {"lower": 0.0, "upper": 100.0}}
_PAPER_LATENT = {"class_name": "Generator", "config": {"lower": 0.0, "upper": ACT_RANGE}}

#: name -> preset
PRESETS = {
    "icnn_gd": {
        "description": "icnn_gd's defaults: pixel momentum GD, lr 2 -> 1e-10, momentum 0.9, "
                       "decay 0.2 -> 1e-10, blur sigma 2 -> 0.5, 200 iterations, random start",
        "param": _PIXELS, "optimizer": _gd([2.0, 1e-10], [0.2, 1e-10], [2.0, 0.5], 200),
        "initial": "random", "layer_weight": None},
    "icnn_lbfgs": {
        "description": "icnn_lbfgs's defaults: scipy L-BFGS-B, pixels in 0-255, maxiter 500, "
                       "random start",
        "param": _VALID_PIXELS, "optimizer": _lbfgsb(500), "initial": "random",
        "layer_weight": None},
    "icnn_dgn_gd": {
        "description": "icnn_dgn_gd's defaults: momentum GD on the generator's input, "
                       "latent decay 0.01, bounds 0-100, 200 iterations, N(0, 1) start",
        "param": _LIBRARY_LATENT, "optimizer": _gd([2.0, 1e-10], [0.01, 0.01], None, 200),
        "initial": "normal", "layer_weight": None},
    "icnn_dgn_lbfgs": {
        "description": "icnn_dgn_lbfgs's defaults: L-BFGS-B on the generator's input, bounds "
                       "0-100, maxiter 500, N(0, 1) start clipped into the bounds",
        "param": _LIBRARY_LATENT, "optimizer": _lbfgsb(500), "initial": "normal",
        "layer_weight": None},
    "paper_gd": {
        "description": "Shen et al. 2019 scripts: icnn_gd with 1/||f||^2 layer weights",
        "param": _PIXELS, "optimizer": _gd([2.0, 1e-10], [0.2, 1e-10], [2.0, 0.5], 200),
        "initial": "random", "layer_weight": "inverse_norm"},
    "paper_lbfgs": {
        "description": "Shen et al. 2019 scripts: L-BFGS-B maxiter 200 from the mean image, "
                       "1/||f||^2 layer weights",
        "param": _VALID_PIXELS, "optimizer": _lbfgsb(200), "initial": "mean",
        "layer_weight": "inverse_norm"},
    "paper_dgn_gd": {
        "description": "Shen et al. 2019 scripts: DGN-GD from a zero latent, bounds 0 .. "
                       "act_range (3 SD), 200 iterations, 1/||f||^2 layer weights",
        "param": _PAPER_LATENT, "optimizer": _gd([2.0, 1e-10], [0.01, 0.01], None, 200),
        "initial": "zeros", "layer_weight": "inverse_norm"},
    "paper_dgn_lbfgs": {
        "description": "Shen et al. 2019 scripts: DGN with L-BFGS-B from a zero latent, bounds "
                       "0 .. act_range, maxiter 500, 1/||f||^2 layer weights",
        "param": _PAPER_LATENT, "optimizer": _lbfgsb(500), "initial": "zeros",
        "layer_weight": "inverse_norm"},
    "cookbook_dgn_gd": {
        "description": "brain-decoding cookbook (recon_icnn_image_gd.py): DGN-GD, 1000 "
                       "iterations, lr 2 -> 1e-10, momentum 0.9, latent decay 0.01, N(0, 1) "
                       "start clipped into 0 .. the generator's upper-bound file",
        "param": _PAPER_LATENT, "optimizer": _gd([2.0, 1e-10], [0.01, 0.01], None, 1000),
        "initial": "normal", "layer_weight": "inverse_norm"},
}


def names():
    """The preset names."""
    return sorted(PRESETS)


def get(name):
    """A deep copy of preset ``name`` (a ``ValueError`` listing the names if unknown)."""
    if name not in PRESETS:
        raise ValueError(f"preset: unknown {name!r}; expected one of {', '.join(names())}")
    return copy.deepcopy(PRESETS[name])


def needs_latent_upper(preset):
    """Whether ``preset`` (a name or a preset dict) bounds the latent by per-unit values the
    user must supply (``latent_upper=``)."""
    preset = get(preset) if isinstance(preset, str) else preset
    return preset["param"]["config"].get("upper") == ACT_RANGE
