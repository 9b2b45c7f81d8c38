"""The model's blocks against their definitions (REE formula, GCN vs PyG, FAVOR+ vs softmax)."""

from __future__ import annotations

import math

import pytest
import torch

from bulkfm.model import BulkFormer, ModelConfig
from bulkfm.model.gcn import GraphConv, normalized_adjacency
from bulkfm.model.performer import FavorAttention, linear_attention, softmax_features
from bulkfm.model.ree import RotaryExpressionEmbedding
from bulkfm.model.tokens import GeneIdentity


def test_ree_matches_formula_and_separates_mask_from_zero() -> None:
    ree = RotaryExpressionEmbedding(8, theta_min=0.1, theta_max=100.0)
    x = torch.tensor([[0.0, 2.5, -10.0]])
    out = ree(x)  # [1, 3, 8]
    thetas = torch.logspace(-1, 2, 4)
    expected = torch.cat([torch.sin(2.5 / thetas), torch.cos(2.5 / thetas)])
    assert torch.allclose(out[0, 1], expected, atol=1e-6)
    assert torch.allclose(out[0, 0], torch.tensor([0, 0, 0, 0, 1, 1, 1, 1.0]))
    assert (out[0, 2] - out[0, 0]).abs().max() > 0.5  # masked != measured zero


def _random_graph(n: int, e: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src, dst = torch.randint(0, n, (e,), generator=g), torch.randint(0, n, (e,), generator=g)
    keep = src != dst
    pairs = torch.unique(torch.stack([torch.minimum(src, dst), torch.maximum(src, dst)])[:, keep],
                         dim=1)
    w = torch.rand(pairs.shape[1], generator=g) * 0.6 + 0.4
    return torch.cat([pairs, pairs.flip(0)], 1), torch.cat([w, w])  # symmetric, no duplicates


def test_normalized_adjacency_is_gcn_normalisation() -> None:
    n = 30
    ei, ew = _random_graph(n, 80)
    a = torch.zeros(n, n)
    a[ei[1], ei[0]] = ew
    a += torch.eye(n)
    d = a.sum(1).pow(-0.5)
    expected = d[:, None] * a * d[None, :]
    assert torch.allclose(normalized_adjacency(ei, ew, n).to_dense(), expected, atol=1e-6)


def test_batched_graph_conv_equals_pyg_gcnconv_per_sample() -> None:
    from torch_geometric.nn import GCNConv

    n, d, b = 40, 6, 3
    ei, ew = _random_graph(n, 120, seed=1)
    conv = GraphConv(d)
    ref = GCNConv(d, d)
    with torch.no_grad():
        ref.lin.weight.copy_(conv.lin.weight)
        ref.bias.copy_(conv.lin.bias)
    x = torch.randn(b, n, d)
    adj = normalized_adjacency(ei, ew, n)
    out = conv(x, adj)  # [B, N, d] in one sparse product
    for i in range(b):
        # Our bias is applied before aggregation (inside lin); GCNConv adds it after: shift it.
        expected = ref(x[i], ei, ew) - ref.bias + adj.to_dense() @ conv.lin.bias.expand(n, d)
        assert torch.allclose(out[i], expected, atol=1e-5)


def test_favor_approximates_softmax_attention() -> None:
    torch.manual_seed(0)
    b, h, g, dh = 1, 2, 64, 16
    q, k, v = (torch.randn(b, h, g, dh) * 0.5 for _ in range(3))
    exact = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), -1) @ v
    from bulkfm.model.performer import orthogonal_gaussian

    proj = orthogonal_gaussian(4096, dh, torch.Generator().manual_seed(0))
    approx = linear_attention(softmax_features(q, proj, True), softmax_features(k, proj, False), v)
    rel = (approx - exact).norm() / exact.norm()
    assert rel < 0.1, rel


def test_favor_memory_is_linear_in_genes() -> None:
    # 60,000 genes: a G x G score matrix would need 14 GB; linear attention runs in megabytes.
    attn = FavorAttention(d_model=8, n_heads=1, nb_features=16, seed=0)
    out = attn(torch.randn(1, 60_000, 8))
    assert out.shape == (1, 60_000, 8) and torch.isfinite(out).all()


def test_gene_identity_uses_esm2_where_there_is_a_protein() -> None:
    esm = torch.randn(5, 12)
    has = torch.tensor([True, True, False, True, False])
    ident = GeneIdentity(5, 8, esm, has)
    base = ident().detach().clone()
    assert torch.allclose(base[~has], ident.learned.weight[~has])
    with torch.no_grad():
        ident.esm2[0] += 1.0  # only gene 0's identity may change
    changed = (ident().detach() - base).abs().sum(1) > 1e-6
    assert changed.tolist() == [True, False, False, False, False]


@pytest.mark.parametrize("switches", [{}, {"use_gcn": False}, {"use_esm2": False},
                                      {"use_ae_context": False}, {"ae_tokens": False},
                                      {"ae_residual": False}])
