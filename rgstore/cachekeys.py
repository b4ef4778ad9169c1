"""Cache requests and their keys: validated parameters, per-region forms, canonical JSON, SHA-256.

A request names a source (``ncbi`` or ``ensembl``), its parameters and the genomic regions
wanted. It splits into one *form* per region that is true. A form's key is the SHA-256 of its
canonical JSON (sorted keys, no whitespace, real booleans) and the JSON also holds the
extractor's version and the sha256 of each raw input, so a changed input or extractor gives a
new key instead of serving a stale entry. ``"current"``/``"latest"`` releases are refused: a key
must name what it was built from (the seed's design hashed ``"current"`` literally).

Only what picks the downloaded bytes goes into a key. For NCBI that is the assembly accession
(``genomes/all/<accession>`` holds the accession's current annotation): species, taxon and
annotation release are blanked in keys, so two spellings of the same download share its
entries. Species and taxon are mere *labels*, recorded with each entry. The release is not: the
cache reads the release the downloaded GTF names (its ``#!annotation-source`` header, see
``rgstore.cacherelease``) into the entry, and refuses a request for another release, whether the
files are cached or fresh (nothing is cached then); only a GTF whose header names no release
leaves it a label. For Ensembl, species, release and assembly pick the files and the taxon is
the only label. NCBI releases must look like one (``110``, ``105.20220307``, ``RS_2023_10``;
``GCF_...-RS_2023_10`` is accepted and shortened), the spelling the header is compared in.

A level-2 entry (raw downloads) is identified the same way: NCBI by accession, Ensembl by
species and release. Its key is the SHA-256 of that identity's canonical JSON. Its directory is
``ncbi_raw/<taxon>/<accession>`` (the taxon of the request that first fetched it; later
requests with another taxon reuse that entry) or ``ensembl_raw/<species>/<release>``;
``RawIdentity.from_path`` maps any such directory back to its key.

The ``exon_exon_junction`` region's output depends on its block size, so that region's form (and
only that one) holds ``exon_exon_junction_block_size``: two sizes never share an entry (the seed
left it out of the key, so they collided), and every other region's key is what it was before the
option existed.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec

from .errors import InvalidInputError
from .extractderived import DEFAULT_JUNCTION_BLOCK_SIZE, check_block_size

__all__ = [
    "SOURCES",
    "REGIONS",
    "SourceParams",
    "CacheRequest",
    "RawIdentity",
    "RegionForm",
    "make_request",
    "parse_regions",
    "canonical_json",
    "sha256_key",
    "raw_identity",
    "region_forms",
    "key_params",
    "labels",
    "is_key",
    "is_key_prefix",
    "is_entry_path",
    "KEY_PREFIX_MIN",
]

SOURCES = ("ncbi", "ensembl")
REGIONS = ("gene", "transcript", "exon", "intron", "CDS", "UTR", "intergenic", "exon_exon_junction")
"""Region names in canonical spelling; input matching is case-insensitive."""

_BY_LOWER = {r.lower(): r for r in REGIONS}
# Matched whole (fullmatch: a "$" alone lets a trailing newline through) and ASCII-only (\d takes
# any script's digits): these values become directory names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_SPECIES = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
_NCBI_ASSEMBLY = re.compile(r"(GC[AF]_\d{9}\.\d+)(?:_[A-Za-z0-9_.-]+)?", re.ASCII)
_NCBI_RELEASE = re.compile(
    r"(?:(?P<acc>GC[AF]_\d{9}\.\d+)-)?(?:(?P<rs>RS_(?P<month>\d{4}_\d{2}))|(?P<num>\d{1,4}(?:\.\d{8})?))",
    re.IGNORECASE | re.ASCII,
)
_KEY = re.compile(r"^[0-9a-f]{64}$")
_ACCESSION = re.compile(r"GC[AF]_[0-9]{9}\.[0-9]+")
_RELEASE = re.compile(r"[0-9]{1,9}")
KEY_PREFIX_MIN = 8
"""Shortest key prefix ``cache show/pin/unpin`` accept (``cache ls`` prints 12)."""
_KEY_PREFIX = re.compile(rf"^[0-9a-f]{{{KEY_PREFIX_MIN},64}}$")
_LABELS = {"ncbi": ("species", "taxon", "annotation_release"), "ensembl": ("taxon",)}
"""Request fields that do not choose the downloaded files, per source: recorded, never hashed
(an NCBI release is still checked against the one the GTF holds: see the module docstring)."""
_UNRESOLVED = {"current", "latest", "newest"}
_BLOCK_SIZE_FIELD = "exon_exon_junction_block_size"  # ODT's config name for it


class SourceParams(msgspec.Struct, frozen=True, kw_only=True):
    """Where the inputs come from: species, taxon (NCBI directory group), annotation release, assembly."""

    species: str
    annotation_release: str
    taxon: str = ""
    assembly: str = ""


class CacheRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A validated request: source, its parameters, region name -> wanted, and the junction block size."""

    source: str
    source_params: SourceParams
    genomic_regions: dict[str, bool]
    junction_block_size: int = DEFAULT_JUNCTION_BLOCK_SIZE
    """Bases either side of an exon-exon junction; keyed only in the ``exon_exon_junction`` form."""

    def wanted(self) -> list[str]:
        """Region names set to true, in canonical order."""
        return [r for r in REGIONS if self.genomic_regions.get(r)]


class RawIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """What identifies one level-2 download: source plus the fields that pick the upstream directory."""

    source: str
    species: str = ""
    taxon: str = ""
    assembly: str = ""
    release: str = ""

    @property
    def key(self) -> str:
        """The level-2 entry's key: SHA-256 of the canonical JSON of what picks the download.

        The NCBI taxon only names the directory group, so it is left out: ``--taxon other`` for
        a cached accession finds the same entry instead of downloading a second copy.
        """
        fields = msgspec.to_builtins(self)
        if self.source == "ncbi":
            fields["taxon"] = ""
        return sha256_key({"level": 2, **fields})

    @property
    def path(self) -> str:
        """Where a first fetch puts the entry, relative to the cache root (release or assembly is in it)."""
        if self.source == "ncbi":
            return f"ncbi_raw/{self.taxon}/{self.assembly}"
        return f"ensembl_raw/{self.species}/{self.release}"

    @classmethod
    def from_path(cls, rel: str) -> RawIdentity | None:
        """The identity whose ``path`` is ``rel`` (relative to the cache root), or None if it is not one."""
        parts = rel.split("/")
        if len(parts) != 3:
            return None
        if parts[0] == "ncbi_raw":
            return cls(source="ncbi", taxon=parts[1], assembly=parts[2])
        if parts[0] == "ensembl_raw":
            return cls(source="ensembl", species=parts[1], release=parts[2])
        return None


