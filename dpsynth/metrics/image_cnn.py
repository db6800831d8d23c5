"""The small CNN behind the image metrics: a downstream classifier, and (trained on the real
training split) the *domain* feature extractor for FID, PRDC and the membership attacks.

Training is fixed in advance (epochs, learning rate): no model selection on any real split.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F


# At least this many optimizer steps for every downstream CNN (train_cnn's ``min_steps``). 10 epochs gave a
# 546-image set 50 steps and its real-trained CNN predicted the majority class. Chosen on VALIDATION
# splits only (evaluation/tune_image_cnn.py, real-trained CNN, 3 repeats; evaluation/results/images/
# tuning/tune_image_cnn.jsonl): balanced accuracy at min steps 0 / 300 / 600 / 1200 -- BreastMNIST
# 0.521 / 0.772 / 0.825 / 0.853, RetinaMNIST 0.345 / 0.408 / 0.439 / 0.464, PneumoniaMNIST (370 steps
# already) 0.951 / 0.951 / 0.917 / 0.967. 1200 scored best on all three, 600 took most of the small sets'
# gain at half the evaluation cost (a 2-core CPU: ~1 min per CNN at 1200 steps); the benchmark's CPU time
# decided 600. Pass ``min_steps=1200`` (``dpsynth evaluate --cnn-steps 1200``) for the stronger reference.
CNN_MIN_STEPS = 600


class SmallCNN(nn.Module):
    """3 conv blocks -> global average pool (the ``features``) -> linear classifier."""

    def __init__(self, *, channels: int, n_classes: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.GroupNorm(8, width), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.GroupNorm(8, 2 * width), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GroupNorm(8, 2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_cnn(images: np.ndarray, labels: np.ndarray, *, n_classes: int, rng: np.random.Generator,
              epochs: int = 10, batch_size: int = 128, lr: float = 1e-3, width: int = 32,
              min_steps: int = 0) -> SmallCNN:
    """Fit a SmallCNN on images in [-1, 1] (N, C, H, W) for a fixed number of epochs, or more
    epochs when ``epochs`` passes would take fewer than ``min_steps`` optimizer steps (a small set
    gets as many steps as a large one)."""
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    model = SmallCNN(channels=images.shape[1], n_classes=n_classes, width=width)
    _init(model, gen)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    per_epoch = math.ceil(len(x) / batch_size)
    for _ in range(max(epochs, math.ceil(min_steps / per_epoch))):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def _init(model: nn.Module, gen: torch.Generator) -> None:
    """torch's default init for Conv2d / Linear, drawn from ``gen`` (no global RNG)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
                bound = 1.0 / math.sqrt(m.weight[0].numel())
                nn.init.uniform_(m.bias, -bound, bound, generator=gen)


@torch.no_grad()
def predict_proba(model: SmallCNN, images: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    return torch.cat([F.softmax(model(x[i : i + batch_size]), dim=1) for i in range(0, len(x), batch_size)]).numpy()


@torch.no_grad()
def extract_features(model: SmallCNN, images: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    return torch.cat([model.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).numpy().astype(np.float64)


def classification_scores(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, balanced accuracy (mean recall over present classes) and AUROC (binary: of
    class 1; multi-class: one-vs-rest macro over present classes)."""
    labels = np.asarray(labels)
    pred = probs.argmax(axis=1)
    out = {"accuracy": float((pred == labels).mean())}
    present = np.unique(labels)
    out["balanced_accuracy"] = float(np.mean([(pred[labels == c] == c).mean() for c in present]))
    if len(present) < 2:
        out["auroc"] = math.nan
    elif probs.shape[1] == 2:
        out["auroc"] = float(roc_auc_score(labels, probs[:, 1]))
    else:
        out["auroc"] = float(np.mean([roc_auc_score(labels == c, probs[:, c]) for c in present]))
    return out
