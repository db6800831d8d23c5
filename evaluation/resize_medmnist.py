"""Resize a 28x28 MedMNIST-style .npz to 64x64 or 128x128 (bilinear, antialiased: a fixed rule that
looks at no statistic of the images) and write a matching image schema, for the clinical-resolution
profiles (configs/dp_diffusion_image_64_*.yaml, *_128_gpu.yaml).

    python evaluation/resize_medmnist.py ../shared/data/medmnist/pneumoniamnist.npz --size 64 --out /tmp/pneu64

writes /tmp/pneu64/pneumoniamnist64.npz and /tmp/pneu64/pneumoniamnist64.yaml; then
    dpsynth train --data /tmp/pneu64/pneumoniamnist64.npz --schema /tmp/pneu64/pneumoniamnist64.yaml \
        --generator dp-diffusion-image --config configs/dp_diffusion_image_64_cpu.yaml --out runs/p64
The output holds real images: keep it inside, like the source.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dpsynth.data.image_schema import builtin_image_schema  # noqa: E402
from dpsynth.generators.image.pretrain import convert_images  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--size", type=int, choices=[32, 64, 128, 224], required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    src = Path(args.source)
    schema = builtin_image_schema(src.stem.lower())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{src.stem}{args.size}"
    arrays = {}
    with np.load(src, allow_pickle=False) as archive:
        for key in archive.files:
            if key.endswith("_images"):
                x = archive[key]
                x = x[:, None] if x.ndim == 3 else np.transpose(x, (0, 3, 1, 2))
                unit = convert_images(x.astype(np.float32) / 127.5 - 1, channels=x.shape[1], height=args.size,
                                      width=args.size)
                y = np.rint((unit + 1) * 127.5).astype(np.uint8)
                arrays[key] = y[:, 0] if y.shape[1] == 1 else np.transpose(y, (0, 2, 3, 1))
            else:
                arrays[key] = archive[key]
    np.savez_compressed(out / f"{name}.npz", **arrays)
    description = f"{schema.description} (resized to {args.size}x{args.size} by evaluation/resize_medmnist.py)"
    replace(schema, height=args.size, width=args.size, name=name, description=description).save(out / f"{name}.yaml")
    print(f"wrote {out / (name + '.npz')} and {out / (name + '.yaml')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
