"""Archives read as folders: .zip (the standard library's `zipfile`), .tar and compressed tars (`tarfile`:
.tar.gz/.tgz, .tar.bz2/.tbz2, .tar.xz/.txz), one compressed file (.gz, .bz2, .xz) and .7z (py7zr, an
optional library: the `7z` extra).

Each file inside that kb reads becomes a document of its own (a `Part`: the pipeline parses it with the
parser of its type and cites it 'bundle.zip > docs/report.pdf p.3'; an archive inside is read the same
way, down to `kb.ingest.worker.MAX_PART_DEPTH`). The archive's own document is the list of its files, so
a search for a file's name finds the archive. Nothing is extracted to disk by this module: members are
read into memory, within bounds on their count, total size and compression ratio (count and size for
the file found on disk and the archives inside it together), so a zip bomb is refused with a reason
before it is expanded; a member whose name leads outside the archive ('../x') or that is encrypted is
left out and named. The format is the one the extension names.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kb.errors import ParseError, install_command, size
from kb.ingest.base import Unpacking, is_supported, unpacking
from kb.ingest.walk import is_ignored
from kb.types import Block, ParsedDocument, Part

# Bounds, each refusing the whole file found on disk with a reason that names it. They hold for that file
# and every archive inside it together (`kb.ingest.base.Unpacking`), so nesting does not multiply them.
# Members are held in memory while their documents are read, so the total stays at about twice the largest
# file kb reads by default (max_file_mb).
MAX_TOTAL_BYTES = 500_000_000
MAX_MEMBERS = 10_000  # files listed (a source tree's node_modules has more: unpack it instead)
# Text compresses about 3-10 times, office files hardly at all; a member expanding more than this many
# times (and to more than RATIO_MIN_BYTES) is a bomb's filler, not a document.
MAX_RATIO = 200
RATIO_MIN_BYTES = 1024 * 1024
# One compressed file, when not a tar.
_COMPRESSED: dict[str, Callable[[Path], io.BufferedIOBase]] = {".gz": gzip.GzipFile, ".bz2": bz2.BZ2File,
                                                                ".xz": lzma.LZMAFile}


@dataclass
class _Member:
    name: str  # the path inside the archive, '/'-separated
    size: int  # uncompressed, as the archive declares it
    packed: int | None  # compressed, where the format says (zip)
    read: Callable[[], bytes]
    encrypted: bool = False


class ArchiveParser:
    file_type = "archive"
    extensions = (".zip", ".tar", ".tgz", ".tbz2", ".txz", ".gz", ".bz2", ".xz", ".7z")

    def parse(self, path: Path) -> ParsedDocument:
        unpacked = unpacking() or Unpacking(path.name)  # a parser called on its own: bounds of its own
        members, kind = _members(path, unpacked)
        packed = max(path.stat().st_size, 1)
        listing: list[str] = []
        parts: dict[str, Part] = {}
        skipped: dict[str, str] = {}
        unsupported = 0
        total = 0
        encrypted = 0
        for m in members:
            unpacked.members += 1
            if unpacked.members > MAX_MEMBERS:
                raise _refuse(unpacked, f"holds more than {MAX_MEMBERS:,} files", "(unpack it to read it)")
            total += m.size
            unpacked.bytes += m.size
            if unpacked.bytes > MAX_TOTAL_BYTES:
                raise _refuse(unpacked, f"would expand to more than {size(MAX_TOTAL_BYTES)}", _TOO_LARGE)
            if m.packed is not None and m.size > RATIO_MIN_BYTES and m.size > MAX_RATIO * max(m.packed, 1):
                raise ParseError(f"refused, {m.name} would expand more than {MAX_RATIO} times its compressed size "
                                 "(a zip bomb)")
            if total > RATIO_MIN_BYTES and total > MAX_RATIO * packed:
                raise ParseError(f"refused, would expand more than {MAX_RATIO} times its size (a zip bomb)")
            name = _safe(m.name)
            if name is not None and any(is_ignored(p) or p == "__MACOSX" for p in name.split("/")):
                continue  # hidden and temporary files, as a folder's walk leaves them out
            listing.append(f"{m.name} ({size(m.size)})")
            if name is None:
                skipped[m.name] = "unsafe name: leads outside the archive"
                continue
            script = not PurePosixPath(name).suffix  # a file with no extension: read if it starts with '#!'
            if not is_supported(Path(name), peek=False) and not script:
                unsupported += 1
                continue
            if m.encrypted:
                encrypted += 1
                skipped[name] = "encrypted (needs a password)"
                continue
            data = m.read()
            if not is_supported(Path(name), peek=False) and not data.startswith(b"#!"):
                unsupported += 1
                continue
            parts.pop(name, None)  # a name given twice: the later one wins, as unpacking would leave it
            parts[name] = Part(name, name, data)
        if not listing:
            raise ParseError(f"empty archive (no files in the {kind})")
        if encrypted and not parts:
            raise ParseError("encrypted archive: its files need a password")
        metadata: dict[str, object] = {"files": len(listing)}
        if unsupported:
            metadata["files_not_read"] = unsupported  # of types kb does not read
        if skipped:
            metadata["parts_skipped"] = skipped
        title = path.name
        return ParsedDocument(title, [Block("\n".join(listing), (), None, "list")], None, metadata,
                              parts=list(parts.values()))


def _refuse(unpacked: Unpacking, what: str, why: str) -> ParseError:
    """A bound met: the file found on disk is refused whole, named when the archive is one inside it."""
    whole = f"{unpacked.source} with the archives inside it " if unpacked.inside else ""
    unpacked.fatal = f"refused, {whole}{what} {why}"
    return ParseError(unpacked.fatal)


_TOO_LARGE = "(a zip bomb, or too large to read in memory: unpack it to read it)"
_TARS = (".tar", ".tgz", ".tbz2", ".txz", ".tar.gz", ".tar.bz2", ".tar.xz")


def _members(path: Path, unpacked: Unpacking) -> tuple[Iterator[_Member], str]:
    """The archive's files, lazily (so that the bounds stop a bomb early), and what it is called. The
    format is the one its extension names; only a name that names none (an extension a user or plugin
    mapped here) is told by its first bytes. Never by a zip's end marker, which a tar holding a .docx
    last has near its end too."""
    name = path.name.lower()
    if name.endswith(_TARS):
        return _open_tar(path), "tar archive"
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return _zip(path), "zip"
    if suffix == ".7z":
        return _7z(path, unpacked), "7z archive"
    opener = _COMPRESSED.get(suffix)
    if opener is not None:
        return _single(path, opener, MAX_TOTAL_BYTES - unpacked.bytes), f"{suffix.lstrip('.')} file"  # 'notes.txt.gz': one file, compressed
    with open(path, "rb") as f:
        head = f.read(262)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # a zip's first member, or an empty zip
        return _zip(path), "zip"
    if head[257:262] == b"ustar":
        return _open_tar(path), "tar archive"
    raise ParseError("not an archive kb reads (neither a zip nor a tar)")


def _open_tar(path: Path) -> Iterator[_Member]:
    try:
        tar = tarfile.open(path, "r:*")  # compressed or not, as its first bytes say
    except tarfile.ReadError:
        kind = "".join(path.suffixes[-2:]) if path.stem.lower().endswith(".tar") else path.suffix
        raise ParseError(f"not a {kind.lstrip('.') or 'tar'} archive (damaged, or another format)") from None
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
        raise ParseError(f"damaged archive: {e}") from None
    return _tar(path, tar)


def _zip(path: Path) -> Iterator[_Member]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ParseError(f"not a valid zip archive ({e})") from None

    def reader(info: zipfile.ZipInfo) -> Callable[[], bytes]:
        def read() -> bytes:
            try:
                with zf.open(info) as f:  # reads at most the declared size, and checks the CRC
                    return f.read(info.file_size + 1)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, zlib.error) as e:
                raise ParseError(f"damaged archive: {info.filename}: {e}") from None
        return read

    with zf:
        for info in zf.infolist():
            if not info.is_dir():
                yield _Member(info.filename, info.file_size, info.compress_size, reader(info),
                              encrypted=bool(info.flag_bits & 0x1))


def _tar(path: Path, tar: tarfile.TarFile) -> Iterator[_Member]:
    # Read in order, each member as its header is met: a compressed tar is one stream, read once.
    try:
        with tar:
            for info in tar:
                if not info.isfile():
                    continue  # folders, links and devices hold no document
                f = tar.extractfile(info)
                if f is not None:
                    yield _Member(info.name, info.size, None, _guarded(f.read, info.name))
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error) as e:
        raise ParseError(f"damaged archive: {e}") from None


def _guarded(read: Callable[[], bytes], name: str) -> Callable[[], bytes]:
    def guarded() -> bytes:
        try:
            return read()
        except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error) as e:
            raise ParseError(f"damaged archive: {name}: {e}") from None
    return guarded


def _single(path: Path, opener: Callable[[Path], io.BufferedIOBase], room: int) -> Iterator[_Member]:
    """One compressed file ('notes.txt.gz'): a member named without the compression's extension, read
    up to the bound (`room`: what is left of MAX_TOTAL_BYTES; a compressed stream does not say its size
    before it is expanded)."""
    packed = path.stat().st_size
    bound = max(0, min(room, max(RATIO_MIN_BYTES, MAX_RATIO * packed)))
    try:
        with opener(path) as f:
            data = f.read(bound + 1)  # one byte more than allowed tells the parser it would go further
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
        raise ParseError(f"not a {path.suffix.lstrip('.')} file, or damaged ({e})") from None
    yield _Member(path.stem, len(data), packed, lambda: data)


def _7z(path: Path, unpacked: Unpacking) -> Iterator[_Member]:
    try:
        import py7zr  # optional: the `7z` extra
    except ImportError:
        raise ParseError(f"reading .7z needs the py7zr library: {install_command('7z')}") from None
    try:
        with py7zr.SevenZipFile(path, "r") as z:
            infos = [i for i in z.list() if not i.is_directory]
            encrypted = z.needs_password()
    except py7zr.exceptions.PasswordRequired:
        raise ParseError("encrypted archive: its file names and files need a password") from None
    except (py7zr.exceptions.Bad7zFile, py7zr.exceptions.ArchiveError, OSError, EOFError, ValueError) as e:
        raise ParseError(f"not a valid 7z archive ({e})") from None
    got: dict[str, bytes] = {}

    def read(name: str, declared: int) -> Callable[[], bytes]:
        def load() -> bytes:
            # All at once, on the first read: a solid archive is one stream, which a read of one member
            # would expand from its start each time. The parser has checked the declared sizes by then.
            if not got:
                got.update(_7z_all(path, max(i.uncompressed for i in infos)))
            data = got.get(name, b"")
            # Only here can a member come out larger than declared (each is read up to the largest size
            # declared; zip and tar readers stop at the member's own): never trusted further.
            if len(data) > declared:
                raise ParseError(f"refused, {name} is larger than the archive says (damaged or crafted)")
            return data
        return load

    if unpacked.bytes + sum(i.uncompressed for i in infos) > MAX_TOTAL_BYTES:  # before the first read, of all
        raise _refuse(unpacked, f"would expand to more than {size(MAX_TOTAL_BYTES)}", _TOO_LARGE)
    for info in infos:
        yield _Member(info.filename, info.uncompressed, info.compressed, read(info.filename, info.uncompressed),
                      encrypted)


def _7z_all(path: Path, largest: int) -> dict[str, bytes]:
    """Every file of a .7z archive, in memory, each at most the largest declared size (plus the byte that tells)."""
    import py7zr
    from py7zr.io import BytesIOFactory

    factory = BytesIOFactory(largest + 1)
    try:
        with py7zr.SevenZipFile(path, "r") as z:
            z.extract(factory=factory)
    except Exception as e:  # py7zr raises many kinds (and its codecs' own) for a damaged file
        raise ParseError(f"damaged archive: {e}") from None
    out = {}
    for name, product in factory.products.items():
        product.seek(0)
        out[name] = product.read()
    return out


def _safe(name: str) -> str | None:
    """A member's name as a relative '/'-path, or None when it climbs out ('../x'): such a name is
    never used. A leading '/' or drive ('C:') is dropped, as unpacking tools do."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if parts and len(parts[0]) == 2 and parts[0][1] == ":":
        parts = parts[1:]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)
