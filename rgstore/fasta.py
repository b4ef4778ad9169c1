"""FASTA validation before ingest: one streaming pass over plain, gzip or BGZF input.

gtars accepts garbage (empty files, duplicate or empty names, spaces and digits as residues),
so nothing reaches the RefgetStore before this pass says the file is sound. The pass works on
large byte chunks with ``bytes.translate``/``count``/``find`` (C speed, no per-residue Python).
Only on failure does it re-read the file to turn a byte offset into the line and column.

``start_digest`` runs ``rgstore.fastadigest`` (file md5, per-record sha512t24u of the
upper-cased residues) in a child process, so ingest can check gtars's digests against an
independent computation without putting the hashing on its critical path (gtars holds the GIL).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import unicodedata
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from .errors import IntegrityError, InvalidInputError
from .progress import ProgressFactory, null_progress

__all__ = [
    "RESIDUES",
    "DigestJob",
    "FastaRecord",
    "FastaSummary",
    "check_openable",
    "detect_compression",
    "digest_fasta",
    "start_digest",
    "validate_fasta",
]

RESIDUES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz*-"
"""Allowed residue bytes: the IUPAC nucleotide codes (ACGTU RYSWKM BDHV N) and the IUPAC/NCBI
protein codes (the 20 amino acids plus B J O U X Z), either case, ``*`` (stop) and ``-`` (gap).
Their union is every ASCII letter plus ``*`` and ``-``."""

_DELETE = RESIDUES + b"\r\n"
_BAD = re.compile(rb"[^A-Za-z*\-\r\n]")
_ASCII_SPACE = re.compile(r"[ \t\n\r\x0b\x0c]+")
_CR_ALONE = re.compile(rb"\r(?!\n)")
_CHUNK = 8 << 20
_GZ_CHUNK = 2 << 20  # compressed; inflates ~3-4x
_MAX_INFLATE = 16 << 20
_MAX_HEADER = 1 << 20
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


class FastaRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One validated record: its name, residue count and the rest of its header line."""

    name: str
    length: int
    description: str = ""
    digest: str = ""
    """sha512t24u of the upper-cased residues (only from ``digest_fasta``)."""


class FastaSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What validation learnt about a FASTA file: records in file order, size, md5, compression."""

    path: str
    compression: str
    """``none``, ``gzip`` or ``bgzf`` (from the magic bytes, never from the file name)."""
    size: int
    records: list[FastaRecord]
    md5: str = ""
    """md5 of the file's bytes as stored (only from ``digest_fasta``)."""

    @property
    def names(self) -> list[str]:
        """Sequence names in file order."""
        return [r.name for r in self.records]

    @property
    def lengths(self) -> list[int]:
        """Residue counts in file order."""
        return [r.length for r in self.records]


class _Fault(Exception):
    """A problem at a decompressed byte offset; turned into a line number by the caller."""

    def __init__(self, offset: int, reason: str, first: int | None = None) -> None:
        super().__init__(reason)
        self.offset, self.reason, self.first = offset, reason, first


_OTHER_COMPRESSION = (
    (b"BZh", "bzip2", "bzip2 -dc"), (b"\xfd7zXZ\x00", "xz", "xz -dc"), (b"\x28\xb5\x2f\xfd", "zstd", "zstd -dc"),
    (b"\x04\x22\x4d\x18", "lz4", "lz4 -dc"), (b"PK\x03\x04", "zip", "unzip -p"), (b"7z\xbc\xaf\x27\x1c", "7-Zip", "7z e -so"),
)
"""Magic bytes of compressions ingest does not read, the format's name, and a command that decompresses it.
None can start a FASTA file, which starts with '>' or a blank line."""


_CR_FIX = "tr '\\r' '\\n' < FILE > NEW.fa"
_CR_FIX_GZ = "zcat FILE | tr '\\r' '\\n' | gzip > NEW.fa.gz"
"""The fix a header's CR suggests, for a plain file and (``tr`` on compressed bytes would mangle them) a gzip one."""


