"""2-D t-SNE of a model's embeddings (Fig. 2, SPEC §4): openTSNE on each dataset's t-SNE items.

The panels are coloured by class, NSynth's by pitch and VCTK's by speaker gender (`colour_column`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
from openTSNE import TSNE

log = logging.getLogger(__name__)

COLOUR_BY = {"nsynth": "pitch", "vctk": "gender"}  # items column colouring a dataset's panel; else "label"


@dataclass(frozen=True, slots=True)
class TSNEConfig:
    perplexity: float = 30.0  # openTSNE's and the usual default; ~ the neighbours each point keeps
    n_iter: int = 500  # openTSNE's default normal-phase iterations, converged for <= 2,000 points
    early_exaggeration_iter: int = 250  # openTSNE's default early phase, which forms the clusters
    early_exaggeration: float = 12.0  # openTSNE's "auto" value without later exaggeration
    learning_rate: str | float = "auto"  # n / exaggeration (Belkina et al. 2019), openTSNE's default
    metric: str = "cosine"  # the distance of the model-DSMs, so both figures see the same geometry
    initialization: str = "pca"  # deterministic and keeps global structure (Kobak & Linderman 2021)
    neighbors: str = "exact"  # <= 2,000 items: exact kNN is cheap and leaves no approximate-index randomness
    random_state: int = 0  # seeds the PCA sign and the optimisation: same input, same picture
    n_jobs: int = 1  # one thread: reruns are bit-identical (tested); threads may sum in another order


def colour_column(dataset: str) -> str:
    """The items column a dataset's t-SNE panel is coloured by."""
    return COLOUR_BY.get(dataset, "label")


def embed_2d(x: np.ndarray, cfg: TSNEConfig = TSNEConfig()) -> np.ndarray:
    """(n, d) embeddings -> (n, 2) t-SNE coordinates (float64)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"embed_2d: expected embeddings of shape (n >= 2, d), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embed_2d: embeddings hold non-finite values")
    if cfg.perplexity <= 0 or 3 * cfg.perplexity >= len(x):
        raise ValueError(f"embed_2d: perplexity={cfg.perplexity} needs more than 3 * perplexity items, "
                         f"got {len(x)}")
    embedding = TSNE(n_components=2, **asdict(cfg)).fit(x)
    log.info("t-SNE of %d items, KL divergence %.3f", len(x), embedding.kl_divergence)
    return np.asarray(embedding, dtype=np.float64)
