"""`rgstore verify`: the log's seqs and hash chain, views against a fresh replay, every blob, cache file and sequence.

Nothing is trusted: records are re-hashed from h[0], views are refolded into a scratch LMDB
environment and compared by digest (then key by key to name the first difference), every
blob file is re-hashed, every live cache entry's files are re-hashed against the sha256 their
insert recorded (a mirror's not-yet-fetched ones are noted, like its blobs), and every genome
sequence file in the RefgetStore is re-hashed against its refget digest. The report names the
first bad seq, view key or file, and a kind of content missing wholesale (a store replayed from
a log export without its blobs/, cache/ or refget/) gets one hint on top of its per-file problems.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from .checkpoints import out_of_step, read_checkpoint
from .codec import chain_hash, decode_envelope, genesis_hash, unframe
from .diskspace import free_bytes
from .environment import Db, Environment, Txn
from .errors import ChainError, DiskWriteError, IntegrityError, NotFoundError, RgstoreError
from .events import Envelope
from .log import EventLog, decode_failure
from .progress import ProgressFactory, null_progress
from .store import REBUILD_BATCH, Store
from .views import SEQ, FoldContext, View
from .views.registry import all_views

__all__ = ["VerifyReport", "verify_store", "view_digests", "referenced_blobs"]


class VerifyReport(msgspec.Struct, kw_only=True):
    """The outcome of a verify run; ``ok`` is False if any problem was found."""

    events: int = 0
    blobs: int = 0
    problems: list[str] = []
    first_bad_seq: int = 0
    unreferenced_blobs: list[str] = []
    stray_files: list[str] = []
    """Files under blobs/ that are not blobs (wrong name or folder): reported, never used or deleted."""
    unfetched_blobs: list[str] = []
    """On a mirror: referenced blobs not pulled yet (`mirror pull --with-blobs`)."""
    sequences: int = 0
    unfetched_sequences: int = 0
    """Sequences of remote genomes (or on a mirror) not fetched yet: read on first use."""
    cache_files: int = 0
    """Files of live cache entries checked (each re-hashed against the sha256 its insert recorded)."""
    unfetched_cache_files: list[str] = []
    """On a mirror: cache files not pulled yet (`mirror pull --with-blobs`); a damaged one is a problem."""
    view_digests: dict[str, str] = {}
    lagging_indexes: list[str] = []
    """Audit indexes whose readers fall back to the log (``View.reads_fall_back``) that an older rgstore left
    behind the head, on a store this process may not write: slower audits until a writable open, not errors."""
    repaired: list[str] = []
    """Views the store's open found out of step with the log (a damaged or missing checkpoint) and rebuilt
    before these checks ran: the store was inconsistent when verify started, so each is also a problem."""
    missing_content: dict[str, list[int]] = {}
    """Kinds of content ("blobs", "cache_files", "sequences") the store holds none or nearly none of: each
    maps to [missing, referenced]. The log's own store lacks them wholesale, as after `replay` of an export."""
    hint: str = ""
    """One line on what the problems mean together and what to do ("" if nothing to add): see ``missing_content``."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong (unreferenced blobs are reported, not errors)."""
        return not self.problems


def _contents(view: View, txn: object, environment: Environment) -> Iterator[tuple[str, bytes, bytes]]:
    return view.contents(txn, environment)  # type: ignore[arg-type]


def view_digests(store: Store) -> dict[str, str]:
    """sha256 over each view's (sub-db, key, value) triples, in order: equal digests, equal views."""
    out: dict[str, str] = {}
    with store.read() as txn:
        for view in store.views:
            h = hashlib.sha256()
            for name, key, value in _contents(view, txn, store.environment):
                h.update(b"%d:%s%d:%s%d:%s" % (len(name), name.encode(), len(key), key, len(value), value))
            out[view.name] = h.hexdigest()
    return out


def referenced_blobs(store: Store) -> set[str]:
    """sha256 of every blob some view's reachable state needs."""
    refs: set[str] = set()
    with store.read() as txn:
        for view in store.views:
            refs.update(view.referenced_blobs(txn, store.environment))
    return refs


