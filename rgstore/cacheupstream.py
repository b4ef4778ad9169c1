"""Where a level-2 download comes from: the real NCBI and Ensembl directory layouts and their checksum files.

NCBI: ``genomes/all/GCF/000/001/405/GCF_000001405.40_<name>/`` (the accession's nine digits split
in threes; the directory name is found in the parent's listing), with
``<dir>_genomic.fna.gz``, ``<dir>_genomic.gtf.gz`` and ``md5checksums.txt``. Names are built
exactly, never matched by suffix (``_genomic.fna.gz`` is also the end of
``_cds_from_genomic.fna.gz``). Ensembl: ``release-N/fasta/<species>/dna/`` and
``release-N/gtf/<species>/``, each with a BSD-sum ``CHECKSUMS`` file that doubles as the listing;
the DNA is chosen in the order dna_sm.primary_assembly, dna.primary_assembly, dna_sm.toplevel,
dna.toplevel, and the GTF is ``<Species>.<assembly>.<release>.gtf.gz`` (not ``.chr`` or
``.abinitio``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import msgspec

from .cachekeys import RawIdentity
from .checksums import Expected, parse_ensembl_checksums, parse_md5checksums
from .download import get_text
from .errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import httpx

__all__ = ["NCBI_BASE", "ENSEMBL_BASE", "RemoteFile", "UpstreamPlan", "resolve", "LOCAL_NAMES"]

NCBI_BASE = "https://ftp.ncbi.nlm.nih.gov"
ENSEMBL_BASE = "https://ftp.ensembl.org/pub"
LOCAL_NAMES = {"genome": "genome.fna", "annotation": "annotation.gtf"}
"""Role -> decompressed file name; the raw copy adds ``.gz`` (the seed's layout)."""

_ENSEMBL_DNA_ORDER = ("dna_sm.primary_assembly", "dna.primary_assembly", "dna_sm.toplevel", "dna.toplevel")


class RemoteFile(msgspec.Struct, frozen=True, kw_only=True):
    """One upstream file to fetch: its role, URL, upstream name and the checksum its directory promises."""

    role: str
    url: str
    name: str
    expected: Expected


class UpstreamPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The files to fetch for one level-2 entry plus facts worth recording (directory, assembly name)."""

    files: list[RemoteFile]
    directory: str
    assembly: str


def _base(base_url: str | None, default: str) -> str:
    from .httpclient import check_url

    # Paths are appended to it, and the URLs built are recorded with the entry: no query, no credentials.
    return check_url(base_url, "--base-url") if base_url else default


def _resolve_ncbi(client: httpx.Client, ident: RawIdentity, base_url: str | None) -> UpstreamPlan:
    acc = ident.assembly
    digits = acc[4:13]
    parent = f"{_base(base_url, NCBI_BASE)}/genomes/all/{acc[:3]}/{digits[0:3]}/{digits[3:6]}/{digits[6:9]}/"
    listing = get_text(client, parent)
    names = sorted(set(re.findall(rf'href="(?:[^"]*/)?({re.escape(acc)}_[^"/]+)/?"', listing)))
    if not names:
        raise NotFoundError(f"NCBI has no assembly directory for {acc} under {parent}")
    if len(names) > 1:
        raise InvalidInputError(f"several NCBI directories match {acc}: {', '.join(names)}")
    stem = names[0]
    directory = f"{parent}{stem}/"
    checksums = parse_md5checksums(
        get_text(client, directory + "md5checksums.txt"), directory + "md5checksums.txt"
    )
    files = []
    for role, name in (("genome", f"{stem}_genomic.fna.gz"), ("annotation", f"{stem}_genomic.gtf.gz")):
        if name not in checksums:
            raise NotFoundError(f"NCBI directory {directory} lists no {name} in md5checksums.txt")
        files.append(RemoteFile(role=role, url=directory + name, name=name, expected=checksums[name]))
    return UpstreamPlan(files=files, directory=directory, assembly=stem.removeprefix(acc + "_"))


def _resolve_ensembl(
    client: httpx.Client, ident: RawIdentity, base_url: str | None, assembly: str
) -> UpstreamPlan:
    root = f"{_base(base_url, ENSEMBL_BASE)}/release-{ident.release}"
    prefix = ident.species[0].upper() + ident.species[1:]
    dna_dir = f"{root}/fasta/{ident.species}/dna/"
    gtf_dir = f"{root}/gtf/{ident.species}/"
    dna_sums = parse_ensembl_checksums(get_text(client, dna_dir + "CHECKSUMS"), dna_dir + "CHECKSUMS")
    gtf_sums = parse_ensembl_checksums(get_text(client, gtf_dir + "CHECKSUMS"), gtf_dir + "CHECKSUMS")
    genome: tuple[str, str] | None = None
    for kind in _ENSEMBL_DNA_ORDER:
        pattern = re.compile(rf"^{re.escape(prefix)}\.(.+)\.{re.escape(kind)}\.fa\.gz$", re.IGNORECASE)
        hits = sorted((m.group(1), name) for name in dna_sums if (m := pattern.match(name)))
        hits = [h for h in hits if not assembly or h[0] == assembly]
        if hits:
            genome = hits[0]
            break
    if genome is None:
        want = f" for assembly {assembly}" if assembly else ""
        raise NotFoundError(
            f"Ensembl {dna_dir} has no genome FASTA{want} (looked for {', '.join(_ENSEMBL_DNA_ORDER)})"
        )
    asm, genome_name = genome
    gtf_name = f"{prefix}.{asm}.{ident.release}.gtf.gz"
    match = next((n for n in gtf_sums if n.lower() == gtf_name.lower()), None)
    if match is None:
        raise NotFoundError(f"Ensembl {gtf_dir} has no {gtf_name} in its CHECKSUMS")
    files = [
        RemoteFile(
            role="genome", url=dna_dir + genome_name, name=genome_name, expected=dna_sums[genome_name]
        ),
        RemoteFile(role="annotation", url=gtf_dir + match, name=match, expected=gtf_sums[match]),
    ]
    return UpstreamPlan(files=files, directory=root + "/", assembly=asm)


def resolve(
    client: httpx.Client, ident: RawIdentity, *, base_url: str | None = None, assembly: str = ""
) -> UpstreamPlan:
    """Find the genome FASTA and GTF for ``ident`` upstream and the checksums their directories publish."""
    if ident.source == "ncbi":
        return _resolve_ncbi(client, ident, base_url)
    return _resolve_ensembl(client, ident, base_url, assembly)
