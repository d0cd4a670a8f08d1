"""Plain images: what a clinician sees when opening a PNG, JPEG or TIFF, on real files.

Every image here is a real public image from ../shared/data, or one made in tmp_path from
such an image (to get a 16-bit, transparent, rotated, multi-page, truncated or very large
version of it).
"""
from __future__ import annotations

import csv
import logging
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from testdata import shared_path
from PIL import Image, ImageOps

from medkd_desktop.studies import (
    CorruptStudyError,
    StudyKind,
    StudyLoadError,
    StudyTooLargeError,
    TruncatedStudyError,
)
from medkd_desktop.studies.raster import guess_modality, read_raster, should_tile, tile_grid


def _rows(dataset: str, split: str = "test") -> list[dict[str, str]]:
    manifest = shared_path(dataset, "manifest.csv")
    with open(manifest, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == split]


def _file(dataset: str, row: dict[str, str]) -> Path:
    return shared_path(dataset, row["path"])


def _every(rows: list, n: int) -> list:
    """A fixed, evenly spread subset (deterministic, covers every class block of the manifest)."""
    step = max(1, len(rows) // n)
    return rows[::step][:n]


CXR_JPEG = ("cxr-covid", "images/covid/hannover_18017511.jpg")
HISTO_JPEG = ("histo-lc25000", "images/lung_aca/lungaca191.jpg")
SKIN_JPEG = ("skin-ham10000", "images/mel/ISIC_0024351.jpg")  # a full dermoscopy frame, 298x224


def _real(spec: tuple[str, str]) -> Path:
    return shared_path(*spec)


def _assert_one_sentence(exc: StudyLoadError) -> None:
    text = str(exc)
    assert text and "\n" not in text and text.endswith(".")


# --- grey and colour JPEGs -------------------------------------------------------------------


def test_chest_radiograph_jpegs_open_as_grey_with_the_full_8bit_window():
    rows = _rows("cxr-covid")
    by_source: dict[str, list] = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r)
    picked = [r for group in by_source.values() for r in group[:2]]
    assert len(picked) >= 6
    for r in picked:
        path = _file("cxr-covid", r)
        study = read_raster(path)
        expected = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        assert study.kind is StudyKind.IMAGE and study.tiles is None
        assert study.modality == "OT" and not study.is_rgb
        assert study.pixels.shape == (1, 1, *expected.shape)
        np.testing.assert_array_equal(study.pixels[0, 0], expected)  # stored units 0..255
        frame = study.frame()
        assert (frame.window.low, frame.window.high) == (0.0, 255.0)
        shown = frame.display()
        assert shown.min() >= 0 and shown.max() <= 1 and shown.std() > 0.05, "a radiograph must show contrast"


@pytest.mark.parametrize("spec, modality", [(HISTO_JPEG, "histology"), (SKIN_JPEG, "dermoscopy")])
def test_colour_jpegs_open_as_rgb_in_unit_range(spec, modality):
    path = _real(spec)
    study = read_raster(path)
    expected = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    assert study.is_rgb and study.pixels.shape == (1, 1, *expected.shape)
    np.testing.assert_allclose(study.pixels[0, 0], expected, atol=1e-6)
    assert np.isnan(study.windows).all() and study.frame().window is None
    assert study.modality == modality and study.metadata.modality == modality
    assert study.kind is StudyKind.IMAGE


def test_grey_picture_saved_as_rgb_is_read_as_grey(tmp_path):
    grey = Image.open(_real(CXR_JPEG)).convert("L")
    path = tmp_path / "cxr_saved_as_rgb.png"
    grey.convert("RGB").save(path)
    study = read_raster(path)
    assert not study.is_rgb and study.modality == "OT"
    np.testing.assert_array_equal(study.pixels[0, 0], np.asarray(grey, dtype=np.float32))
    assert (study.frame().window.low, study.frame().window.high) == (0.0, 255.0)


