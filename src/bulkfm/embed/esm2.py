"""ESM2 protein embeddings: mean over residues of one layer, batched by length.

Weights are only ever read from disk: a ``.pt`` path, or a model name looked up in the torch
hub cache (``<torch.hub.get_dir()>/checkpoints/<name>.pt``, where ``esm.pretrained`` itself
would have put it). Both go through ``esm.pretrained.load_model_and_alphabet_local``, the
official loader, which also wants ``<name>-contact-regression.pt`` beside the checkpoint.

Long proteins: ESM2 was trained on crops of at most 1022 residues (+ BOS/EOS = 1024 tokens).
A longer protein is cut into windows of ``max_residues`` with half-window overlap (stride
``max_residues // 2``, the last window flush with the C-terminus). Each residue's vector is
the mean over the windows that contain it, and the protein's embedding is the mean over its
residues, so every residue weighs the same and each sees at least ~half a window of context
where the protein has it. (A plain first-1022 crop would drop the C-terminal domains of
the ~5% of human proteins that are longer, e.g. titin, the mucins.)
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

MAX_RESIDUES = 1022
ESM_URL = "https://dl.fbaipublicfiles.com/fair-esm"


def hub_checkpoint(name: str) -> Path:
    """Where the torch hub cache keeps ``name`` (no download is attempted)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt"


def resolve_weights(weights: str | os.PathLike[str]) -> Path:
    """A checkpoint path, or a model name found in the hub cache; a clear error otherwise."""
    text = str(weights)
    path = Path(text).expanduser()
    if path.suffix == ".pt" or os.sep in text:
        if not path.exists():
            raise FileNotFoundError(f"ESM2 weights {path} not found; put the checkpoint there "
                                    f"(e.g. {ESM_URL}/models/{path.stem}.pt) with "
                                    f"{path.stem}-contact-regression.pt beside it")
        return path
    cached = hub_checkpoint(text)
    if not cached.exists():
        raise FileNotFoundError(
            f"ESM2 model {text!r} is not in the torch hub cache ({cached}); bulkfm never "
            f"downloads at run time. Fetch {ESM_URL}/models/{text}.pt and "
            f"{ESM_URL}/regression/{text}-contact-regression.pt into {cached.parent} "
            "(or set TORCH_HOME), or give embed.weights as a path to the .pt file"
        )
    return cached


def load_esm2(weights: str | os.PathLike[str], device: torch.device | str = "cpu"):
    """``(model, alphabet, name)`` through fair-esm's own local loader, in eval mode."""
    import esm

    path = resolve_weights(weights)
    regression = Path(str(path.with_suffix("")) + "-contact-regression.pt")
    if not regression.exists():
        raise FileNotFoundError(f"{regression} is missing: fair-esm loads it beside "
                                f"{path.name}; fetch {ESM_URL}/regression/{regression.name}")
    # Official checkpoints pickle their config as argparse.Namespace; allow exactly that type
    # under torch's weights_only loading (nothing else from the file can run code).
    with torch.serialization.safe_globals([argparse.Namespace]):
        model, alphabet = esm.pretrained.load_model_and_alphabet_local(str(path))
    return model.eval().to(device), alphabet, path.stem


