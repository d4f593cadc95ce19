"""A real 200-megapixel PNG is refused from its header: fast, and without decoding pixels."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from unet_demo.data.readers import read_image_bytes, read_mask_file
from unet_demo.errors import UNetDemoError

WIDTH, HEIGHT = 20_000, 10_000  # 200 megapixels
MEMORY_BOUND = 50 * 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parents[2]


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def bomb_png(width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A complete, valid 1-bit greyscale PNG of width x height black pixels (~25 KB).

    Every row is a filter byte plus width/8 zero bytes; the zlib stream is written row by row,
    so making it never holds the 25 MB of raw rows (or the 200 M pixels) in memory.
    """
    row = bytes(1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts))
            + _chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return bomb_png()


def test_bomb_is_a_real_png_of_200_megapixels(bomb):
    from PIL import Image

    assert len(bomb) < 200_000
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # only to read the header here, never to decode
    try:
        import io

        image = Image.open(io.BytesIO(bomb))
        assert image.format == "PNG" and image.size == (WIDTH, HEIGHT) and image.mode == "1"
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    # The IDAT stream really inflates to every row (checked in bounded chunks).
    idat_start = bomb.index(b"IDAT") + 4
    (idat_length,) = struct.unpack(">I", bomb[idat_start - 8:idat_start - 4])
    inflater = zlib.decompressobj()
    pending, total = bomb[idat_start:idat_start + idat_length], 0
    while pending:
        total += len(inflater.decompress(pending, 1 << 20))
        pending = inflater.unconsumed_tail
    assert total == HEIGHT * (1 + WIDTH // 8)


@pytest.mark.parametrize("reader", ["image", "mask"])
def test_bomb_refused_fast_with_bounded_python_memory(bomb, reader):
    read = read_image_bytes if reader == "image" else read_mask_file
    with pytest.raises(UNetDemoError):  # warm-up: lazy imports are not the bomb's cost
        read(bomb_png(4000, 12_000), "warm.png")
    tracemalloc.start()
    try:
        start = time.perf_counter()
        with pytest.raises(UNetDemoError, match="megapixels") as caught:
            read(bomb, "bomb.png")
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0, f"refusal took {elapsed:.2f} s"
    assert peak < MEMORY_BOUND, f"peak traced allocation {peak / 1e6:.1f} MB"
    assert "bomb.png" in str(caught.value) and "limit" in str(caught.value)


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from unet_demo.data.readers import read_image_file, read_mask_file
from unet_demo.errors import UNetDemoError
from unet_demo.data.upload_dataset import inspect_zip

def peak_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB

bomb, small, archive = sys.argv[2], sys.argv[3], sys.argv[4]
for reader in (read_image_file, read_mask_file):  # warm-up: imports and plugin loading
    try:
        reader(small)
    except UNetDemoError:
        pass
before = peak_bytes()
report = {}
for label, call in (("image", lambda: read_image_file(bomb)),
                    ("mask", lambda: read_mask_file(bomb)),
                    ("zip", lambda: inspect_zip(open(archive, "rb").read(), name="d.zip"))):
    start = time.perf_counter()
    try:
        call()
        outcome = "accepted"
    except UNetDemoError as error:
        outcome = str(error)
    report[label] = {"seconds": time.perf_counter() - start, "outcome": outcome}
report["peak_growth_bytes"] = peak_bytes() - before
print(json.dumps(report))
"""


def test_bomb_refused_without_resident_memory_growth(tmp_path, bomb):
    """In a fresh process, peak RSS (which counts Pillow's C buffers too) barely moves."""
    import io
    import zipfile

    bomb_path = tmp_path / "bomb.png"
    bomb_path.write_bytes(bomb)
    small = tmp_path / "small_bomb.png"
    small.write_bytes(bomb_png(4000, 12_000))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("images/a.png", bomb)
        archive.writestr("masks/a.png", bomb)
    archive_path = tmp_path / "dataset.zip"
    archive_path.write_bytes(buffer.getvalue())
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO_ROOT), str(bomb_path), str(small),
         str(archive_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["peak_growth_bytes"] < MEMORY_BOUND, report
    for label in ("image", "mask"):
        assert report[label]["seconds"] < 1.0, report
        assert "megapixels" in report[label]["outcome"], report  # refused, not decoded
    assert "megapixels" in report["zip"]["outcome"] or "none of its" in report["zip"]["outcome"]
