"""A public image autoencoder for latent DP diffusion (DP-LDM: Lyu et al., "Differentially Private
Latent Diffusion Models", TMLR 2024; also DPImageBench's latent recipes).

Why: at clinical resolution a CPU step holds few images (16 at 64x64), so DP-SGD's noise on the
averaged gradient is high and the UNet sees little of each image. A diffusers ``AutoencoderKL``
trained WITHOUT privacy on *public* images maps an HxW image to a (4, H/4, W/4) latent; the DP
diffusion model then trains on latents (as cheap per image as 16x16, so a step holds 128) and its
samples are decoded back to pixels. The autoencoder never reads a private image during its
training; encoding a private image is a fixed public function of that image alone, so DP-SGD on the
latents keeps the guarantee (each image is still one example, clipped and noised).

``pretrain_autoencoder`` writes a folder::

    weights.safetensors   the AutoencoderKL's weights
    autoencoder.json      architecture, target shape, latent shape, each latent channel's mean and
                          std over the public images (latents are standardised per channel: their
                          raw spreads differ ~10x, and DDPM assumes unit-scale data), the clip
                          range of sampling (the 99.9th percentile of the standardised public
                          latents' magnitudes), steps, every public source (file, SHA-256, licence)
    reconstructions.png   public images (first row) and their reconstructions (second row)
    DATASHEET.md          the same, for people

``dp-diffusion-image`` takes it with ``autoencoder: FOLDER``. Public sources are read and
converted as in :mod:`dpsynth.generators.image.pretrain` (leave the private set out).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dpsynth.errors import ConfigError, DataError
from dpsynth.privacy.ledger import Ledger, LedgerEntry
from dpsynth.safe_io import atomic_dir

#: the architecture (public; every folder records it): 3 levels -> 4x smaller per side
BLOCK_OUT_CHANNELS = (16, 32, 64)
LATENT_CHANNELS = 4
NORM_NUM_GROUPS = 8
#: the KL weight of the VAE loss: small, as in latent diffusion's autoencoders (reconstruction first)
KL_WEIGHT = 1e-6
#: DDIM clips its predicted clean latent to +- this quantile of the standardised public latents'
#: magnitudes, as pixel sampling clips to [-1, 1]: under the cosine schedule the first step divides
#: by sqrt(alpha_bar at t=999) ~ 5e-5, and unclipped latents then decoded to saturated blobs (PneumoniaMNIST 64,
#: validation fit). 0.999 is judgement (the maximum, 8.1 there, lets most of that through).
LATENT_CLIP_QUANTILE = 0.999


@dataclass(frozen=True)
class LatentSpace:
    """What the UNet sees in latent mode: (channels, height, width) and the classes (the duck type
    ``build_unet`` and the schedule plan read from an image schema)."""

    channels: int
    height: int
    width: int
    n_classes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


def downsampling(block_out_channels: Sequence[int]) -> int:
    """How many times smaller per side the latent is: one halving between consecutive levels."""
    return 2 ** (len(block_out_channels) - 1)


def build_autoencoder(channels: int, *, block_out_channels: Sequence[int] = BLOCK_OUT_CHANNELS,
                      latent_channels: int = LATENT_CHANNELS, norm_num_groups: int = NORM_NUM_GROUPS):
    from diffusers import AutoencoderKL

    levels = len(block_out_channels)
    return AutoencoderKL(in_channels=channels, out_channels=channels, down_block_types=("DownEncoderBlock2D",) * levels,
                         up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=tuple(block_out_channels),
                         latent_channels=latent_channels, norm_num_groups=norm_num_groups,
                         mid_block_add_attention=False)


class PublicAutoencoder:
    """A loaded public autoencoder: ``encode`` images in [-1, 1] to standardised latents (each
    channel shifted and scaled by public statistics), ``decode`` back."""

    def __init__(self, module, *, mean: Sequence[float], std: Sequence[float], clip: float, info: dict) -> None:
        self.module = module.eval()
        self.clip = float(clip)
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
        self.info = info
        for p in self.module.parameters():
            p.requires_grad_(False)

    def space(self, shape: tuple[int, int, int], n_classes: int) -> LatentSpace:
        c, h, w = shape
        if tuple(self.info["shape"]) != (c, h, w):
            raise ConfigError(f"autoencoder {self.info.get('folder')}: trained at C,H,W={tuple(self.info['shape'])},"
                              f" the data is {(c, h, w)}")
        factor = downsampling(self.info["arch"]["block_out_channels"])
        return LatentSpace(int(self.info["arch"]["latent_channels"]), h // factor, w // factor, n_classes)

    @torch.no_grad()
    def encode(self, images: np.ndarray | torch.Tensor, *, batch: int = 256) -> torch.Tensor:
        """The posterior mean of each image's latent, standardised per channel by the public
        statistics (a function of the image alone)."""
        return (self._raw_latents(images, batch=batch) - self.mean) / self.std

    @torch.no_grad()
    def _raw_latents(self, images, *, batch: int = 256) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images, dtype=np.float32))
        return torch.cat([self.module.encode(x[i:i + batch]).latent_dist.mode() for i in range(0, len(x), batch)])

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.module.decode(latents.float().cpu() * self.std + self.mean).sample.clamp_(-1.0, 1.0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Weights under ``autoencoder.``, the latent statistics and the architecture as tensors (a
        saved model carries its decoder; the autoencoder is public)."""
        arch = self.info["arch"]
        state = {f"autoencoder.{k}": v.detach().cpu().clone() for k, v in self.module.state_dict().items()}
        state["autoencoder_meta.mean"] = self.mean.flatten().clone()
        state["autoencoder_meta.std"] = self.std.flatten().clone()
        state["autoencoder_meta.clip"] = torch.tensor(self.clip, dtype=torch.float64)
        state["autoencoder_meta.block_out_channels"] = torch.tensor(arch["block_out_channels"])
        state["autoencoder_meta.shape_latent_norm"] = torch.tensor([*self.info["shape"], arch["latent_channels"],
                                                                     arch["norm_num_groups"]])
        return state

    @classmethod
    def from_state_dict(cls, state) -> "PublicAutoencoder":
        c, h, w, latent, groups = (int(v) for v in state["autoencoder_meta.shape_latent_norm"])
        blocks = [int(v) for v in state["autoencoder_meta.block_out_channels"]]
        module = build_autoencoder(c, block_out_channels=blocks, latent_channels=latent, norm_num_groups=groups)
        module.load_state_dict({k[len("autoencoder."):]: v for k, v in state.items() if k.startswith("autoencoder.")})
        info = {"shape": [c, h, w], "arch": {"block_out_channels": blocks, "latent_channels": latent,
                                             "norm_num_groups": groups}}
        return cls(module, mean=state["autoencoder_meta.mean"].tolist(), std=state["autoencoder_meta.std"].tolist(),
                   clip=float(state["autoencoder_meta.clip"]), info=info)


