"""Public pretraining of the image generators, then DP fine-tuning (PDP-Diffusion, DP-LDM,
PrivImage in DPImageBench all start from a network pretrained on public images).

``pretrain_image_generator`` trains ``dp-diffusion-image`` (or ``dp-gan-image``) WITHOUT privacy on
*public* images and writes a checkpoint folder::

    weights.safetensors   the generator's state (EMA UNet / GAN generator), tensors only
    samples.png           a class-labelled grid of its own samples (it read public images only)
    pretrain.json         generator, hyper-parameters, target shape, steps, every public source
                          (file name, SHA-256, images, licence, citation) and the classes used
    DATASHEET.md          the same, for people

``train --init FOLDER`` (generator parameter ``init``) starts DP-SGD from it: every tensor whose
shape matches is copied; a tensor that differs only in the number of classes (the class
embedding of the UNet, the label inputs of the GAN) gets the overlapping rows/columns and keeps
its fresh random initialisation elsewhere. ``dp-merf-image`` trains the GAN's generator network, so
it starts from a ``dp-gan-image`` checkpoint as well as from its own. The run's ledger gets one
``public`` entry naming the sources (epsilon 0: no private image is read). The architecture must
match (checked).

Public images are converted to the target shape by fixed, data-independent rules: grey -> RGB
repeats the channel, RGB -> grey is the ITU-R BT.601 luma, and the size is changed by bilinear
resampling with antialiasing. Only MedMNIST-style ``.npz`` files are read (every split they hold);
their pixels must be uint8 0..255.

A public source must really be public *and* must not be the private set (leave-the-private-set-
out): e.g. BreastMNIST is fine-tuned from PneumoniaMNIST + RetinaMNIST. MedMNIST v2 is CC BY 4.0
(Yang et al., "MedMNIST v2", Scientific Data 10, 41, 2023).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData
from dpsynth.errors import ConfigError, DataError
from dpsynth.privacy.ledger import Ledger, LedgerEntry
from dpsynth.safe_io import atomic_dir

MEDMNIST_CITATION = "Yang J. et al., MedMNIST v2, Scientific Data 10, 41 (2023), doi:10.1038/s41597-022-01721-8"
KNOWN_LICENCES = {  # file stem -> (licence, citation)
    "pneumoniamnist": ("CC BY 4.0", MEDMNIST_CITATION),
    "breastmnist": ("CC BY 4.0", MEDMNIST_CITATION),
    "retinamnist": ("CC BY 4.0", MEDMNIST_CITATION),
}
ARCH_KEYS = {
    "dp-diffusion-image": ("block_out_channels", "layers_per_block", "norm_num_groups", "num_train_timesteps",
                           "beta_schedule"),
    "dp-gan-image": ("noise_dim", "generator_channels"),
    "dp-merf-image": ("noise_dim", "generator_channels"),
}
PRIOR_GENERATORS = ("dp-diffusion-image", "dp-gan-image")  # they can fit a DCT prior (dct_prior.py); not when pretraining
PRIOR_KEYS = ("prior_share", "prior_k", "prior_clip", "warmup_steps", "sdedit_strength")
PREFIX = {"dp-diffusion-image": "unet.", "dp-gan-image": "generator.", "dp-merf-image": "generator."}
# dp-merf-image trains dp-gan-image's generator network: it starts from either one's checkpoint
# (the released one for it, models/pretrained_dp-gan-image_*, is a non-private GAN).
STARTS_FROM = {"dp-merf-image": ("dp-merf-image", "dp-gan-image")}
_SPLITS = ("train", "val", "test")


# ---- public images ------------------------------------------------------------------------
def convert_images(unit: np.ndarray, *, channels: int, height: int, width: int) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> the target channels and size (fixed rules, see the module)."""
    x = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))
    if x.shape[1] == 3 and channels == 1:
        x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    elif x.shape[1] == 1 and channels == 3:
        x = x.repeat(1, 3, 1, 1)
    elif x.shape[1] != channels:
        raise DataError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")
    if tuple(x.shape[2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp_(-1.0, 1.0).numpy()


def read_public_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Every split of a MedMNIST-style npz: images (N, C, H, W) in [-1, 1], labels, classes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"public image source not found: {path}")
    images, labels = [], []
    try:
        with np.load(path, allow_pickle=False) as archive:
            for split in _SPLITS:
                if f"{split}_images" in archive.files:
                    images.append(archive[f"{split}_images"])
                    labels.append(np.asarray(archive[f"{split}_labels"]).reshape(-1))
    except Exception as exc:  # noqa: BLE001 - one line naming the file
        raise DataError(f"{path}: not a readable .npz archive ({type(exc).__name__})") from None
    if not images:
        raise DataError(f"{path}: no train_images/val_images/test_images keys")
    x = np.concatenate(images)
    if x.dtype != np.uint8:
        raise DataError(f"{path}: public images must be uint8 0..255 (MedMNIST storage), got {x.dtype}")
    x = x[:, None] if x.ndim == 3 else np.transpose(x, (0, 3, 1, 2))
    y = np.concatenate(labels).astype(np.int64)
    return x.astype(np.float32) / 127.5 - 1.0, y, int(y.max()) + 1


def public_dataset(paths: Sequence[str | Path], *, shape: tuple[int, int, int],
                   licences: dict[str, str] | None = None) -> tuple[ImageData, list[dict]]:
    """All public sources converted to ``shape`` (C, H, W), labels offset per source."""
    c, h, w = shape
    parts, labels, classes, sources = [], [], [], []
    for path in paths:
        path = Path(path)
        licence, citation = KNOWN_LICENCES.get(path.stem.lower(), ((licences or {}).get(path.stem), None))
        if not licence:
            raise ConfigError(f"{path}: unknown licence; name it (--licence {path.stem}=LICENCE) so the datasheet"
                              " can say it is public")
        x, y, k = read_public_npz(path)
        parts.append(convert_images(x, channels=c, height=h, width=w))
        labels.append(y + len(classes))
        classes += [f"{path.stem}:{i}" for i in range(k)]
        sources.append({"file": path.name, "sha256": _sha256(path), "images": int(len(x)), "licence": licence,
                        "citation": citation, "original_shape": list(x.shape[1:])})
    schema = ImageSchema(height=h, width=w, channels=c, low=0, high=255, classes=tuple(classes), name="public")
    return ImageData(np.concatenate(parts), np.concatenate(labels), schema, None, "public"), sources


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- pretraining --------------------------------------------------------------------------
def pretrain_image_generator(*, generator: str, public: Sequence[str | Path], shape: tuple[int, int, int],
                             out: str | Path, steps: int, batch_size: int, seed: int = 0, params: dict | None = None,
                             licences: dict[str, str] | None = None, progress=None) -> Path:
    """Train ``generator`` without privacy on the public images and write the checkpoint folder."""
    from safetensors.torch import save_file

    from dpsynth.config import build_generator
    from dpsynth.privacy.budget import Budget

    if generator not in PREFIX:
        raise ConfigError(f"pretraining supports {sorted(PREFIX)}, not {generator!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} exists and is not empty")
    if (params or {}).get("autoencoder"):
        raise ConfigError("pretraining a UNet on an autoencoder's latents is not supported (init cannot start a"
                          " latent run); drop autoencoder from the config")
    data, sources = public_dataset(public, shape=shape, licences=licences)
    params = {**(params or {}), "steps": int(steps), "batch_size": int(batch_size)}
    if generator in PRIOR_GENERATORS:  # the DP prior, its warm-up and SDEdit start belong to the private fit:
        params = {k: v for k, v in params.items() if k not in PRIOR_KEYS}  # the checkpoint is the network alone
        params["prior_share"] = 0.0
    model = build_generator(generator, params)
    start = time.perf_counter()
    model.fit(data, budget=Budget.non_private_reference(), rng=np.random.default_rng(seed), progress=progress)
    seconds = time.perf_counter() - start
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k.startswith(PREFIX[generator])}
    info = {"generator": generator, "params": {k: v for k, v in model.get_params().items() if k != "init"},
            "shape": list(shape), "classes": list(data.schema.classes), "steps": int(steps),
            "batch_size": int(batch_size), "seed": int(seed), "seconds": round(seconds, 1), "n_images": len(data),
            "sources": sources, "privacy": "none: trained on public images only (no private data)"}
    with atomic_dir(out, markers=("pretrain.json",), what="pretrained checkpoint") as tmp:  # whole or not at all
        save_file(state, str(tmp / "weights.safetensors"))
        write_samples(model, tmp / "samples.png", seed=seed, title=f"{generator} pretrained on public images (no DP)")
        (tmp / "pretrain.json").write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "DATASHEET.md").write_text(datasheet(info))
    return out


