"""The run: ``Reconstructor.fit`` owns the one iteration loop; callbacks hold the side effects."""
from keras_icnn.engine import callbacks
from keras_icnn.engine.checkpoint import BackupAndRestore
from keras_icnn.engine.reconstructor import Reconstructor

__all__ = ["Reconstructor", "BackupAndRestore", "callbacks"]
