"""bulkfm.model: the autoencoder and the BulkFormer-style graph transformer.

``bulkfm.model.load(path)`` loads a checkpoint (or a ``bulkfm train`` output directory) with
no workflow around it.
"""

from bulkfm.model.autoencoder import Autoencoder
from bulkfm.model.bulkformer import BulkFormer
from bulkfm.model.checkpoint import CheckpointError, load, save_checkpoint
from bulkfm.model.config import ModelConfig

__all__ = ["Autoencoder", "BulkFormer", "CheckpointError", "ModelConfig", "load",
           "save_checkpoint"]
