"""Loading a Keras ``.weights.h5`` file into a model, with an error that names the file."""
from __future__ import annotations

__all__ = ["load_keras_weights"]


def load_keras_weights(model, path, into):
    """``model.load_weights(path)``; a damaged or foreign file (h5py's and Keras' many errors)
    becomes a ``ValueError`` naming ``path`` and ``into`` (what the weights were for)."""
    try:
        model.load_weights(path)
    except Exception as e:  # noqa: BLE001  (h5py, Keras: a damaged or foreign file)
        raise ValueError(f"weights: could not load {path!r} into {into}: {e}") from None