def test_bulkformer_ablation_switches(switches: dict) -> None:
    n = 50
    cfg = ModelConfig(n_genes=n, ae_hidden=[32], ae_latent=8, d_model=16, n_layers=2, n_heads=2,
                      nb_features=8, esm2_dim=6, **switches)
    ei, ew = _random_graph(n, 100)
    model = BulkFormer(cfg, esm2=torch.randn(n, 6) if cfg.use_esm2 else None,
                       has_protein=torch.rand(n) > 0.3 if cfg.use_esm2 else None,
                       edge_index=ei if cfg.use_gcn else None,
                       edge_weight=ew if cfg.use_gcn else None)
    torch.nn.init.normal_(model.head[-1].weight, std=0.5)  # as after training (starts at 0)
    x = torch.rand(4, n) * 8
    x_masked = x.clone()
    x_masked[:, :5] = cfg.mask_value
    pred = model(x_masked)
    assert pred.shape == (4, n) and torch.isfinite(pred).all()
    emb, hidden = model.embed(x)
    assert emb.shape == (4, 16) and hidden.shape == (4, n, 16)
    assert (model.ae is None) == (not cfg.use_ae_context)
    assert (model.graph is None) == (not cfg.use_gcn)
    # The prediction for a masked gene depends on the *other* genes' values.
    x2 = x_masked.clone()
    x2[:, 10:] += 1.0
    assert not torch.allclose(model(x2)[:, :5], pred[:, :5])


def test_graph_propagation_gradient_matches_dense() -> None:
    from bulkfm.model.gcn import propagate

    n = 25
    ei, ew = _random_graph(n, 60, seed=2)
    ei = torch.cat([ei, ei[:, :3].flip(0)], 1)  # duplicate + reversed edges: still symmetric Â
    ew = torch.cat([ew, ew[:3]])
    adj = normalized_adjacency(ei, ew, n)
    dense = adj.to_dense()
    assert torch.allclose(dense, dense.T, atol=1e-7)
    x = torch.randn(n, 7, requires_grad=True)
    w = torch.randn(n, 7)
    (propagate(adj, x) * w).sum().backward()
    g_sparse = x.grad.clone()
    x.grad = None
    (dense @ x * w).sum().backward()
    assert torch.allclose(g_sparse, x.grad, atol=1e-6)


def test_ae_value_tokens_carry_reconstruction_and_observed_residual() -> None:
    n = 30
    cfg = ModelConfig(n_genes=n, ae_hidden=[16], ae_latent=4, d_model=8, n_layers=1, n_heads=2,
                      nb_features=4, use_gcn=False, use_esm2=False)
    mean, std = torch.rand(n) * 3, torch.rand(n) + 0.5
    model = BulkFormer(cfg, gene_mean=mean, gene_std=std).eval()
    x = torch.rand(3, n) * 6
    x[:, :4] = cfg.mask_value
    context, base, values = model._ae(x)
    assert values.shape == (3, n, 2) and torch.equal(values[..., 0], base)
    assert torch.allclose(values[:, 4:, 1], (x[:, 4:] - mean[4:]) / std[4:] - base[:, 4:])
    assert (values[:, :4, 1] == 0).all()  # a masked gene's value is unknown: no residual
    # the AE context can see a different (more heavily masked) input than the tokens
    x_ae = x.clone()
    x_ae[:, 4:10] = cfg.mask_value
    c2, b2, v2 = model._ae(x, ae_input=x_ae)
    assert not torch.allclose(c2, context)
    assert torch.allclose(v2[:, 4:, 1], (x[:, 4:] - mean[4:]) / std[4:] - b2[:, 4:])
    assert not torch.allclose(model(x, ae_input=x_ae), model(x))


def test_model_config_written_before_ae_tokens_loads_without_them() -> None:
    old = {k: v for k, v in ModelConfig(n_genes=5).to_dict().items() if k != "ae_tokens"}
    assert ModelConfig.from_dict(old).ae_tokens is False
    assert ModelConfig.from_dict(ModelConfig(n_genes=5).to_dict()).ae_tokens is True


def test_paper_switches_zero_masked_expression_and_max_pool() -> None:
    import torch

    from bulkfm.model import BulkFormer, ModelConfig

    cfg = ModelConfig(n_genes=12, ae_hidden=[8], ae_latent=4, d_model=8, n_layers=1,
                      n_heads=2, nb_features=4, use_gcn=False, use_esm2=False,
                      zero_masked_ree=True, token_mlp=True, pool="max")
    torch.manual_seed(0)
    m = BulkFormer(cfg).eval()
    x = torch.rand(2, 12) * 3
    x[:, :3] = cfg.mask_value
    ree = m.tokenizer.ree(x)
    tokens = m.tokenizer(x, torch.zeros(2, 4), torch.zeros(2, 12, 2))
    assert ree[:, :3].abs().sum() > 0  # REE(-10) itself is not zero ...
    base = m.tokenizer.identity().unsqueeze(0) + m.tokenizer.context(torch.zeros(2, 4)).unsqueeze(1) \
        + m.tokenizer.ae_values(torch.zeros(2, 12, 2))
    base = base + m.tokenizer.mlp(base)
    assert torch.allclose(tokens[:, :3], base[:, :3], atol=1e-6)  # ... the token carries none
    pooled, h = m.embed(x)
    assert torch.allclose(pooled, h.amax(1))
    with pytest.raises(ValueError, match="pool"):
        ModelConfig.from_dict({"n_genes": 3, "pool": "sum"})
