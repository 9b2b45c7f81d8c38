"""bulkfm.model: the autoencoder and the BulkFormer-style graph transformer.

``bulkfm.model.load(path)`` loads a checkpoint (or a ``bulkfm train`` output directory) with
no workflow around it.

The names are imported on first use, so that ``bulkfm.model.config`` (read while the Snakefile
is parsed) imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"Autoencoder": "autoencoder", "BulkFormer": "bulkformer",
          "CheckpointError": "checkpoint", "load": "checkpoint", "save_checkpoint": "checkpoint",
          "ModelConfig": "config", "ModelSpec": "config"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
