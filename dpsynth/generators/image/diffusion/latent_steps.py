"""Latent mode of ``dp-diffusion-image`` (``autoencoder: FOLDER``): DP-SGD on the latents of a
public autoencoder, samples decoded to pixels (:mod:`dpsynth.generators.image.autoencoder`)."""

from __future__ import annotations

import torch

from dpsynth.data.image_schema import ImageSchema
from dpsynth.errors import ConfigError
from dpsynth.privacy.ledger import Ledger


class LatentSteps:
    """Mixin of :class:`~dpsynth.generators.image.diffusion.dp_diffusion_image.DPDiffusionImage`
    (reads its ``autoencoder`` and ``init``). The DCT prior stays a pixel-space release; its samples
    are encoded like the private images (warm-up batches, SDEdit starts)."""

    def _check_latent_settings(self) -> None:
        if self.autoencoder and self.init:
            raise ConfigError(f"{self.name}: init (a pixel-space UNet checkpoint) cannot start a latent run"
                              " (autoencoder set)")

    def _latent_space(self, schema: ImageSchema, *, ledger: Ledger | None):
        """The space the UNet works in: the image schema, or the autoencoder's latent space (the
        public autoencoder recorded in the ledger, epsilon 0)."""
        self.autoencoder_ = None
        if not self.autoencoder:
            return schema
        from dpsynth.generators.image.autoencoder import load_autoencoder, record_public_autoencoder

        self.autoencoder_ = load_autoencoder(self.autoencoder)
        space = self.autoencoder_.space(schema.shape, schema.n_classes)
        if ledger is not None:
            record_public_autoencoder(ledger, self.autoencoder_)
        return space

    def _model_inputs(self, images) -> torch.Tensor:
        """What DP-SGD reads per image: the pixels, or the image's own latent (a fixed public map)."""
        return self._to_model_space(torch.from_numpy(images))

    def _to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1] -> what the UNet models (themselves, or their latents)."""
        if getattr(self, "autoencoder_", None) is None:
            return x
        return self.autoencoder_.encode(x).contiguous()

    def _to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        return x if getattr(self, "autoencoder_", None) is None else self.autoencoder_.decode(x)

    def _model_shape(self) -> tuple[int, int, int]:
        return self.space_.shape

    def _latent_state(self) -> dict[str, torch.Tensor]:
        return {} if getattr(self, "autoencoder_", None) is None else self.autoencoder_.state_dict()

    def _load_latent_state(self, state, schema: ImageSchema):
        """The UNet's space of a saved model: its embedded autoencoder's latents, else the schema."""
        self.autoencoder_ = None
        if "autoencoder_meta.mean" not in state:
            return schema
        from dpsynth.generators.image.autoencoder import PublicAutoencoder

        self.autoencoder_ = PublicAutoencoder.from_state_dict(state)
        return self.autoencoder_.space(schema.shape, schema.n_classes)
