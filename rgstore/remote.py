"""Remote genomes: record a genome held by a remote RefgetStore or seqcol server, fetch its sequences later.

``init_remote`` finds where a URL keeps its sequences (a static RefgetStore: ``URL/rgstore.json``
with keys version, mode and seqdata_path_template; else a seqcol or refgenie server whose
``/service-info`` or ``/seqcol/service-info`` advertises ``seqcol.refget_store.url``), reads the
genome's level-2 collection, checks that it hashes to the requested digest, and records it
(``GenomeAdded`` with ``source.remote_url`` plus one ``AliasSet`` per name, and an ``FhrSet`` for the
remote's FHR document, as ``init --fhr`` records one). No sequence is
downloaded then: ``rgstore.remotefetch`` downloads each sequence when it is first read.
Anything unreachable or non-conforming raises RemoteError, and nothing is recorded.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import msgspec
from msgspec import UNSET

from . import seqcol
from .aliases import normalise_digest, shadowed_by, split_alias
from .environment import Txn
from .errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError, RemoteError
from .events import AliasSet, FhrSet, GenomeAdded, GenomeSource
from .log import NewEvent
from .views.aliases import COLLECTION, DEFAULT_NAMESPACE, alias_stream, collection_alias
from .views.aliasnames import NAMESPACE_RE, check_new_name
from .views.genomes import genome_fhr, genome_record, genome_stream

if TYPE_CHECKING:
    from pathlib import Path

    from .genomes import InitResult
    from .store import Store

__all__ = [
    "RemoteCollection",
    "RemoteSource",
    "detect",
    "init_remote",
    "remote_collection",
]

TIMEOUT_S = 30.0
DOC_LIMIT = 256 << 20
"""The most a manifest, service-info, alias file or ``.rgsi`` index may be (a 200k-contig index is ~30 MB):
an endless answer fails instead of filling memory."""
_MANIFEST_KEYS = ("version", "mode", "seqdata_path_template")


class RemoteSource(msgspec.Struct, frozen=True, kw_only=True):
    """Where a URL keeps its sequences: ``kind`` is ``refget-store`` or ``seqcol-server``."""

    url: str
    kind: str
    store_url: str
    manifest: dict[str, Any]
    service_url: str = ""
    """The seqcol API base of a server (empty for a bare store)."""


class RemoteCollection(msgspec.Struct, frozen=True, kw_only=True):
    """A remote genome's level-2 arrays (sequences ``SQ.``-prefixed), md5s and computed level-1 digests."""

    digest: str
    names: list[str]
    lengths: list[int]
    sequences: list[str]
    md5s: list[str]
    level1: dict[str, str]


# -- HTTP -------------------------------------------------------------------------------------------


class _Http:
    """GETs with one error vocabulary: unreachable or failing servers raise RemoteError."""

    def __init__(self, timeout: float) -> None:
        import httpx

        self._httpx = httpx
        from .httpclient import new_client

        self.client = new_client(timeout=timeout, follow_redirects=True, headers={"User-Agent": "rgstore"})

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, absent: tuple[int, ...] = (404, 410)) -> bytes | None:
        """The body of ``url`` (``DOC_LIMIT`` bytes at most); None on an ``absent`` status (404, 410); RemoteError
        when unreachable or on another failure."""
        from .httpclient import failure, read_capped, redact

        shown = redact(url)
        try:
            with self.client.stream("GET", url) as response:
                if response.status_code in absent:
                    return None
                if response.status_code >= 400:
                    raise RemoteError(f"{shown} answered HTTP {response.status_code}")
                return read_capped(response, DOC_LIMIT, f"{shown}: the answer runs past {DOC_LIMIT:,} bytes, far more "
                                   "than a RefgetStore index or service document; is this a RefgetStore?")
        except self._httpx.InvalidURL as exc:
            raise InvalidInputError(redact(f"invalid URL {url!r}: {exc}")) from None
        except self._httpx.HTTPError as exc:
            raise RemoteError(failure(url, exc)) from None

    def json(self, url: str) -> Any:
        """Parsed JSON at ``url``; None on 404 or when the body is not JSON."""
        body = self.get(url)
        if body is None:
            return None
        try:
            return json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            return None


def _base(url: str) -> str:
    from .httpclient import check_url

    return check_url(url, "remote URL")  # recorded in the log: never with credentials


# -- finding the store ---------------------------------------------------------------------------------


