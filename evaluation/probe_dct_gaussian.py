"""Probe, not a generator: how much class signal survives a DP per-class Gaussian in a low-frequency
DCT basis on BreastMNIST (546 training images), scored on the VALIDATION split only.

The DCT basis is data-independent. Released with the Gaussian mechanism (add/remove-one image,
rho-zCDP split by ``shares``): class counts (sensitivity 1), the global mean of the k x k DCT
coefficients clipped to L2 norm R0 = 28 (an image in [-1, 1]^784 has norm <= 28), the per-class sums
of deviations from it clipped to R1, and the per-class sums of squared deviations clipped to R2.
Samples are drawn from the per-class diagonal Gaussians, inverse-DCT'd, and a 600-step SmallCNN x 3 is
trained on 1000 of them and scored on the validation split. A candidate "easy-image warm-up" for
dp-diffusion-image on small sets (the DP-FETA idea: Li et al., IEEE S&P 2025), not yet built.

    python evaluation/probe_dct_gaussian.py R1 R2 K@EPS@SEED ...   (EPS 'inf' = no noise)
    python evaluation/probe_dct_gaussian.py 11 30 8@inf@0 8@10@0 8@10@1 8@10@2 6@10@0
"""
import math
import sys

import numpy as np
import torch
from scipy.fft import dctn, idctn
from dpsynth.metrics.image_cnn import train_cnn, predict_proba, classification_scores
from dpsynth.privacy.budget import zcdp_rho_for
torch.set_num_threads(2)
d = np.load('../shared/data/medmnist/breastmnist.npz')  # run from the repository root
f = lambda a: a.astype(np.float64) / 127.5 - 1.0
X, y = f(d['train_images']), d['train_labels'].ravel()
Xv, yv = f(d['val_images']), d['val_labels'].ravel()
def cnn_score(S, ys):
    out = []
    for r in range(3):
        m = train_cnn(S.reshape(-1,1,28,28), ys, n_classes=2, rng=np.random.default_rng(r), min_steps=600)
        out.append(classification_scores(predict_proba(m, Xv.reshape(-1,1,28,28)), yv)['balanced_accuracy'])
    return round(float(np.mean(out)),3), [round(o,3) for o in out]
def clip(A, R):
    return A * np.minimum(1, R / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12))
def synth(k, eps, seed, R0=28.0, R1=float(sys.argv[1]), R2=float(sys.argv[2]), n_out=1000, shares=(0.15, 0.05, 0.5, 0.3)):
    rng = np.random.default_rng(seed)
    Z = dctn(X, axes=(1, 2), norm='ortho')[:, :k, :k].reshape(len(X), -1)
    classes = np.unique(y)
    rho = zcdp_rho_for(eps, 1e-5) if eps else None
    sd = lambda share, sens: 0.0 if rho is None else sens * math.sqrt(1 / (2 * rho * share))
    n_all = np.bincount(y).astype(float) + rng.normal(0, sd(shares[1], 1.0), size=len(classes))
    n_all = np.maximum(n_all, 2.0)
    g = (clip(Z, R0).sum(0) + rng.normal(0, sd(shares[0], R0), Z.shape[1])) / n_all.sum()
    D = clip(Z - g, R1)
    means = {}
    for i, c in enumerate(classes):
        means[c] = (D[y == c].sum(0) + rng.normal(0, sd(shares[2], R1), Z.shape[1])) / n_all[i]
    Q = clip((D - np.stack([means[c] for c in y])) ** 2, R2)
    var = {c: np.maximum((Q[y == c].sum(0) + rng.normal(0, sd(shares[3], R2), Z.shape[1])) / n_all[i], 1e-4) for i, c in enumerate(classes)}
    S, ys = [], []
    for i, c in enumerate(classes):
        nc = int(round(n_out * n_all[i] / n_all.sum()))
        z = rng.normal(g + means[c], np.sqrt(var[c]), size=(nc, len(g)))
        full = np.zeros((nc, 28, 28)); full[:, :k, :k] = z.reshape(nc, k, k)
        S.append(np.clip(idctn(full, axes=(1, 2), norm='ortho'), -1, 1)); ys += [c] * nc
    return np.concatenate(S), np.array(ys)
for spec in sys.argv[3:]:
    k, eps, seed = spec.split('@')
    S, ys = synth(int(k), None if eps == 'inf' else float(eps), int(seed))
    print(spec, cnn_score(S, ys), flush=True)
