"""taxtastic's ``is_ill_formed`` rules for a reference package, reporting every problem found.

taxtastic stops at the first problem (and dies on a missing or corrupt file before checking
anything); here every file is checked against its recorded sha256 and MD5 first, and then
each rule runs on the files that are intact. The texts are taxtastic 1.0.1's, with two fixes:
mismatching names are listed sorted (taxtastic prints set order), and "field cout" reads
"field count". seq_info names come from its ``seqname`` column (taxtastic reads column 0
whatever the header says), and Newick is read without DendroPy, iteratively.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from .blobs import BlobStore, hash_file
from .errors import NotFoundError
from .events import FileRef
from .progress import ProgressFactory, null_progress

__all__ = ["REQUIRED_KEYS", "check_package", "newick_names", "NewickError"]

REQUIRED_KEYS = ("aln_fasta", "aln_sto", "seq_info", "tree", "taxonomy", "phylo_model")
_PARSED = ("aln_fasta", "seq_info", "aln_sto", "tree", "taxonomy")
"""Keys whose files the rules read through ``_text_lines`` (and so report progress for)."""
_STEP = 1 << 20
Advance = Callable[[int], object]
_MAX_LISTED = 20


class NewickError(ValueError):
    """A tree file does not parse as Newick."""


def check_package(files: Mapping[str, FileRef], blobs: BlobStore,
                  progress: ProgressFactory = null_progress) -> list[str]:
    """Every problem of a package's current files, in taxtastic's order; empty if it is usable.

    ``progress`` sees two passes in bytes: verifying every file, then reading the ones the rules parse
    (seconds each on a 100k-sequence alignment).
    """
    bar = progress("verify files", total=sum(ref.size for ref in files.values()), unit="B")
    try:
        intact, problems = _intact(files, blobs, bar.update)
    finally:
        bar.close()
    bar = progress("check rules", total=sum(path.stat().st_size for key, path in intact.items() if key in _PARSED),
                   unit="B")
    try:
        return problems + _rules(files, intact, bar.update)
    finally:
        bar.close()


def _intact(files: Mapping[str, FileRef], blobs: BlobStore, advance: Advance) -> tuple[dict[str, Path], list[str]]:
    """(key -> path of each file matching its checksums, a problem for each other file)."""
    problems: list[str] = []
    intact: dict[str, Path] = {}
    for key, ref in files.items():
        try:  # a mirror's blob not fetched yet comes from its upstream
            path = blobs.ensure(ref.sha256, ref.size)
        except NotFoundError as exc:
            plain = str(exc).endswith(f"is missing from {blobs.root}")  # else the upstream's reason, kept
            problems.append(
                f"File {ref.name} referred to by key {key} is missing from the store (blob {ref.sha256})"
                + ("" if plain else f": {exc}")
            )
            continue
        found = hash_file(path)
        advance(ref.size)
        if found.sha256 != ref.sha256 or found.md5 != ref.md5:
            problems.append(
                f"File {ref.name} referred to by key {key} did not match its MD5 sum "
                f"(found: {found.md5}, expected {ref.md5})"
            )
            continue
        intact[key] = path
    return intact, problems


def _rules(files: Mapping[str, FileRef], intact: dict[str, Path], advance: Advance) -> list[str]:
    """taxtastic's rules over the intact files, in its order."""
    problems = [f"RefPkg has no key {key}" for key in REQUIRED_KEYS if key not in files]
    fasta = _fasta_names(intact["aln_fasta"], advance) if "aln_fasta" in intact else None
    if isinstance(fasta, str):
        problems.append(fasta)
    seq_info = _seq_info_names(intact["seq_info"], advance) if "seq_info" in intact else None
    if isinstance(seq_info, list):
        problems += seq_info
    sto = _stockholm_names(intact["aln_sto"], advance) if "aln_sto" in intact else None
    if isinstance(sto, str):
        problems.append(sto)
    tree: set[str] | str | None = None
    if "tree" in intact:
        try:
            tree = newick_names(_text_lines(intact["tree"], advance))
        except NewickError:
            tree = "tree file is not valid Newick."
            problems.append(tree)
    if isinstance(fasta, set):
        for other, what in ((sto, "aln_sto"), (seq_info, "seq_info"), (tree, "nodes in tree")):
            if isinstance(other, set) and (diff := fasta ^ other):
                problems.append(f"Names in aln_fasta did not match {what}.  Mismatches: {_listed(diff)}")
    if "taxonomy" in intact and len({len(row) for row in _csv_rows(intact["taxonomy"], advance)}) > 1:
        problems.append("Taxonomy is invalid: not all lines had the same number of fields.")
    if "phylo_model" in intact:
        try:
            json.loads(intact["phylo_model"].read_bytes())
        except (ValueError, UnicodeDecodeError, RecursionError):
            problems.append("phylo_model is not valid JSON.")
    return problems