def _is_manifest(doc: Any) -> bool:
    return isinstance(doc, dict) and all(key in doc for key in _MANIFEST_KEYS)


def _is_seqcol_service(info: Any) -> bool:
    if not isinstance(info, dict):
        return False
    kind = info.get("type")
    artifact = kind.get("artifact") if isinstance(kind, dict) else None
    return "seqcol" in info or artifact in ("refget-seqcol", "refgenie")


def detect(url: str, *, http: _Http | None = None, timeout: float = TIMEOUT_S) -> RemoteSource:
    """Find the RefgetStore behind ``url`` (a store itself, or a server advertising one)."""
    base = _base(url)
    own = http is None
    http = http or _Http(timeout)
    try:
        manifest = http.json(f"{base}/rgstore.json")
        if _is_manifest(manifest):
            return RemoteSource(url=base, kind="refget-store", store_url=base, manifest=manifest)
        for service in (base, f"{base}/seqcol"):
            info = http.json(f"{service}/service-info")
            if not _is_seqcol_service(info):
                continue  # absent, not JSON, or some other GA4GH service
            seqcol_info = info.get("seqcol")
            store = seqcol_info.get("refget_store") if isinstance(seqcol_info, dict) else None
            if not isinstance(store, dict) or not store.get("enabled") or not store.get("url"):
                raise RemoteError(
                    f"{service} is a seqcol/refgenie server but advertises no RefgetStore "
                    "(service-info seqcol.refget_store); rgstore needs one to fetch sequences"
                )
            store_url = urljoin(service + "/", str(store["url"])).rstrip("/")
            if "@" in urlsplit(store_url).netloc:  # it would be recorded in the log, replicated and served
                raise RemoteError(f"{service} advertises a RefgetStore URL with credentials in it; "
                                  "rgstore records that URL, so it refuses one carrying a password")
            manifest = http.json(f"{store_url}/rgstore.json")
            if not _is_manifest(manifest):
                raise RemoteError(
                    f"{service} advertises the RefgetStore {store_url}, but it has no valid rgstore.json"
                )
            return RemoteSource(
                url=base, kind="seqcol-server", store_url=store_url, manifest=manifest, service_url=service
            )
        raise RemoteError(
            f"{base} is neither a RefgetStore (no rgstore.json with {', '.join(_MANIFEST_KEYS)}) "
            "nor a seqcol/refgenie server (no /service-info or /seqcol/service-info)"
        )
    finally:
        if own:
            http.close()


def resolve_alias(source: RemoteSource, namespace: str, name: str, http: _Http, *, bare: bool = False) -> str:
    """The digest a remote collection alias names (server API first, then the store's alias file).

    A ``bare`` name (typed without ``ns:``) that its namespace lacks resolves in the remote's other
    namespaces (its manifest lists them), the rule local names follow (``aliases.find_genome_alias``);
    ConflictError when those point it at different genomes.
    """
    digest = _remote_alias(source, namespace, name, http)
    if digest is not None:
        return digest
    listed = source.manifest.get("collection_alias_namespaces") if bare else None
    others = [ns for ns in (listed if isinstance(listed, list) else [])
              if isinstance(ns, str) and ns != namespace and NAMESPACE_RE.fullmatch(ns)]
    hits = {ns: found for ns in sorted(set(others)) if (found := _remote_alias(source, ns, name, http)) is not None}
    if len(set(hits.values())) > 1:
        raise ConflictError(f"genome name {name!r} is ambiguous on {source.url}: " + ", ".join(
            f"{ns}:{name} -> {target}" for ns, target in hits.items()) + "; name one of them as --alias ns:name")
    if hits:
        return next(iter(hits.values()))
    raise NotFoundError(f"{source.url} has no collection alias {namespace}:{name}")


def _remote_alias(source: RemoteSource, namespace: str, name: str, http: _Http) -> str | None:
    if source.service_url:
        doc = http.json(f"{source.service_url}/alias/collection/{namespace}/{name}")
        if isinstance(doc, dict) and isinstance(doc.get("digest"), str):
            return normalise_digest(doc["digest"])
    body = http.get(f"{source.store_url}/aliases/collections/{namespace}.tsv")
    for line in (body or b"").decode("utf-8", "replace").splitlines():
        alias, _, digest = line.partition("\t")
        if alias == name and digest:
            return normalise_digest(digest.strip())
    return None


