"""Draw MedKD Desktop's application icon (PNG sizes for Linux, a multi-size .ico for Windows).

Why drawn by code: the project had no icon, and a few shapes drawn with Pillow (already a
dependency) keep the icon reproducible and free of third-party artwork licences. Two frames side
by side, each with a warm heat spot: the teacher's and the student's overlay, as in the window.
Run once; the outputs are committed (packaging/icons/).
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parent / "icons"
SIZE = 512


def draw(size: int = SIZE) -> Image.Image:
    s = size / 512
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((16 * s, 16 * s, 496 * s, 496 * s), radius=96 * s, fill=(24, 38, 58, 255))
    heat = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    h = ImageDraw.Draw(heat)
    for i, x0 in enumerate((56, 266)):
        d.rounded_rectangle((x0 * s, 120 * s, (x0 + 190) * s, 392 * s), radius=24 * s, fill=(58, 66, 78, 255),
                            outline=(200, 210, 222, 255), width=max(1, int(8 * s)))
        d.ellipse(((x0 + 35) * s, 160 * s, (x0 + 155) * s, 350 * s), fill=(120, 128, 138, 255))  # a lung / brain
        cx, cy, r = (x0 + 95 + (12 if i else 0)) * s, 235 * s, (62 if i == 0 else 52) * s
        h.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 120, 20, 210))
        h.ellipse((cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2), fill=(255, 230, 90, 235))
    heat = heat.filter(ImageFilter.GaussianBlur(14 * s))
    img.alpha_composite(heat)
    return img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    big = draw(SIZE)
    for px in (48, 128, 256):
        big.resize((px, px), Image.LANCZOS).save(OUT / f"medkd-desktop-{px}.png")
    big.save(OUT / "medkd-desktop.ico", sizes=[(16, 16), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])


if __name__ == "__main__":
    main()
