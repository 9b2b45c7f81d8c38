"""Distributed context: one process (plain ``bulkfm train``) or many (``torchrun``).

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; the backend is nccl on GPUs and gloo on CPUs.
Every collective here is a no-op for a single process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """All-reduce mean of a small float tensor (identical result on every rank)."""
        if self.world == 1:
            return values
        out = values.detach().to(self.device, torch.float64).clone()
        dist.all_reduce(out)
        return (out / self.world).cpu()

    def any(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)


def pick_device(spec: str, local_rank: int = 0) -> torch.device:
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} asked for, but CUDA is not available; use device: auto")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def setup(device_spec: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_spec, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        log.info("DDP: rank %d of %d, backend %s, device %s", rank, world, backend, device)
    if device.type == "cpu" and world > 1:
        # Share the cores instead of every process assuming all of them.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    return Dist(rank=rank, world=world, local_rank=local_rank, device=device)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
