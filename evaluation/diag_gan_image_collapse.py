"""dp-gan-image diagnosis (issue 12): is the collapse a property of the network and the GAN loss,
or of DP-SGD's noise? Trains ``dp-gan-image`` on one image set at one budget and prints, every 50
steps, the discriminator loss (real + fake) and the generator loss, then the high-frequency
energy (mean absolute difference of horizontally adjacent pixels, in [-1, 1] units) of balanced
synthetic images against that of the training images.

    python evaluation/diag_gan_image_collapse.py --data /work/shared/data/medmnist/breastmnist.npz \
        --epsilon 10 [--params '{"discriminator_channels": 8}'] [--grid out.png]
    python evaluation/diag_gan_image_collapse.py --data ... --epsilon inf --steps 600 --batch-size 64

Reading the losses: a balanced GAN sits near d_loss = 2 ln 2 = 1.39 and g_loss = ln 2 = 0.69.
g_loss >> 0.69 with d_loss >> 1.39 means the discriminator calls every image fake (real ones too);
g_loss << 0.69 with d_loss >> 1.39 means it calls every image real. Either way it no longer tells
real from fake and the generator follows noise (checkerboards: high-frequency energy far above
the real images'). ``--epsilon inf`` is the non-private reference (no grid is written for it: a
non-private model of the real images must stay inside).

An internal evaluation: it prints a statistic of the real training images (their high-frequency
energy); keep its output inside. The DP run's grid (``--grid``) is a DP release.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.data.images import load_image_source  # noqa: E402
from dpsynth.errors import DpsynthError  # noqa: E402
from dpsynth.generators.image.gan.dp_gan_image import DPGANImage  # noqa: E402
from dpsynth.metrics.image_grid import save_labelled_grid  # noqa: E402
from dpsynth.privacy.budget import Budget  # noqa: E402


def high_frequency_energy(images: np.ndarray) -> float:
    """Mean |x[..., j+1] - x[..., j]| of images in [-1, 1]: 0.061 for BreastMNIST, 2.0 for a +-1 checkerboard."""
    return float(np.abs(np.diff(np.asarray(images, dtype=np.float32), axis=-1)).mean())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--epsilon", default="10", help="a number, or inf for the non-private reference")
    ap.add_argument("--params", default="{}", help="JSON of dp-gan-image parameters")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid", default=None, help="PNG path for a class-labelled grid (DP runs only)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        eps = float(args.epsilon)
        budget = Budget.non_private_reference() if math.isinf(eps) else Budget(epsilon=eps)
        gan = DPGANImage(steps=args.steps, batch_size=args.batch_size, **json.loads(args.params))
        data = load_image_source(args.data)
    except (ValueError, TypeError, DpsynthError) as exc:  # JSONDecodeError is a ValueError
        ap.error(str(exc).splitlines()[0])
    trace: list[tuple[int, float, float]] = []

    def progress(d: dict) -> None:
        if d["step"] % 50 == 0:
            trace.append((d["step"], round(d["d_loss"], 3), round(d["g_loss"], 3)))

    start = time.perf_counter()
    gan.fit(data, budget=budget, rng=np.random.default_rng(args.seed), progress=progress)
    fit_s = time.perf_counter() - start
    plan = getattr(gan, "dp_plan_", {})
    print(f"{Path(args.data).stem} epsilon {args.epsilon} params {args.params}: fit {fit_s:.0f} s, "
          f"steps {gan.schedule_.steps} x batch {gan.schedule_.batch_size}, noise {plan.get('noise_multiplier', 0)}")
    print("step, d_loss, g_loss:", trace)
    synthetic = gan.sample(200, rng=np.random.default_rng(args.seed + 1), balanced=True).to_image_data()
    print(f"high-frequency energy: synthetic {high_frequency_energy(synthetic.images):.3f}, "
          f"training images {high_frequency_energy(data.images):.3f} (internal)")
    if args.grid and not budget.non_private:
        save_labelled_grid(synthetic.images, synthetic.labels, data.schema.classes, args.grid,
                           title=f"dp-gan-image eps {args.epsilon} {args.params}")
        print(f"grid: {args.grid}")


if __name__ == "__main__":
    main()
