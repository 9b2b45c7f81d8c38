"""Stage-2 training step of the BulkFormer-style model at full size: time, throughput, memory.

    python benchmarks/train_gpu_step.py --genes 20000 --d 320 --batch 8 --bf16
    python benchmarks/train_gpu_step.py --genes 20000 --d 320 --bf16 --find-max-batch

One step = masked input -> forward (AE context, tokens, GCN + Performer blocks, head) ->
masked MSE -> backward -> gradient clipping -> AdamW, as in ``bulkfm train`` stage 2 (AE
frozen). The graph is random with ``--edges-per-gene`` neighbours (the PCC graph's top-20
shape); ESM2 vectors are random 1280-d (ESM2-650M width). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from bulkfm.model import BulkFormer, ModelConfig
from bulkfm.train.data import apply_mask, random_mask


def build(args: argparse.Namespace, device: torch.device) -> BulkFormer:
    g = args.genes
    gen = torch.Generator().manual_seed(0)
    src = torch.arange(g).repeat_interleave(args.edges_per_gene)
    dst = torch.randint(0, g, (g * args.edges_per_gene,), generator=gen)
    cfg = ModelConfig(n_genes=g, ae_hidden=args.ae_hidden, ae_latent=args.d, d_model=args.d,
                      n_layers=args.layers, n_heads=args.heads, nb_features=args.features,
                      esm2_dim=args.esm2_dim, use_gcn=not args.no_gcn)
    model = BulkFormer(cfg, esm2=torch.randn(g, args.esm2_dim, generator=gen),
                       has_protein=torch.ones(g, dtype=torch.bool),
                       edge_index=torch.stack([src, dst]), edge_weight=torch.full((len(src),), 0.5))
    model.ae.requires_grad_(False)
    return model.to(device)


def measure(model: BulkFormer, batch: int, args: argparse.Namespace,
            device: torch.device) -> dict[str, float]:
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None  # a previous (maybe out-of-memory) trial's gradients
    opt = torch.optim.AdamW(params, lr=1e-4)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    x = (torch.rand(batch, args.genes, device=device) * 8).contiguous()
    times = []
    for step in range(args.warmup + args.steps):
        mask = random_mask((batch, args.genes), 0.15, torch.Generator().manual_seed(step)).to(device)
        if cuda:
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            pred = model(apply_mask(x, mask, -10.0))
            loss = F.mse_loss(pred[mask].float(), x[mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if cuda:
            torch.cuda.synchronize(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - t)
    step_s = sorted(times)[len(times) // 2]
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan")
    return {"batch": batch, "step_s": step_s, "samples_per_s": batch / step_s, "peak_gib": peak}


def fits(model: BulkFormer, batch: int, args: argparse.Namespace, device: torch.device):
    try:
        return measure(model, batch, argparse.Namespace(**{**vars(args), "warmup": 1,
                                                            "steps": 1}), device)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--genes", type=int, default=20000)
    p.add_argument("--d", type=int, default=320)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--features", type=int, default=128, help="FAVOR+ random features")
    p.add_argument("--ae-hidden", type=int, nargs="+", default=[4096, 1024])
    p.add_argument("--esm2-dim", type=int, default=1280)
    p.add_argument("--edges-per-gene", type=int, default=20)
    p.add_argument("--no-gcn", action="store_true")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--find-max-batch", action="store_true",
                   help="double the batch until out of memory, then bisect")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.find_max_batch and device.type != "cuda":
        p.error("--find-max-batch needs a CUDA device (it searches for the out-of-memory edge)")
    model = build(args, device)
    n_params = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; genes {args.genes}, d {args.d}, layers {args.layers}, heads "
          f"{args.heads}, FAVOR+ features {args.features}, bf16 {args.bf16}, "
          f"parameters {n_params / 1e6:.1f} M, torch {torch.__version__}\n")
    rows = []
    if args.find_max_batch:
        lo, hi = 0, args.batch
        while hi <= 4096 and (r := fits(model, hi, args, device)) is not None:
            lo, hi = hi, hi * 2
            print(f"  batch {lo}: fits (peak {r['peak_gib']:.1f} GiB)", flush=True)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if fits(model, mid, args, device) is not None:
                lo = mid
            else:
                hi = mid
        print(f"\nlargest batch that fits: {lo}\n")
        if lo:
            rows.append(measure(model, lo, args, device))
    else:
        rows.append(measure(model, args.batch, args, device))
    print("| genes | d | batch | bf16 | step (s) | samples/s | peak memory (GiB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {args.genes} | {args.d} | {r['batch']} | {args.bf16} | {r['step_s']:.3f} | "
              f"{r['samples_per_s']:.1f} | {r['peak_gib']:.1f} |")


if __name__ == "__main__":
    main()
