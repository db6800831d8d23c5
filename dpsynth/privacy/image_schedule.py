"""Plan a DP-SGD run of an image generator from public facts, not in epochs.

Why: an epoch schedule gives a 546-image set 77 steps where a 4,708-image set gets 662, and 77
noisy steps train nothing (issue 12: BreastMNIST and RetinaMNIST sampled grey static). Under
DP-SGD more images mean less noise per step, not that more passes are needed, so the number of
optimizer steps is a *compute budget* that does not depend on n.

The rule (:func:`plan_image_schedule`), fed only public facts: the number of training images
``n``, the image size (H, W), the noise multiplicity K, epsilon and delta, and the compute
budget:

1. **Steps** = ``steps`` (default :data:`DEFAULT_STEPS` = 600 optimizer steps, whatever n is).
2. **Largest affordable batch** = the compute budget per step divided by the cost of one image:
   ``max_batch = pow2_floor(examples_per_step * min(1, 28 * 28 / (H * W)) * (2 / K))``, at least 8,
   where ``examples_per_step`` is 128 on a CPU and 4096 on a GPU (the images of 28x28 with 2
   noisy copies one step may hold). A 64x64 image costs ~5x a 28x28 one, so a CPU step holds 16.
3. **Batch** = the smallest power of two in ``[16, max_batch]`` (and at most n/2, so Poisson
   sampling still amplifies) whose noise multiplier for those steps reaches 3; past that point a
   bigger batch barely lowers the noise on the averaged gradient (sigma C / B) and only costs
   compute; if none reaches it, ``max_batch``. This is :func:`dpsynth.privacy.schedule.plan_schedule`.
   So small sets get small batches and the same number of steps: BreastMNIST (546 images) at
   epsilon 1 -> 16 x 600 steps; at epsilon 10 -> 128 x 600 (131 passes); PneumoniaMNIST (4,708)
   -> 128 x 600; 100,000 images -> 128 x 600 on a CPU, 4096 x 600 on a GPU.
4. **Noise**: calibrated afterwards by the ledger's opacus accountant
   (:func:`dpsynth.privacy.engine.plan_dp_sgd`) for the chosen (rate, steps), with whatever
   preprocessing (the class-frequency release) already spent.

How the constants were chosen. ``DEFAULT_STEPS`` = 600 and the CPU ``EXAMPLES_PER_STEP`` = 128
restate the 2026-11-28 CPU profile (662 x 128), first picked on PneumoniaMNIST's TEST split (a
defect); re-checked on its VALIDATION split on 2026-12-02 at the same compute (steps x batch =
76,800), epsilon 10, seed 2, 1000 synthetic images, 3 CNNs: synthetic-trained balanced accuracy
300 x 256 0.797, 600 x 128 0.814, 1200 x 64 0.816 (AUROC 0.894 / 0.914 / 0.906; domain FID 1.69 /
1.87 / 1.06). 600 x 128 is kept: 1200 x 64 is within 0.002 (one seed, no evidence either way),
300 x 256 lower (evaluation/README.md, issue 12). The GPU 4096 is a sizing guess (not measured: no GPU run yet).
``NOISE_FLOOR`` = 3 and ``MIN_BATCH`` = 16 are judgement,
not measurement: above sigma ~3 the noise on the averaged gradient (sigma C / B) falls mainly with
B (step 3 above); 16 is a floor chosen by hand, never compared with other values.

Measured at the plan itself (2026-12-02, evaluation/results/images/img12b, one seed, TEST split,
nothing chosen from it): PneumoniaMNIST at epsilon 10 -> 600 x 128 (sigma 0.731, epsilon spent
9.944), fit 3508 s on one shared CPU core; synthetic-trained CNN balanced accuracy 0.817 vs 0.815
real and 0.500 majority (re-sampled, 3 CNNs: 0.827 vs 0.798). The 100 x 32 cut (1/24 of the compute)
stayed at the majority class (0.521). The other sets, epsilon 1 and public pretraining at the plan:
evaluation/README.md (BreastMNIST's 546 images stay at the majority class even at epsilon 10).

``epochs`` set (old configs) keeps the legacy ``ceil(epochs * n / batch_size)``; ``batch_size``
set with ``steps`` keeps both. The plan spends nothing and releases nothing: its inputs are
public.
"""

from __future__ import annotations

import math

from dpsynth.errors import ConfigError
from dpsynth.privacy.schedule import Schedule, plan_schedule

DEFAULT_STEPS = 600
EXAMPLES_PER_STEP = {"cpu": 128, "cuda": 4096}
MIN_BATCH = 16
NOISE_FLOOR = 3.0
_REFERENCE_PIXELS = 28 * 28
_REFERENCE_MULTIPLICITY = 2


def max_batch_for(*, height: int, width: int, noise_multiplicity: int, device: str) -> int:
    """The largest power-of-two batch one step may hold on ``device`` ('cpu' or 'cuda')."""
    if device not in EXAMPLES_PER_STEP:
        raise ConfigError(f"schedule: device must be one of {sorted(EXAMPLES_PER_STEP)}, got {device!r}")
    budget = EXAMPLES_PER_STEP[device] * min(1.0, _REFERENCE_PIXELS / (height * width)) * (
        _REFERENCE_MULTIPLICITY / max(1, int(noise_multiplicity)))
    return max(8, 2 ** int(math.floor(math.log2(max(1.0, budget)))))


def plan_image_schedule(*, n: int, height: int, width: int, epsilon: float | None, delta: float,
                        noise_multiplicity: int = 1, device: str = "cpu", steps: int | None = None,
                        batch_size: int | None = None, epochs: float | None = None) -> Schedule:
    """(batch size, steps) of an image generator's DP-SGD run; see the module docstring."""
    if epochs is not None:
        return plan_schedule(n=n, epsilon=epsilon, delta=delta, steps=steps or DEFAULT_STEPS, batch_size=batch_size,
                             epochs=epochs, legacy_batch_size=batch_size or 128)
    steps = DEFAULT_STEPS if steps is None else steps
    cap = max_batch_for(height=height, width=width, noise_multiplicity=noise_multiplicity, device=device)
    sched = plan_schedule(n=n, epsilon=epsilon, delta=delta, steps=steps, batch_size=batch_size,
                          min_batch_size=min(MIN_BATCH, cap), max_batch_size=cap, noise_floor=NOISE_FLOOR)
    if batch_size is None:
        rule = f"{sched.rule}; batch <= {cap} ({device} compute per step at {height}x{width}, K={noise_multiplicity})"
        sched = Schedule(batch_size=sched.batch_size, steps=sched.steps, rule=rule,
                         planning_noise_multiplier=sched.planning_noise_multiplier)
    return sched


def schedule_for(generator, *, n: int, height: int, width: int, budget, delta: float, device) -> Schedule:
    """The plan of an image generator (reads its ``steps``, ``batch_size``, ``epochs`` and
    ``noise_multiplicity``); ``device`` is a torch.device or 'cpu'/'cuda'."""
    kind = getattr(device, "type", device)
    return plan_image_schedule(n=n, height=height, width=width, delta=delta,
                               epsilon=None if budget.non_private else budget.epsilon,
                               noise_multiplicity=int(getattr(generator, "noise_multiplicity", 1)),
                               device="cuda" if kind == "cuda" else "cpu", steps=generator.steps,
                               batch_size=generator.batch_size, epochs=generator.epochs)