def _refuse_other_compression(path: Path, head: bytes) -> None:
    """InvalidInputError for a file compressed other than with gzip/BGZF ("invalid residue '9'" would not say so)."""
    for magic, kind, unpack in _OTHER_COMPRESSION:
        if head.startswith(magic):
            raise InvalidInputError(f"{path}: is {kind}-compressed, which is not read (plain, gzip or BGZF FASTA "
                                    f"only); decompress it first, e.g. {unpack} FILE | rgstore genome init --fasta - "
                                    "--name NAME")


def detect_compression(head: bytes) -> str:
    """``bgzf``, ``gzip`` or ``none`` from a file's first 18 bytes."""
    if head[:2] != b"\x1f\x8b":
        return "none"
    if len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzf"
    return "gzip"


class _Inflater:
    """Multi-member gzip decompression that notices a stream ending inside a member."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.d = zlib.decompressobj(31)
        self.in_member = False

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """The decompressed bytes of ``raw`` in pieces of at most ``_MAX_INFLATE``.

        Bounded pieces because deflate packs a long run 1000:1: a 2 MiB read of a crafted (or
        N-heavy) file would otherwise inflate into gigabytes at once.
        """
        data = raw
        while True:
            try:
                out = self.d.decompress(data, _MAX_INFLATE)
            except zlib.error as exc:
                raise InvalidInputError(f"{self.path}: not a valid gzip stream ({exc})") from None
            if out:
                yield out
            self.in_member = not self.d.eof
            if self.d.eof:
                data = self.d.unused_data
                self.d = zlib.decompressobj(31)
                if not data:
                    return
                continue
            data = self.d.unconsumed_tail
            if not data and len(out) < _MAX_INFLATE:
                return

    def finish(self) -> None:
        if self.in_member:
            raise InvalidInputError(f"{self.path}: truncated gzip stream (the file ends inside a member)")


class _Parser:
    """The record state machine, fed decompressed chunks of any size."""

    def __init__(self) -> None:
        self.offset = 0
        self.at_line_start = True
        self.pending_cr = False
        self.header_carry: bytes | None = None
        self.header_offset = 0
        self.records: list[FastaRecord] = []
        self.seen: dict[str, int] = {}
        self.name: str | None = None
        self.description = ""
        self.length = 0

    def feed(self, buf: bytes) -> None:
        base, pos, n = self.offset, 0, len(buf)
        self.offset += n
        if not n:
            return
        if self.pending_cr:
            if buf[0] != 10:
                raise _Fault(base - 1, "carriage return inside a sequence line")
            self.pending_cr = False
        if self.header_carry is not None:
            nl = buf.find(b"\n")
            if nl == -1:
                self.header_carry += buf
                if len(self.header_carry) > _MAX_HEADER:
                    raise _Fault(self.header_offset, "header line longer than 1 MiB")
                return
            self._header(self.header_carry + buf[:nl], self.header_offset)
            self.header_carry, pos, self.at_line_start = None, nl + 1, True
        while pos < n:
            gt = buf.find(b">", pos)
            end = n if gt == -1 else gt
            if end > pos:
                self._sequence(buf[pos:end], base + pos, at_end=end == n)
            if gt == -1:
                return
            if not self.at_line_start:
                raise _Fault(base + gt, "'>' inside a sequence line (a header must start its own line)")
            nl = buf.find(b"\n", gt)
            if nl == -1:
                self.header_carry, self.header_offset = buf[gt:], base + gt
                return
            self._header(buf[gt:nl], base + gt)
            pos, self.at_line_start = nl + 1, True

    def _sequence(self, seg: bytes, at: int, *, at_end: bool) -> None:
        if seg.translate(None, _DELETE):
            m = _BAD.search(seg)
            assert m is not None
            raise _Fault(at + m.start(), _residue_reason(m.group()))
        crs = seg.count(b"\r") if b"\r" in seg else 0
        if crs:
            trailing = at_end and seg.endswith(b"\r")
            if crs != seg.count(b"\r\n") + trailing:
                m = _CR_ALONE.search(seg[:-1] if trailing else seg)
                assert m is not None
                raise _Fault(at + m.start(), "carriage return inside a sequence line")
            self.pending_cr = trailing
        residues = len(seg) - seg.count(b"\n") - crs
        if residues:
            if self.name is None:
                first = len(seg) - len(seg.lstrip(b"\r\n"))
                raise _Fault(at + first, "sequence data before the first '>' header")
            self.length += residues
        self.at_line_start = seg.endswith(b"\n")

    def _header(self, line: bytes, at: int) -> None:
        # Checked here, not only on a header carried across chunks: whether a file passes must not
        # depend on where its chunk boundaries fall.
        if len(line) > _MAX_HEADER:
            raise _Fault(at, "header line longer than 1 MiB")
        if line.endswith(b"\r"):
            line = line[:-1]
        if (cr := line.find(b"\r")) != -1:
            # A classic Mac OS file (CR line ends only) is one long header line: it would be stored as
            # a single empty record whose description holds the whole file.
            raise _Fault(at + cr, "carriage return inside a header line (a file with classic Mac OS line "
                                  f"ends? convert them: {_CR_FIX})")
        try:
            text = line[1:].decode("utf-8")
        except UnicodeDecodeError:
            raise _Fault(at, "header is not valid UTF-8") from None
        parts = _ASCII_SPACE.split(text, 1)  # where samtools and fastadigest end the name
        name = parts[0]
        if not name:
            raise _Fault(at, "record has no name (nothing between '>' and the first whitespace)")
        odd = next((c for c in name if c.isspace() or unicodedata.category(c) == "Cc"), None)
        if odd is not None:
            # FASTA readers disagree on whether these end the name (gtars splits at U+00A0,
            # Python at U+001C): refuse rather than let the name depend on the reader.
            raise _Fault(at, f"sequence name {name[:80]!r} contains U+{ord(odd):04X}, a whitespace or "
                             "control character; names end at the first space or tab")
        if name in self.seen:
            raise _Fault(at, f"duplicate sequence name {name!r}", self.seen[name])
        description = parts[1].strip() if len(parts) > 1 else ""
        # gtars indexes sequences in TSV files (name first, description last) and skips '#' lines
        # when it reloads them: such a record would be stored but unreadable by the next process.
        if name.startswith("#"):
            raise _Fault(at, f"sequence name {name[:80]!r} starts with '#', which the RefgetStore index "
                             "reads as a comment line")
        if "\t" in description:
            raise _Fault(at, "tab inside the header's description, which the RefgetStore's tab-separated "
                             "index cannot hold; replace it with a space (sed '/^>/s/\\t/ /g')")
        self._close_record()
        self.seen[name] = at
        self.name, self.description, self.length = name, description, 0

    def _close_record(self) -> None:
        if self.name is not None:
            self.records.append(FastaRecord(name=self.name, length=self.length, description=self.description))

    def finish(self) -> list[FastaRecord]:
        if self.pending_cr:
            raise _Fault(self.offset - 1, "carriage return inside a sequence line")
        if self.header_carry is not None:
            self._header(self.header_carry, self.header_offset)
            self.header_carry = None
        self._close_record()
        return self.records


_WHITESPACE_NAMES = {b" ": "a space", b"\t": "a tab", b"\v": "a vertical tab, U+000B", b"\f": "a form feed, U+000C"}
"""How an error names the whitespace it found (not Python's b' ' / b'\\t')."""


def _residue_reason(byte: bytes) -> str:
    if byte in _WHITESPACE_NAMES:
        return f"whitespace ({_WHITESPACE_NAMES[byte]}) inside a sequence line"
    if 32 < byte[0] < 127:
        return f"invalid residue {byte.decode()!r}: not in the IUPAC nucleotide or protein alphabet"
    return f"invalid byte 0x{byte[0]:02x}: not in the IUPAC nucleotide or protein alphabet"


def check_openable(path: Path) -> None:
    """Raise the one-line InvalidInputError a read of ``path`` would (missing, a directory, unreadable).

    A stream (``-``, a pipe: ``genome init`` spools it, see ``fastaspool``) passes unopened: opening a
    named pipe would block until its writer comes, and a read would take bytes meant for the ingest.
    """
    from .fastaspool import stream_kind

    if stream_kind(path) is None:
        _open(path).close()


def _open(path: Path) -> BinaryIO:
    try:
        # Checked before open(): opening a named pipe blocks until a writer comes, and validation
        # re-reads and seeks the file, which a pipe's one pass cannot serve (`genome init` spools one).
        if stat.S_ISFIFO(mode := os.stat(path).st_mode) or stat.S_ISSOCK(mode):
            kind = "a pipe" if stat.S_ISFIFO(mode) else "a socket"
            raise InvalidInputError(f"{path}: is {kind}, not a file; a FASTA is read more than once: "
                                    "give it to `rgstore genome init --fasta`, which saves it first, or save "
                                    "it to a file (gzip or BGZF input is read as it is)")
        return open(path, "rb")
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path}: is a directory, not a FASTA file") from None
    except PermissionError:
        raise InvalidInputError(f"{path}: permission denied") from None


