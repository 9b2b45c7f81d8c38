"""Pick the torch device for the graph and embedding stages."""

from __future__ import annotations

import torch


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA GPU when torch sees one, else the CPU; else exactly ``spec``.

    Asking for ``cuda`` on a machine without one fails here, with the reason, rather than deep
    inside the first kernel.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} asked for, but torch {torch.__version__} sees no CUDA "
                         "GPU; use --device cpu or auto")
    return device