def _check_log(store: Store, report: VerifyReport, progress: ProgressFactory) -> None:
    with store.read() as txn:
        head, head_hash = store.log.head(txn)
        prev = genesis_hash(store.log.log_id(txn))
        expected = 1
        bar = progress("verify log", total=head, unit="ev")
        try:
            for seq, record in store.log.records(txn):
                if seq != expected:
                    raise ChainError(expected, f"missing (next record is seq {seq})")
                chain, payload = unframe(record, seq)
                if chain_hash(prev, seq, payload, hashlib.sha256) != chain:
                    raise ChainError(seq, "hash chain mismatch: the record was altered")
                try:
                    envelope = decode_envelope(payload)
                except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                    raise decode_failure(seq, exc) from None  # a newer writer's record: refused, not a problem found
                if envelope.seq != seq:
                    raise ChainError(seq, f"payload claims seq {envelope.seq}")
                prev, expected = chain, expected + 1
                report.events += 1
                bar.update()
            if expected - 1 != head:
                raise ChainError(expected, f"log ends at seq {expected - 1} but the head says {head}")
            if head and prev != head_hash:
                raise ChainError(head, "head hash in meta differs from the chain")
        except ChainError as exc:
            report.problems.append(str(exc))
            report.first_bad_seq = exc.seq
        finally:
            bar.close()


class _ReplayContext(FoldContext):
    """A fold into verify's scratch views that reads earlier records from the store's own log (same read txn).

    The scratch then holds the views alone, not a second copy of the log: its size follows the
    views, not the store's whole history, which matters once the log outgrows ``$TMPDIR``.
    """

    __slots__ = ("_source",)

    def __init__(self, txn: Txn, environment: Environment, source: Txn, log: Db) -> None:
        super().__init__(txn, environment)
        self._source = source
        self._log = log

    def event_at(self, seq: int) -> Envelope:
        """The envelope the store's log holds at ``seq``."""
        record = self._source.get(SEQ.pack(seq), db=self._log)
        if record is None:
            raise LookupError(f"no log record at seq {seq}")
        return decode_envelope(unframe(record, seq)[1])


def _no_scratch_room(store: Store, tmp: str, exc: BaseException) -> DiskWriteError:
    """The error for a scratch replay ``$TMPDIR`` had no room for: where, how much it needs, how to point it elsewhere."""
    env = store.environment
    with store.read() as txn:
        pages = sum(
            int(s["branch_pages"]) + int(s["leaf_pages"]) + int(s["overflow_pages"])
            for s in (env.stat_db(n, txn) for view in store.views for n in view.dbs if env.has_db(n))
        )
    need = pages * int(env.env.stat()["psize"])
    free = free_bytes(Path(tmp))
    return DiskWriteError(
        f"verify replays the log into scratch views under {Path(tmp).parent} ($TMPDIR) and ran out of room there "
        f"({free or 0:,} bytes free; this store's views alone take {need:,}; {_cause(exc)}); the store was not changed: set TMPDIR "
        "to a directory with room, e.g. `TMPDIR=/var/tmp rgstore verify`"
    )


def _cause(exc: BaseException) -> str:
    """What the scratch write failed with: LMDB's own words when the failure wrapped them."""
    inner = exc.__context__ if isinstance(exc, DiskWriteError) and exc.__context__ is not None else exc
    return str(inner)


