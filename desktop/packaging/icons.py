"""Draw Tessera's icon (four mosaic tiles) as PNGs at the sizes the .deb and the window need.

Generated at build time (no binary files in the repository): desktop/resources/tessera-<size>.png
and tessera.png. Pure Python: zlib + struct, no imaging library.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

SIZES = (16, 32, 64, 128, 256, 512)
TILES = (  # (x0, y0, x1, y1) in a 0..1 square, RGB
    ((0.08, 0.08, 0.48, 0.48), (37, 99, 235)),
    ((0.52, 0.08, 0.92, 0.48), (14, 165, 233)),
    ((0.08, 0.52, 0.48, 0.92), (20, 184, 166)),
    ((0.52, 0.52, 0.92, 0.92), (99, 102, 241)),
)


def _pixel(x: float, y: float, radius: float) -> tuple[int, int, int, int]:
    for (x0, y0, x1, y1), rgb in TILES:
        if x0 <= x <= x1 and y0 <= y <= y1:
            cx = min(max(x, x0 + radius), x1 - radius)
            cy = min(max(y, y0 + radius), y1 - radius)
            if (x - cx) ** 2 + (y - cy) ** 2 <= radius**2:
                return (*rgb, 255)
    return (0, 0, 0, 0)


def png(size: int) -> bytes:
    rows = []
    radius = 0.07
    samples = ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75))  # 4x supersampling
    for j in range(size):
        row = bytearray(b"\x00")
        for i in range(size):
            acc = [0, 0, 0, 0]
            for sx, sy in samples:
                r, g, b, a = _pixel((i + sx) / size, (j + sy) / size, radius)
                acc = [acc[0] + r * a, acc[1] + g * a, acc[2] + b * a, acc[3] + a]
            alpha = acc[3] // 4
            if acc[3]:
                row += bytes((acc[0] // acc[3], acc[1] // acc[3], acc[2] // acc[3], alpha))
            else:
                row += b"\x00\x00\x00\x00"
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def icons_write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for size in SIZES:
        path = folder / f"tessera-{size}.png"
        if not path.exists():
            path.write_bytes(png(size))
        written.append(path)
    plain = folder / "tessera.png"
    if not plain.exists():
        plain.write_bytes((folder / "tessera-256.png").read_bytes())
    return [*written, plain]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "resources"
    for p in icons_write(target):
        print(p)
