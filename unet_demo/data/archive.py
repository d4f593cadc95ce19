"""The one ZIP guard: open an archive from bytes and check it before anything is decompressed.

Dataset uploads (`unet_demo.data.upload_dataset`) and Keras model files
(`unet_demo.models.safe_load`, a ``.keras`` file is a ZIP) both go through here. Each caller
passes its own `ZipLimits` (budgets and the fixes its users should read); the checks are
the same:

1. `open_zip`: the bytes are a ZIP (not truncated, not corrupt) within `max_archive_bytes`;
2. `check_members`, from the central directory only: member count; member names (no
   absolute paths, ``..``, drive letters, backslashes, NUL or other control characters, no
   name listed twice); member kinds (no symbolic links, devices or other special files, no
   encryption, only the allowed compression methods); per-member and total uncompressed
   sizes and the compression ratio per member and overall (zip bombs);
3. `refuse_nested`: no archive inside the archive (by name);
4. `BoundedReader`: members are read into memory, never more than they declare nor than the
   total budget; CRC and size mismatches and ZIP content under another name are refused.

Every refusal is an `ArchiveError` (a `UNetDemoError`) reading
``"<subject> was refused: <what happened> <how to fix it>"``; its ``kind`` names the check
so a caller can swap in its own fix through ``ZipLimits.hints``.

Only the standard library and `unet_demo.errors` are imported here.

Example:
    >>> import io, zipfile
    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as zf:
    ...     zf.writestr("images/a.png", b"pixels")
    >>> with open_zip(buffer.getvalue(), ZipLimits()) as zf:
    ...     BoundedReader(zf, ZipLimits()).read(zf.getinfo("images/a.png"))
    b'pixels'
    >>> open_zip(b"GIF89a" + bytes(30), ZipLimits(), "Archive 'x.zip'")
    Traceback (most recent call last):
    ...
    unet_demo.data.archive.ArchiveError: Archive 'x.zip' was refused: it is not a ZIP archive...
"""

from __future__ import annotations

import dataclasses
import io
import re
import stat
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable
from pathlib import PurePosixPath

from unet_demo.errors import UNetDemoError

ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
"""First four bytes of a ZIP file (local header, empty archive, spanned archive)."""
NESTED_ARCHIVE_SUFFIXES = (
    ".zip", ".keras", ".jar", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz", ".7z", ".rar",
    ".bz2", ".xz", ".zst",
)
"""Member name endings refused as archives inside the archive."""
COMPRESSION_NAMES = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
READ_CHUNK_BYTES = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")

_FIXES = {
    "not_zip": "Create it with a standard zip tool.",
    "too_big": "Use a smaller archive.",
    "corrupt": "It is probably truncated or damaged; create or copy it again.",
    "members": "Split it into smaller archives.",
    "name": "Re-create the ZIP from inside the folder that holds the files.",
    "duplicate": "Each path must be unique; re-create the ZIP.",
    "symlink": "Zip the files themselves (zip without --symlinks).",
    "special": "Only regular files and folders may be in the archive.",
    "encrypted": "Create the ZIP without a password.",
    "compression": "Only stored or deflated members are read; re-create it with a standard "
    "zip tool.",
    "member_size": "Use smaller files.",
    "total_size": "It looks like a zip bomb or is too big; use a smaller archive.",
    "ratio": "It looks like a zip bomb or is too big; use a smaller archive.",
    "nested": "Nested archives are not unpacked; put the files in the archive itself.",
    "budget": "Use a smaller archive.",
    "size_mismatch": "The archive was tampered with or is damaged; re-create it.",
}
"""Default fix per check (`ArchiveError.kind`); `ZipLimits.hints` overrides any of them."""


