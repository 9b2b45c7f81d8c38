"""The conditional generator: a VAE whose latent has a biological, a perturbation and a
technical part, each with a prior conditioned on that group's metadata only.

Design (and why):

* z = [z_bio | z_pert | z_tech]. The encoder q(z | x) reads expression only; each part's prior
  p(z_g | c_g) = N(mu_g(c_g), diag sigma_g(c_g)^2) reads only its group's fields (embedding.py).
  The KL term pulls the samples of one biological condition to that condition's region of
  z_bio, of one study to its region of z_tech: a part can only be shaped by its own group's
  labels (apart by construction).
* The decoder is a sum of one network per part (decoder.py), so a technical part adds its own
  term and cannot rewrite the biological one; combinations never seen together (this disease
  in that study) compose by that sum.
* Apart by measurement and by training: an adversary per part predicts the *other* groups'
  fields from it through a gradient-reversal layer, so a part that leaks another group's
  labels is penalised (weight ``adv_weight``), and a linear head per part predicts its *own*
  group's fields (``aux_weight``), so the part carries them (on TCGA without it the biological
  part probed at chance for sample type).
  evaluate.py reports linear probes of each part for every field.
* Condition dropout: each field is set to "unknown" with probability ``cond_dropout`` in the
  prior, so "unknown" is learned as the marginal over that field (a query may leave fields
  empty, and a held-out study is generated with study = unknown).
* After training, the prior of every biological/perturbation/technical condition seen with
  at least ``agg_min`` samples is replaced by a Gaussian (full covariance, shrunk) fitted to
  the training posteriors of that condition (a two-stage VAE): a VAE's prior and aggregate
  posterior differ, and generating from the learned prior would bias seen-condition means.
  Unseen combinations keep the learned network prior.
* Generation: z ~ prior, x = mean + residual noise (per gene sd); counterfactual: encode x,
  move only the parts whose fields are set (z' = z - mu(c) + mu(c')), keep the sample's
  own residual x - D(z).

Expression inside is standardized per gene with train-split moments (bulkfm.model.normalize).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from bulkfm.common.settings import check_keys
from bulkfm.generate.conditions import GROUPS, NUMERIC, Vocabulary
from bulkfm.generate.decoder import Decoder
from bulkfm.generate.embedding import ConditionalPrior, FieldEmbedding
from bulkfm.generate.encoder import Encoder
from bulkfm.model.normalize import GeneScaler

PARTS: tuple[str, ...] = tuple(GROUPS)  # ("bio", "pert", "tech")


@dataclass
class GeneratorConfig:
    n_genes: int = 0
    latent: dict[str, int] = field(default_factory=lambda: {"bio": 16, "pert": 4, "tech": 8})
    embed_dim: int = 32
    encoder_hidden: list[int] = field(default_factory=lambda: [512, 256])
    decoder_hidden: int = 256
    dropout: float = 0.1
    input_dropout: float = 0.0
    cond_dropout: float = 0.15
    beta: float = 1.0
    adv_weight: float = 20.0  # CE terms vs an NLL summed over genes: weights of ~20 matter
    aux_weight: float = 20.0
    agg_min: int = 3
    agg_shrink: float = 0.2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        check_keys(d, {f.name for f in fields(cls)}, "generate.model")
        return cls(**d)


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return -ctx.scale * grad, None


def _ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over samples whose label is known (code 0 = unknown is ignored)."""
    if not bool((target != 0).any()):
        return logits.sum() * 0.0
    return nn.functional.cross_entropy(logits, target, ignore_index=0)