def _check_views(store: Store, report: VerifyReport, progress: ProgressFactory) -> None:
    live = view_digests(store)
    report.view_digests = live
    # Behind the head for want of a writable open, not damaged (``out_of_step`` names damage): no reader trusts them.
    lagging = {view.name for view, why in out_of_step(store) if view.reads_fall_back and not why}
    report.lagging_indexes = sorted(lagging)
    with tempfile.TemporaryDirectory(prefix="rgstore-verify-") as tmp:
        try:
            scratch = Environment(Path(tmp), readonly=False)
        except (RgstoreError, OSError) as exc:
            raise _no_scratch_room(store, tmp, exc) from None
        try:
            views = all_views()
            scratch.open_dbs(EventLog.db_names(views))
            log = EventLog(scratch, views)
            with store.read() as txn:
                head, _ = store.log.head(txn)
                bar = progress("verify views", total=head, unit="ev")
                batch: list[tuple[int, bytes]] = []

                def flush() -> None:
                    def fold(stx: Txn) -> None:
                        ctx = _ReplayContext(stx, scratch, txn, store.environment.db("log"))
                        log.fold_batch(ctx, [decode_envelope(unframe(r, s)[1]) for s, r in batch])

                    try:
                        scratch.write(fold)
                    except DiskWriteError as exc:
                        raise _no_scratch_room(store, tmp, exc) from None
                    bar.update(len(batch))
                    batch.clear()

                # Batches grow from 1,000 events to REBUILD_BATCH: a 20,000-event first fold kept the bar at 0%
                # for seconds, and only the first few (cheap) commits are added. Boundaries leave the folds' bytes alone.
                size = min(1_000, REBUILD_BATCH)
                try:  # closed on an error too: a Python caller's terminal is left without a stale bar
                    for seq, record in store.log.records(txn, upto=head):
                        batch.append((seq, bytes(record)))
                        if len(batch) >= size:
                            flush()
                            size = min(size * 2, REBUILD_BATCH)
                    flush()
                finally:
                    bar.close()
                with scratch.read() as stx:
                    for view, fresh_view in zip(store.views, views):
                        if view.name in lagging:
                            continue
                        mismatch = _first_difference(
                            _contents(view, txn, store.environment), _contents(fresh_view, stx, scratch)
                        )
                        if mismatch:
                            report.problems.append(f"view {view.name!r} disagrees with a fresh replay: {mismatch}")
                        report.problems.extend(
                            f"{path} disagrees with the {view.name} view (a refresh was lost); run `rgstore rebuild`"
                            for path in _settled_drift(view, store)
                        )
                        cp = read_checkpoint(store.log, txn, view)
                        if cp != (view.version, head):
                            report.problems.append(
                                f"view {view.name!r} checkpoint is {cp if cp is not None else 'malformed'}, expected "
                                f"({view.version}, {head}); run `rgstore rebuild`"
                            )
        finally:
            scratch.close()


_DRIFT_LOOKS = 5
_DRIFT_WAIT_S = 30.0


def _settled_drift(view: View, store: Store) -> list[str]:
    """The view's outside-copy drift that no command still refreshing those copies explains.

    A command holds its pending-sync mark from before its commit until its refresh is done, so
    drift seen while a mark is held, or while the head moved, may be a refresh in flight (another
    process's `alias set` just committed): wait for those marks and look again.
    """
    from .pendingsync import held_marks, wait_released

    drift: list[str] = []
    for _ in range(_DRIFT_LOOKS):
        before, head = held_marks(store.path), store.head()[0]
        drift = view.external_drift(store)
        after = held_marks(store.path)
        if not drift or (not before and not after and store.head()[0] == head):
            return drift
        wait_released([*before, *after], timeout=_DRIFT_WAIT_S)
    return drift


def _first_difference(
    live: Iterator[tuple[str, bytes, bytes]], fresh: Iterator[tuple[str, bytes, bytes]]
) -> str:
    sentinel = ("", b"", b"")
    while True:
        a = next(live, sentinel)
        b = next(fresh, sentinel)
        if a == b:
            if a is sentinel:
                return ""
            continue
        if a is sentinel:
            return f"missing key {b[1]!r} in {b[0]}"
        if b is sentinel or (a[0], a[1]) < (b[0], b[1]):
            return f"unexpected key {a[1]!r} in {a[0]}"
        if (a[0], a[1]) > (b[0], b[1]):
            return f"missing key {b[1]!r} in {b[0]}"
        return f"value of key {a[1]!r} in {a[0]} differs"


