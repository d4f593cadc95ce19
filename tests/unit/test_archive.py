"""The one ZIP guard: every refusal, table-driven, and a good archive that passes."""

from __future__ import annotations

import io
import pickle
import random
import stat
import zipfile

import pytest
from PIL import Image

from unet_demo.data import validation
from unet_demo.data.archive import (
    ArchiveError,
    BoundedReader,
    ZipLimits,
    open_zip,
    refuse_nested,
)
from unet_demo.errors import UNetDemoError

LIMITS = ZipLimits(max_members=10, max_member_bytes=8_000_000, max_total_bytes=12_000_000)


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


GOOD = {"images/a.png": b"image bytes", "masks/a.png": b"mask bytes"}
NOISE = random.Random(0).randbytes(9_000_000)
"""Incompressible bytes: archives that are big without being zip bombs."""


def with_member(info: zipfile.ZipInfo, data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in GOOD.items():
            archive.writestr(name, content)
        archive.writestr(info, data)
    return buffer.getvalue()


def with_mode(name: str, file_type: int) -> bytes:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (file_type | 0o777) << 16
    return with_member(info, b"/etc/passwd")


def encrypted() -> bytes:
    data = bytearray(make_zip(GOOD))
    central = data.find(b"PK\x01\x02")  # zipfile cannot write encrypted members: set the flag
    data[central + 8] |= 0x1
    return bytes(data)


def nul_in_name() -> bytes:
    # zipfile cuts names at NUL when writing; put the NUL into the bytes afterwards.
    return make_zip({**GOOD, "images/aXb.png": b"x"}).replace(b"aXb", b"a\x00b")


def duplicated() -> bytes:
    buffer = io.BytesIO(make_zip(GOOD))
    with pytest.warns(UserWarning), zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("images/a.png", b"again")
    return buffer.getvalue()


def flipped_payload() -> bytes:
    data = make_zip(GOOD, compression=zipfile.ZIP_STORED)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("masks/a.png")
    flipped = bytearray(data)
    flipped[info.header_offset + 30 + len(info.filename) + 2] ^= 0xFF
    return bytes(flipped)


def lying_size() -> bytes:
    data = bytearray(make_zip(GOOD, compression=zipfile.ZIP_STORED))
    size_offset = data.find(b"PK\x01\x02") + 24  # uncompressed size, first central record
    declared = int.from_bytes(data[size_offset:size_offset + 4], "little")
    data[size_offset:size_offset + 4] = (declared - 4).to_bytes(4, "little")
    return bytes(data)


def bzip2_member() -> bytes:
    return make_zip(GOOD, compression=zipfile.ZIP_BZIP2)


def guard(data: bytes, limits: ZipLimits = LIMITS) -> dict[str, bytes]:
    """Everything a caller does: open, refuse nested names, read each file once."""
    with open_zip(data, limits, "Archive 'test.zip'") as archive:
        files = [info for info in archive.infolist() if not info.is_dir()]
        refuse_nested(files, limits, "Archive 'test.zip'")
        reader = BoundedReader(archive, limits, "Archive 'test.zip'")
        return {info.filename: reader.read(info) for info in files}


REFUSALS = [
    # (case, build the archive, kind, words the message must hold)
    ("traversal", lambda: make_zip({**GOOD, "images/../../etc/passwd": b"x"}),
     "name", r"unsafe path: it contains '\.\.' \(path traversal\)"),
    ("absolute", lambda: make_zip({**GOOD, "/etc/passwd.png": b"x"}), "name", "absolute path"),
    ("drive letter", lambda: make_zip({**GOOD, "C:/windows/a.png": b"x"}), "name",
     "drive letter"),
    ("backslash", lambda: make_zip({**GOOD, "images\\..\\a.png": b"x"}), "name", "backslash"),
    ("NUL in name", nul_in_name, "name", "control characters"),
    ("newline in name", lambda: make_zip({**GOOD, "images/a\nb.png": b"x"}), "name",
     "control characters"),
    ("symlink", lambda: with_mode("images/link.png", stat.S_IFLNK), "symlink", "symbolic link"),
    ("device", lambda: with_mode("images/dev.png", stat.S_IFCHR), "special", "special file"),
    ("encrypted", encrypted, "encrypted", "encrypted.*without a password"),
    ("bzip2", bzip2_member, "compression", "compression method 12"),
    ("duplicate", duplicated, "duplicate", "same entry twice"),
    ("too many members", lambda: make_zip({f"images/{i}.png": b"x" for i in range(11)}),
     "members", "holds 11 files; the limit is 10"),
    ("member too big", lambda: make_zip({**GOOD, "images/big.png": NOISE[:9_000_000]}),
     "member_size", "9.0 MB uncompressed; the limit per file is 8.0 MB"),
    ("total too big", lambda: make_zip({f"images/{i}.png": NOISE[i:i + 5_000_000]
                                        for i in range(3)}), "total_size",
     "unpack to 15.0 MB; the limit is 12.0 MB"),
    ("bomb ratio, one member", lambda: make_zip({**GOOD, "images/bomb.png": bytes(6_000_000)}),
     "ratio", r"member 'images/bomb.png' expands \d+:1"),
    ("bomb ratio, overall", lambda: make_zip({f"images/{i}.png": bytes(1_500_000)
                                              for i in range(4)}), "ratio", r"\d+:1 overall"),
    ("nested zip by name", lambda: make_zip({**GOOD, "images/more.zip": make_zip(GOOD)}),
     "nested", "another archive"),
    ("nested tar by name", lambda: make_zip({**GOOD, "images/more.tar.gz": b"x"}), "nested",
     "another archive"),
    ("nested zip by content", lambda: make_zip({**GOOD, "images/b.png": make_zip(GOOD)}),
     "nested", "itself a ZIP archive"),
    ("truncated", lambda: make_zip(GOOD)[:60], "corrupt", "not a readable ZIP.*truncated"),
    ("end cut off", lambda: make_zip(GOOD)[:-10], "corrupt", "not a readable ZIP"),
    ("flipped byte", flipped_payload, "checksum", "corrupt: its checksum"),
    ("lying size", lying_size, "checksum", "corrupt"),
    ("not a zip", lambda: b"GIF89a" + bytes(30), "not_zip", "not a ZIP archive"),
    ("empty", lambda: b"", "corrupt", "empty"),
]


@pytest.mark.parametrize(("case", "build", "kind", "match"), REFUSALS,
                         ids=[row[0] for row in REFUSALS])
def test_hostile_archives_are_refused(case, build, kind, match):
    with pytest.raises(ArchiveError, match=match) as caught:
        guard(build())
    error = caught.value
    assert isinstance(error, UNetDemoError) and error.kind == kind
    assert str(error).startswith("Archive 'test.zip' was refused: ")
    assert str(error).endswith(LIMITS.hint(kind)) and str(error).endswith(".")


def test_good_archive_passes_and_reads_back():
    members = {**GOOD, "images/c.png": bytes(range(256)) * 100, "notes/": b""}
    assert guard(make_zip(members)) == {k: v for k, v in members.items() if k != "notes/"}
    assert guard(make_zip(GOOD, compression=zipfile.ZIP_STORED)) == GOOD
    # a small blank mask compresses far beyond 100:1 and is still fine (under the ratio floor)
    assert len(guard(make_zip({"masks/blank.tif": bytes(1_000_000)}))["masks/blank.tif"]) == 10**6


def test_bounded_reader_keeps_to_the_total_budget_over_all_reads():
    data = make_zip({"images/a.png": NOISE[:10_000]})
    with open_zip(data, LIMITS) as archive:
        reader = BoundedReader(archive, ZipLimits(max_total_bytes=25_000))
        info = archive.getinfo("images/a.png")
        assert reader.read(info) == NOISE[:10_000]
        reader.verify(info)  # 20 000 bytes so far
        with pytest.raises(ArchiveError, match="total budget of 25000 bytes") as caught:
            reader.read(info)
    assert caught.value.kind == "budget" and caught.value.member == "images/a.png"


def test_archive_bigger_than_its_budget_is_refused_before_opening():
    with pytest.raises(ArchiveError, match="the limit is 100 bytes"):
        guard(make_zip(GOOD), ZipLimits(max_archive_bytes=100))


def test_callers_hints_replace_the_fix_and_errors_pickle():
    limits = ZipLimits(max_members=1, hints=(("members", "Upload fewer images."),))
    with pytest.raises(ArchiveError, match=r"holds 2 files; the limit is 1 entries\. "
                                           r"Upload fewer images\.$") as caught:
        guard(make_zip(GOOD), limits)
    copy = pickle.loads(pickle.dumps(caught.value))  # errors may come back from a worker
    assert str(copy) == str(caught.value) and copy.kind == "members"


def test_former_validation_check_zip_archive_cases():
    """The cases of the deleted `validation.check_zip_archive`, now on the one guard."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("images/a.png", b"x")
        archive.writestr("masks/a.png", b"y")
    assert list(guard(buffer.getvalue())) == ["images/a.png", "masks/a.png"]
    with pytest.raises(UNetDemoError, match="entries"):
        guard(buffer.getvalue(), ZipLimits(max_members=1))
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../etc/passwd", b"x")
    with pytest.raises(UNetDemoError, match="unsafe path"):
        guard(evil.getvalue())
    # Naming what a non-ZIP file is stays the edge's job (validation sniffs the bytes);
    # every caller runs it before the guard.
    png = io.BytesIO()
    Image.new("L", (16, 16)).save(png, "PNG")
    with pytest.raises(UNetDemoError, match="PNG image"):
        validation.validate_upload(png.getvalue(), "d.zip", allowed=validation.ARCHIVE_KINDS)
    with pytest.raises(UNetDemoError, match="not a ZIP archive"):
        guard(png.getvalue())
