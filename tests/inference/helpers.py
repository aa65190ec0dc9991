"""Shared test helpers for inference: a tiny prepared demo dataset and a tiny trained checkpoint.

The session fixture ``trained_model_dir`` (tests/conftest.py) builds its checkpoint with :func:`train_tiny_model`.
"""

from __future__ import annotations

from pathlib import Path

import torch

IMAGE_SIZE = 32


def train_tiny_model(prepared_dir: Path, out_dir: Path, *, steps: int = 150, seed: int = 0) -> Path:
    """A confident tiny classifier in about a second: resnet10t (32 px, linear head) with its random-init backbone
    frozen, and the linear classifier fitted (``steps`` full-batch Adam steps) on the pooled features of the demo
    train split (and its mirror images). Saved with config (taxonomy) and image processor. Deterministic."""
    from inat_hf.data import load_prepared
    from inat_hf.data.transforms import EvalPreset
    from inat_hf.models import InatConfig, InatForImageClassification

    prepared = load_prepared(prepared_dir)
    train = prepared.dataset["train"]
    taxonomy = prepared.taxonomy
    config = InatConfig(
        backbone="resnet10t",
        attn_layer="none",
        head_hidden_sizes=[],
        drop_rate=0.0,
        id2label=dict(enumerate(taxonomy.labels)),
        label_rank=taxonomy.rank,
        taxonomy=taxonomy.to_dict(),
        image_size=IMAGE_SIZE,
    )
    torch.manual_seed(seed)
    model = InatForImageClassification(config).eval()
    preset = EvalPreset(image_size=IMAGE_SIZE, crop_pct=config.crop_pct)
    images = torch.stack([preset(path) for path in _image_values(train)])  # [N, 3, S, S]
    images = torch.cat([images, images.flip(-1)])  # [2N, ...]: the demo motifs are flip-agnostic
    labels = torch.tensor(list(train["label"])).repeat(2)
    with torch.no_grad():
        features = model.attention(model.backbone.forward_features(images))
        features = model.backbone.forward_head(features, pre_logits=True)  # [2N, C]: timm's pooling
    classifier = model.head.classifier
    optimizer = torch.optim.Adam(classifier.parameters(), lr=0.05)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(classifier(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(out_dir)
    return out_dir


def _image_values(split):
    import datasets

    return split.cast_column("image", datasets.Image(decode=False))["image"]