def remote_collection(source: RemoteSource, digest: str, http: _Http) -> RemoteCollection:
    """The remote's level-2 collection ``digest``, checked to hash to that digest."""
    template = str(source.manifest.get("collections_path_template") or "collections/%s.rgsi")
    if "%s" not in template or template.startswith("/") or ".." in template:
        raise RemoteError(
            f"{source.store_url}/rgstore.json has an unusable collections_path_template {template!r}"
        )
    body = http.get(f"{source.store_url}/{template.replace('%s', digest)}")
    if body is None:
        raise NotFoundError(f"{source.url} has no sequence collection {digest}")
    names: list[str] = []
    lengths: list[int] = []
    sequences: list[str] = []
    md5s: list[str] = []
    header: dict[str, str] = {}
    try:
        for line in body.decode("utf-8").splitlines():
            if line.startswith("##"):
                key, _, value = line[2:].partition("=")
                header[key] = value
            elif line and not line.startswith("#"):
                fields = line.split("\t")
                names.append(fields[0])
                lengths.append(int(fields[1]))
                sequences.append("SQ." + normalise_digest(fields[3]))
                md5s.append(fields[4] if len(fields) > 4 else "")
    except (UnicodeDecodeError, ValueError, IndexError, InvalidInputError) as exc:
        raise RemoteError(
            f"{source.url}: collection {digest} is not a readable RefgetStore .rgsi file ({exc})"
        ) from None
    if not names:
        raise RemoteError(f"{source.url}: collection {digest} lists no sequences")
    _check_records(source.url, digest, names, lengths)
    level1 = seqcol.level1(names, lengths, sequences)
    actual = seqcol.top_level_digest(level1)
    if actual != digest:
        raise IntegrityError(
            f"{source.url}: collection {digest} hashes to {actual}: the remote data is corrupt"
        )
    if header.get("lengths_digest", level1["lengths"]) != level1["lengths"]:
        raise IntegrityError(
            f"{source.url}: collection {digest} lists lengths that disagree with its lengths_digest"
        )
    return RemoteCollection(
        digest=digest, names=names, lengths=lengths, sequences=sequences, md5s=md5s, level1=level1
    )


def _server_genome(source: RemoteSource, digest: str, http: _Http) -> dict[str, Any]:
    """The refgenie ``/v4/genomes/{digest}`` record of a server source ({} for a bare store or none there)."""
    if source.kind != "seqcol-server":
        return {}
    roots = [source.url]
    if source.url.endswith("/seqcol"):  # given the seqcol mount (http://host/seqcol), /v4 is at the server's root
        roots.append(source.url.removesuffix("/seqcol"))
    for root in roots:
        try:
            record = http.json(f"{root}/v4/genomes/{digest}")
        except RemoteError:
            return {}
        if isinstance(record, dict):
            return record
    return {}


def _remote_fhr(source: RemoteSource, digest: str, told: dict[str, Any], http: _Http) -> tuple[Any, str]:
    """The remote's FHR document for ``digest`` (None: it has none) and where it came from, unchecked.

    A server's genome record (``/v4/genomes/{digest}``) carries it as ``fhr``; a bare RefgetStore as the file
    gtars writes (``fhr/{digest}.fhr.json``, also served under an rgstore server's ``/store/``), or the
    ``collections/{digest}.fhr.json`` refget's format notes name. RemoteError when it cannot be read, InvalidInputError
    when it is not JSON: ``init_remote`` warns and goes on, since provenance is no reason to refuse the genome.
    """
    from .httpclient import redact

    if "fhr" in told:  # the server's own answer, null included: its store holds the same document
        return told["fhr"], f"{source.url}'s genome record of {digest}"
    for path in (f"fhr/{digest}.fhr.json", f"collections/{digest}.fhr.json"):
        # An S3 bucket that does not let anyone list it answers 403 for a key it lacks: for this optional
        # file that is "none here", not a failure to warn about on every first init from such a store.
        body = http.get(f"{source.store_url}/{path}", absent=(403, 404, 410))
        if body is not None:
            break
    else:
        return None, ""
    where = redact(f"{source.store_url}/{path}")
    try:
        return json.loads(body), where
    except (ValueError, RecursionError):  # ValueError: not UTF-8 or not JSON
        raise InvalidInputError(f"{where}: the FHR document is not JSON") from None


