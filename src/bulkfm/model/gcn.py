"""GCN over the fixed gene graph, shared by every sample of the batch.

The symmetric-normalised adjacency ``Â = D^-1/2 (A + I) D^-1/2`` is built once (torch-geometric's
``gcn_norm``) and kept as a torch CSR tensor; a batch is one sparse-dense product
``Â @ X`` with X reshaped to [G, B*d]. Repeating the edge list per sample is 8-20x slower
(TOOLCHAIN.md §8). Edge weights are |PCC|: the normalisation needs non-negative degrees, and a
strong negative correlation is as informative a neighbour as a positive one.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import coalesce, remove_self_loops, to_torch_csr_tensor, to_undirected


def normalized_adjacency(edge_index: torch.Tensor, edge_weight: torch.Tensor,
                         n_nodes: int) -> torch.Tensor:
    """[2, E] edges + [E] weights -> Â as a float32 CSR tensor [G, G] (row = target)."""
    ei, ew = remove_self_loops(edge_index.long(), edge_weight.float().abs())
    # Top-k lists are directed; correlation is symmetric, so use both directions (max weight).
    ei, ew = to_undirected(ei, ew, num_nodes=n_nodes, reduce="max")
    ei, ew = coalesce(ei, ew, num_nodes=n_nodes)
    ei, ew = gcn_norm(ei, ew, num_nodes=n_nodes, add_self_loops=True)
    # Messages flow source -> target: out[target] += w * x[source], i.e. rows are targets.
    with warnings.catch_warnings():  # "sparse CSR support is in beta": known, and tested here
        warnings.simplefilter("ignore", UserWarning)
        return to_torch_csr_tensor(ei.flip(0), ew, size=(n_nodes, n_nodes))


class _SymmetricSpMM(torch.autograd.Function):
    """``Â @ X`` whose backward is ``Â @ dX``: Â is symmetric by construction, so the transpose
    that autograd would otherwise build from the CSR tensor (a sort per step) is not needed."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return None, ctx.adj @ grad


def propagate(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Symmetric sparse [G, G] @ dense [G, F] with a cheap backward."""
    return _SymmetricSpMM.apply(adj, x)


class GeneGraph(nn.Module):
    """Holds the edge list (saved in the checkpoint) and the Â built from it once per device."""

    def __init__(self, edge_index: torch.Tensor, edge_weight: torch.Tensor, n_nodes: int) -> None:
        super().__init__()
        if edge_index.numel() and int(edge_index.max()) >= n_nodes:
            raise ValueError(f"edge index {int(edge_index.max())} out of range for {n_nodes} genes")
        self.n_nodes = n_nodes
        self.register_buffer("edge_index", edge_index.long().contiguous())  # [2, E]
        self.register_buffer("edge_weight", edge_weight.float().contiguous())  # [E]
        self._adj: torch.Tensor | None = None

    def adjacency(self) -> torch.Tensor:
        if self._adj is None or self._adj.device != self.edge_index.device:
            self._adj = normalized_adjacency(self.edge_index, self.edge_weight, self.n_nodes)
        return self._adj


class GraphConv(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        b, g, d = x.shape  # [B, G, d]; adj CSR [G, G]
        h = self.lin(x)
        h = h.transpose(0, 1).reshape(g, b * d)  # [G, B*d]: one product for the whole batch
        with torch.autocast(device_type=h.device.type, enabled=False):
            h = propagate(adj, h.float())  # sparse [G, G] @ [G, B*d]
        return h.to(x.dtype).reshape(g, b, d).transpose(0, 1)  # [B, G, d]