class Generator(nn.Module):
    def __init__(self, cfg: GeneratorConfig, vocab: Vocabulary,
                 mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> None:
        super().__init__()
        self.cfg, self.vocab = cfg, vocab
        self.scaler = GeneScaler(cfg.n_genes, mean, std)
        self.group_fields = {g: vocab.group_fields(g) for g in PARTS}
        # A part with latent size 0 is off (train.py: its group has no field that varies).
        self.active = [g for g in PARTS if cfg.latent.get(g, 0) > 0]
        act = {g: cfg.latent[g] for g in self.active}
        self.embed = nn.ModuleDict({
            g: FieldEmbedding({f: vocab.size(f) for f in fs if f not in NUMERIC},
                              [f for f in fs if f in NUMERIC], cfg.embed_dim)
            for g, fs in self.group_fields.items()})
        self.prior = nn.ModuleDict({g: ConditionalPrior(cfg.embed_dim, cfg.latent[g])
                                    for g in self.active})
        self.encoder = Encoder(cfg.n_genes, cfg.encoder_hidden, act, cfg.dropout)
        self.decoder = Decoder(cfg.n_genes, act, cfg.decoder_hidden, cfg.dropout)
        # Adversaries: part g -> each categorical field of the other groups with > 1 value.
        self.adv_targets = {g: [f for h in PARTS if h != g for f in self.group_fields[h]
                                if f not in NUMERIC and vocab.size(f) > 2] for g in self.active}
        self.adversary = nn.ModuleDict({
            f"{g}__{f}": nn.Sequential(nn.Linear(cfg.latent[g], 64), nn.ReLU(),
                                       nn.Linear(64, vocab.size(f)))
            for g in self.active for f in self.adv_targets[g]})
        # Auxiliary heads: part g -> its own group's fields (a part must carry its labels).
        self.aux_targets = {g: [f for f in self.group_fields[g]
                                if f not in NUMERIC and vocab.size(f) > 2] for g in self.active}
        self.aux = nn.ModuleDict({f"{g}__{f}": nn.Linear(cfg.latent[g], vocab.size(f))
                                  for g in self.active for f in self.aux_targets[g]})
        # Aggregate-posterior priors of seen conditions (filled by fit_aggregate_priors).
        self.agg_keys: dict[str, list[str]] = {g: [] for g in PARTS}
        for g in PARTS:
            k = cfg.latent.get(g, 0)
            self.register_buffer(f"agg_mu_{g}", torch.zeros(0, k))
            self.register_buffer(f"agg_chol_{g}", torch.zeros(0, k, k))
            # Additive model of the condition means in latent space (unseen combinations):
            # mu = design(c) @ agg_lin; spread = pooled within-condition Cholesky factor.
            self.register_buffer(f"agg_lin_{g}", torch.zeros(0, k))
            self.register_buffer(f"agg_pool_{g}", torch.zeros(k, k))

    # ------------------------------------------------------------------ conditions
    def group_codes(self, codes: dict[str, torch.Tensor], g: str) -> dict[str, torch.Tensor]:
        return {f: codes[f] for f in self.group_fields[g]}

    def drop_conditions(self, codes: dict[str, torch.Tensor], p: float,
                        gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Each field -> unknown with probability p (per sample)."""
        out = {}
        for f, c in codes.items():
            drop = torch.rand(c.shape[0], generator=gen) < p  # [B]
            out[f] = c.masked_fill(drop, 0) if f not in NUMERIC else c * (~drop)[:, None]
        return out

    def prior_params(self, codes: dict[str, torch.Tensor], batch: int
                     ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """-> {group: (mu [B, k], logvar [B, k])} of the network prior."""
        return {g: self.prior[g](self.embed[g](self.group_codes(codes, g), batch))
                for g in self.active}

    # ------------------------------------------------------------------ training
    def loss(self, x: torch.Tensor, codes: dict[str, torch.Tensor], *, adv_scale: float = 1.0,
             beta: float | None = None, gen: torch.Generator | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """x [B, G] log1p, codes {field: [B] | [B, 2]} -> (loss, parts)."""
        b = x.shape[0]
        beta = self.cfg.beta if beta is None else beta
        xs = self.scaler(x)  # [B, G] standardized
        # Optional input gene dropout (denoising); the decoder still reconstructs all genes.
        # Measured on Pickrell (55 training samples) it did not make held-out latents
        # predict sex better, so it is off by default.
        keep = torch.rand(xs.shape, generator=gen) >= self.cfg.input_dropout
        post = self.encoder(xs * keep)
        z = {g: mu + torch.randn(mu.shape, generator=gen) * (0.5 * lv).exp()
             for g, (mu, lv) in post.items()}
        pri = self.prior_params(self.drop_conditions(codes, self.cfg.cond_dropout, gen), b)
        mean = self.decoder(z)  # [B, G]
        sigma = self.decoder.sigma()
        nll = (0.5 * ((xs - mean) / sigma) ** 2 + sigma.log()).sum(1).mean()
        kl = x.new_zeros(())
        for g in self.active:
            mq, lq = post[g]
            mp, lp = pri[g]
            kl = kl + 0.5 * (lp - lq + (lq.exp() + (mq - mp) ** 2) / lp.exp() - 1).sum(1).mean()
        adv = x.new_zeros(())
        for g in self.active:
            zr = _Reverse.apply(z[g], adv_scale)
            for f in self.adv_targets[g]:
                adv = adv + _ce(self.adversary[f"{g}__{f}"](zr), codes[f])
        aux = x.new_zeros(())
        for g in self.active:
            for f in self.aux_targets[g]:
                aux = aux + _ce(self.aux[f"{g}__{f}"](z[g]), codes[f])
        total = nll + beta * kl + self.cfg.adv_weight * adv + self.cfg.aux_weight * aux
        mse = float(((xs - mean.detach()) ** 2).mean())
        return total, {"nll": float(nll.detach()), "kl": float(kl.detach()),
                       "adv": float(adv.detach()), "aux": float(aux.detach()), "mse_std": mse}

    # ------------------------------------------------------------------ aggregate priors
    @staticmethod
    def condition_id(codes: dict[str, torch.Tensor], fs: list[str], i: int) -> str:
        parts = []
        for f in fs:
            c = codes[f][i]
            parts.append(f"{f}={int(c)}" if f not in NUMERIC else
                         (f"{f}=?" if float(c[1]) == 0 else f"{f}={float(c[0]):.3f}"))
        return "|".join(parts) or "-"

    def design(self, codes: dict[str, torch.Tensor], g: str) -> torch.Tensor:
        """Additive design matrix of group g: [1 | one-hot per categorical field value
        (unknown = no column) | numeric value x known, known] -> [B, D]."""
        cols = []
        b = next(iter(codes.values())).shape[0]
        cols.append(torch.ones(b, 1))
        for f in self.group_fields[g]:
            c = codes[f]
            if f in NUMERIC:
                cols.append(c.float())
            else:
                cols.append(nn.functional.one_hot(c, self.vocab.size(f))[:, 1:].float())
        return torch.cat(cols, 1)

    def fit_aggregate_priors(self, mus: dict[str, np.ndarray], logvars: dict[str, np.ndarray],
                             codes: dict[str, torch.Tensor]) -> None:
        """mus/logvars: {group: [N, k]} training posteriors; codes of those N samples."""
        n = next(iter(mus.values())).shape[0]
        for g in self.active:
            ids = [self.condition_id(codes, self.group_fields[g], i) for i in range(n)]
            keys, mu_l, cov_l, first, sizes = [], [], [], [], []
            for key in sorted(set(ids)):
                sel = np.array([i == key for i in ids])
                if sel.sum() < self.cfg.agg_min:
                    continue
                m = mus[g][sel]
                cov = np.atleast_2d(np.cov(m.T, ddof=1))
                cov = cov + np.diag(np.exp(logvars[g][sel]).mean(0))
                s = self.cfg.agg_shrink
                cov = (1 - s) * cov + s * np.diag(np.diag(cov)) + 1e-5 * np.eye(len(cov))
                keys.append(key)
                mu_l.append(m.mean(0))
                cov_l.append(cov)
                first.append(int(np.nonzero(sel)[0][0]))
                sizes.append(int(sel.sum()))
            k = self.cfg.latent[g]
            self.agg_keys[g] = keys
            setattr(self, f"agg_mu_{g}", torch.tensor(np.array(mu_l), dtype=torch.float32
                                                      ).reshape(len(keys), k))
            setattr(self, f"agg_chol_{g}", torch.tensor(
                np.array([np.linalg.cholesky(c) for c in cov_l]), dtype=torch.float32
            ).reshape(len(keys), k, k))
            if not keys:
                continue
            # Weighted ridge of condition means on the additive design: unseen combinations
            # get the sum of their values' effects in latent space (cf. the additive baseline).
            x = self.design({f: v[first] for f, v in codes.items()}, g).double().numpy()
            w = np.sqrt(np.array(sizes, dtype=np.float64))[:, None]
            y = np.array(mu_l)
            a = (x * w).T @ (x * w) + 1e-3 * np.eye(x.shape[1])
            lin = np.linalg.solve(a, (x * w).T @ (y * w))
            pooled = sum(c * n_ for c, n_ in zip(cov_l, sizes, strict=True)) / sum(sizes)
            setattr(self, f"agg_lin_{g}", torch.tensor(lin, dtype=torch.float32))
            setattr(self, f"agg_pool_{g}", torch.tensor(np.linalg.cholesky(pooled),
                                                        dtype=torch.float32))

    def prior_moments(self, codes: dict[str, torch.Tensor], batch: int
                      ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """-> {group: (mu [B, k], L [B, k, k])}: the aggregate prior of a seen condition; for an
        unseen combination of seen values the latent additive model; the network prior where a
        field is unknown."""
        net = self.prior_params(codes, batch)
        out = {}
        for g in self.active:
            mu, lv = net[g]
            L = torch.diag_embed((0.5 * lv).exp())
            index = {k: j for j, k in enumerate(self.agg_keys[g])}
            agg_mu, agg_chol = getattr(self, f"agg_mu_{g}"), getattr(self, f"agg_chol_{g}")
            lin, pool = getattr(self, f"agg_lin_{g}"), getattr(self, f"agg_pool_{g}")
            mu, L = mu.clone(), L.clone()
            known = torch.ones(batch, dtype=torch.bool)
            for f in self.group_fields[g]:
                c = codes[f]
                known &= (c != 0) if f not in NUMERIC else (c[:, 1] != 0)
            if len(lin):
                add = self.design(codes, g) @ lin  # [B, k]
                mu[known], L[known] = add[known], pool
            for i in range(batch):
                j = index.get(self.condition_id(codes, self.group_fields[g], i))
                if j is not None:
                    mu[i], L[i] = agg_mu[j], agg_chol[j]
            out[g] = (mu, L)
        return out

    def is_seen(self, codes: dict[str, torch.Tensor], i: int) -> bool:
        return all(self.condition_id(codes, self.group_fields[g], i) in set(self.agg_keys[g])
                   for g in self.active)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def sample(self, codes: dict[str, torch.Tensor], gen: torch.Generator,
               noise: bool = True) -> torch.Tensor:
        """codes for B profiles -> log1p [B, G]."""
        b = next(iter(codes.values())).shape[0]
        mom = self.prior_moments(codes, b)
        z = {g: mu + (L @ torch.randn(mu.shape + (1,), generator=gen)).squeeze(-1)
             for g, (mu, L) in mom.items()}
        mean = self.decoder(z)
        if noise:
            mean = mean + torch.randn(mean.shape, generator=gen) * self.decoder.sigma()
        return self.scaler.inverse(mean).clamp_min(0.0)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """log1p [B, G] -> posterior means {group: [B, k]}"""
        return {g: mu for g, (mu, _) in self.encoder(self.scaler(x)).items()}

    @torch.no_grad()
    def counterfactual(self, x: torch.Tensor, old: dict[str, torch.Tensor],
                       new: dict[str, torch.Tensor], moved: set[str]) -> torch.Tensor:
        """x [B, G] log1p; old/new codes; moved = groups with a field set -> log1p [B, G]."""
        b = x.shape[0]
        z = self.encode(x)
        base = self.decoder(z)
        m_old, m_new = self.prior_moments(old, b), self.prior_moments(new, b)
        z2 = dict(z)
        for g in moved & set(self.active):
            # Keep the sample's offset from its condition's centre, move the centre. (Whitening
            # by each condition's spread, z' = mu' + L' L^-1 (z - mu), moved more unrelated
            # genes in the Pickrell sex swap: 216 / 187 vs 171 / 84 genes with |delta| > 0.5.)
            z2[g] = z[g] - m_old[g][0] + m_new[g][0]
        shift = self.decoder(z2) - base  # the sample's own residual is kept
        return self.scaler.inverse(self.scaler(x) + shift).clamp_min(0.0)

    def log_density(self, z: torch.Tensor, g: str) -> torch.Tensor:
        """z [B, k] -> log N(z | aggregate prior c) [B, C] for the seen conditions of part g."""
        mu, L = getattr(self, f"agg_mu_{g}"), getattr(self, f"agg_chol_{g}")  # [C,k], [C,k,k]
        d = (z[:, None, :] - mu[None]).unsqueeze(-1)  # [B, C, k, 1]
        w = torch.linalg.solve_triangular(L[None].expand(z.shape[0], -1, -1, -1), d, upper=False)
        logdet = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)  # [C]
        return -0.5 * (w.squeeze(-1) ** 2).sum(-1) - logdet[None]