class ArchiveError(UNetDemoError):
    """A ZIP archive was refused as a whole.

    Attributes:
        kind: which check refused it, one of the keys of ``_FIXES`` ("name", "symlink",
            "ratio", "nested", ...) or "checksum".
        member: the member's name, or "" when the archive as a whole is at fault.

    Example:
        >>> error = ArchiveError("Archive 'a.zip' was refused: it is empty.", kind="corrupt")
        >>> isinstance(error, UNetDemoError), error.kind
        (True, 'corrupt')
    """

    def __init__(self, message: str, *, kind: str = "", member: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.member = member


@dataclasses.dataclass(frozen=True)
class ZipLimits:
    """Budgets for one kind of archive, and the fixes its users should read.

    Args:
        max_archive_bytes: largest ZIP file (compressed bytes).
        max_members: most file entries (and, separately, most folder entries).
        max_member_bytes: largest uncompressed size of one member.
        max_total_bytes: largest total uncompressed size, declared and actually read.
        max_ratio: largest compression ratio (uncompressed / compressed), per member and
            for the whole archive.
        ratio_floor_bytes: members (and archives) smaller than this skip the ratio check: a
            small blank mask legitimately compresses 1000:1, and its size is still bounded by
            the byte budgets.
        compression: ZIP compression methods read (``zipfile.ZIP_STORED``, ...).
        nested_suffixes: member name endings refused by `refuse_nested`.
        hints: ``(kind, fix)`` pairs replacing the default fix of a check, e.g.
            ``(("members", "Split the dataset."),)``.

    Example:
        >>> ZipLimits(max_members=10).hint("members")
        'Split it into smaller archives.'
        >>> ZipLimits(hints=(("members", "Upload fewer images."),)).hint("members")
        'Upload fewer images.'
    """

    max_archive_bytes: int = 500 * 1024 * 1024
    max_members: int = 2000
    max_member_bytes: int = 50 * 1024 * 1024
    max_total_bytes: int = 500 * 1024 * 1024
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 2 * 1024 * 1024
    compression: tuple[int, ...] = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
    nested_suffixes: tuple[str, ...] = NESTED_ARCHIVE_SUFFIXES
    hints: tuple[tuple[str, str], ...] = ()

    def hint(self, kind: str) -> str:
        """The fix to print for a refusal of this kind (the caller's hint, else the default)."""
        return dict(self.hints).get(kind, _FIXES.get(kind, _FIXES["corrupt"]))

    def refuse(self, subject: str, kind: str, problem: str, member: str = "") -> ArchiveError:
        """Build the `ArchiveError` for a failed check: subject, problem, then the fix.

        Example:
            >>> str(ZipLimits().refuse("Archive 'a.zip'", "encrypted", "member 'x' is encrypted."))
            "Archive 'a.zip' was refused: member 'x' is encrypted. Create the ZIP without a password."
        """
        return ArchiveError(
            f"{subject} was refused: {problem} {self.hint(kind)}", kind=kind, member=member
        )


def _size(count: float) -> str:
    """Bytes in words: '512 bytes', '3.2 MB', '600 MB'."""
    if count < 1e6:
        return f"{count:.0f} bytes"
    return f"{count / 1e6:.1f} MB" if count < 1e8 else f"{count / 1e6:.0f} MB"


# ---------------------------------------------------------------------------- opening


def open_zip(data: bytes, limits: ZipLimits, subject: str = "The archive") -> zipfile.ZipFile:
    """Open ZIP bytes in memory and run `check_members` on its central directory.

    Args:
        data: the whole archive.
        limits: the budgets of this kind of archive.
        subject: how messages name the archive, e.g. "Dataset archive 'data.zip'".

    Returns:
        The open `zipfile.ZipFile` (use it as a context manager); nothing is decompressed.

    Example:
        >>> open_zip(b"PK\\x03\\x04 cut short", ZipLimits())
        Traceback (most recent call last):
        ...
        unet_demo.data.archive.ArchiveError: The archive was refused: it is not a readable ZIP...
    """
    data = bytes(data)
    if not data:
        raise limits.refuse(subject, "corrupt", "it is empty (0 bytes).")
    if len(data) > limits.max_archive_bytes:
        raise limits.refuse(
            subject, "too_big",
            f"it is {_size(len(data))}; the limit is {_size(limits.max_archive_bytes)}.",
        )
    if data[:4] not in ZIP_SIGNATURES:
        raise limits.refuse(
            subject, "not_zip", f"it is not a ZIP archive (it starts with {data[:8]!r}).",
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
            struct.error, NotImplementedError) as error:
        raise limits.refuse(
            subject, "corrupt", f"it is not a readable ZIP archive ({error}); it is probably "
            "truncated or corrupt.",
        ) from None
    try:
        check_members(infos, limits, subject)
    except BaseException:
        archive.close()
        raise
    return archive


# ---------------------------------------------------------------------------- members


def check_name(info: zipfile.ZipInfo, limits: ZipLimits, subject: str = "The archive") -> None:
    """Refuse a member name that could escape a folder or confuse a reader.

    Example:
        >>> check_name(zipfile.ZipInfo("../etc/passwd"), ZipLimits(), "Archive 'a.zip'")
        Traceback (most recent call last):
        ...
        unet_demo.data.archive.ArchiveError: Archive 'a.zip' was refused: member '../etc/passwd' has an unsafe path: it contains '..' (path traversal)...
    """
    raw = info.orig_filename  # before zipfile cuts the name at a NUL byte
    unsafe = f"member {raw!r} has an unsafe path:"
    if any(ord(char) < 32 or ord(char) == 127 for char in raw):
        problem = f"{unsafe} its name has control characters (NUL, newline, ...)."
    elif "\\" in raw:
        problem = (f"{unsafe} it uses backslashes; ZIP paths must use '/' only (a backslash "
                   "can hide '..\\' traversal on Windows).")
    elif raw.startswith("/"):
        problem = f"{unsafe} it is an absolute path."
    elif _DRIVE.match(raw):
        problem = f"{unsafe} it names a drive letter."
    elif ".." in PurePosixPath(raw).parts:
        problem = f"{unsafe} it contains '..' (path traversal)."
    else:
        return
    raise limits.refuse(subject, "name", problem, raw)


def check_kind(info: zipfile.ZipInfo, limits: ZipLimits, subject: str = "The archive") -> None:
    """Refuse symbolic links, special files, encrypted members and other compression methods.

    Example:
        >>> link = zipfile.ZipInfo("images/a.png")
        >>> link.external_attr = (stat.S_IFLNK | 0o777) << 16
        >>> check_kind(link, ZipLimits())
        Traceback (most recent call last):
        ...
        unet_demo.data.archive.ArchiveError: The archive was refused: member 'images/a.png' is a symbolic link...
    """
    member = info.filename
    file_type = stat.S_IFMT((info.external_attr >> 16) & 0xFFFF)
    if file_type == stat.S_IFLNK:
        raise limits.refuse(subject, "symlink", f"member {member!r} is a symbolic link.", member)
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise limits.refuse(
            subject, "special", f"member {member!r} is a special file (mode {oct(file_type)}).",
            member,
        )
    if info.flag_bits & 0x1:
        raise limits.refuse(subject, "encrypted", f"member {member!r} is encrypted.", member)
    if not info.is_dir() and info.compress_type not in limits.compression:
        allowed = ", ".join(COMPRESSION_NAMES.get(m, str(m)) for m in limits.compression)
        raise limits.refuse(
            subject, "compression", f"member {member!r} uses compression method "
            f"{info.compress_type} (allowed: {allowed}).", member,
        )


def check_sizes(
    files: list[zipfile.ZipInfo], limits: ZipLimits, subject: str = "The archive"
) -> None:
    """Refuse zip bombs and oversize members from their declared sizes (nothing is read).

    Example:
        >>> bomb = zipfile.ZipInfo("a.png")
        >>> bomb.file_size, bomb.compress_size = 300_000_000, 300_000
        >>> check_sizes([bomb], ZipLimits(max_member_bytes=10**9))
        Traceback (most recent call last):
        ...
        unet_demo.data.archive.ArchiveError: The archive was refused: member 'a.png' expands 1000:1 ...
    """
    for info in files:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
            raise limits.refuse(
                subject, "ratio", f"member {info.filename!r} expands {ratio:.0f}:1 "
                f"({info.compress_size} -> {info.file_size} bytes; the limit is "
                f"{limits.max_ratio:g}:1).", info.filename,
            )
        if info.file_size > limits.max_member_bytes:
            raise limits.refuse(
                subject, "member_size", f"member {info.filename!r} is "
                f"{_size(info.file_size)} uncompressed; the limit per file is "
                f"{_size(limits.max_member_bytes)}.", info.filename,
            )
    total = sum(info.file_size for info in files)
    packed = sum(info.compress_size for info in files)
    if total > limits.max_total_bytes:
        raise limits.refuse(
            subject, "total_size", f"it would unpack to {_size(total)}; the limit is "
            f"{_size(limits.max_total_bytes)}.",
        )
    if total > limits.ratio_floor_bytes and total / max(packed, 1) > limits.max_ratio:
        raise limits.refuse(
            subject, "ratio", f"it expands {total / max(packed, 1):.0f}:1 overall (the limit "
            f"is {limits.max_ratio:g}:1).",
        )


def check_members(
    infos: list[zipfile.ZipInfo], limits: ZipLimits, subject: str = "The archive"
) -> list[zipfile.ZipInfo]:
    """Check every entry of a central directory: count, names, kinds, duplicates, sizes.

    Args:
        infos: ``ZipFile.infolist()``.
        limits: the budgets of this kind of archive.
        subject: how messages name the archive.

    Returns:
        The file entries (folders left out), in archive order.

    Example:
        >>> names = [zipfile.ZipInfo(n) for n in ("images/", "images/a.png", "masks/a.png")]
        >>> [info.filename for info in check_members(names, ZipLimits())]
        ['images/a.png', 'masks/a.png']
        >>> check_members(names + [zipfile.ZipInfo("notes.txt")], ZipLimits(max_members=2))
        Traceback (most recent call last):
        ...
        unet_demo.data.archive.ArchiveError: The archive was refused: it holds 3 files; the limit is 2 entries. Split it into smaller archives.
    """
    files = [info for info in infos if not info.is_dir()]
    folders = len(infos) - len(files)
    if len(files) > limits.max_members or folders > limits.max_members:
        count = f"{len(files)} files" if len(files) > limits.max_members else f"{folders} folders"
        raise limits.refuse(
            subject, "members", f"it holds {count}; the limit is {limits.max_members} entries.",
        )
    for info in infos:
        check_name(info, limits, subject)
        check_kind(info, limits, subject)
    duplicates = [path for path, n in Counter(i.filename for i in infos).items() if n > 1]
    if duplicates:
        raise limits.refuse(
            subject, "duplicate", f"it lists the same entry twice ({duplicates[:3]}), as a "
            "tampered archive does.", duplicates[0],
        )
    check_sizes(files, limits, subject)
    return files


def refuse_nested(
    files: Iterable[zipfile.ZipInfo], limits: ZipLimits, subject: str = "The archive"
) -> None:
    """Refuse members whose names say they are archives themselves (`nested_suffixes`).

    The caller passes the members it will use (it may leave out metadata it skips).

    Example:
        >>> refuse_nested([zipfile.ZipInfo("images/more.zip")], ZipLimits())
        Traceback (most recent call last):
        ...
        unet_demo.data.archive.ArchiveError: The archive was refused: it contains another archive ('images/more.zip')...
    """
    for info in files:
        if info.filename.lower().endswith(limits.nested_suffixes):
            raise limits.refuse(
                subject, "nested", f"it contains another archive ({info.filename!r}).",
                info.filename,
            )


# ---------------------------------------------------------------------------- reading


class BoundedReader:
    """Reads members into memory, never more than each declares nor than the total budget.

    A member that inflates past its declared size, fails its CRC, is shorter than declared
    or is itself a ZIP is refused. The total read over all calls is bounded by
    ``limits.max_total_bytes``.

    Args:
        archive: from `open_zip`.
        limits: the budgets of this kind of archive.
        subject: how messages name the archive.

    Example:
        >>> buffer = io.BytesIO()
        >>> with zipfile.ZipFile(buffer, "w") as zf:
        ...     zf.writestr("a.txt", b"0123456789")
        >>> with open_zip(buffer.getvalue(), ZipLimits()) as zf:
        ...     reader = BoundedReader(zf, ZipLimits(max_total_bytes=15))
        ...     first = reader.read(zf.getinfo("a.txt"))  # 10 of 15 bytes
        ...     again = reader.read(zf.getinfo("a.txt"))
        Traceback (most recent call last):
        ...
        unet_demo.data.archive.ArchiveError: The archive was refused: its members hold more data than the total budget of 15 bytes...
    """

    def __init__(
        self, archive: zipfile.ZipFile, limits: ZipLimits, subject: str = "The archive"
    ) -> None:
        self.archive = archive
        self.limits = limits
        self.subject = subject
        self.total = 0

    def read(self, info: zipfile.ZipInfo) -> bytes:
        """The member's bytes, checked (size, CRC, budget, not a ZIP)."""
        return bytes(self._read(info, keep=True))

    def verify(self, info: zipfile.ZipInfo) -> None:
        """Read the member through all the checks of `read`, keeping nothing."""
        self._read(info, keep=False)

    def _read(self, info: zipfile.ZipInfo, *, keep: bool) -> bytearray:
        refuse, member = self.limits.refuse, info.filename
        buffer, head, count = bytearray(), b"", 0
        try:
            with self.archive.open(info, "r") as stream:
                # zipfile stops at the declared size; ask for one byte more to catch a member
                # whose data would inflate further than its header says.
                limit = info.file_size + 1
                while count < limit:
                    chunk = stream.read(min(READ_CHUNK_BYTES, limit - count))
                    if not chunk:
                        break
                    if count < 4:
                        head = (head + chunk)[:4]
                    count += len(chunk)
                    if keep:
                        buffer += chunk
                    if self.total + count > self.limits.max_total_bytes:
                        raise refuse(
                            self.subject, "budget", "its members hold more data than the "
                            f"total budget of {_size(self.limits.max_total_bytes)}.", member,
                        )
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
                NotImplementedError, struct.error) as error:
            if "CRC" in str(error):
                problem = f"member {member!r} is corrupt: its checksum (CRC-32) does not match."
                raise refuse(self.subject, "checksum", problem, member) from None
            raise refuse(
                self.subject, "corrupt", f"member {member!r} is corrupt "
                f"({type(error).__name__}: {str(error)[:120]}).", member,
            ) from None
        if count != info.file_size:
            raise refuse(
                self.subject, "size_mismatch", f"member {member!r} declares {info.file_size} "
                f"bytes but holds {'more' if count > info.file_size else count}.", member,
            )
        self.total += count
        if head in ZIP_SIGNATURES:
            raise refuse(
                self.subject, "nested", f"member {member!r} is itself a ZIP archive.", member,
            )
        return buffer