def write_samples(model, path: Path, *, seed: int, per_class: int = 10, title: str = "") -> Path:
    """A class-labelled grid of the pretrained model's own samples (``per_class`` per public class):
    what the checkpoint draws before any private image is seen. The model read public images only."""
    from dpsynth.metrics.image_grid import save_labelled_grid

    synth = model.sample(per_class * model.schema_.n_classes, balanced=True, rng=np.random.default_rng(seed))
    return save_labelled_grid(model.schema_.to_unit(synth.images), synth.labels, model.schema_.classes, path,
                              per_class=per_class, title=title)


def datasheet(info: dict) -> str:
    c, h, w = info["shape"]
    lines = [f"# Pretrained {info['generator']} ({c}x{h}x{w}) — public images only", "",
             "Trained WITHOUT differential privacy on the public images below, as the starting point of a DP",
             "fine-tuning run (`dpsynth train ... --init THIS_FOLDER`). It holds no private image; the run that",
             "fine-tunes it records these sources in its ledger as public (epsilon 0).", "",
             *sources_table(info["sources"]), "",
             f"{conversion(c, h, w)} Training: {info['steps']} non-private Adam steps of {info['batch_size']} images"
             f" ({info['seconds']} s), seed {info['seed']}, class labels = (source, class) pairs:"
             f" {', '.join(info['classes'])}.", "",
             "Architecture (a fine-tuning run must use the same): " + ", ".join(
                 f"{k}={info['params'].get(k)}" for k in ARCH_KEYS.get(info["generator"], ())) + ".", "",
             "`samples.png`: samples of this checkpoint, one row per public class (seeded; public model only).", "",
             "Use only with a private set that is NOT one of the sources (leave the private set out).", ""]
    return "\n".join(lines)