def _checked_remote_fhr(source: RemoteSource, digest: str, told: dict[str, Any], http: _Http) -> tuple[
        dict[str, Any] | None, str | None]:
    """The remote's FHR document checked as a user's ``--fhr`` is (``genomes.check_fhr``), or why it is not usable."""
    from .genomes import check_fhr

    try:
        doc, where = _remote_fhr(source, digest, told, http)
        if doc is None or doc == {}:  # an empty record field is no document, not an empty one to record
            return None, None
        return check_fhr(doc, where=f"the FHR document in {where}"), None
    except (RemoteError, InvalidInputError) as exc:
        return None, " ".join(str(exc).split())[:500]  # one line: gtars' messages may run over several


def _check_records(url: str, digest: str, names: list[str], lengths: list[int]) -> None:
    """Hold a remote collection to the rules a local FASTA is validated against (RemoteError if not).

    The top-level digest covers names but not lengths, so a consistent digest proves nothing
    about either being usable: names must be non-empty, unique and free of whitespace and
    control characters, lengths non-negative.
    """
    seen: set[str] = set()
    for i, (name, length) in enumerate(zip(names, lengths), 1):
        problem = ""
        if not name:
            problem = "has no name"
        elif any(c.isspace() or unicodedata.category(c) == "Cc" for c in name):
            problem = f"name {name[:80]!r} contains whitespace or a control character"
        elif name in seen:
            problem = f"name {name[:80]!r} appears twice"
        elif length < 0:
            problem = f"{name[:80]!r} has a negative length ({length})"
        if problem:
            raise RemoteError(f"{url}: collection {digest} is not usable: sequence {i} {problem}")
        seen.add(name)


# -- recording a remote genome ----------------------------------------------------------------------------


