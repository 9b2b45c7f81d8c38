"""The conditional generator: a VAE whose latent has a biological, a perturbation and a
technical part, each with a prior conditioned on that group's metadata only.

Design (and why):

* z = [z_bio | z_pert | z_tech]. The encoder q(z | x) reads expression only; each part's prior
  p(z_g | c_g) = N(mu_g(c_g), diag sigma_g(c_g)^2) reads only its group's fields (embedding.py).
  The KL term pulls the samples of one biological condition to that condition's region of
  z_bio, of one study to its region of z_tech: a part can only be shaped by its own group's
  labels (apart by construction).
* The decoder has one network per part (decoder.py): the technical part adds its own term and
  rescales each gene's biological term (a per-gene affine batch model), so it cannot rewrite
  the biological pattern; combinations never seen together (this disease in that study)
  compose through that form.
* Apart by measurement and by training: an adversary per part predicts the *other* groups'
  fields from it through a gradient-reversal layer, so a part that leaks another group's
  labels is penalised (weight ``adv_weight``), and a linear head per part predicts its *own*
  group's fields (``aux_weight``), so the part carries them (on TCGA without it the biological
  part probed at chance for sample type). A conditional adversary and a within-condition
  cross-covariance term were tried and removed: on a validation
  split of TCGA under two processings they took the bio->study probe 0.67 -> 0.57 but the
  real-vs-generated AUC 0.80 -> 0.87; the technical gain took them to 0.55 and 0.78.
  evaluate.py reports linear probes of each part for every field.
* Condition dropout: each field is set to "unknown" with probability ``cond_dropout`` in the
  prior, so "unknown" is learned as the marginal over that field (a query may leave fields
  empty, and a held-out study is generated with study = unknown).
* After training, the prior of every biological/perturbation/technical condition seen with at
  least ``agg_min`` samples is replaced by a Gaussian (full covariance, shrunk) fitted to the
  training posteriors of that condition (a two-stage VAE), and every seen *full* condition
  (all groups together) keeps its training samples' posteriors: by default
  (``sampler="empirical"``) it is generated from them, z = mu_j + sd_j * eps for a random
  sample j of the condition (``stratify``: the rows of one call take distinct j) (the
  aggregate posterior itself; per-part Gaussians paired a biological latent that still
  carried the study with the other study's technical latent). A gene-space calibration bias
  per seen full condition, (training mean - mean of decoded draws) * n / (n + cal_shrink),
  brings the generated mean to the training mean there. Unseen combinations keep the latent
  additive model / learned network prior, no bias.
* Generation: z as above, x = mean + bias + residual noise (per gene sd); counterfactual:
  encode x, move only the parts whose fields are set (z' = z - mu(c) + mu(c')), add the
  calibration difference, keep the sample's own residual x - D(z), and apply the shift only
  to genes whose training difference between the old and new value of a set field passes a
  Bonferroni t test (``cf_alpha``; the Pickrell sex swap moved 84-171 genes by > 0.5
  without it, 11-13 with it, ~30 in the real means).

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


@dataclass(frozen=True)
class GeneratorConfig:
    n_genes: int = 0
    latent: dict[str, int] = field(default_factory=lambda: {"bio": 16, "pert": 4, "tech": 8})
    embed_dim: int = 32
    # The widths benchmarks/results/generate.md measured (benchmarks/generate_tcga.py).
    encoder_hidden: tuple[int, ...] = (256, 128)
    decoder_hidden: int = 128
    dropout: float = 0.1
    input_dropout: float = 0.0
    cond_dropout: float = 0.15
    beta: float = 1.0
    adv_weight: float = 20.0  # CE terms vs an NLL summed over genes: weights of ~20 matter
    aux_weight: float = 20.0
    agg_min: int = 3
    agg_shrink: float = 0.2
    # Residual sd depending on the latent (decoder.py): off, measured worse on a validation
    # split of TCGA under two processings (AUC 0.85 with, 0.80 without, empirical sampler).
    noise_heads: bool = False
    # Seen-condition calibration: gene-space bias = (training mean - generated mean) of each
    # seen full condition, shrunk by n / (n + cal_shrink); negative = off.
    cal_shrink: float = 1.0
    # Seen full conditions (every group's fields seen together >= agg_min times): "empirical"
    # draws z from the training posteriors of that condition's samples (the aggregate
    # posterior itself: z = mu_j + sd_j * eps, j a random such sample); "gaussian" draws each
    # part from its Gaussian fit (fit_aggregate_priors). Measured on a validation split of
    # TCGA under two processings (benchmarks/results/generate.md): the Gaussian, fitted per
    # group, pairs a biological latent that still carries the study with the other study's
    # technical latent, and real-vs-generated AUC was 0.84-0.92.
    sampler: str = "empirical"
    # Empirical sampler: the rows of one call take distinct training samples of their
    # condition (a cycled random permutation) instead of independent draws.
    stratify: bool = True
    # Counterfactuals move only genes whose training difference between the old and new
    # value of a set field passes a two-sided Bonferroni test at this level (0 = no gate).
    cf_alpha: float = 0.05
    # Technical gain: the technical part scales the other parts' per-gene terms,
    # x = g(z_tech) * (D_bio + D_pert + b) + D_tech, as well as adding its own term. Why: two
    # processings of TCGA (log1p RSEM vs log1p CPM) differ per gene by more than a shift, and
    # a sum-only decoder made the biological latent carry the study (validation probe 0.67,
    # 0.55 with the gain; kNN recall 0.90 -> 0.98; benchmarks/results/generate.md).
    tech_scale: bool = True
    def __post_init__(self) -> None:
        # YAML/JSON give a list; a tuple keeps the frozen config unchangeable
        object.__setattr__(self, "encoder_hidden", tuple(int(w) for w in self.encoder_hidden))

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
        self.decoder = Decoder(cfg.n_genes, act, cfg.decoder_hidden, cfg.dropout,
                               cfg.noise_heads, cfg.tech_scale)
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
        self._register_tables(cfg, vocab)

    def _register_tables(self, cfg: GeneratorConfig, vocab: Vocabulary) -> None:
        """Buffers that the post-training fits fill (sized by the data when loaded)."""
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
        # Calibration of seen full conditions (fit_calibration): raw bias [C, G], sizes [C].
        self.cal_keys: list[str] = []
        self.register_buffer("cal_bias", torch.zeros(0, cfg.n_genes))
        self.register_buffer("cal_n", torch.zeros(0))
        # Training posteriors (empirical sampler): mu/logvar [N, sum k] in PARTS order of the
        # active parts, full-condition index [N] into cal_keys (-1: a rare condition).
        ktot = sum(cfg.latent.get(g, 0) for g in self.active)
        self.register_buffer("post_mu", torch.zeros(0, ktot))
        self.register_buffer("post_lv", torch.zeros(0, ktot))
        self.register_buffer("post_key", torch.zeros(0, dtype=torch.long))
        # Per-value training statistics of each biological/perturbation categorical field, in
        # standardized units (fit_field_effects): mean [V+1, G] (row 0: all samples), n [V+1],
        # pooled within-value variance [G]. They gate counterfactual shifts.
        self.fx_fields = [f for g in ("bio", "pert") for f in self.group_fields[g]
                          if f not in NUMERIC]
        for f in self.fx_fields:
            self.register_buffer(f"fx_mean_{f}", torch.zeros(vocab.size(f), cfg.n_genes))
            self.register_buffer(f"fx_n_{f}", torch.zeros(vocab.size(f)))
            self.register_buffer(f"fx_var_{f}", torch.ones(cfg.n_genes))

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
        sigma = self.decoder.sigma(z)  # [B, G]
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
                       "adv": float(adv.detach()), "aux": float(aux.detach()),
                       "mse_std": mse}

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

    def split_parts(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """[B, sum k] -> {group: [B, k_g]} (active parts, PARTS order)."""
        out, start = {}, 0
        for g in self.active:
            k = self.cfg.latent[g]
            out[g] = flat[:, start:start + k]
            start += k
        return out

    def draw_latent(self, codes: dict[str, torch.Tensor], batch: int, gen: torch.Generator
                    ) -> dict[str, torch.Tensor]:
        """z for B rows: from the training posteriors of the row's seen full condition
        (sampler "empirical"), else from each part's Gaussian prior_moments."""
        mom = self.prior_moments(codes, batch)
        z = {g: mu + (L @ torch.randn(mu.shape + (1,), generator=gen)).squeeze(-1)
             for g, (mu, L) in mom.items()}
        if self.cfg.sampler != "empirical" or not len(self.post_key):
            return z
        index = {k: j for j, k in enumerate(self.cal_keys)}
        rows: dict[int, list[int]] = {}
        for i in range(batch):
            j = index.get(self.full_key(codes, i))
            if j is not None:
                rows.setdefault(j, []).append(i)
        flat = torch.cat([z[g] for g in self.active], 1)  # [B, sum k]
        for j, idx in rows.items():
            m = torch.nonzero(self.post_key == j).squeeze(1)  # the condition's training samples
            if not len(m):
                continue
            if self.cfg.stratify:
                # Each row's sample j is still uniform over the members, but the rows of one
                # call take distinct members (a random permutation, cycled): duplicates of one
                # training latent form tight clusters a classifier picks out.
                order = torch.cat([torch.randperm(len(m), generator=gen)
                                   for _ in range(-(-len(idx) // len(m)))])[:len(idx)]
            else:
                order = torch.randint(len(m), (len(idx),), generator=gen)
            pick = m[order]
            eps = torch.randn(len(idx), flat.shape[1], generator=gen)
            flat[idx] = self.post_mu[pick] + (0.5 * self.post_lv[pick]).exp() * eps
        return self.split_parts(flat)

    # ------------------------------------------------------------------ calibration
    def full_key(self, codes: dict[str, torch.Tensor], i: int) -> str:
        return " || ".join(self.condition_id(codes, self.group_fields[g], i)
                           for g in self.active)

    def calibration(self, codes: dict[str, torch.Tensor], batch: int) -> torch.Tensor:
        """Gene-space bias [B, G] of each row's seen full condition (0 where unseen or off).
        Why: a Gaussian aggregate prior through a nonlinear decoder does not return the
        condition's training mean exactly (on TCGA under two processings the seen top-50
        genes' change lagged the training mean by 0.04 r)."""
        out = torch.zeros(batch, self.cfg.n_genes)
        if self.cfg.cal_shrink < 0 or not self.cal_keys:
            return out
        index = {k: j for j, k in enumerate(self.cal_keys)}
        rows = [(i, index.get(self.full_key(codes, i))) for i in range(batch)]
        rows = [(i, j) for i, j in rows if j is not None]
        if rows:
            i, j = map(list, zip(*rows, strict=True))
            n = self.cal_n[j][:, None]
            out[i] = self.cal_bias[j] * n / (n + self.cfg.cal_shrink)
        return out

    @torch.no_grad()
    def fit_calibration(self, sums: dict[str, np.ndarray], counts: dict[str, int],
                        first: dict[str, dict[str, torch.Tensor]], keys_of_rows: list[str],
                        mus: np.ndarray, logvars: np.ndarray, draws: int = 512,
                        seed: int = 0, steps: int = 4) -> None:
        """sums/counts: standardized training expression summed per full condition; first:
        that condition's codes (one row); keys_of_rows [N] and training posteriors
        mus/logvars [N, sum k] (the empirical sampler). Bias b such that the mean of
        ``draws`` sampled profiles, clamp(D(z) + b + noise) at log1p 0, is the training mean:
        ``steps`` fixed-point steps from b = training mean - mean D(z). (Without the clamp
        term, genes near zero came out too high: Y genes in female LCLs, the very genes of
        the sex effect; seen r of the change 0.017 below the training mean's, Pickrell.)"""
        gen = torch.Generator().manual_seed(seed)
        keys = [k for k in sorted(sums) if counts[k] >= self.cfg.agg_min]
        self.cal_keys = keys
        index = {k: j for j, k in enumerate(keys)}
        self.post_mu = torch.tensor(mus, dtype=torch.float32)
        self.post_lv = torch.tensor(logvars, dtype=torch.float32)
        self.post_key = torch.tensor([index.get(k, -1) for k in keys_of_rows], dtype=torch.long)
        self.cal_bias = torch.zeros(len(keys), self.cfg.n_genes)
        self.cal_n = torch.zeros(len(keys))
        bias = []
        for key in keys:
            c = {f: v.expand(draws, *v.shape[1:]).contiguous() for f, v in first[key].items()}
            z = self.draw_latent(c, draws, gen)
            dec = self.decoder(z)  # [draws, G]
            eps = torch.randn(dec.shape, generator=gen) * self.decoder.sigma(z)
            target = torch.as_tensor(sums[key] / counts[key], dtype=torch.float32)
            b = target - dec.mean(0)
            for _ in range(steps):  # E[clamp(mu + eps)] rises with slope <= 1: converges
                out = self.scaler(self.scaler.inverse(dec + b + eps).clamp_min(0.0))
                b = b + (target - out.mean(0))
            bias.append(b.numpy())
        self.cal_bias = torch.tensor(np.array(bias), dtype=torch.float32).reshape(
            len(keys), self.cfg.n_genes)
        self.cal_n = torch.tensor([counts[k] for k in keys], dtype=torch.float32)

    def fit_field_effects(self, sums: dict[str, np.ndarray], sq: dict[str, np.ndarray],
                          counts: dict[str, np.ndarray]) -> None:
        """Per field: sums [V+1, G], squares [V+1, G], counts [V+1] of standardized training
        expression by value code (code 0 = unknown is the 'all samples' row after this)."""
        for f in self.fx_fields:
            s, q, n = sums[f], sq[f], counts[f].astype(np.float64)
            total_n = n.sum()
            mean = np.where(n[:, None] > 0, s / np.maximum(n, 1)[:, None], 0.0)
            within = (q - n[:, None] * mean ** 2).sum(0)  # pooled within-value sum of squares
            var = within / max(total_n - (n > 0).sum(), 1.0)
            mean[0], n[0] = s.sum(0) / max(total_n, 1.0), total_n
            setattr(self, f"fx_mean_{f}", torch.tensor(mean, dtype=torch.float32))
            setattr(self, f"fx_n_{f}", torch.tensor(n, dtype=torch.float32))
            setattr(self, f"fx_var_{f}", torch.tensor(np.maximum(var, 1e-6),
                                                      dtype=torch.float32))

    def effect_gate(self, old: dict[str, torch.Tensor], new: dict[str, torch.Tensor]
                    ) -> torch.Tensor:
        """[B, G] in {0, 1}: genes whose training means differ between the old and new value
        of some changed field (Welch-free pooled t, two-sided Bonferroni at cf_alpha);
        all ones when the gate is off or no categorical field changed."""
        b = next(iter(old.values())).shape[0]
        if self.cfg.cf_alpha <= 0:
            return torch.ones(b, self.cfg.n_genes)
        from scipy.stats import norm

        crit = float(norm.isf(self.cfg.cf_alpha / (2 * self.cfg.n_genes)))
        gate = torch.zeros(b, self.cfg.n_genes, dtype=torch.bool)
        changed_any = torch.zeros(b, dtype=torch.bool)
        for f in self.fx_fields:
            a, c = old[f], new[f]
            changed = a != c
            if not bool(changed.any()):
                continue
            changed_any |= changed
            mean, n = getattr(self, f"fx_mean_{f}"), getattr(self, f"fx_n_{f}")
            var = getattr(self, f"fx_var_{f}")
            na, nc = n[a].clamp_min(1)[:, None], n[c].clamp_min(1)[:, None]
            t = (mean[c] - mean[a]) / (var[None] * (1 / na + 1 / nc)).sqrt()  # [B, G]
            gate |= (t.abs() > crit) & changed[:, None]
        gate[~changed_any] = True  # only numeric or non-gated fields set: no gate
        return gate.float()

    def is_seen(self, codes: dict[str, torch.Tensor], i: int) -> bool:
        return all(self.condition_id(codes, self.group_fields[g], i) in set(self.agg_keys[g])
                   for g in self.active)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def sample(self, codes: dict[str, torch.Tensor], gen: torch.Generator) -> torch.Tensor:
        """codes for B profiles -> log1p [B, G]."""
        b = next(iter(codes.values())).shape[0]
        z = self.draw_latent(codes, b, gen)
        mean = self.decoder(z) + self.calibration(codes, b)
        mean = mean + torch.randn(mean.shape, generator=gen) * self.decoder.sigma(z)
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
        # The sample's own residual is kept; the calibration difference makes the shift the
        # training difference of the two conditions' means where both were seen.
        c_new, c_old = self.calibration(new, b), self.calibration(old, b)
        both = ((c_new != 0).any(1) & (c_old != 0).any(1)).float()[:, None]  # [B, 1]
        shift = self.decoder(z2) - base + both * (c_new - c_old)
        shift = shift * self.effect_gate(old, new)  # only genes the field is known to move
        return self.scaler.inverse(self.scaler(x) + shift).clamp_min(0.0)

    def log_density(self, z: torch.Tensor, g: str) -> torch.Tensor:
        """z [B, k] -> log N(z | aggregate prior c) [B, C] for the seen conditions of part g."""
        mu, L = getattr(self, f"agg_mu_{g}"), getattr(self, f"agg_chol_{g}")  # [C,k], [C,k,k]
        d = (z[:, None, :] - mu[None]).unsqueeze(-1)  # [B, C, k, 1]
        w = torch.linalg.solve_triangular(L[None].expand(z.shape[0], -1, -1, -1), d, upper=False)
        logdet = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)  # [C]
        return -0.5 * (w.squeeze(-1) ** 2).sum(-1) - logdet[None]