# ---- fine-tuning from a checkpoint ---------------------------------------------------------
def load_pretrained(module: torch.nn.Module, folder: str | Path, *, generator: str, params: dict,
                    shape: tuple[int, int, int]) -> dict:
    """Copy a pretrained checkpoint into ``module`` (see the module docstring); returns its info."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta_path, weights_path = folder / "pretrain.json", folder / "weights.safetensors"
    if not meta_path.is_file() or not weights_path.is_file():
        raise ConfigError(f"init {folder}: not a pretrained checkpoint (needs pretrain.json and weights.safetensors)")
    info = json.loads(meta_path.read_text())
    if info.get("generator") not in STARTS_FROM.get(generator, (generator,)):
        raise ConfigError(f"init {folder}: pretrained for {info.get('generator')}, not {generator}")
    if tuple(info["shape"]) != tuple(shape):
        raise ConfigError(f"init {folder}: pretrained at C,H,W={tuple(info['shape'])}, the data is {tuple(shape)}")
    for key in ARCH_KEYS[generator]:
        want, got = params.get(key), info["params"].get(key)
        if (list(want) if isinstance(want, tuple) else want) != got:
            raise ConfigError(f"init {folder}: {key}={got} in the checkpoint but {want} in this run")
    prefix = PREFIX[generator]
    state = {k[len(prefix):]: v for k, v in load_file(str(weights_path)).items() if k.startswith(prefix)}
    partial = []
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name not in state:
                raise ConfigError(f"init {folder}: tensor {name} missing from the checkpoint")
            src = state[name]
            if src.shape == tensor.shape:
                tensor.copy_(src)
            elif src.dim() == tensor.dim():
                index = tuple(slice(0, min(a, b)) for a, b in zip(src.shape, tensor.shape))
                tensor[index] = src[index]
                partial.append(name)
            else:
                raise ConfigError(f"init {folder}: tensor {name} has shape {tuple(src.shape)} vs {tuple(tensor.shape)}")
    return {**info, "partial_tensors": partial, "folder": str(folder)}


def sources_table(sources: list[dict]) -> list[str]:
    """A datasheet's table of public sources, then their citation line."""
    lines = ["| source | images | original C,H,W | licence | sha256 |", "|---|---|---|---|---|"]
    for s in sources:
        lines.append(f"| {s['file']} | {s['images']} | {','.join(map(str, s['original_shape']))} | {s['licence']} |"
                     f" `{s['sha256'][:16]}…` |")
    cites = sorted({s["citation"] for s in sources if s.get("citation")})
    return lines + ["", "Citation: " + "; ".join(cites) if cites else ""]


def conversion(c: int, h: int, w: int) -> str:
    return (f"Conversion: to {c} channel(s) (grey->RGB repeat, RGB->grey BT.601 luma), bilinear antialiased resize"
            f" to {h}x{w}.")


def record_public(ledger: Ledger, info: dict, *, purpose: str | None = None) -> LedgerEntry:
    """The ledger entry of a public start (a pretrained checkpoint, or with ``purpose`` a public
    autoencoder): no private data read, epsilon 0."""
    params = {"sources": [{k: s[k] for k in ("file", "sha256", "licence")} for s in info["sources"]],
              "steps": info["steps"], "epsilon": 0.0}
    if "partial_tensors" in info:
        params["partial_tensors"] = info["partial_tensors"]
    entry = LedgerEntry("public", purpose or f"initialised from public pretraining ({Path(info['folder']).name})",
                        params=params)
    ledger.entries.append(entry)
    return entry