def init_remote(
    store: Store, url: str | None, names: Sequence[str], *, digest: str | None = None,
    alias: str | None = None, description: str = "", species: str = "", circular: Sequence[str] = (),
    force: bool = False, timeout: float = TIMEOUT_S, fasta: object = None,
    fhr: dict[str, Any] | Path | str | None = None,
    seq_namespace: str | Sequence[str] | None = None,
) -> InitResult:
    """Record the genome ``digest`` (or the one remote ``alias`` names) held at ``url``, named ``names``.

    ``names`` are ``ns:name`` or bare (refgenie) as ``aliases.split_alias`` reads them.
    Sequences stay remote until read. Re-running for a recorded genome only adds new names (a
    different description, species or circular set is refused: ``genomes.check_same_metadata``);
    a name pointing at another genome is refused unless ``force``. Nothing is recorded on error.
    A genome already recorded keeps its source: a ``url`` naming another store is not recorded,
    and ``remote_not_recorded`` says so (a genome's source is part of its ``GenomeAdded`` event).
    An ``fhr`` (a dict or a JSON file path) is recorded as ``Genomes.init`` records one, replacing a
    different stored one (``fhr_replaced``). Without it the remote's FHR document, if it serves one, is
    recorded for a genome that has none (``fhr_from_remote``; a stored one is never replaced); one that
    is unreadable or not FHR 1.0 is skipped and ``fhr_not_recorded`` says why.
    ``fasta`` and ``seq_namespace`` exist so `genome init` can hand over every option:
    they belong to FASTA genomes, and giving either here is an error.
    """
    from .genomes import AliasMoved, InitResult, _fhr_doc, check_same_metadata

    if url is None:
        raise InvalidInputError("genome init needs --fasta PATH or --remote URL")
    # An empty sequence of namespaces is none given (the CLI's repeatable option passes ()).
    namespaces = seq_namespace if isinstance(seq_namespace, str) or seq_namespace else None
    for option, value in (("--fasta", fasta), ("--seq-namespace", namespaces)):
        if value is not None:
            raise InvalidInputError(f"{option} cannot be combined with --remote")
    if (digest is None) == (alias is None):
        raise InvalidInputError("name the remote genome with exactly one of --digest or --alias")
    aliases = list(dict.fromkeys(split_alias(n) for n in names))  # (namespace, name) pairs
    for _ns, local in aliases:
        check_new_name(local)
    if not aliases:
        raise InvalidInputError("a genome needs at least one name (--name)")
    wanted = normalise_digest(digest) if digest is not None else None
    given_fhr = _fhr_doc(fhr) if fhr is not None else None  # checked before any request
    http = _Http(timeout)
    try:
        source = detect(url, http=http)
        if wanted is None:
            assert alias is not None
            namespace, local = split_alias(alias)
            wanted = resolve_alias(source, namespace, local, http, bare=":" not in alias)
        collection = remote_collection(source, wanted, http)
        told = _server_genome(source, wanted, http)
        with store.read() as txn:  # the remote's never replaces a stored one: then it is neither read nor warned about
            stored_fhr = genome_fhr(txn, store.environment, wanted) is not None
        remote_fhr, fhr_problem = (_checked_remote_fhr(source, wanted, told, http) if given_fhr is None and not stored_fhr
                                   else (None, None))
    finally:
        http.close()
    # Only what the user said is held against an already recorded genome: the server's record may
    # differ from it (e.g. an FHR set there later) without the user asking for any change.
    given_species, given_circular = species, list(circular)
    # What the user does not say, an rgstore/refgenie server may: its record's circular set and species.
    if not circular:
        circular = [c for c in told.get("circular", []) if isinstance(c, str) and c in set(collection.names)]
    if not species and isinstance(told.get("species_name"), str):  # refgenie's field name
        species = told["species_name"]
    unknown = [c for c in circular if c not in set(collection.names)]
    if unknown:
        raise InvalidInputError(
            f"--circular {unknown[0]}: genome {collection.digest} has no sequence of that name"
        )
    env = store.environment
    added: list[str] = []
    moved: list[AliasMoved] = []  # those of them force took from another genome
    state: dict[str, bool] = {}
    shadows: dict[str, str] = {}
    kept: list[str] = []
    fhr_doc = given_fhr if given_fhr is not None else remote_fhr

    def command(txn: Txn) -> list[NewEvent]:
        added.clear()
        moved.clear()
        shadows.clear()
        events: list[NewEvent] = []
        existing = genome_record(txn, env, collection.digest)
        state["new"] = existing is None
        kept.clear()
        if existing is not None:
            check_same_metadata(existing, description=description, species=given_species, circular=given_circular)
            if existing.source.remote_url != source.store_url:
                kept.append(source.store_url)  # never silently: the user may think reads now come from url
        else:
            events.append(NewEvent(stream=genome_stream(collection.digest), event=GenomeAdded(
                digest=collection.digest, names=collection.names, lengths=collection.lengths,
                sequences=collection.sequences, level1=collection.level1, md5s=collection.md5s,
                description=description, species=species, circular=list(dict.fromkeys(circular)),
                source=GenomeSource(remote_url=source.store_url),
            )))
        for alias_ns, name in aliases:
            target = collection_alias(txn, env, alias_ns, name)
            if target == collection.digest:
                continue
            if target is not None and not force:
                raise ConflictError(
                    f"alias {alias_ns}:{name} already points at genome {target}; "
                    "use --force to repoint it (the old target stays in its history)"
                )
            if target is None and alias_ns == DEFAULT_NAMESPACE:  # only a refgenie name takes the bare name
                shadows.update(shadowed_by(txn, env, name, collection.digest))
            added.append(f"{alias_ns}:{name}")
            if target is not None:
                moved.append(AliasMoved(alias=f"{alias_ns}:{name}", was=target))
            events.append(NewEvent(
                stream=alias_stream(COLLECTION, alias_ns, name),
                event=AliasSet(namespace=alias_ns, name=name, digest=collection.digest),
            ))
        previous_fhr = genome_fhr(txn, env, collection.digest)
        # A given fhr replaces a different stored one, as `init --fasta --fhr` does; the remote's only fills a
        # genome that has none: the user did not ask to change what is stored (and may have set it).
        state["fhr_set"] = fhr_doc is not None and previous_fhr != fhr_doc and (
            given_fhr is not None or previous_fhr is None)
        state["fhr_replaced"] = state["fhr_set"] and previous_fhr is not None
        if fhr_doc is not None and state["fhr_set"]:
            events.append(NewEvent(stream=genome_stream(collection.digest),
                                   event=FhrSet(digest=collection.digest, fhr=fhr_doc)))
        return events

    seqs = store.transact(command)
    return InitResult(
        genome=store.genomes.show(collection.digest, by_digest=True), added=state["new"],
        aliases_added=list(added), sequence_aliases_added=0, seqs=seqs,
        shadows=shadows or UNSET, remote_not_recorded=kept[0] if kept else None, aliases_moved=list(moved),
        fhr_set=state["fhr_set"], fhr_replaced=state["fhr_replaced"],
        fhr_from_remote=state["fhr_set"] and given_fhr is None, fhr_not_recorded=fhr_problem,
    )


# -- fetching sequences on demand ----------------------------------------------------------------------------
