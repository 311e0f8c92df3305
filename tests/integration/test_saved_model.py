"""The saved model in a fresh process: safe_mode load, raw images of any size and mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from images import encode, exif_rotated_jpeg, rgb
from imgclf.params import Params

pytestmark = pytest.mark.slow

SCRIPT = """
import json, sys
import keras, numpy as np
from imgclf.data.imaging import load_rgb
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
out = {}
for path in sys.argv[2:]:
    image = load_rgb(open(path, "rb").read())
    out[path] = [image.shape[0], image.shape[1], *model.predict(image[None], verbose=0)[0].tolist()]
print(json.dumps(out))
"""


def test_model_predicts_raw_images_of_other_sizes_and_modes(binary: Params, tmp_path: Path) -> None:
    images = {
        "wide.jpg": encode(rgb(1, (50, 20)), "JPEG"),
        "cmyk.jpg": encode(rgb(2, (40, 40)).convert("CMYK"), "JPEG"),
        "gray.png": encode(rgb(3, (17, 33)).convert("L"), "PNG"),
        "rgba.png": encode(rgb(4, (64, 64)).convert("RGBA"), "PNG"),
        "palette.gif": encode(rgb(5, (30, 30)).convert("P"), "GIF"),
        "rotated.jpg": exif_rotated_jpeg((48, 24)),
        "sixteen.png": encode(Image.new("I;16", (20, 20), 40000), "PNG"),
    }
    paths = []
    for name, data in images.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(binary.path("model")), *paths],
        capture_output=True, text=True, timeout=300, check=False, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == len(images)
    assert all(0.0 <= r[2] <= 1.0 for r in results.values())  # one sigmoid output per image
    assert results[str(tmp_path / "rotated.jpg")][:2] == [48, 24]  # EXIF applied before the model
