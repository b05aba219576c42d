"""``keras-icnn convert-torch``: a bdpy PyTorch state dict (``.pt``) to Keras weights.

``keras-icnn convert-torch --model NAME --pt FILE --out FILE.weights.h5 [--overwrite]`` builds
the Keras model of bdpy's ``model_factory(NAME)`` (:func:`keras_icnn.models.build`), loads the
state dict into it (:func:`keras_icnn.models.torch_weights.load_state_dict`), and writes the
weights and a ``.weights.json`` manifest next to them, atomically.  The weights load with
``keras_icnn.models.build(NAME, weights=FILE.weights.h5)``.
"""
from __future__ import annotations

import os
import sys

from keras_icnn.cli.common import EXIT_STATUS_HELP, EXIT_USAGE

__all__ = ["add_parser", "run"]

_SUFFIX = ".weights.h5"
_NAMES = ("vgg19, alexnet, reference_net, relu7generator, relu6generator, pool5generator, "
          "relu4generator, relu3generator, norm2generator, norm1generator")


def add_parser(sub):
    p = sub.add_parser("convert-torch", help="convert a bdpy PyTorch state dict (.pt) to Keras "
                       "weights", description=__doc__.split("\n\n")[0] + " Models: "
                       + _NAMES + ".", epilog=EXIT_STATUS_HELP)
    p.add_argument("--model", required=True, metavar="NAME",
                   help="bdpy's model name (" + _NAMES + ")")
    p.add_argument("--pt", required=True, metavar="FILE",
                   help="the PyTorch state dict (torch.save(module.state_dict(), FILE))")
    p.add_argument("--out", required=True, metavar="FILE.weights.h5",
                   help="the Keras weights file to write; a .weights.json manifest is written "
                   "next to it")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (and its manifest)")
    p.set_defaults(func=run)
    return p


def _check(args):
    """Everything about the arguments that can be checked before any work."""
    from keras_icnn.models.catalog import MODEL_NAMES

    if args.model not in MODEL_NAMES:
        raise ValueError(f"--model: unknown model {args.model!r}; expected one of {_NAMES}")
    if not args.out.endswith(_SUFFIX):
        raise ValueError(f"--out: Keras weights files must end with {_SUFFIX}, got "
                         f"{args.out!r}")
    manifest = args.out[:-len(".h5")] + ".json"
    existing = [p for p in (args.out, manifest) if os.path.lexists(p)]
    if existing and not args.overwrite:
        raise ValueError(f"--out: {existing[0]} exists; use --overwrite to replace it, or "
                         "another --out")
    if not os.path.isfile(args.pt):
        raise FileNotFoundError(f"--pt: no such file {args.pt!r}")
    return manifest


def run(args, argv=None):
    """Convert; returns the exit status (errors: one line on stderr, exit status 2)."""
    from keras_icnn.models import catalog, torch_weights

    manifest_file = _check(args)
    try:
        torch_weights.import_torch()
    except torch_weights.TorchUnavailableError as e:
        print(f"keras-icnn convert-torch: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    model = catalog.build(args.model)
    manifest = torch_weights.convert_torch_file(model, args.pt,
                                                catalog.torch_layer_names(args.model),
                                                args.out, name=args.model)
    print(f"wrote {args.out} ({len(manifest['layers'])} weight layers of {args.model}) and "
          f"{manifest_file}")
    if manifest["flatten_permuted"]:
        print("  rows permuted C,H,W -> H,W,C for: " + ", ".join(manifest["flatten_permuted"]))
    return 0