def _check_blobs(store: Store, report: VerifyReport, progress: ProgressFactory) -> tuple[int, int]:
    """Re-hash every blob file; (missing, referenced) counts the blobs the views need that are not there."""
    # References first, files second: a blob is on disk before any event names it, so a command that
    # commits while verify runs cannot make a referenced blob look missing.
    refs = referenced_blobs(store)
    present = list(store.blobs.all())
    vanished: set[str] = set()  # deleted since the listing: `rgstore gc` may run beside verify
    bar = progress("verify blobs", total=len(present), unit="blob")
    try:
        for sha in present:
            try:
                store.blobs.verify(sha)
            except NotFoundError:
                vanished.add(sha)
            except IntegrityError as exc:
                report.problems.append(f"{store.blobs.path(sha)}: {exc} (adding the original file again, e.g. "
                                       "`rgstore refpkg update NAME KEY=FILE`, replaces it)")
            except OSError as exc:
                report.problems.append(f"{store.blobs.path(sha)}: unreadable ({exc.strerror})")
            report.blobs += 1
            bar.update()
    finally:
        bar.close()
    have = set(present) - vanished
    with store.read() as txn:
        replica = store.log.meta_get(txn, "replica_of") is not None
    if replica:
        # A mirror fetches blobs on `mirror pull --with-blobs`; until then their absence is expected.
        report.unfetched_blobs = sorted(refs - have)
        refs &= have
    missing = refs - have
    if missing:
        # A command that committed meanwhile may have dropped the reference, and gc the file: only
        # blobs the views still reference now are missing.
        missing &= referenced_blobs(store)
    gone = 0
    for sha in sorted(missing):
        try:
            if store.blobs.exists(sha):
                continue
            report.problems.append(f"{store.blobs.path(sha)}: referenced blob is missing")
        except NotFoundError:  # raised by both for a name that is no sha256 (a raw append can hold one)
            report.problems.append(f"a view references {sha!r}, which is not a sha256 digest")
        gone += 1
    report.unreferenced_blobs = sorted(have - refs)
    report.stray_files = [str(path) for path in store.blobs.strays()]
    return gone, len(refs)


def _check_cache(store: Store, report: VerifyReport, progress: ProgressFactory) -> tuple[int, int]:
    """Every live cache entry's files, re-hashed by ``cache verify``'s own check (which evicts nothing here).

    Returns (missing, checked): the live entries' files a primary lacks, and all their files.
    """
    from .cachegc import MISSING, verify

    found = verify(store.cache, progress=progress)
    report.cache_files = found.files
    with store.read() as txn:
        replica = store.log.meta_get(txn, "replica_of") is not None
    # A mirror fetches cache files on `mirror pull --with-blobs` (and its upstream holds them); a primary made them.
    refetch = "move it aside and `rgstore mirror pull SOURCE --with-blobs` fetches it again" if replica else \
        "`rgstore cache verify --evict` evicts the entry, and the next request that needs it builds it again"
    live: set[str] | None = None
    gone = 0
    for p in found.problems:
        if p.problem != MISSING:
            report.problems.append(f"{p.file}: cache file of entry {p.key} is corrupt ({p.problem}); {refetch}")
            continue
        if live is None:  # `cache gc` may have evicted the entry (then deleted its files) since the listing
            live = {e.key for e in store.cache.ls()}
        if p.key not in live or Path(p.file).is_file():
            continue
        if replica:
            report.unfetched_cache_files.append(p.file)
        else:
            report.problems.append(f"{p.file}: cache file of entry {p.key} is missing; {refetch}")
            gone += 1
    return gone, found.files


_DEFAULT_SEQ_TEMPLATE = "sequences/%s2/%s.seq"


def _sequence_files(store: Store) -> Iterator[tuple[str, int, str, bool]]:
    """(bare sha512t24u digest, length, "genome/name" naming it, fetched lazily?) of every recorded sequence."""
    from .views.genomes import all_genomes

    with store.read() as txn:
        replica = store.log.meta_get(txn, "replica_of") is not None
        seen: dict[str, tuple[int, str, bool]] = {}
        for genome in all_genomes(txn, store.environment):
            lazy = replica or bool(genome.source.remote_url)
            for name, length, digest in zip(genome.names, genome.lengths, genome.sequences, strict=False):
                bare = digest.removeprefix("SQ.")
                known = seen.get(bare)
                if known is None or (known[2] and not lazy):  # a local genome makes the file required
                    seen[bare] = (length, f"{genome.digest}/{name}", lazy)
    for bare, (length, where, lazy) in sorted(seen.items()):
        yield bare, length, where, lazy


