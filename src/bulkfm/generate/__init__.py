"""Metadata-conditioned generation of bulk expression profiles ("experiments as queries").

A conditional VAE whose latent has a biological, a perturbation and a technical part
(model.py), trained from the matrix store and a metadata table (train.py), queried for new
profiles and counterfactuals (query.py), evaluated on held-out conditions (evaluate.py).
"""

from bulkfm.generate.train import load_generator, train_generator

__all__ = ["load_generator", "train_generator"]
