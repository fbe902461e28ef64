"""Draw the Teams app icons (a shield) as PNGs using only the standard library."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

ACCENT = (0x1B, 0x5E, 0x7A)  # deep teal; must match accentColor in the manifest
WHITE = (0xFF, 0xFF, 0xFF)
SUPERSAMPLE = 4


def png_bytes(width: int, height: int, rgba: list[tuple[int, int, int, int]]) -> bytes:
    """Encode RGBA pixels (row-major) as an 8-bit RGBA PNG."""
    raw = bytearray()
    for y in range(height):
        raw.append(0)  # filter: none
        for r, g, b, a in rgba[y * width : (y + 1) * width]:
            raw += bytes((r, g, b, a))

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + chunk(b"IEND", b"")
    )


def in_shield(x: float, y: float, inset: float = 0.0) -> bool:
    """Shield in unit coordinates (0..1): flat top, straight sides, curved point."""
    top, mid, bottom = 0.12 + inset, 0.52, 0.90 - inset * 1.6
    half = 0.34 - inset
    if y < top or y > bottom:
        return False
    if y <= mid:
        return abs(x - 0.5) <= half
    t = (y - mid) / (bottom - mid)  # 0 at mid, 1 at point
    return abs(x - 0.5) <= half * (1 - t * t)


def in_tick(x: float, y: float) -> bool:
    """A tick mark inside the shield, drawn as two thick segments."""

    def near_segment(ax: float, ay: float, bx: float, by: float, w: float) -> bool:
        dx, dy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)))
        px, py = ax + t * dx, ay + t * dy
        return (x - px) ** 2 + (y - py) ** 2 <= w * w

    return near_segment(0.34, 0.47, 0.46, 0.60, 0.045) or near_segment(
        0.46, 0.60, 0.68, 0.33, 0.045
    )


def coverage(size: int, px: int, py: int, inside) -> float:
    hits = 0
    for sy in range(SUPERSAMPLE):
        for sx in range(SUPERSAMPLE):
            x = (px + (sx + 0.5) / SUPERSAMPLE) / size
            y = (py + (sy + 0.5) / SUPERSAMPLE) / size
            hits += inside(x, y)
    return hits / SUPERSAMPLE**2


def blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(a[i] * (1 - t) + b[i] * t) for i in range(3))  # type: ignore[return-value]


def color_icon(size: int = 192) -> bytes:
    """Full-colour icon: white shield with a teal tick on a teal square."""
    pixels = []
    for py in range(size):
        for px in range(size):
            shield = coverage(size, px, py, in_shield)
            tick = coverage(size, px, py, lambda x, y: in_shield(x, y) and in_tick(x, y))
            rgb = blend(blend(ACCENT, WHITE, shield), ACCENT, tick)
            pixels.append((*rgb, 255))
    return png_bytes(size, size, pixels)


def outline_icon(size: int = 32) -> bytes:
    """Outline icon: white shield outline on transparency (Teams rule: white + alpha only)."""
    stroke = 2.2 / size

    def ring(x: float, y: float) -> bool:
        return in_shield(x, y) and not in_shield(x, y, inset=stroke)

    pixels = []
    for py in range(size):
        for px in range(size):
            alpha = coverage(size, px, py, lambda x, y: ring(x, y) or in_tick(x, y))
            pixels.append((255, 255, 255, round(alpha * 255)))
    return png_bytes(size, size, pixels)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "appmanifest"
    out.mkdir(parents=True, exist_ok=True)
    (out / "color.png").write_bytes(color_icon())
    (out / "outline.png").write_bytes(outline_icon())
    print(f"wrote {out / 'color.png'} and {out / 'outline.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
