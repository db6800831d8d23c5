"""``dpsynth pretrain``: an image generator trained WITHOUT privacy on public images, the start
point of a DP fine-tuning run (``dpsynth train --init``)."""

from __future__ import annotations

import click

from dpsynth.cli.common import _friendly
from dpsynth.errors import DpsynthError


@click.command()
@click.option("--public", "public", multiple=True, required=True, type=click.Path(dir_okay=False, exists=True),
              help="A PUBLIC MedMNIST-style .npz (repeat for several); never the private set you fine-tune on.")
@click.option("--generator", "-g", type=click.Choice(["dp-diffusion-image", "dp-gan-image", "dp-merf-image", "autoencoder"]),
              default="dp-diffusion-image", show_default=True,
              help="dp-merf-image fine-tunes from a dp-gan-image checkpoint too (same generator network);"
                   " autoencoder: a public autoencoder for latent DP diffusion (dp-diffusion-image's"
                   " autoencoder parameter).")
@click.option("--shape", required=True, metavar="CxHxW", help="Target shape of the private set, e.g. 1x28x28 or 3x64x64.")
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True, help="Non-private Adam steps.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Run config whose params (architecture) the fine-tuning run will use.")
@click.option("--licence", "licences", multiple=True, metavar="STEM=LICENCE",
              help="Licence of a source that is not a known MedMNIST set, e.g. mydata=CC-BY-4.0.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1, 1024), default=1, show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Checkpoint folder to create.")
@_friendly
def pretrain(public, generator, shape, steps, batch_size, config_path, licences, seed, threads, out):
    """Pretrain an image generator WITHOUT privacy on public images (then `train --init OUT`).

    \b
    Example (leave the private set out: BreastMNIST is fine-tuned from the others):
      dpsynth pretrain --public pneumoniamnist.npz --public retinamnist.npz --shape 1x28x28 \\
          --out models/pretrained_dp-diffusion-image_grey28_for-breastmnist
      dpsynth train --data breastmnist.npz --generator dp-diffusion-image --epsilon 10 \\
          --init models/pretrained_dp-diffusion-image_grey28_for-breastmnist --out runs/breast

    \b
    A public autoencoder for 64x64 (latent DP diffusion, then `train --autoencoder OUT`):
      dpsynth pretrain --generator autoencoder --public breastmnist.npz --public retinamnist.npz \\
          --shape 1x64x64 --steps 1500 --batch-size 16 --out models/public_autoencoder_grey64_for-pneumoniamnist
    """
    import torch

    from dpsynth.generators.image.pretrain import pretrain_image_generator

    try:
        dims = tuple(int(v) for v in shape.lower().split("x"))
        assert len(dims) == 3 and dims[0] in (1, 3) and min(dims) > 0
    except (ValueError, AssertionError):
        raise DpsynthError(f"--shape {shape!r}: expected CxHxW with C 1 or 3, e.g. 1x28x28") from None
    params = {}
    if config_path:
        from dpsynth.config import load_config

        cfg = load_config(config_path)
        params = {k: v for k, v in cfg.params.items() if k not in ("steps", "batch_size", "epochs", "init")}
    lic = dict(item.split("=", 1) for item in licences if "=" in item)
    torch.set_num_threads(threads)
    if generator == "autoencoder":
        if config_path:
            raise DpsynthError("--config sets a generator's architecture; the autoencoder's is fixed (no --config)")
        from dpsynth.generators.image.autoencoder import pretrain_autoencoder

        path = pretrain_autoencoder(public=public, shape=dims, out=out, steps=steps, batch_size=batch_size, seed=seed,
                                    licences=lic)
        click.echo(f"pretrained a public autoencoder -> {path} (see {path}/DATASHEET.md; {path}/reconstructions.png)")
        return
    path = pretrain_image_generator(generator=generator, public=public, shape=dims, out=out, steps=steps,
                                    batch_size=batch_size, seed=seed, params=params, licences=lic)
    click.echo(f"pretrained {generator} on public images -> {path} (see {path}/DATASHEET.md; its samples:"
               f" {path}/samples.png)")
