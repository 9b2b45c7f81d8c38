"""Figures as PNG files: matplotlib on its file-only backend, written atomically.

Every stage draws through these two functions, so no figure depends on a display and no
reader ever sees half a PNG.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bulkfm.common.atomic import atomic_path


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (imported late: most commands draw nothing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | os.PathLike[str], dpi: float | str = "figure") -> Path:
    """Write ``fig`` to ``path`` atomically and close it. ``dpi="figure"``: the figure's own."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)
    return path