class RegionForm(msgspec.Struct, frozen=True, kw_only=True):
    """One region of a request: its canonical form, key and level-1 directory (relative to the cache root)."""

    region: str
    key: str
    form: dict[str, Any]

    @property
    def path(self) -> str:
        """``cached_genomic_<key>``."""
        return f"cached_genomic_{self.key}"

    @property
    def file(self) -> str:
        """The region FASTA inside the entry directory."""
        return f"annotation/{self.region}.fna"

    @property
    def block_size(self) -> int:
        """The junction block size this form was keyed with (the default for other regions, which ignore it)."""
        return int(self.form.get(_BLOCK_SIZE_FIELD, DEFAULT_JUNCTION_BLOCK_SIZE))


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, booleans as JSON booleans: the bytes a key hashes."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def sha256_key(obj: Any) -> str:
    """SHA-256 (hex) of ``obj``'s canonical JSON."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def is_key(text: str) -> bool:
    """Whether ``text`` looks like a cache key (64 lowercase hex digits)."""
    return bool(_KEY.fullmatch(text))


def is_key_prefix(text: str) -> bool:
    """Whether ``text`` could abbreviate a key: 8 to 64 lowercase hex digits."""
    return bool(_KEY_PREFIX.fullmatch(text))


def is_entry_path(rel: str) -> bool:
    """Whether ``rel`` has the shape of a cache entry directory, so it cannot leave the cache root.

    ``cached_genomic_<key>``, ``ncbi_raw/<taxon>/<accession>`` or ``ensembl_raw/<species>/<release>``
    with path-safe parts. Paths come from events, and a mirror's events come from its upstream:
    nothing is read, written or deleted under a path that fails this check.
    """
    if rel.startswith("cached_genomic_"):
        return bool(_KEY.fullmatch(rel.removeprefix("cached_genomic_")))
    parts = rel.split("/")
    if len(parts) != 3:
        return False
    if parts[0] == "ncbi_raw":
        return bool(_NAME.fullmatch(parts[1]) and _ACCESSION.fullmatch(parts[2]))
    if parts[0] == "ensembl_raw":
        return bool(_SPECIES.fullmatch(parts[1]) and _RELEASE.fullmatch(parts[2]))
    return False


def parse_regions(spec: str | list[str] | dict[str, Any]) -> dict[str, bool]:
    """``"gene,exon"``, a list of names or a ``{name: bool}`` map -> ``{canonical name: True}`` if wanted.

    String values ``"true"``/``"false"`` (what the seed's web form sent) are accepted and turned
    into booleans; anything else is an error, as is a request with no region set.
    """
    if isinstance(spec, str):
        items: dict[str, Any] = {part.strip(): True for part in spec.split(",") if part.strip()}
    elif isinstance(spec, list):
        items = {str(part).strip(): True for part in spec}
    else:
        items = dict(spec)
    out: dict[str, bool] = {}
    for name, value in items.items():
        canon = _BY_LOWER.get(name.lower())
        if canon is None:
            raise InvalidInputError(f"unknown genomic region {name!r}; known: {', '.join(REGIONS)}")
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise InvalidInputError(f"genomic region {name!r} must be true or false, got {value!r}")
        if value:
            out[canon] = True
    if not out:
        raise InvalidInputError(f"no genomic region requested; choose from {', '.join(REGIONS)}")
    return out


def _check(what: str, value: str, pattern: re.Pattern[str], hint: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidInputError(f"invalid {what} {value!r}: {hint}")
    return value


def make_request(
    source: str,
    *,
    species: str,
    release: str,
    taxon: str | None = None,
    assembly: str | None = None,
    regions: str | list[str] | dict[str, Any] = "gene",
    junction_block_size: int = DEFAULT_JUNCTION_BLOCK_SIZE,
) -> CacheRequest:
    """Validate and normalise a request; every field that names a directory is checked to be path-safe.

    ``junction_block_size`` (a positive int) is checked whatever the regions, but keyed only for
    ``exon_exon_junction``.
    """
    src = source.lower()
    if src not in SOURCES:
        raise InvalidInputError(f"unknown source {source!r}; choose ncbi or ensembl")
    sp = _check("species", species, _SPECIES, "letters, digits and underscores, e.g. homo_sapiens").lower()
    rel = str(release)
    if rel.lower() in _UNRESOLVED:
        raise InvalidInputError(
            f"release {rel!r} is not a fixed release; name it (e.g. 110), so the cache key says what it holds"
        )
    _check("release", rel, _NAME, "letters, digits, '.', '_' or '-', e.g. 110 or RS_2023_10")
    asm = assembly or ""
    if src == "ncbi":
        if not asm:
            raise InvalidInputError("an NCBI request needs --assembly, e.g. GCF_000001405.40")
        match = _NCBI_ASSEMBLY.fullmatch(asm)
        if match is None:
            raise InvalidInputError(
                f"invalid NCBI assembly {asm!r}: expected an accession like GCF_000001405.40"
            )
        asm = match.group(1)
        rel = _ncbi_release(rel, asm)
        tax = _check("taxon", taxon or sp, _NAME, "letters, digits, '.', '_' or '-', e.g. 9606")
    else:
        if not _RELEASE.fullmatch(rel):  # the same pattern entry paths are checked with
            raise InvalidInputError(f"invalid Ensembl release {rel!r}: expected a number of 1-9 digits, e.g. 110")
        if rel != str(int(rel)):  # "0110" would be its own key and path, and upstream has no release-0110
            raise InvalidInputError(f"invalid Ensembl release {rel!r}: write it without leading zeros ({int(rel)})")
        if asm:
            _check("assembly", asm, _NAME, "e.g. GRCh38")
        tax = _check("taxon", taxon, _NAME, "e.g. 9606") if taxon else ""
    params = SourceParams(species=sp, annotation_release=rel, taxon=tax, assembly=asm)
    return CacheRequest(
        source=src,
        source_params=params,
        genomic_regions=parse_regions(regions),
        junction_block_size=check_block_size(junction_block_size),
    )


def _ncbi_release(rel: str, accession: str) -> str:
    """An NCBI annotation release in canonical spelling: ``110``, ``105.20220307`` or ``RS_2023_10``."""
    match = _NCBI_RELEASE.fullmatch(rel)
    month = match.group("month") if match else None
    if match is None or (month is not None and not 1 <= int(month[5:]) <= 12):
        raise InvalidInputError(
            f"invalid NCBI release {rel!r}: expected an annotation release number (e.g. 110 or "
            f"105.20220307) or name (e.g. RS_2023_10)"
        )
    acc = match.group("acc")
    if acc is not None and acc.upper() != accession:
        raise InvalidInputError(f"release {rel!r} names assembly {acc}, but the request is for {accession}")
    return f"RS_{month}" if month is not None else str(match.group("num"))


def key_params(request: CacheRequest) -> dict[str, Any]:
    """The request's source parameters as keys hash them: labels blanked (see the module docstring)."""
    params: dict[str, Any] = msgspec.to_builtins(request.source_params)
    for name in _LABELS[request.source]:
        params[name] = ""
    return params


def labels(request: CacheRequest) -> dict[str, Any]:
    """The request's label fields (recorded with an entry, not part of its key)."""
    params: dict[str, Any] = msgspec.to_builtins(request.source_params)
    return {name: params[name] for name in _LABELS[request.source] if params[name]}


def raw_identity(request: CacheRequest) -> RawIdentity:
    """The level-2 download a request needs."""
    p = request.source_params
    if request.source == "ncbi":
        # Species is not part of an NCBI download's identity: the accession alone picks the directory,
        # and identity must map one-to-one onto the entry's path.
        return RawIdentity(source="ncbi", taxon=p.taxon, assembly=p.assembly)
    return RawIdentity(source="ensembl", species=p.species, release=p.annotation_release)


def region_forms(
    request: CacheRequest, inputs: dict[str, dict[str, Any]], extractor: str
) -> list[RegionForm]:
    """One form per wanted region, each keyed by SHA-256 over request, region, inputs and extractor.

    The ``exon_exon_junction`` form also holds the block size; no other form does.

    ``inputs`` maps an input role (``genome``, ``annotation``) to facts identifying its bytes
    (sha256 and size of the raw download).
    """
    params = key_params(request)
    forms: list[RegionForm] = []
    for region in request.wanted():
        form: dict[str, Any] = {
            "source": request.source,
            "source_params": params,
            "genomic_regions": {region: True},
            "extractor": extractor,
            "inputs": inputs,
        }
        if region == "exon_exon_junction":
            form[_BLOCK_SIZE_FIELD] = request.junction_block_size
        forms.append(RegionForm(region=region, key=sha256_key(form), form=form))
    return forms
