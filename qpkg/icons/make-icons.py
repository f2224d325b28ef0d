#!/usr/bin/env python3
"""Draw depot's App Center icons (a stack of image layers on a rounded tile) and write them as GIF89a, the format
QDK's icons use: depot.gif (64x64), depot_gray.gif (64x64, shown when disabled), depot_80.gif (80x80).
Run from anywhere: writes next to this script. No dependencies (GIF is encoded here: LZW with frequent clear codes,
so every code stays 3 bits wide)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
COLOR = [(0, 0, 0), (22, 122, 130), (255, 255, 255), (12, 70, 76)]      # transparent, tile, layer, shade
GRAY = [(0, 0, 0), (128, 128, 128), (235, 235, 235), (80, 80, 80)]


def inside_rounded(x, y, x0, y0, x1, y1, r):
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def pixel(x, y, n):
    s = n / 64.0
    fx, fy = x + 0.5, y + 0.5
    if not inside_rounded(fx, fy, 2 * s, 2 * s, n - 2 * s, n - 2 * s, 12 * s):
        return 0
    # three layers, each a flat rhombus (a box seen from above), stacked
    for i, cy in enumerate((22, 33, 44)):
        dx, dy = abs(fx - 32 * s) / (22 * s), abs(fy - cy * s) / (8 * s)
        if dx + dy <= 1.0:
            return 2 if i == 0 or fy < cy * s else 3
        if dx + dy <= 1.18:
            return 3
    return 1


def lzw_literal(pixels):
    """LZW data for a 2-bit image: CLEAR, two pixels, CLEAR, ... keeps the code width at 3 bits."""
    clear, eoi, width = 4, 5, 3
    codes = []
    for i, p in enumerate(pixels):
        if i % 2 == 0:
            codes.append(clear)
        codes.append(p)
    codes.append(eoi)
    acc = nbits = 0
    out = bytearray()
    for c in codes:
        acc |= c << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def gif(n, palette):
    pixels = [pixel(x, y, n) for y in range(n) for x in range(n)]
    data = lzw_literal(pixels)
    out = bytearray(b"GIF89a")
    out += struct.pack("<HHBBB", n, n, 0xF1, 0, 0)                    # global table of 4 colours
    for r, g, b in palette:
        out += bytes((r, g, b))
    out += b"\x21\xF9\x04\x01\x00\x00\x00\x00"                         # colour 0 is transparent
    out += b"\x2C" + struct.pack("<HHHHB", 0, 0, n, n, 0) + b"\x02"   # image descriptor, LZW minimum code size 2
    for i in range(0, len(data), 255):
        chunk = data[i:i + 255]
        out += bytes((len(chunk),)) + chunk
    out += b"\x00\x3B"
    return bytes(out)


for name, n, pal in (("depot.gif", 64, COLOR), ("depot_gray.gif", 64, GRAY), ("depot_80.gif", 80, COLOR)):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(gif(n, pal))