# ---- pretraining on public images ---------------------------------------------------------------
def pretrain_autoencoder(*, public: Sequence[str | Path], shape: tuple[int, int, int], out: str | Path, steps: int,
                         batch_size: int, seed: int = 0, lr: float = 1e-3, licences: dict[str, str] | None = None,
                         progress=None) -> Path:
    """Train the autoencoder WITHOUT privacy on public images and write its folder (see the module)."""
    from dpsynth.generators.base import torch_generator
    from dpsynth.generators.image.base import init_weights
    from dpsynth.generators.image.pretrain import public_dataset

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} exists and is not empty")
    c, h, w = shape
    factor = downsampling(BLOCK_OUT_CHANNELS)
    if h % factor or w % factor:
        raise ConfigError(f"autoencoder: image size {h}x{w} must be divisible by {factor}")
    data, sources = public_dataset(public, shape=shape, licences=licences)
    gen = torch_generator(np.random.default_rng(seed))
    module = build_autoencoder(c)
    init_weights(module, gen)
    images = torch.from_numpy(np.ascontiguousarray(data.images, dtype=np.float32))
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    start = time.perf_counter()
    module.train()
    for step in range(1, int(steps) + 1):
        x = images[torch.randint(len(images), (int(batch_size),), generator=gen)]
        posterior = module.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)
        recon = module.decode(z).sample
        mse = ((recon - x) ** 2).mean()
        loss = mse + KL_WEIGHT * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress({"step": step, "steps": int(steps), "loss": float(mse), "phase": "autoencoder (public, no DP)"})
    seconds = time.perf_counter() - start
    arch = {"block_out_channels": list(BLOCK_OUT_CHANNELS), "latent_channels": LATENT_CHANNELS,
            "norm_num_groups": NORM_NUM_GROUPS}
    info = {"kind": "autoencoder", "shape": list(shape), "latent_shape": [LATENT_CHANNELS, h // factor, w // factor],
            "arch": arch, "kl_weight": KL_WEIGHT, "lr": lr, "steps": int(steps), "batch_size": int(batch_size),
            "seed": int(seed), "seconds": round(seconds, 1), "n_images": len(data), "sources": sources,
            "privacy": "none: trained on public images only (no private data)"}
    return write_autoencoder_folder(module, images, info, out)


def write_autoencoder_folder(module, images: torch.Tensor, info: dict, out: Path) -> Path:
    """The folder of a trained autoencoder: each latent channel's mean and std and the reconstruction
    MSE over ALL the public ``images`` (no random draw), weights, grid, json and datasheet."""
    from safetensors.torch import save_file

    ae = PublicAutoencoder(module, mean=[0.0] * LATENT_CHANNELS, std=[1.0] * LATENT_CHANNELS, clip=1.0, info=info)
    raw = ae._raw_latents(images)
    mean, std = raw.mean((0, 2, 3), keepdim=True), raw.std((0, 2, 3), keepdim=True)
    magnitude = ((raw - mean) / std).abs().flatten()
    info = {**info, "latent_mean": [round(float(v), 6) for v in mean.flatten()],
            "latent_std": [round(float(v), 6) for v in std.flatten()],
            "latent_clip": math.ceil(float(np.quantile(magnitude.numpy(), LATENT_CLIP_QUANTILE)) * 10) / 10}
    ae = PublicAutoencoder(module, mean=info["latent_mean"], std=info["latent_std"], clip=info["latent_clip"],
                           info=info)  # as loaded later
    sq = sum(float(((ae.decode(ae.encode(part)) - part) ** 2).sum()) for part in images.split(256))
    info["public_reconstruction_mse"] = round(sq / images.numel(), 5)
    show = torch.from_numpy(np.linspace(0, len(images) - 1, 10).round().astype(np.int64))  # spread over the sources
    with atomic_dir(out, markers=("autoencoder.json",), what="public autoencoder") as tmp:
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp / "weights.safetensors"))
        _write_reconstructions(ae, images[show], tmp / "reconstructions.png")
        (tmp / "autoencoder.json").write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "DATASHEET.md").write_text(datasheet(info))
    return out


