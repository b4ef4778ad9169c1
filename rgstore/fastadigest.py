"""An independent digest of a FASTA file: file md5, and each record's name, length and sha512t24u.

Standard library only, and no imports from rgstore, on purpose: ingest runs this file as a
script (``python -I -S fastadigest.py FILE``) in a child process that starts in ~30 ms, beside
the validating pass and the gtars import, and compares its digests with what gtars reports.
It is a second, deliberately separate reading of the file: it trusts the validator on syntax
(a ``>`` always starts a header) and only hashes. Output: one JSON object on stdout.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import zlib
from typing import Any

__all__ = ["digest_file"]

_UPPER = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_CHUNK = 8 << 20
_MAX_INFLATE = 16 << 20


class _Records:
    def __init__(self) -> None:
        self.out: list[list[Any]] = []
        self.name: str | None = None
        self.sha = hashlib.sha512()
        self.length = 0
        self.carry: bytes | None = None

    def feed(self, data: bytes) -> None:
        pos, n = 0, len(data)
        if self.carry is not None:
            nl = data.find(b"\n")
            if nl == -1:
                self.carry += data
                return
            self.header(self.carry + data[:nl])
            self.carry, pos = None, nl + 1
        while pos < n:
            gt = data.find(b">", pos)
            end = n if gt == -1 else gt
            if end > pos:
                clean = data[pos:end].translate(_UPPER, b"\r\n")
                if clean and self.name is None:
                    raise ValueError("sequence data before the first '>' header")
                self.sha.update(clean)
                self.length += len(clean)
            if gt == -1:
                return
            nl = data.find(b"\n", gt)
            if nl == -1:
                self.carry = data[gt:]
                return
            self.header(data[gt:nl])
            pos = nl + 1

    def header(self, line: bytes) -> None:
        self.close()
        fields = line[1:].split(None, 1)
        if not fields:
            raise ValueError("a record has no name")
        self.name = fields[0].decode("utf-8")

    def close(self) -> None:
        if self.name is not None:
            digest = base64.urlsafe_b64encode(self.sha.digest()[:24]).decode()
            self.out.append([self.name, self.length, digest])
        self.name, self.sha, self.length = None, hashlib.sha512(), 0

    def finish(self) -> list[list[Any]]:
        if self.carry is not None:
            self.header(self.carry.rstrip(b"\r"))
            self.carry = None
        self.close()
        return self.out


def digest_file(path: str, chunk: int = _CHUNK) -> dict[str, Any]:
    """``{"md5", "size", "records": [[name, length, sha512t24u], ...]}`` of a plain or gzip FASTA."""
    md5 = hashlib.md5()
    records = _Records()
    size = 0
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
        fh.seek(0)
        inflater = zlib.decompressobj(31) if gz else None
        while raw := fh.read(chunk):
            md5.update(raw)
            size += len(raw)
            if inflater is None:
                records.feed(raw)
                continue
            while True:  # multi-member gzip (and BGZF): a fresh inflater per member
                # Bounded output: deflate packs a long run ~1000:1 (see fasta._Inflater).
                out = inflater.decompress(raw, _MAX_INFLATE)
                records.feed(out)
                if inflater.eof:
                    raw = inflater.unused_data
                    inflater = zlib.decompressobj(31)
                    if not raw:
                        break
                    continue
                raw = inflater.unconsumed_tail
                if not raw and len(out) < _MAX_INFLATE:
                    break
    return {"md5": md5.hexdigest(), "size": size, "records": records.finish()}


def _main(argv: list[str]) -> int:
    try:
        result = digest_file(argv[0])
    except (OSError, ValueError, zlib.error) as exc:
        sys.stderr.write(f"{argv[0]}: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