# --- 16-bit, transparency, palette, 1-bit, CMYK -----------------------------------------------


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_16bit_grey_round_trips_exactly(tmp_path, suffix):
    base = np.asarray(Image.open(_real(CXR_JPEG)).convert("L")).astype(np.uint16)
    rng = np.random.default_rng(0)
    data = base * 257 - rng.integers(0, 200, base.shape, dtype=np.uint16) * (base > 0)  # uses the low bits too
    path = tmp_path / f"cxr16{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, data, photometric="minisblack")
    else:
        Image.fromarray(data).save(path)
    study = read_raster(path)
    assert not study.is_rgb and study.pixels.shape == (1, 1, *data.shape)
    np.testing.assert_array_equal(study.pixels[0, 0], data.astype(np.float32))
    w = study.frame().window
    assert w.width > 255, "a 16-bit image must not get the 8-bit window"
    assert data.min() <= w.low < w.high <= data.max()


def test_16bit_rgb_tiff_is_scaled_by_the_dtype_maximum(tmp_path):
    rgb8 = np.asarray(Image.open(_real(HISTO_JPEG)).convert("RGB"))
    data = rgb8.astype(np.uint16) * 257
    path = tmp_path / "he16.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    study = read_raster(path)
    assert study.is_rgb and study.modality == "histology"
    np.testing.assert_allclose(study.pixels[0, 0], data / 65535.0, atol=1e-6)


def test_rgba_png_is_composited_on_white(tmp_path):
    rgb = np.asarray(Image.open(_real(HISTO_JPEG)).convert("RGB"))
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :50] = 0  # transparent strip
    alpha[:, 50:100] = 128  # half transparent strip
    path = tmp_path / "he_rgba.png"
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    study = read_raster(path)
    px = study.pixels[0, 0]
    assert study.is_rgb and px.shape == rgb.shape
    np.testing.assert_allclose(px[:, :50], 1.0)
    np.testing.assert_allclose(px[:, 100:], rgb[:, 100:] / 255.0, atol=1e-6)
    half = (rgb[:, 50:100] / 255.0) * (128 / 255) + (1 - 128 / 255)
    np.testing.assert_allclose(px[:, 50:100], half, atol=1e-5)
    assert "white" in study.photometric


def test_grey_alpha_png_is_composited_on_black(tmp_path):
    grey = np.asarray(Image.open(_real(CXR_JPEG)).convert("L"))
    alpha = np.full(grey.shape, 255, np.uint8)
    alpha[:40] = 0
    path = tmp_path / "cxr_la.png"
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(path)
    study = read_raster(path)
    assert not study.is_rgb
    np.testing.assert_array_equal(study.pixels[0, 0, :40], 0.0)
    np.testing.assert_allclose(study.pixels[0, 0, 40:], grey[40:].astype(np.float32))


def test_palette_one_bit_and_cmyk_images_are_converted(tmp_path):
    src = Image.open(_real(SKIN_JPEG)).convert("RGB")
    rgb = np.asarray(src) / 255.0
    src.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(tmp_path / "p.png")
    study = read_raster(tmp_path / "p.png")
    assert study.is_rgb and np.abs(study.pixels[0, 0] - rgb).mean() < 0.02
    assert study.modality == "dermoscopy"

    src.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    study = read_raster(tmp_path / "cmyk.jpg")
    assert study.is_rgb and np.abs(study.pixels[0, 0] - rgb).mean() < 0.02

    Image.open(_real(CXR_JPEG)).convert("1").save(tmp_path / "bw.png")
    study = read_raster(tmp_path / "bw.png")
    assert not study.is_rgb and set(np.unique(study.pixels)) == {0.0, 255.0}
    assert study.frame().display().max() == 1.0


def test_jpeg_compressed_tiff_is_decoded(tmp_path):
    src = Image.open(_real(HISTO_JPEG)).convert("RGB")
    src.save(tmp_path / "he_jpeg.tif", compression="jpeg", quality=95)
    study = read_raster(tmp_path / "he_jpeg.tif")
    assert study.is_rgb and np.abs(study.pixels[0, 0] - np.asarray(src) / 255.0).mean() < 0.02