def _write_reconstructions(ae: PublicAutoencoder, images: torch.Tensor, path: Path) -> Path:
    from dpsynth.metrics.image_grid import save_labelled_grid

    pair = torch.cat([images, ae.decode(ae.encode(images))]).numpy()
    labels = np.repeat([0, 1], len(images))
    return save_labelled_grid(pair, labels, ("public image", "reconstruction"), path, per_class=len(images),
                              title="public autoencoder: public images and their reconstructions (no DP)")


def datasheet(info: dict) -> str:
    from dpsynth.generators.image.pretrain import conversion, sources_table

    c, h, w = info["shape"]
    lines = [f"# Public autoencoder ({c}x{h}x{w} -> {'x'.join(map(str, info['latent_shape']))}) — public images only",
             "", "Trained WITHOUT differential privacy on the public images below. `dp-diffusion-image` with",
             "`autoencoder: THIS_FOLDER` trains its DP UNet on the latents of the private images and decodes",
             "its samples with it. It holds no private image; the run records it in its ledger as public.", "",
             *sources_table(info["sources"]), "",
             f"{conversion(c, h, w)} Training: {info['steps']} non-private Adam steps (lr {info['lr']}) of {info['batch_size']} images"
             f" ({info['seconds']} s), seed {info['seed']}; loss = pixel MSE + {info['kl_weight']} x KL."
             f" Reconstruction MSE over the public images (pixels in [-1, 1]): {info['public_reconstruction_mse']}."
             f" Latents are standardised per channel by the public mean {info['latent_mean']} and std"
             f" {info['latent_std']}; sampling clips them to +-{info['latent_clip']} (the"
             f" {LATENT_CLIP_QUANTILE} quantile of the public magnitudes).", "",
             "Architecture: diffusers AutoencoderKL, " + ", ".join(f"{k}={v}" for k, v in info["arch"].items()) + ".",
             "", "`reconstructions.png`: ten public images (spread over the sources) and their reconstructions.", "",
             "Use only with a private set that is NOT one of the sources (leave the private set out).", ""]
    return "\n".join(lines)


# ---- loading ---------------------------------------------------------------------------------
def load_autoencoder(folder: str | Path) -> PublicAutoencoder:
    from safetensors.torch import load_file

    folder = Path(folder)
    meta, weights = folder / "autoencoder.json", folder / "weights.safetensors"
    if not meta.is_file() or not weights.is_file():
        raise ConfigError(f"autoencoder {folder}: not a public autoencoder (needs autoencoder.json and"
                          " weights.safetensors; make one with `dpsynth pretrain --generator autoencoder`)")
    try:
        info = json.loads(meta.read_text())
        arch = info["arch"]
        module = build_autoencoder(int(info["shape"][0]), block_out_channels=arch["block_out_channels"],
                                   latent_channels=int(arch["latent_channels"]),
                                   norm_num_groups=int(arch["norm_num_groups"]))
        module.load_state_dict(load_file(str(weights)))
        return PublicAutoencoder(module, mean=info["latent_mean"], std=info["latent_std"], clip=info["latent_clip"],
                                 info={**info, "folder": str(folder)})
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ConfigError(f"autoencoder {folder}: unreadable ({type(exc).__name__})") from None


def record_public_autoencoder(ledger: Ledger, ae: PublicAutoencoder) -> LedgerEntry:
    """The ledger entry of a public autoencoder: no private data read in its training, epsilon 0."""
    from dpsynth.generators.image.pretrain import record_public

    return record_public(ledger, ae.info, purpose=f"public autoencoder ({Path(ae.info['folder']).name}): latents"
                                                  " of each image")
