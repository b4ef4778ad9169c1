"""Response models: what ``/openapi.json`` documents for each route (the only module importing pydantic).

Routes encode their bodies with msgspec for speed; these models describe the same shapes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ErrorBody",
    "Health",
    "EventsHead",
    "ServiceType",
    "RefgetInfo",
    "RefgetV1Info",
    "RefgetServiceInfo",
    "SequenceAlias",
    "SequenceMetadata",
    "SequenceMetadataResponse",
    "ComparisonResult",
    "SeqcolPagination",
    "SeqcolList",
    "AttributeList",
    "SeqcolServiceInfo",
    "Pagination",
    "AliasItem",
    "AliasPage",
    "AliasRecord",
    "GenomeItem",
    "GenomePage",
    "GenomeRecord",
    "RefgenieServiceInfo",
    "RefpkgSummary",
    "RefpkgList",
    "RefpkgStep",
    "RefpkgHistory",
    "CacheEntryView",
    "CacheList",
    "StoreStatusView",
]


class _Open(BaseModel):
    """A documented object that may carry further keys."""

    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    """Every error: one line saying what failed and what to do."""

    detail: str


class Health(BaseModel):
    """Liveness plus the log position this worker sees."""

    status: str
    log_id: str
    head_seq: int


class EventsHead(BaseModel):
    """The log's identity and head: what a mirror compares before pulling ``/events``."""

    log_id: str
    head_seq: int
    head_hash: str = Field(description="hex sha256 chain hash of the head record")


# --- refget sequences ----------------------------------------------------------------------------


class ServiceType(BaseModel):
    group: str
    artifact: str
    version: str


class RefgetInfo(BaseModel):
    circular_supported: bool
    algorithms: list[str]
    identifier_types: list[str]
    subsequence_limit: int | None


class RefgetV1Info(BaseModel):
    circular_supported: bool
    algorithms: list[str]
    subsequence_limit: int | None
    supported_api_versions: list[str]


class RefgetServiceInfo(_Open):
    """GA4GH service-info for refget sequences v2 (plus v1's ``service`` section when answered as v1)."""

    id: str
    name: str
    type: ServiceType
    version: str
    refget: RefgetInfo
    service: RefgetV1Info | None = Field(default=None, description="only in a v1 media type answer")


class SequenceAlias(BaseModel):
    alias: str
    naming_authority: str


class SequenceMetadata(BaseModel):
    md5: str
    ga4gh: str
    trunc512: str
    length: int
    aliases: list[SequenceAlias]


class SequenceMetadataResponse(BaseModel):
    metadata: SequenceMetadata


# --- seqcol --------------------------------------------------------------------------------------


class ComparisonResult(BaseModel):
    """The seqcol comparison function's output."""

    digests: dict[str, str | None] = Field(description="level-0 digests of a and b; b is null for a posted "
                                                       "collection that is not a well-formed seqcol")
    attributes: dict[str, list[str]]
    array_elements: dict[str, dict[str, Any]]


class SeqcolPagination(BaseModel):
    page: int
    page_size: int
    total: int


class SeqcolList(BaseModel):
    results: list[str]
    pagination: SeqcolPagination


class AttributeList(BaseModel):
    results: list[str]
    pagination: SeqcolPagination


class SeqcolServiceInfo(_Open):
    """GA4GH service-info for the seqcol API, with its JSON schema and the RefgetStore URL."""

    id: str
    name: str
    type: ServiceType
    seqcol: dict[str, Any]


# --- refgenie-compatible -------------------------------------------------------------------------


class Pagination(BaseModel):
    offset: int
    limit: int
    total: int


class AliasItem(BaseModel):
    name: str
    namespace: str
    genome_digest: str


class AliasPage(BaseModel):
    items: list[AliasItem]
    pagination: Pagination


class AliasRecord(BaseModel):
    """refgenie's flat alias resolution: the digest, level-2 collection and FHR document."""

    alias: str
    digest: str
    source: str
    collection: dict[str, Any]
    fhr: dict[str, Any] | None


class GenomeItem(_Open):
    digest: str
    description: str
    aliases: list[str]


class GenomePage(BaseModel):
    items: list[GenomeItem]
    pagination: Pagination


class GenomeRecord(_Open):
    digest: str
    description: str
    aliases: list[str]
    fhr: dict[str, Any] | None


class RefgenieServiceInfo(_Open):
    """refgenie's service-info shape, advertising the seqcol API and the RefgetStore URL."""

    id: str
    name: str
    type: ServiceType
    refgenie: dict[str, Any]
    seqcol: dict[str, Any]


# --- refpkgs and cache ---------------------------------------------------------------------------


class RefpkgSummary(BaseModel):
    name: str
    seq: int
    time: str
    locus: str
    files: int
    rollbacks: int
    rollforwards: int


class RefpkgList(BaseModel):
    items: list[RefpkgSummary]
    pagination: Pagination


class RefpkgStep(BaseModel):
    seq: int
    state: str = Field(description="current, done (a rollback reaches it) or undone (a rollforward does)")
    time: str
    actor: str
    log: list[str]
    files: dict[str, str]
    metadata: dict[str, str]


class RefpkgHistory(BaseModel):
    name: str
    steps: list[RefpkgStep]
    pagination: Pagination


class CacheEntryView(_Open):
    """A live entry (``state: live``) or the tombstone of an evicted one (``state: evicted``)."""

    key: str
    state: str
    level: int
    path: str = Field(description="directory relative to the store's cache root")


class CacheList(BaseModel):
    items: list[CacheEntryView]
    pagination: Pagination


class StoreStatusView(_Open):
    """``rgstore status`` for this worker's store (``rgstore.status.StoreStatus``; the path withheld)."""

    log_id: str
    format_version: int
    head_seq: int
    head_time: str | None
    streams: int
    counts: dict[str, int]
    disk: list[dict[str, Any]]
    views: list[dict[str, Any]]
    pending_syncs: list[str]
    replica: dict[str, Any] | None
    problems: list[str]
    healthy: bool
    warnings: list[str] = Field(default=[], description="what opening the store left undone (not problems alone)")
    missing_content: list[str] = Field(default=[], description="content kinds referenced but none held (see verify)")
