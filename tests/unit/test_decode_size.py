"""load_rgb at the training size: JPEGs decode DCT-scaled, never below the size, close to
a full decode, and every other format as before."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from images import encode, exif_rotated_jpeg, pixels, rgb
from imgclf.data.datasets import resize_uint8
from imgclf.data.imaging import load_rgb


def smooth(size: tuple[int, int]) -> np.ndarray:
    """(height, width, 3) uint8 with only coarse detail, as a photo's content at 128 px."""
    width, height = size
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = 127 + 100 * np.sin(4 * np.pi * x) * np.cos(2 * np.pi * y)
    image[..., 1] = 255 * x
    image[..., 2] = 255 * y
    return image


@pytest.fixture(scope="module")
def photo() -> bytes:
    """A 4000x3000 (12 Mpx) JPEG, a phone photo's size."""
    return encode(Image.fromarray(smooth((4000, 3000))), "JPEG", quality=90)


@pytest.mark.parametrize(
    ("min_side", "shape"),
    [
        (128, (375, 500, 3)),  # 1/8: both sides >= 128
        (375, (375, 500, 3)),  # 1/8 still: 3000 / 8 = 375, exactly the size
        (376, (750, 1000, 3)),  # 1/4: 3000 / 8 < 376
        (1000, (1500, 2000, 3)),  # 1/2
        (2000, (3000, 4000, 3)),  # full size: 3000/2 < 2000
        (5000, (3000, 4000, 3)),  # an image smaller than the size is never upscaled here
    ],
)
def test_a_jpeg_decodes_at_the_smallest_scale_at_least_the_size(
    photo: bytes, min_side: int, shape: tuple[int, ...]
) -> None:
    assert load_rgb(photo, min_side=min_side).shape == shape


def test_the_rotated_photo_decodes_reduced_and_upright() -> None:
    data = exif_rotated_jpeg((2000, 1000))  # stored 2000 wide, displayed 1000 wide
    full, small = load_rgb(data), load_rgb(data, min_side=128)
    assert full.shape == (2000, 1000, 3)
    # 1000 // 128 = 7: 1/4; the sides swap with the orientation, and neither falls below.
    assert small.shape == (500, 250, 3)
    # The same upright picture: the full decode averaged over 4x4 blocks (what 1/4 DCT
    # scaling computes); a rotation the wrong way would leave the gradient reversed.
    reduced = full.reshape(500, 4, 250, 4, 3).mean(axis=(1, 3))
    assert np.abs(small - reduced).mean() < 3
    assert np.abs(small - reduced[::-1, ::-1]).mean() > 20


@pytest.mark.parametrize("size", [(255, 1000), (256, 256), (129, 4000), (1023, 1024), (2047, 517)])
def test_no_side_falls_below_the_size(size: tuple[int, int]) -> None:
    image = load_rgb(encode(rgb(1, size), "JPEG"), min_side=128)
    assert min(image.shape[:2]) >= 128


def test_cmyk_jpegs_decode_reduced_with_the_same_colours() -> None:
    data = encode(Image.fromarray(smooth((1600, 1200))).convert("CMYK"), "JPEG", quality=95)
    full, small = load_rgb(data), load_rgb(data, min_side=128)
    assert small.shape == (150, 200, 3)
    assert np.abs(resize_uint8(full, 128).numpy().astype(int) - resize_uint8(small, 128).numpy()).mean() < 1.5


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_other_formats_decode_at_full_size(fmt: str) -> None:
    data = encode(rgb(2, (300, 200)), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert np.array_equal(load_rgb(data, min_side=64), load_rgb(data))


def test_the_max_pixels_check_still_comes_first(photo: bytes) -> None:
    from imgclf.data.imaging import TooLarge

    with pytest.raises(TooLarge, match="nothing was decoded"):
        load_rgb(photo, max_pixels=12_000_000 - 1, min_side=128)


def test_reduced_decode_resized_is_close_to_full_decode_resized(photo: bytes) -> None:
    """What the training size sees: on coarse content the two agree to a fraction of a
    grey level (measured 0.30 at 128 px)."""
    full = resize_uint8(load_rgb(photo), 128).numpy().astype(int)
    small = resize_uint8(load_rgb(photo, min_side=128), 128).numpy().astype(int)
    assert np.abs(full - small).mean() < 1.0


def wrapped_gradient(seed: int, size: tuple[int, int]) -> np.ndarray:
    """A diagonal gradient wrapping at 256 plus seeded noise, (height, width, 3) uint8: its
    wrap edges and noise are the fine texture the figures below were measured on."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = (x * 255 // (width - 1) + y * 128 // (height - 1)) % 256
    noise = np.random.default_rng(seed).integers(0, 64, size=(height, width, 3))
    return ((base[..., None] + noise) % 256).astype(np.uint8)


def test_on_fine_texture_the_reduced_decode_is_the_better_thumbnail() -> None:
    """Where they differ, DCT scaling is right: bilinear resize without antialiasing reads
    4 of the ~200 pixels under each output pixel of a full decode (aliasing noise), while
    DCT scaling averages them. Measured at 128 px on seeded noise: 14 grey levels from an
    antialiased resize of the full decode for full + bilinear, 2.2 for DCT-scaled + bilinear."""
    import tensorflow as tf

    data = encode(Image.fromarray(wrapped_gradient(3, (2000, 1500))), "JPEG", quality=90)
    full = load_rgb(data)
    truth = tf.image.resize(full, (128, 128), antialias=True).numpy()
    aliased = np.abs(resize_uint8(full, 128).numpy() - truth).mean()
    scaled = np.abs(resize_uint8(load_rgb(data, min_side=128), 128).numpy() - truth).mean()
    assert scaled < 4 < 10 < aliased


def test_small_images_are_unchanged() -> None:
    """The demo's 28 px silhouettes: scale 1, the very same pixels as before."""
    data = encode(Image.fromarray(pixels(4, (28, 28))), "JPEG")
    assert np.array_equal(load_rgb(data, min_side=28), load_rgb(data))


def test_camera_mpo_files_decode_reduced_first_frame() -> None:
    first, second = Image.fromarray(smooth((800, 600))), rgb(5, (800, 600))
    data = encode(first, "MPO", save_all=True, append_images=[second])
    small = load_rgb(data, min_side=64)
    assert small.shape == (75, 100, 3)
    assert np.abs(small.astype(int) - np.asarray(first.reduce(8))).mean() < 3