def _check_sequences(store: Store, report: VerifyReport, progress: ProgressFactory) -> tuple[int, int]:
    """Re-hash every sequence file; (missing, required) counts the local genomes' files that are not there."""
    import base64
    import json

    refget = store.refget_path
    try:
        template = str(json.loads((refget / "rgstore.json").read_bytes()).get("seqdata_path_template")
                       or _DEFAULT_SEQ_TEMPLATE)
    except (OSError, ValueError):
        template = _DEFAULT_SEQ_TEMPLATE
    wanted = list(_sequence_files(store))
    indexed: list[tuple[str, str]] = []  # intact local files, to look up in the RefgetStore's index
    doubtful: list[tuple[str, str]] = []  # (digest, problem): a `genome remove` + gc meanwhile would explain it
    absent: set[str] = set()  # digests of required files not there at all (among ``doubtful``)
    with store.read() as txn:
        mirrored = bool(store.log.meta_get(txn, "replica_of"))
    # A mirror gets missing sequences from its upstream; a primary or a replayed copy only from FASTA or a copy.
    refill = ("`rgstore mirror pull SOURCE --with-sequences`" if mirrored
              else "`rgstore genome init`, or copy refget/ from the store the log came from")
    bar = progress("verify sequences", total=sum(length for _, length, _, _ in wanted), unit="B")
    try:
        for bare, length, where, lazy in wanted:
            path = refget / template.replace("%s2", bare[:2]).replace("%s", bare)
            if not path.is_file():
                if lazy:
                    report.unfetched_sequences += 1
                else:
                    absent.add(bare)
                    doubtful.append((bare, f"{path}: sequence {where} is missing (re-add the genome's FASTA with "
                                           f"{refill})" if not mirrored else
                                     f"{path}: sequence {where} is missing (fetch it with {refill})"))
                bar.update(length)
                continue
            digest, size = hashlib.sha512(), 0
            try:
                with open(path, "rb") as fh:
                    while chunk := fh.read(1 << 22):
                        digest.update(chunk)
                        size += len(chunk)
                        bar.update(len(chunk))
            except OSError as exc:
                doubtful.append((bare, f"{path}: sequence {where} is unreadable ({exc.strerror})"))
                continue
            got = base64.urlsafe_b64encode(digest.digest()[:24]).decode()
            if size != length or got != bare:
                report.problems.append(f"{path}: sequence {where} is corrupt (its bytes do not hash to its digest; "
                                       "re-add the genome's FASTA with `rgstore genome init` to rewrite it)")
            elif not lazy:
                indexed.append((bare, where))
            report.sequences += 1
    finally:
        bar.close()
    _check_refget_index(store, report, indexed, doubtful)
    required = sum(1 for _, _, _, lazy in wanted if not lazy)
    if not doubtful:
        return 0, required
    still = {bare for bare, _, _, lazy in _sequence_files(store) if not lazy}
    report.problems.extend(problem for bare, problem in doubtful if bare in still)
    return len(absent & still), required


def _check_refget_index(
    store: Store, report: VerifyReport, wanted: list[tuple[str, str]], doubtful: list[tuple[str, str]],
) -> None:
    """Sequence files are read through the RefgetStore's index: each local one must be listed there."""
    if not wanted:
        return
    from .refgetstore import open_refget

    refget = store.refget_path
    if not (refget / "rgstore.json").is_file():
        report.problems.append(f"{refget / 'rgstore.json'} is missing: the RefgetStore cannot be opened (a writable "
                               "open, e.g. `rgstore rebuild`, recreates it)")
        return
    try:
        handle = open_refget(store, write=False)
    except RgstoreError as exc:
        report.problems.append(f"{refget}: {exc}")
        return
    except Exception as exc:  # gtars refuses a damaged index with its own exception types
        report.problems.append(f"{refget}: the RefgetStore does not open ({exc}); if {refget / 'rgstore.json'} is "
                               "damaged, move it aside and a writable open (e.g. `rgstore rebuild`) recreates it")
        return
    for bare, where in wanted:
        if handle.get_sequence_metadata(bare) is None:
            doubtful.append((bare, f"{refget}: sequence {where} ({bare}) is not in the RefgetStore's index, so it "
                                   "cannot be read (re-add the genome's FASTA with `rgstore genome init`)"))
    _check_collections(store, report, handle)


_REINDEX = ("re-add the genome's FASTA with `rgstore genome init` to rewrite it, or copy it back from a backup or "
            "the store the log came from")


