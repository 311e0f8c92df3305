"""What a transfer backbone costs on this CPU against the from-scratch default, per image.

What it measures (figures are printed; nothing here fails the run):

For small_cnn (imgclf's default network, params.yaml's model section otherwise at its
defaults) and each keras.applications backbone imgclf offers (MobileNetV2,
EfficientNetB0, ResNet50, VGG16, InceptionV3) at ``--size`` px, built by
``imgclf.training.network.build_model`` exactly as ``imgclf train`` builds it for two classes, with
random weights (speed does not depend on their values; no network is needed), and with
what ``imgclf train`` fills in for a photo folder at that size (imgclf.training.autoconf: small_cnn's
stem, for one):

* parameters: all, and those phase 1 trains (transfer: the head only, the backbone frozen
  as the train stage freezes it);
* training images/s of phase 1: ``train_on_batch`` on batches of 32 random uint8 images of
  the training size, after 3 warm-up steps; median and range of ``--repeats`` timings of
  ``--steps`` steps each. A frozen backbone still runs forward on every image of every
  epoch (imgclf caches decoded images, not features), so this is what an epoch costs.
* inference images/s: ``predict_on_batch``, timed the same way.

What it cannot measure offline: the F1 that ImageNet weights buy. There is no network
here to fetch them (model.weights: imagenet); random weights in a frozen backbone say
nothing about that.

Run (about 2-4 min on 2 cores, most of it VGG16 and ResNet50):

    uv run --frozen python bench/transfer_cost.py [--size 128] [--steps 5] [--repeats 3] [--networks small_cnn,VGG16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

BACKBONES = ("MobileNetV2", "EfficientNetB0", "ResNet50", "VGG16", "InceptionV3")


def _rate(step: object, batch: object, steps: int, repeats: int) -> tuple[float, float, float]:
    """Median, min and max images/s over ``repeats`` timings of ``steps`` calls."""
    import numpy as np

    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step(*batch)  # type: ignore[operator]
        rates.append(steps * len(batch[0]) / (time.perf_counter() - start))  # type: ignore[index]
    return statistics.median(rates), float(np.min(rates)), float(np.max(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="train.image_size (InceptionV3 needs 75 or more)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--networks", default=",".join(("small_cnn", *BACKBONES)), help="comma-separated, in order")
    args = parser.parse_args()

    from imgclf.tfruntime import import_tensorflow

    import_tensorflow()
    import keras
    import numpy as np

    from imgclf.params import Model, Params, Train
    from imgclf.training.autoconf import DataShape, resolve
    from imgclf.training.network import build_model

    photos = DataShape(images=1000, short_side=4 * args.size, colour=1.0)

    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} cores")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, args.size, args.size, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, (32, 1)).astype("float32")
    print(f"{'network':<16}{'params':>12}{'trained':>12}{'train img/s':>22}{'predict img/s':>22}")
    baseline = None
    for name in args.networks.split(","):
        keras.utils.set_random_seed(42)
        cfg = Model(arch="small_cnn") if name == "small_cnn" else Model(arch="transfer", backbone=name)  # type: ignore[arg-type]
        # What imgclf train would fill in for a photo folder at this size (e.g. small_cnn's stem).
        chosen = resolve(Params(model=cfg, train=Train(image_size=args.size)), photos).params
        model, backbone = build_model(2, args.size, chosen.model)
        if backbone is not None:
            backbone.trainable = False  # phase 1, as the train stage does
        model.compile(optimizer="adam", loss="binary_crossentropy")
        trained = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        for _ in range(3):
            model.train_on_batch(images, labels)
            model.predict_on_batch(images)
        fit = _rate(model.train_on_batch, (images, labels), args.steps, args.repeats)
        infer = _rate(model.predict_on_batch, (images,), args.steps, args.repeats)
        baseline = baseline or fit[0]
        print(
            f"{name:<16}{model.count_params():>12,}{trained:>12,}"
            f"{fit[0]:>10.0f} ({fit[1]:.0f}-{fit[2]:.0f}){infer[0]:>12.0f} ({infer[1]:.0f}-{infer[2]:.0f})"
            f"   {baseline / fit[0]:.1f}x small_cnn's time"
        )
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