def _decompressed(path: Path, compression: str) -> BinaryIO:
    if compression == "none":
        return _open(path)
    import gzip

    return gzip.open(path, "rb")  # type: ignore[return-value]


def _starts_with_bom(path: Path, compression: str) -> bool:
    with _decompressed(path, compression) as fh:
        try:
            return fh.read(3) == b"\xef\xbb\xbf"
        except (OSError, EOFError):
            return False


def _line_col(path: Path, compression: str, offsets: list[int]) -> dict[int, tuple[int, int]]:
    """1-based (line, column) of decompressed byte offsets (slow path, errors only)."""
    wanted = sorted(set(offsets))
    found: dict[int, tuple[int, int]] = {}
    line, line_start, pos = 1, 0, 0
    with _decompressed(path, compression) as fh:
        while wanted:
            try:
                buf = fh.read(_CHUNK)
            except (OSError, EOFError):
                break
            if not buf:
                break
            while wanted and wanted[0] < pos + len(buf):
                off = wanted.pop(0)
                rel = off - pos
                nl_before = buf.count(b"\n", 0, rel)
                last_nl = buf.rfind(b"\n", 0, rel)
                start = pos + last_nl + 1 if last_nl != -1 else line_start
                found[off] = (line + nl_before, off - start + 1)
            count = buf.count(b"\n")
            if count:
                line_start = pos + buf.rfind(b"\n") + 1
            line += count
            pos += len(buf)
    for off in wanted:
        found[off] = (line, off - line_start + 1)
    return found


