"""Command line (``keras-icnn ...`` or ``python -m keras_icnn ...``):

* ``keras-icnn demo``: reconstruct the shipped photo from its own VGG19 features;
* ``keras-icnn reconstruct FEATURES... --out DIR``: batch reconstruction of feature files
  (e.g. features decoded from brain activity), restartable, rerunnable from its options files;
* ``keras-icnn evaluate RECON_DIR --true-images DIR`` (or ``--config recon.yaml``): the
  field's metrics for a study;
* ``keras-icnn convert-caffe``: convert a Caffe model to Keras weights;
* ``keras-icnn convert-torch --model NAME --pt FILE --out FILE.weights.h5``: convert a bdpy
  PyTorch state dict to Keras weights.

Modules: ``demo``, ``reconstruct`` and ``convert_torch`` (the commands), ``options``
(``reconstruct``'s flags and ``--config``), ``build`` (presets -> ``Reconstructor``),
``targets`` (feature files -> named targets), ``outputs`` (output locations, which files may be
replaced, writing), ``common``.
Exit statuses: see :data:`keras_icnn.cli.common.EXIT_STATUS_HELP`.
"""
from __future__ import annotations

import argparse
import sys

from keras_icnn.cli import convert_torch, demo, evaluate, reconstruct
from keras_icnn.cli.common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_STATUS_HELP,
                                   EXIT_USAGE)

__all__ = ["main", "build_parser"]


def build_parser():
    """The ``keras-icnn`` parser and its sub-commands."""
    parser = argparse.ArgumentParser(prog="keras-icnn", description="Reconstruct images from "
                                     "CNN features (inverting CNNs) with TensorFlow/Keras.",
                                     epilog=EXIT_STATUS_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo.add_parser(sub)
    reconstruct.add_parser(sub)
    evaluate.add_parser(sub)
    convert_torch.add_parser(sub)
    sub.add_parser("convert-caffe", help="convert a Caffe model to Keras weights "
                   "(keras-icnn convert-caffe --help)", add_help=False)
    return parser


def _one_line(error):
    return " ".join(str(error).split())


def _dispatch(args, argv):
    """Run the command; errors become one line on stderr and an exit status."""
    from keras_icnn.errors import NonFiniteLossError, ZeroGradientError
    try:
        return args.func(args, argv)
    except KeyboardInterrupt:
        print(f"keras-icnn {args.command}: interrupted; run the same command again to go on",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except (NonFiniteLossError, ZeroGradientError) as e:  # the run failed, not the input
        print(f"keras-icnn {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, OSError) as e:
        print(f"keras-icnn {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE


def main(argv=None):
    """``keras-icnn``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "convert-caffe":
        from keras_icnn.caffe.convert import main_convert
        return main_convert(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error (argparse printed it): no traceback
        return 0 if e.code is None else e.code if isinstance(e.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return _dispatch(args, argv[1:])


if __name__ == "__main__":
    sys.exit(main())