# --- multi-page TIFF -------------------------------------------------------------------------


def _cxr_crops(n: int, size: int = 224) -> list[np.ndarray]:
    rows = _rows("cxr-covid")[:n]
    return [np.asarray(Image.open(_file("cxr-covid", r)).convert("L"))[:size, :size] for r in rows]


def test_multipage_tiff_pages_of_one_size_become_slices(tmp_path):
    pages = _cxr_crops(3)
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as tw:
        for p in pages:
            tw.write(p, photometric="minisblack", contiguous=False)
    study = read_raster(path)
    assert study.n_volumes == 1 and study.n_slices == 3 and not study.warnings
    for z, p in enumerate(pages):
        np.testing.assert_array_equal(study.pixels[0, z], p.astype(np.float32))


def test_multipage_tiff_of_mixed_sizes_shows_the_first_page_and_warns(tmp_path):
    a, b = _cxr_crops(2)
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(a, photometric="minisblack", contiguous=False)
        tw.write(b[:100, :120], photometric="minisblack", contiguous=False)
    study = read_raster(path)
    assert study.n_slices == 1
    np.testing.assert_array_equal(study.pixels[0, 0], a.astype(np.float32))
    assert any("first page" in w for w in study.warnings)


# --- orientation -----------------------------------------------------------------------------

# stored = inverse(upright) so that applying the tag shows the upright picture
_STORE_FOR_TAG = {
    3: lambda a: a[::-1, ::-1],
    6: lambda a: np.rot90(a, k=1),
    8: lambda a: np.rot90(a, k=-1),
}


@pytest.mark.parametrize("tag", sorted(_STORE_FOR_TAG))
def test_exif_rotated_jpeg_is_shown_upright(tmp_path, tag):
    upright = np.asarray(Image.open(_real(SKIN_JPEG)).convert("RGB"))  # 298 wide, 224 high
    exif = Image.Exif()
    exif[0x0112] = tag
    path = tmp_path / f"exif{tag}.jpg"
    Image.fromarray(np.ascontiguousarray(_STORE_FOR_TAG[tag](upright))).save(path, exif=exif.tobytes(), quality=95)
    study = read_raster(path)
    shown = study.pixels[0, 0] * 255.0
    assert shown.shape == upright.shape
    err = np.abs(shown - upright).mean()
    assert err < 3.0, f"not upright: mean error {err:.1f} grey levels"
    assert np.abs(shown - upright[::-1, ::-1]).mean() > 5 * err  # the content check can tell orientations apart
    assert f"tag {tag}" in study.orientation


@pytest.mark.parametrize("tag", range(1, 9))
def test_tiff_orientation_tag_is_applied_like_pillow(tmp_path, tag):
    rgb = np.asarray(Image.open(_real(SKIN_JPEG)).convert("RGB"))
    path = tmp_path / f"orient{tag}.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", extratags=[(274, "H", 1, tag, True)])
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    study = read_raster(path)
    np.testing.assert_array_equal(np.rint(study.pixels[0, 0] * 255).astype(np.uint8), expected)


# --- damaged and hostile files ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff"])
def test_half_copied_files_are_refused_as_truncated(tmp_path, fmt):
    if fmt == "jpeg":
        data = _real(CXR_JPEG).read_bytes()
    else:
        full = tmp_path / f"full.{fmt}"
        Image.open(_real(HISTO_JPEG)).save(full)
        data = full.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedStudyError) as info:
        read_raster(cut)
    assert isinstance(info.value, StudyLoadError)
    _assert_one_sentence(info.value)