def _check_collections(store: Store, report: VerifyReport, handle: Any) -> None:
    """Each genome's RefgetStore collection index (``collections/<digest>.rgsi``) is there and lists its sequences.

    gtars reads that file to serve the collection and to re-check a re-added FASTA: a damaged one
    made `genome init` of the same FASTA fail while verify said ok. That re-add now rewrites it
    (``refgetstore._reindex``): the hint names it first. A mirror's and a remote genome's index may
    be absent (fetched on first read, or never kept): only a local genome's on a primary must be there.
    """
    from .views.genomes import all_genomes

    collections = store.refget_path / "collections"
    with store.read() as txn:
        replica = store.log.meta_get(txn, "replica_of") is not None
        genomes = [(g.digest, list(g.names), list(g.lengths), list(g.sequences), replica or bool(g.source.remote_url))
                   for g in all_genomes(txn, store.environment)]
    missing: list[str] = []
    for digest, names, lengths, sequences, lazy in genomes:
        path = collections / f"{digest}.rgsi"
        if not path.is_file():
            if not lazy:
                missing.append(digest)
            continue
        try:
            level2 = handle.get_collection_level2(digest)
            theirs = (list(level2["names"]), list(level2["lengths"]), list(level2["sequences"]))
        except Exception as exc:  # gtars refuses a damaged index with its own exception types
            report.problems.append(f"{path}: collection index of genome {digest} is unreadable ({exc}); {_REINDEX}")
            continue
        if theirs != (names, lengths, sequences):
            report.problems.append(f"{path}: collection index of genome {digest} disagrees with the log (names, "
                                   f"lengths or sequence digests); {_REINDEX}")
    if missing:  # a `genome remove` and `gc` meanwhile would explain it: only genomes still recorded count
        with store.read() as txn:
            still = {g.digest for g in all_genomes(txn, store.environment)}
        for digest in missing:
            path = collections / f"{digest}.rgsi"
            if digest in still and not path.is_file():
                report.problems.append(f"{path}: collection index of genome {digest} is missing, so its sequences "
                                       f"cannot be read; {_REINDEX}")


def verify_store(store: Store, *, progress: ProgressFactory = null_progress) -> VerifyReport:
    """Run every check; never raises for what it finds (see ``VerifyReport.problems``)."""
    report = VerifyReport(repaired=list(store.repaired))
    report.problems.extend(f"{what} when verify opened the store" for what in store.repaired)
    from .pendingsync import abandoned_marks

    if abandoned_marks(store.path):  # left only when this process may not write the store
        from .sharing import outside_copies_hint

        refused = outside_copies_hint(store.refget_path)
        report.problems.append("a command was killed (or refused by the disk or permissions) before refreshing the "
                               "alias TSVs / FHR files under refget/; they may be stale until a writable open "
                               "(e.g. `rgstore rebuild`) refreshes them"
                               + (f", run by a user who may write there ({refused})" if refused else ""))
    _check_log(store, report, progress)
    if not report.problems:
        _check_views(store, report, progress)
    tallies = {"blobs": _check_blobs(store, report, progress), "cache_files": _check_cache(store, report, progress)}
    if not report.first_bad_seq:
        tallies["sequences"] = _check_sequences(store, report, progress)
    report.missing_content = {kind: [gone, total] for kind, (gone, total) in tallies.items() if _wholesale(gone, total)}
    report.hint = _content_hint(report.missing_content)
    return report


def _wholesale(gone: int, total: int) -> bool:
    """Missing all, or all but a tenth (content added since), of a kind: no file went astray, the tree never came."""
    return gone > 0 and total - gone <= total // 10


_KINDS = {"blobs": ("blobs/", "blob"), "cache_files": ("cache/", "cache file"), "sequences": ("refget/", "sequence")}


def _content_hint(missing: dict[str, list[int]]) -> str:
    """The one line that explains content missing wholesale: the log came without it, and how to bring it."""
    if not missing:
        return ""
    held = [f"{_KINDS[kind][0]} {total - gone} of {total} {_KINDS[kind][1]}{'' if total == 1 else 's'}"
            for kind, (gone, total) in missing.items()]
    dirs = [_KINDS[kind][0] for kind in missing]
    copy = dirs[0] if len(dirs) == 1 else f"{', '.join(dirs[:-1])} and {dirs[-1]}"
    return (f"the log references content this store does not hold (present: {', '.join(held)}), as after "
            f"`rgstore replay` of a `rgstore log export` (the log only): copy {copy} from the store the log came "
            "from in place of these, then run `rgstore rebuild`; or there run `rgstore log publish DIR --with-blobs --with-refget`, "
            "then `rgstore --store NEW mirror pull DIR --with-blobs --with-sequences` into a new, empty store"
            + ("; or, if this is the log's own store and its cache files were deleted, `rgstore cache verify --evict` "
               "forgets those entries" if "cache_files" in missing else ""))