def _listed(names: set[str]) -> str:
    ordered = sorted(names)
    text = ", ".join(ordered[:_MAX_LISTED])
    return text + (f" ... and {len(ordered) - _MAX_LISTED} more" if len(ordered) > _MAX_LISTED else "")


def _text_lines(path: Path, advance: Advance) -> Iterator[str]:
    """The file's lines, reporting the bytes read to ``advance`` every ``_STEP`` or so."""
    size, done, pending = path.stat().st_size, 0, 0
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        for line in fh:
            pending += len(line)
            if pending >= _STEP:
                advance(pending)
                done, pending = done + pending, 0
            yield line
    advance(max(size - done, 0))  # characters, not bytes, were counted: end on the file's size


def _csv_rows(path: Path, advance: Advance) -> Iterator[list[str]]:
    yield from csv.reader(_text_lines(path, advance))


def _fasta_names(path: Path, advance: Advance) -> set[str] | str:
    bad = "aln_fasta file is not valid FASTA."
    names: set[str] = set()
    for number, line in enumerate(_text_lines(path, advance)):
        if number == 0 and not line.startswith(">"):
            return bad
        if line.startswith(">"):
            words = line[1:].split()
            if not words:
                return bad
            names.add(words[0])
    return names if names else bad


def _seq_info_names(path: Path, advance: Advance) -> set[str] | list[str]:
    rows = _csv_rows(path, advance)
    header = next(rows, None)
    if not header:
        return ["seq_info is empty"]
    problems = [f"seq_info is missing {col}" for col in ("seqname", "tax_id") if col not in header]
    names: set[str] = set()
    column = header.index("seqname") if "seqname" in header else 0
    uneven = False
    for row in rows:
        uneven = uneven or len(row) != len(header)
        if column < len(row):
            names.add(row[column])
    if uneven:
        problems.append("some lines in seq_info differ in field count")
    return problems or names


def _stockholm_names(path: Path, advance: Advance) -> set[str] | str:
    names: set[str] = set()
    ended = False
    for raw in _text_lines(path, advance):
        line = raw.strip()
        if line == "//":
            ended = True
        elif line.startswith("#") or not line:
            continue
        else:
            parts = line.split(None, 1)
            if len(parts) != 2:
                return "aln_sto file is not valid Stockholm."
            names.add(parts[0])
    return names if ended else "aln_sto file is not valid Stockholm."


# --- Newick ---------------------------------------------------------------------------------

_PUNCT = set("()[]':;,")
_LEAF_STATES = ("start", "open", "comma")
_END_STATES = ("leaf", "close", "label", "length")


def _newick_tokens(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(kind, text) tokens: kind is a punctuation character or 'w' (a word); comments dropped."""
    text = "".join(lines)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "[":
            end = text.find("]", i)
            if end < 0:
                raise NewickError("unterminated comment")
            i = end + 1
        elif c == "'":
            parts, i = [], i + 1
            while True:
                end = text.find("'", i)
                if end < 0:
                    raise NewickError("unterminated quoted label")
                parts.append(text[i:end])
                if end + 1 < n and text[end + 1] == "'":
                    parts.append("'")
                    i = end + 2
                    continue
                i = end + 1
                break
            yield "w", "".join(parts)
        elif c in _PUNCT:
            yield c, c
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _PUNCT:
                i += 1
            yield "w", text[start:i]


def newick_names(lines: Iterable[str]) -> set[str]:
    """Leaf labels of every tree in a Newick text (DendroPy's taxon labels); NewickError if malformed.

    A label twice among one tree's leaves is malformed too: DendroPy (so ``taxit check``)
    refuses it, and pplacer could not tell the two leaves apart. Iterative, so trees nested
    thousands deep (caterpillars) parse without recursion.
    """
    names: set[str] = set()
    leaves: set[str] = set()  # this tree's
    state, depth, trees = "start", 0, 0
    for kind, text in _newick_tokens(lines):
        if kind == "(" and state in _LEAF_STATES:
            depth, state = depth + 1, "open"
        elif kind == "w" and state in _LEAF_STATES:
            if text in leaves:
                raise NewickError(f"leaf {text!r} occurs twice in one tree")
            leaves.add(text)
            names.add(text)
            state = "leaf"
        elif kind == "w" and state == "close":
            state = "label"
        elif kind == ":" and state in (*_END_STATES[:3], "open", "comma"):
            state = "colon"
        elif kind == "w" and state == "colon":
            try:
                float(text)
            except ValueError:
                raise NewickError(f"invalid branch length {text!r}") from None
            state = "length"
        elif kind == "," and depth > 0 and state in (*_END_STATES, "open", "comma"):
            state = "comma"
        elif kind == ")" and depth > 0 and state in (*_END_STATES, "open", "comma"):
            depth, state = depth - 1, "close"
        elif kind == ";" and depth == 0 and state in _END_STATES:
            state, trees = "start", trees + 1
            leaves = set()
        else:
            raise NewickError(f"unexpected {text!r}")
    if state != "start" or trees == 0:
        raise NewickError("incomplete tree statement")
    return names
