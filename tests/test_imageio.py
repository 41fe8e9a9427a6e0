"""Image loading: every format, mode and broken input a user may hand us."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import need_data
from vultus.errors import ImageError
from vultus.imageio import MAX_PIXELS, list_images, load_image


def test_jpeg_from_path_bytes_pil_and_array():
    path = need_data("face_recognition", "tests", "test_images", "obama.jpg")
    a = load_image(path)
    assert a.shape == (1137, 910, 3) and a.dtype == np.uint8
    assert np.array_equal(load_image(path.read_bytes()), a)
    assert np.array_equal(load_image(str(path)), a)
    assert np.array_equal(load_image(Image.open(path)), a)
    assert np.array_equal(load_image(a), a)


def test_webp_named_jpg_is_read_by_content():
    path = need_data("deepface", "tests", "unit", "dataset", "img47.jpg")
    assert path.read_bytes()[8:12] == b"WEBP"
    img = load_image(path)
    assert img.ndim == 3 and img.shape[2] == 3


def test_rgba_png_becomes_rgb():
    path = need_data("face_recognition", "tests", "test_images", "32bit.png")
    assert Image.open(path).mode == "RGBA"
    assert load_image(path).shape == (1200, 626, 3)


def test_exif_orientation_is_applied():
    path = need_data("antispoof_samples", "images", "sample", "image_T1.jpg")
    raw = Image.open(path)
    assert raw.size == (640, 480)
    assert load_image(path).shape[:2] == (640, 480)  # displayed upright: 480 wide, 640 high


def test_greyscale_and_16bit(tmp_path):
    src = load_image(need_data("face_recognition", "tests", "test_images", "obama.jpg"))
    grey = Image.fromarray(src).convert("L")
    p = tmp_path / "grey.png"
    grey.save(p)
    g = load_image(p)
    assert g.shape == src.shape and np.array_equal(g[..., 0], g[..., 2])
    wide = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    p16 = tmp_path / "grey16.png"
    wide.save(p16)
    g16 = load_image(p16)
    assert g16.dtype == np.uint8 and np.abs(g16[..., 0].astype(int) - np.asarray(grey)).max() <= 1
    assert load_image(np.asarray(grey).astype(np.uint16) * 257).shape == src.shape


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF"])
def test_formats_roundtrip(tmp_path, fmt):
    src = load_image(need_data("face_recognition", "tests", "test_images", "obama.jpg"))[:200, :200]
    p = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(src).save(p, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert np.array_equal(load_image(p), src)


def test_truncated_jpeg(tmp_path):
    data = need_data("face_recognition", "tests", "test_images", "obama.jpg").read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="cut.jpg: corrupt or truncated"):
        load_image(p)


def test_not_an_image_empty_missing_folder(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("hello, not a picture")
    with pytest.raises(ImageError, match="not an image"):
        load_image(text)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        load_image(empty)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="not an image source"):
        load_image(12345)


def test_huge_image_is_refused_before_decoding(tmp_path):
    side = int(MAX_PIXELS**0.5) + 100
    p = tmp_path / "huge.png"
    Image.new("1", (side, side)).save(p)  # a few KB on disk, over the pixel limit decoded
    with pytest.raises(ImageError, match="too large") as err:
        load_image(p)
    assert err.value.code == "image_too_large" and err.value.data["pixels"] == side * side


def test_list_images(tmp_path):
    root = need_data("face_recognition", "examples", "knn_examples", "train")
    found = list_images(root)
    assert len(found) == 9 and all(p.suffix.lower() in {".jpg", ".jpeg", ".png"} for p in found)
    with pytest.raises(ImageError):
        list_images(tmp_path / "nope")


def test_streams():
    path = need_data("face_recognition", "tests", "test_images", "obama.jpg")
    with open(path, "rb") as fh:
        assert load_image(fh).shape == (1137, 910, 3)
    with pytest.raises(ImageError, match="not an image"):
        load_image(io.BytesIO(b"abc"))