def windows(length: int, max_residues: int) -> list[tuple[int, int]]:
    """Residue ranges covering ``length``: one if it fits, else half-overlapping windows."""
    if length <= max_residues:
        return [(0, length)]
    stride = max(1, max_residues // 2)
    starts = list(range(0, length - max_residues + 1, stride))
    if starts[-1] + max_residues < length:
        starts.append(length - max_residues)
    return [(s, s + max_residues) for s in starts]


@dataclass(frozen=True)
class EmbedStats:
    n_proteins: int
    n_windows: int
    n_residues: int  # protein residues
    n_computed: int  # residues run through the model (overlapping windows count twice)
    n_batches: int
    seconds: float

    @property
    def residues_per_second(self) -> float:
        return self.n_residues / self.seconds if self.seconds > 0 else float("nan")


def embed_sequences(
    model: torch.nn.Module,
    alphabet,
    sequences: Sequence[str],
    *,
    repr_layer: int = -1,
    batch_tokens: int = 4096,
    max_residues: int = MAX_RESIDUES,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[torch.Tensor, EmbedStats]:
    """Mean-over-residues embeddings, float32 [len(sequences), d] (BOS/EOS/padding excluded).

    Windows are sorted by length and packed so that ``batch x (longest + 2) <= batch_tokens``:
    little padding, bounded memory. Results do not depend on the batching.
    """
    n_layers = model.num_layers
    layer = repr_layer if repr_layer >= 0 else n_layers + 1 + repr_layer
    if not 0 <= layer <= n_layers:
        raise ValueError(f"repr_layer {repr_layer} outside 0..{n_layers} (or -1..-{n_layers + 1})")
    if max_residues < 2:
        raise ValueError("max_residues must be >= 2")
    device = torch.device(device)
    d = model.embed_dim
    items, weights = _windows_of(sequences, max_residues)
    batches = pack_windows(items, batch_tokens)

    sums = torch.zeros(len(sequences), d, dtype=torch.float64)
    converter = alphabet.get_batch_converter()
    t0 = time.perf_counter()
    bar = tqdm(total=sum(e - s for _, s, e in items), desc="embed: ESM2", unit="res",
               disable=not progress)
    with torch.inference_mode():
        for batch in batches:
            data = [(str(i), sequences[i][s:e]) for i, s, e in batch]
            _, _, tokens = converter(data)  # [B, T]: BOS, residues, EOS, padding
            out = model(tokens.to(device), repr_layers=[layer])
            reps = out["representations"][layer].float().cpu()  # [B, T, d]
            for row, (i, s, e) in enumerate(batch):
                residues = reps[row, 1 : e - s + 1].double()  # [L, d], BOS/EOS/pad excluded
                if i in weights:
                    w = torch.from_numpy(weights[i][s:e]).unsqueeze(1)
                    sums[i] += (residues * w).sum(0)
                else:
                    sums[i] += residues.sum(0)
                bar.update(e - s)
    bar.close()
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.float64).unsqueeze(1)
    emb = (sums / lengths).float()
    stats = EmbedStats(n_proteins=len(sequences), n_windows=len(items),
                       n_residues=int(sum(len(s) for s in sequences)),
                       n_computed=int(sum(e - s for _, s, e in items)), n_batches=len(batches),
                       seconds=time.perf_counter() - t0)
    return emb, stats


Window = tuple[int, int, int]  # (protein index, start, stop)


def _windows_of(sequences: Sequence[str], max_residues: int
                ) -> tuple[list[Window], dict[int, np.ndarray]]:
    """Every protein's windows, shortest first, and for proteins cut into overlapping windows
    the per-residue weight 1 / (number of windows covering it)."""
    items: list[Window] = []
    weights: dict[int, np.ndarray] = {}
    for i, seq in enumerate(sequences):
        if not seq:
            raise ValueError(f"sequence {i} is empty")
        spans = windows(len(seq), max_residues)
        if len(spans) > 1:
            cover = np.zeros(len(seq))
            for s, e in spans:
                cover[s:e] += 1
            weights[i] = 1.0 / cover
        items.extend((i, s, e) for s, e in spans)
    items.sort(key=lambda t: t[2] - t[1])
    return items, weights


def pack_windows(items: list[Window], batch_tokens: int) -> list[list[Window]]:
    """Length-sorted windows into batches with ``batch x (longest + 2) <= batch_tokens``."""
    batches: list[list[Window]] = []
    current: list[Window] = []
    for item in items:
        width = item[2] - item[1] + 2
        if current and (len(current) + 1) * width > batch_tokens:
            batches.append(current)
            current = []
        current.append(item)
    if current:
        batches.append(current)
    return batches
