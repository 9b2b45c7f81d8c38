"""Atomic file output: write to a temporary name beside the target, rename at the end.

A crash, a killed job or a full disk therefore never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``target`` on success.

    Works for files and directories. On an exception the temporary is removed and the target
    is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    os.unlink(tmp)  # the caller creates it (file or directory)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp_path, target)
    except BaseException:
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
        raise


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