def test_damaged_png_data_is_a_corrupt_study(tmp_path):
    full = tmp_path / "full.png"
    Image.open(_real(HISTO_JPEG)).save(full)
    data = bytearray(full.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 20: idat + 420] = bytes(400)  # wipe compressed bytes; the file keeps its length
    (tmp_path / "damaged.png").write_bytes(bytes(data))
    with pytest.raises(CorruptStudyError) as info:
        read_raster(tmp_path / "damaged.png")
    _assert_one_sentence(info.value)

    (tmp_path / "header_only.png").write_bytes(bytes(data[:8]) + b"not an image")
    with pytest.raises(CorruptStudyError):
        read_raster(tmp_path / "header_only.png")


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _tiff_claiming(width: int, height: int) -> bytes:
    """A minimal little-endian TIFF header for one 8-bit grey strip (no pixel data follows)."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 8 + 2 + 12 * 9 + 4), (277, 3, 1), (278, 4, height), (279, 4, 2**32 - 1)]
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, typ, value in entries:
        out += struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
    return out + struct.pack("<I", 0) + bytes(64)


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_header_claiming_a_huge_image_is_refused_fast_without_allocating(tmp_path, fmt):
    path = tmp_path / f"huge.{fmt}"
    path.write_bytes(_png_claiming(100_000, 100_000) if fmt == "png" else _tiff_claiming(100_000, 100_000))
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(StudyTooLargeError) as info:
            read_raster(path)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0 and peak < 20e6, f"{elapsed:.2f} s, {peak / 1e6:.0f} MB"
    _assert_one_sentence(info.value)


def test_a_text_file_is_a_typed_error_that_does_not_repeat_the_file_name(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "Doe_Jane_19600101.png"  # file names can carry patient identifiers
    path.write_text("this is not a picture\n")
    with pytest.raises(CorruptStudyError) as info:
        read_raster(path)
    assert "Doe_Jane" not in str(info.value) and "Doe_Jane" not in info.value.detail
    assert "Doe_Jane" not in caplog.text


# --- tiling of large histology fields ----------------------------------------------------------

FIELD_H, FIELD_W = 3000, 4000


@pytest.fixture(scope="module")
def he_field(tmp_path_factory) -> tuple[np.ndarray, Path, Path]:
    """A 4000x3000 H&E field mosaicked from real LC25000 test tiles, saved as TIFF and JPEG."""
    rows = [r for r in _rows("histo-lc25000") if r["label"] in ("lung_aca", "lung_scc", "colon_aca")]
    n_r, n_c = -(-FIELD_H // 224), -(-FIELD_W // 224)
    field = np.zeros((n_r * 224, n_c * 224, 3), np.uint8)
    for i in range(n_r * n_c):
        tile = np.asarray(Image.open(_file("histo-lc25000", rows[i % len(rows)])).convert("RGB"))
        r, c = divmod(i, n_c)
        field[r * 224:(r + 1) * 224, c * 224:(c + 1) * 224] = tile
    field = np.ascontiguousarray(field[:FIELD_H, :FIELD_W])
    folder = tmp_path_factory.mktemp("field")
    tif, jpg = folder / "he_field.tif", folder / "he_field.jpg"
    tifffile.imwrite(tif, field, photometric="rgb")
    Image.fromarray(field).save(jpg, quality=90)
    return field, tif, jpg


@pytest.mark.parametrize("which", ["tif", "jpg"])
def test_large_he_field_is_cut_into_full_size_tiles_covering_every_pixel(he_field, which):
    field, tif, jpg = he_field
    study = read_raster(tif if which == "tif" else jpg)
    assert study.modality == "histology" and study.kind is StudyKind.TILED_IMAGE
    assert study.pixels.shape == (1, 1, FIELD_H, FIELD_W, 3), "the pixels stay the whole field"
    grid = study.tiles
    assert (grid.tile_size, grid.n_rows, grid.n_cols) == (768, 4, 6)
    assert len(grid.boxes) == grid.n_rows * grid.n_cols
    covered = np.zeros((FIELD_H, FIELD_W), bool)
    for y0, x0, y1, x1 in grid.boxes:
        assert (y1 - y0, x1 - x0) == (768, 768)
        assert 0 <= y0 and 0 <= x0 and y1 <= FIELD_H and x1 <= FIELD_W
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert grid.boxes[-1] == (FIELD_H - 768, FIELD_W - 768, FIELD_H, FIELD_W)  # last tile shifted inward
    image = study.frame().pixels
    for r, c in [(0, 0), (1, 2), (3, 5)]:
        y0, x0, y1, x1 = grid.boxes[r * grid.n_cols + c]
        tile = grid.tile(image, r, c)
        assert tile.shape == (768, 768, 3)
        if which == "tif":  # lossless: exactly the source pixels
            np.testing.assert_allclose(tile, field[y0:y1, x0:x1] / 255.0, atol=1e-6)
        else:
            assert np.abs(tile - field[y0:y1, x0:x1] / 255.0).mean() < 0.03
    assert study.summary()["tiles"] == {"tile_size": 768, "rows": 4, "cols": 6}


def test_tile_size_is_honoured(he_field):
    _, tif, _ = he_field
    grid = read_raster(tif, tile_size=512).tiles
    assert (grid.tile_size, grid.n_rows, grid.n_cols) == (512, 6, 8)


def test_tiles_and_dermoscopy_frames_are_not_tiled(tmp_path, he_field):
    field, _, _ = he_field
    Image.fromarray(field[:768, :768]).save(tmp_path / "he768.png")
    Image.open(_real(SKIN_JPEG)).resize((600, 450), Image.Resampling.BICUBIC).save(tmp_path / "derm600.jpg", quality=95)
    cases = {_real(HISTO_JPEG): "histology", tmp_path / "he768.png": "histology", tmp_path / "derm600.jpg": "dermoscopy"}
    for path, modality in cases.items():
        study = read_raster(path)
        assert study.modality == modality
        assert study.kind is StudyKind.IMAGE and study.tiles is None, path.name


def test_tiling_rule_and_grid_edges():
    assert should_tile(3000, 4000, "histology") and not should_tile(3000, 4000, "dermoscopy")
    assert not should_tile(1536, 1536, "histology") and should_tile(768, 1537, "histology")
    assert not should_tile(700, 3000, "histology"), "no full-size tile fits a 700 px strip"
    grid = tile_grid(768, 1537, 768)
    assert (grid.n_rows, grid.n_cols) == (1, 3)
    assert grid.boxes == ((0, 0, 768, 768), (0, 768, 768, 1536), (0, 769, 768, 1537))
    with pytest.raises(ValueError):
        tile_grid(500, 4000, 768)


# --- modality hint -----------------------------------------------------------------------------


@pytest.mark.parametrize("dataset, expected, floor", [("histo-lc25000", "histology", 0.95), ("skin-ham10000", "dermoscopy", 0.95)])
def test_guess_modality_on_real_test_images(dataset, expected, floor):
    """Measured on the full test splits: 378/378 histology, 406/407 dermoscopy (one vasc -> histology)."""
    rows = _every(_rows(dataset), 60)
    guesses = [guess_modality(np.asarray(Image.open(_file(dataset, r)).convert("RGB"))) for r in rows]
    accuracy = np.mean([g == expected for g in guesses])
    assert accuracy >= floor, f"{dataset}: {accuracy:.3f} ({sorted(set(guesses))})"


def test_an_ordinary_photograph_is_a_photo():
    import matplotlib

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"  # a real portrait photograph
    if not photo.exists():
        pytest.skip("matplotlib sample photograph not installed")
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    assert guess_modality(rgb) == "photo"
    assert read_raster(photo).modality == "photo"


def test_guess_modality_takes_uint8_or_unit_float():
    rgb = np.asarray(Image.open(_real(SKIN_JPEG)).convert("RGB"))
    assert guess_modality(rgb) == guess_modality(rgb / 255.0) == "dermoscopy"
    with pytest.raises(ValueError):
        guess_modality(rgb[..., 0])