def validate_fasta(
    path: Path | str, *, progress: ProgressFactory = null_progress, chunk_size: int | None = None
) -> FastaSummary:
    """Check a FASTA file and summarise it; InvalidInputError naming file, line and reason if unsound.

    Rules: at least one record; every record named (a non-empty token right after ``>``); names
    unique; sequence lines hold only ``RESIDUES`` (no spaces, tabs, digits; CRLF line ends are
    fine); no sequence before the first header. Plain, gzip (multi-member) and BGZF input.
    """
    path = Path(path)
    with _open(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(18)
        compression = detect_compression(head)
        fh.seek(0)
        if size == 0:
            raise InvalidInputError(f"{path}: the file is empty (no FASTA records)")
        _refuse_other_compression(path, head)
        step = chunk_size or (_GZ_CHUNK if compression != "none" else _CHUNK)
        inflater = _Inflater(path) if compression != "none" else None
        parser = _Parser()
        bar = progress(f"validate {path.name}", total=size, unit="B")
        try:
            while raw := fh.read(step):
                if inflater is None:
                    parser.feed(raw)
                else:
                    for piece in inflater.feed(raw):
                        parser.feed(piece)
                bar.update(len(raw))
            if inflater is not None:
                inflater.finish()
            records = parser.finish()
        except _Fault as fault:
            if fault.offset == 0 and _starts_with_bom(path, compression):
                # Windows editors (Notepad) write one; "invalid byte 0xef" at line 1 would not say what to remove.
                # sed -i on a gzip file edits compressed bytes: the fix for one is a decompressed copy.
                fix = ("sed -i '1s/^\\xEF\\xBB\\xBF//' FILE" if compression == "none" else
                       "zcat FILE | sed '1s/^\\xEF\\xBB\\xBF//' | gzip > NEW.fa.gz")
                raise InvalidInputError(f"{path}: the file starts with a UTF-8 byte-order mark (bytes EF BB BF), "
                                        f"which is not FASTA; save it without one, e.g. {fix}") from None
            places = _line_col(path, compression, [fault.offset] + ([fault.first] if fault.first is not None else []))
            line, col = places[fault.offset]
            extra = f" (first seen on line {places[fault.first][0]})" if fault.first is not None else ""
            reason = fault.reason if compression == "none" else fault.reason.replace(_CR_FIX, _CR_FIX_GZ)
            raise InvalidInputError(f"{path}: line {line}, column {col}: {reason}{extra}") from None
        finally:
            bar.close()
    if compression == "bgzf":
        with open(path, "rb") as fh:
            fh.seek(max(0, size - len(_BGZF_EOF)))
            if fh.read() != _BGZF_EOF:
                raise InvalidInputError(f"{path}: truncated BGZF file (the end-of-file marker block is missing)")
    if not records:
        raise InvalidInputError(f"{path}: no FASTA records (no line starts with '>')")
    return FastaSummary(path=str(path), compression=compression, size=size, records=records)


class _Digests(msgspec.Struct, frozen=True):
    """The digest worker's output (see ``rgstore.fastadigest.digest_file``)."""

    md5: str
    size: int
    records: list[tuple[str, int, str]]


def _summary(path: Path, digests: _Digests) -> FastaSummary:
    with open(path, "rb") as fh:
        compression = detect_compression(fh.read(18))
    return FastaSummary(
        path=str(path), compression=compression, size=digests.size, md5=digests.md5,
        records=[FastaRecord(name=n, length=length, digest=d) for n, length, d in digests.records],
    )


def digest_fasta(path: Path | str, *, chunk_size: int | None = None) -> FastaSummary:
    """The file's md5 and each record's name, length and sha512t24u of its upper-cased residues.

    Computed in this process by ``rgstore.fastadigest``, which trusts ``validate_fasta`` on syntax.
    """
    from . import fastadigest

    path = Path(path)
    try:
        result = fastadigest.digest_file(str(path), chunk_size or fastadigest._CHUNK)
    except (OSError, ValueError, zlib.error) as exc:
        raise InvalidInputError(f"{path}: {exc}") from None
    return _summary(path, msgspec.convert(result, _Digests))


class DigestJob:
    """``digest_fasta`` in a child process; ``result()`` waits for it, ``cancel()`` stops it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        worker = Path(__file__).with_name("fastadigest.py")
        # Run by file path in isolated mode without site: the worker needs only the standard
        # library, and skipping the rgstore package import saves ~150 ms per ingest.
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(worker), str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self._done = False

    def result(self) -> FastaSummary:
        """The child's summary; its input complaints as InvalidInputError, anything else IntegrityError."""
        out, err = self.proc.communicate()
        self._done = True
        if self.proc.returncode == 0:
            return _summary(self.path, msgspec.json.decode(out, type=_Digests))
        if self.proc.returncode == 2:
            raise InvalidInputError(err.decode(errors="replace").strip())
        raise IntegrityError(
            f"independent digest of {self.path} failed (exit {self.proc.returncode}): "
            f"{err.decode(errors='replace').strip()[-300:]}"
        )

    def cancel(self) -> None:
        """Stop the child if it still runs (idempotent)."""
        if self._done:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
        self._done = True


class _DigestHere:
    """``digest_fasta`` in this process, when ``result()`` asks: a small file digests faster than a child starts."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def result(self) -> FastaSummary:
        """The file's summary; its input complaints as InvalidInputError (as the child's)."""
        return digest_fasta(self.path)

    def cancel(self) -> None:
        """Nothing runs until ``result``."""


IN_PROCESS_DIGEST_MAX = 1 << 20
"""Files up to this size are digested in this process: a child's start-up (~30-50 ms) would be
most of a lazily fetched sequence's import, and the digest of 1 MiB takes ~3 ms."""


def start_digest(path: Path | str) -> DigestJob | _DigestHere:
    """Start ``digest_fasta(path)``: in a child process (it overlaps validation and the gtars import), or here when small."""
    path = Path(path)
    try:
        small = path.stat().st_size <= IN_PROCESS_DIGEST_MAX
    except OSError:
        small = False  # the child names the problem, as for any other file
    return _DigestHere(path) if small else DigestJob(path)
