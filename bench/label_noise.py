"""How well evaluate's suspected label errors find planted ones on the demo set.

Copies the 2000 demo silhouettes into a throwaway project with a share of them (default
5%, drawn by a seeded generator) moved to the other class folder, runs validate, split,
augment, train and evaluate through the CLI with the project's params.yaml, and prints how many of the
flipped files that validate kept are in the top 10% of ``reports/label_issues.csv``'s
ranking (as many rows as 10% of the usable images), how many were flagged at all, and
test F1. About 70 s on 2 cores:

    uv run --frozen python bench/label_noise.py [--share 0.05]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from imgclf import telemetry

telemetry.quiet()

from imgclf.data import demo  # noqa: E402
from imgclf.params import load_params  # noqa: E402
from imgclf.tables import read_csv  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work" / "label_noise"
IMGCLF = Path(sys.executable).with_name("imgclf")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--share", type=float, default=0.05, help="share of the images moved to the other class")
    args = parser.parse_args()
    started = time.perf_counter()
    shutil.rmtree(WORK, ignore_errors=True)
    source = WORK / "demo"
    demo.export(demo.DEFAULT_CLASSES, source)
    raw = WORK / "project" / "data" / "raw"
    files = sorted(source.rglob("*.png"))
    moved = set(random.Random(0).sample(range(len(files)), round(args.share * len(files))))
    flipped = set()
    for index, file in enumerate(files):
        label = file.parent.name
        other = next(c for c in demo.DEFAULT_CLASSES if c != label)
        target = raw / (other if index in moved else label) / f"{label}_{file.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, target)
        if target.parent.name != label:
            flipped.add(target.relative_to(raw).as_posix())
    params_file = WORK / "project" / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    for stage in ("validate", "split", "augment", "train", "evaluate"):
        subprocess.run([str(IMGCLF), "--params", str(params_file), stage], check=True, capture_output=True)
    params = load_params(params_file)

    usable = {row["path"] for row in read_csv(params.path("split"))}
    kept = flipped & usable
    ranked = [row["path"] for row in read_csv(params.path("label_issues"))]
    top = set(ranked[: math.ceil(0.1 * len(usable))])
    f1 = json.loads(params.path("metrics").read_text(encoding="utf-8"))["f1"]
    print(
        f"{len(flipped)} of 2000 labels flipped ({args.share:.0%}); validate kept {len(usable)} images, "
        f"{len(kept)} of them flipped"
    )
    print(
        f"flagged: {len(ranked)}, of which flipped {len(kept & set(ranked))}; flipped in the top 10% "
        f"({math.ceil(0.1 * len(usable))} rows): {len(kept & top)} of {len(kept)} = {len(kept & top) / len(kept):.0%}"
    )
    print(f"test F1 {f1:.4f} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
