"""The Store: one directory holding the log, its views, blobs, the RefgetStore and cache trees.

``Store.open(path)`` is the Python API; the CLI and the API server are thin shells over it.
Every mutation goes through ``Store.transact``: one LMDB write transaction that validates
against the current views, appends the command's events and folds them into every view.
"""

from __future__ import annotations

import gc as _gc
import os
import sys
from array import array
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zstandard

from .blobfetch import fetch_missing_blob
from .blobs import BlobStore
from .checkpoints import count_rebuild, out_of_step, stale_views_error
from .codec import register_dictionary, train_dictionary, unframe
from .environment import Environment, Txn
from .errors import (
    ConflictError,
    ExternalSyncError,
    InvalidInputError,
    NewerRgstoreError,
    NotFoundError,
    ReadOnlyError,
    RgstoreError,
    StoreOpenError,
    StorePermissionError,
    refuse_negative,
)
from .events import EVENT_TYPES, CodecDictionaryAdded, Envelope
from .log import FORMAT_VERSION, EventLog, NewEvent, default_actor
from .pathtext import init_command, user_path
from .pendingsync import PendingSync, abandoned_marks
from .progress import ProgressFactory, null_progress
from .sharing import SHARED_DOC, adopt_group_sharing, outside_copies_hint, store_access_refusal
from .streamreads import envelopes_at, indexed_seqs, since_floor
from .views import FoldContext, View
from .views.registry import all_views
from .views.streamindex import GLOB_CHARS, literal_prefix
from .views.streams import StreamsView

if TYPE_CHECKING:
    from .aliases import Aliases
    from .cache import Cache
    from .genomes import Genomes
    from .locus import Region
    from .refpkgs import Refpkgs
    from .verify import VerifyReport

__all__ = ["Store", "check_store_path", "default_store_path", "REBUILD_BATCH"]

REBUILD_BATCH = 20_000
"""Events folded per write transaction when rebuilding or replaying."""

DICTIONARY_AFTER = 10_000
"""Train the log's zstd dictionary once it holds this many events (see tools/bench/log.py)."""
DICTIONARY_SAMPLES = 20_000


def default_store_path() -> Path:
    """``$RGSTORE_HOME`` if set, else the platform's user data directory for rgstore."""
    env = os.environ.get("RGSTORE_HOME")
    if env:
        return user_path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("rgstore", appauthor=False))


def _refuse_newer_format(environment: Environment, root: Path) -> None:
    with environment.env.begin() as txn:
        if txn.get(b"meta") is None:
            return  # a fresh log
    meta = environment.env.open_db(b"meta", create=False)
    with environment.env.begin(db=meta) as txn:
        raw = txn.get(b"format")
    if raw is None:
        return
    if not raw.isdigit():  # int() would be a traceback; no rgstore writes anything but digits there
        raise StoreOpenError(
            f"{root}: the log's format marker {bytes(raw)[:40]!r} is not a number (its meta table is damaged); "
            "restore the store from a consistent backup (`rgstore backup`, or `rgstore replay backup.rglog --store NEW`)"
        )
    if int(raw) > FORMAT_VERSION:
        raise NewerRgstoreError(
            f"{root} was written by a newer rgstore (log format {int(raw)}, this one reads "
            f"{FORMAT_VERSION}); upgrade rgstore"
        )


def _refuse_newer_head(store: Store) -> None:
    """NewerRgstoreError if the log's newest record is one only a newer rgstore writes (an unknown event type, a higher schema).

    One record, not the whole log (an open stays O(1)): the views such a writer folded may be current,
    so no catch-up would decode its records, and this version would read or extend views it cannot
    fold. Older records meet the same refusal wherever they are decoded. A record damaged otherwise
    is left to ``verify``, which names it.
    """
    with store.read() as txn:
        seq, _ = store.log.head(txn)
        if not seq:
            return
        try:
            store.log.get(txn, seq)
        except NewerRgstoreError:
            raise
        except RgstoreError:
            pass


def _initialised(environment: Environment) -> bool:
    """Whether the log has its identity (a first command killed before committing leaves an empty environment)."""
    with environment.env.begin() as txn:
        if txn.get(b"meta") is None:
            return False
    meta = environment.env.open_db(b"meta", create=False)
    with environment.env.begin(db=meta) as txn:
        return txn.get(b"log_id") is not None


MAX_ACTOR_CHARS = 200


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; a directory on the way this user may not enter raises PermissionError.

    Not ``Path.exists``: newer Pythons answer False there, which would call a store this user may not
    enter "no rgstore store" instead of naming the directory in the way.
    """
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def check_store_path(root: Path) -> None:
    """Refuse, before anything is created, a store path LMDB and gtars cannot use or one that leads nowhere.

    Not UTF-8 (InvalidInputError), or a symbolic link (``root`` or a directory above it) to nothing
    (StoreOpenError naming the link and its target: ``mkdir`` there fails with "File exists").
    """
    try:
        os.fsencode(root).decode("utf-8")  # the bytes on disk: a Latin-1 locale decodes any name without error
    except UnicodeDecodeError:
        # Bytes that are not UTF-8 in a name (a Latin-1 directory): LMDB and gtars take UTF-8 paths only.
        # Said before anything is created there, whatever the locale.
        shown = os.fsencode(root).decode("utf-8", "backslashreplace")
        raise InvalidInputError(f"the store path {shown} is not valid UTF-8, which LMDB and gtars need; "
                                "rename the directory or choose another") from None
    try:
        str(root).encode(sys.getfilesystemencoding())  # how LMDB encodes it (strict)
    except UnicodeEncodeError:
        # UTF-8 bytes under an ASCII locale without Python's UTF-8 mode (PYTHONUTF8=0 LC_ALL=C): LMDB refuses them.
        shown = os.fsencode(root).decode("utf-8")
        raise InvalidInputError(f"the store path {shown} is not {sys.getfilesystemencoding()}, this locale's encoding "
                                "of file names, which LMDB needs; run with a UTF-8 locale, e.g. LC_ALL=C.UTF-8") from None
    for at in (root, *root.parents):
        if os.path.islink(at) and not os.path.exists(at):
            shown = os.fsencode(at).decode("utf-8", "backslashreplace")
            target = os.fsencode(os.readlink(at)).decode("utf-8", "backslashreplace")
            raise StoreOpenError(f"cannot open a store at {os.fsencode(root).decode('utf-8', 'backslashreplace')}: "
                                 f"{shown} is a symbolic link to {target}, which does not exist; create that "
                                 "directory or name another store directory")


def _check_actor(actor: str) -> None:
    """An actor is recorded on every event and printed in audits: a short single line."""
    if not actor or not actor.isprintable() or len(actor) > MAX_ACTOR_CHARS or actor != actor.strip():
        raise InvalidInputError(
            f"invalid actor {actor[:80]!r}{'...' if len(actor) > 80 else ''}: 1-{MAX_ACTOR_CHARS} printable "
            "characters without leading or trailing spaces, e.g. alice@lab"
        )


def _stream_matcher(pattern: str | None) -> Callable[[str], bool] | None:
    """A test for stream names: exact, a prefix (``refpkg:*``), or a glob with ``* ? [..]``."""
    if pattern is None:
        return None
    if pattern.endswith("*") and not any(c in pattern[:-1] for c in "*?["):
        prefix = pattern[:-1]
        return lambda stream: stream.startswith(prefix)
    if not any(c in pattern for c in "*?["):
        return lambda stream: stream == pattern
    from fnmatch import fnmatchcase

    return lambda stream: stream == pattern or fnmatchcase(stream, pattern)


def _event_filter(
    type: str | None, since: datetime | None, until: datetime | None, actor: str | None,
) -> Callable[[Envelope], bool] | None:
    """One test for the non-stream filters of ``Store.events``: type tag, [since, until) and actor (exact or glob)."""
    if type is not None and type not in EVENT_TYPES:
        raise NotFoundError(f"unknown event type {type!r}; known: {', '.join(sorted(EVENT_TYPES))}")
    if type is None and since is None and until is None and actor is None:
        return None
    # Event times are UTC; a naive bound means UTC too (as on the command line), not a TypeError per event.
    since, until = (t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t for t in (since, until))
    by_actor = _stream_matcher(actor)  # the same exact-or-glob rules as streams

    def keep(env: Envelope) -> bool:
        return ((type is None or env.event.__struct_config__.tag == type)
                and (since is None or env.time >= since) and (until is None or env.time < until)
                and (by_actor is None or by_actor(env.actor)))

    return keep


class Store:
    """An open rgstore store. Use ``Store.open``; close it (or use ``with``) when done."""

    def __init__(self, path: Path, environment: Environment, actor: str | None) -> None:
        self.path = path
        self.environment = environment
        self._actor = actor
        self.views: list[View] = all_views()
        environment.open_dbs(EventLog.db_names(self.views))
        self.log = EventLog(environment, self.views)
        # A mirror pulled without --with-blobs fetches a blob from its upstream when it is first read.
        self.blobs = BlobStore(path / "blobs", fetch_missing=partial(fetch_missing_blob, self),
                               check_in_place=environment.check_in_place)
        self._services: dict[str, Any] = {}
        with environment.read() as txn:
            self.log.load_dictionaries(txn)
            self._has_dictionary = self.log.current_dictionary(txn) != 0
        self.generation = 0
        """Bumped by every commit through this handle, so services can drop cached reads."""
        self.repaired: list[str] = []
        """Views this open found out of step with the log (damaged or missing checkpoint) and rebuilt."""
        self.warnings: list[str] = []
        """What this open left undone but went ahead without (an earlier command's outside copies still stale)."""
        self.stale_views: list[str] = []
        """Views out of step with the log that this read-only open left to its caller (``catch_up_views=False``)."""

    @property
    def actor(self) -> str:
        """Who this handle's events name: the one ``open`` was given, else user@host.

        Resolved on first use: a read never writes an event, and user@host costs it ~4 ms of imports.
        """
        if self._actor is None:
            self._actor = default_actor()
        return self._actor

    @actor.setter
    def actor(self, actor: str) -> None:
        """Name another actor on this handle's next events (checked as ``open`` checks it)."""
        _check_actor(actor)
        self._actor = actor

    # -- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: Path | str | None = None, *, readonly: bool = False, actor: str | None = None,
        progress: ProgressFactory = null_progress, allow_stale_views: bool = False, catch_up_views: bool = True,
    ) -> Store:
        """Open (in write mode: create) the store at ``path`` (default: ``default_store_path()``).

        Views whose version changed since they were last folded (an upgraded rgstore) are
        rebuilt from the log before this returns; a read-only open does that too when this
        process may write the store (views are derived data: no event is added), and otherwise
        raises StaleViewsError, unless ``allow_stale_views`` (for diagnosis: ``rgstore status``
        reports such views instead of reading them). A read-only open with ``catch_up_views=False``
        that could catch them up leaves that to its caller instead (a server answers before the
        work is done): ``stale_views`` names them, and they must not be read until then.
        """
        if actor is not None:
            _check_actor(actor)
        if path is not None and not str(path):
            raise InvalidInputError("the store path is empty; name a directory (or leave it out for the default store)")
        if path is not None and "\0" in str(path):
            # Said here, not as os.stat's bare "embedded null byte" ValueError from deep inside the open.
            raise InvalidInputError(f"the store path {str(path)!r} contains a NUL character, which no file name can hold")
        # Absolute: a notebook's `%cd` (os.chdir) must not send blobs and sequence reads to another directory.
        root = (user_path(path) if path is not None else default_store_path()).absolute()
        check_store_path(root)
        adopt_group_sharing(root)  # a group-writable store stays so, whatever this user's umask (rgstore.sharing)
        try:
            if readonly and not _exists(root / "log" / "data.mdb"):
                raise NotFoundError(f"no rgstore store at {root}; create one with `{init_command(root)}`")
            if not readonly:
                for sub in ("log", "blobs", "cache"):
                    (root / sub).mkdir(parents=True, exist_ok=True)
                if not _exists(root / "refget" / "rgstore.json"):
                    from .refgetstore import create_refget

                    create_refget(root / "refget")
        except (NotADirectoryError, FileExistsError):
            # `Store.open("hg38.fa")`: a file where the store's directory (or one inside it) belongs.
            blocker = next((p for p in (root / "log", root, *root.parents) if _exists(p) and not p.is_dir()), root)
            raise StoreOpenError(f"cannot open a store at {root}: {blocker} is a file, not a directory; "
                                 "a store is a directory (name a new or existing store directory)") from None
        except PermissionError:
            # A directory this user may not enter (a group's store, opened by a non-member) fails here, before
            # LMDB's own check could name lock.mdb: name what is in the way, with its mode and owner.
            refusal = store_access_refusal(root, readonly=readonly)
            if not refusal:
                raise
            raise StoreOpenError(refusal) from None
        environment = Environment(root / "log", readonly=readonly)
        try:
            _refuse_newer_format(environment, root)  # before this version creates its sub-dbs in it
            if readonly and not _initialised(environment) and os.access(root / "log" / "data.mdb", os.W_OK):
                environment.close()  # finish creating it, as any writing command would, then read
                cls.open(root, actor=actor).close()
                environment = Environment(root / "log", readonly=True)
            store = cls(root, environment, actor or None)
            _refuse_newer_head(store)  # before anything is written: views a newer rgstore folded are not ours to touch
            if not readonly:
                store.environment.write(lambda txn: store.log.initialise(txn))
            if not readonly:
                store._refresh_stale_views(progress)
                store._finish_abandoned_syncs()
            elif not catch_up_views and os.access(root / "log" / "data.mdb", os.W_OK) \
                    and (names := [view.name for view, _ in out_of_step(store)]):
                store.stale_views = names
                allow_stale_views = True
            elif os.access(root / "log" / "data.mdb", os.W_OK) and ((stale := out_of_step(store)) or abandoned_marks(root)):
                environment.close()
                try:
                    with cls.open(root, actor=actor, progress=progress) as writer:  # rebuilds them, then read-only again
                        repaired, warnings = writer.repaired, writer.warnings
                except (RgstoreError, OSError):
                    if any(not view.reads_fall_back for view, _ in stale) and not allow_stale_views:
                        raise
                    # Only outside copies (alias TSVs, FHR files) were pending and could not be refreshed now
                    # (e.g. the RefgetStore stayed locked): the views read here are sound, verify names the marks.
                    repaired, warnings = [], []
                environment = Environment(root / "log", readonly=True)
                store = cls(root, environment, actor or None)
                # What the writer left undone (e.g. copies it may not refresh): this handle's callers say so too.
                store.repaired, store.warnings = repaired, warnings
            if readonly and not allow_stale_views:
                store._refuse_stale_views()
        except BaseException:
            environment.close()
            raise
        return store

    def close(self) -> None:
        """Release the LMDB environment and any service handles."""
        for service in self._services.values():
            close = getattr(service, "close", None)
            if close is not None:
                close()
        self._services.clear()
        self.environment.close()  # idempotent in py-lmdb

    def __repr__(self) -> str:
        state = "closed" if self.environment._closed else ("read-only" if self.environment.readonly else "writable")
        return f"<rgstore.Store {str(self.path)!r} {state}>"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Refuses with a TypeError saying what to do: a Store does not pickle (README, "Python first")."""
        # Without this, pickling (a Pool.map argument, a service's store) fails deep inside on
        # "cannot pickle 'Environment' object", which names nothing the user wrote.
        raise TypeError(f"an rgstore Store ({str(self.path)!r}) does not pickle: its open LMDB handle cannot "
                        "cross processes; open the store in each worker instead (e.g. a multiprocessing "
                        "pool initializer calling Store.open)")

    @property
    def readonly(self) -> bool:
        """Whether this handle may write."""
        return self.environment.readonly

    @property
    def refget_path(self) -> Path:
        """The gtars RefgetStore directory."""
        return self.path / "refget"

    @property
    def cache_path(self) -> Path:
        """The root of the FASTA cache trees."""
        return self.path / "cache"

    def service(self, name: str, factory: Callable[[Store], Any]) -> Any:
        """A per-store singleton (domain services: genomes, refpkgs, cache, ...)."""
        svc = self._services.get(name)
        if svc is None:
            svc = self._services[name] = factory(self)
        return svc

    # -- writing ------------------------------------------------------------------------------

    def transact(
        self, command: Callable[[Txn], Sequence[NewEvent]], *, blobs: Sequence[str] = ()
    ) -> list[int]:
        """Run one command atomically: ``command(txn)`` validates and returns its events.

        The events are appended and folded in the same write transaction; ``blobs`` (sha256s the
        events reference) must exist on disk at commit time. Returns the events' seqs.
        """

        syncs: list[tuple[View, set[str]]] = []  # views with outside copies to refresh, and their streams
        marks: list[PendingSync] = []

        def run(txn: Txn) -> list[int]:
            self._check_writable(txn)
            batch = command(txn)
            for sha in blobs:
                if not self.blobs.exists(sha):
                    raise ConflictError(f"blob {sha} vanished before commit (concurrent gc?); retry")
            syncs[:] = self._syncs({(type(item.event), item.stream) for item in batch})
            if syncs:
                self.refuse_unwritable_copies()
            if syncs and not marks:
                marks.append(PendingSync(self.path))  # before the commit: a kill after it leaves the mark
            return self.log.append(txn, batch, self.actor)

        committed = False
        try:
            seqs = self.environment.write(run)
            committed = True
            self.generation += 1
            for view, streams in syncs:
                view.sync_external(self, streams)
        except BaseException as exc:
            for mark in marks:
                mark.settle(exc, committed=committed)  # kept: the next writable open refreshes every copy
            raise
        for mark in marks:
            mark.done()
        # After the refresh: training takes a while, and a failure in it must not strand the mark.
        if seqs and seqs[-1] >= DICTIONARY_AFTER and not self._has_dictionary:
            self._train_dictionary()
        return seqs

    def _syncs(self, touched: set[tuple[type, str]]) -> list[tuple[View, set[str]]]:
        """Views with copies outside LMDB that folded one of these (event class, stream)s, with those streams."""
        out = []
        for view in self.views:
            # Only views that folded one of these events refresh their outside copies, and only
            # for the streams concerned (a note on an audit stream must not rewrite alias TSVs).
            if type(view).sync_external is not View.sync_external:
                streams = {stream for cls, stream in touched if (not view.handles or cls in view.handles)
                           and (not view.streams or stream.startswith(view.streams))}
                if streams:
                    out.append((view, streams))
        return out

    def _train_dictionary(self) -> None:
        """Train a zstd dictionary on recent small payloads and announce it in the log (once)."""
        self._has_dictionary = True  # one attempt per process, whatever happens below

        def command(txn: Txn) -> list[int]:
            if self.log.current_dictionary(txn) or self.log.meta_get(txn, "replica_of"):
                return []  # another process got there first, or a mirror (its dictionary comes upstream)
            head, _ = self.log.head(txn)
            samples = [
                payload for seq, raw in self.log.records(txn, after=max(head - DICTIONARY_SAMPLES, 0))
                if len(payload := unframe(raw, seq)[1]) < 4096
            ]
            if len(samples) < 1000:
                return []
            try:
                data = train_dictionary(samples)
            except zstandard.ZstdError:
                return []  # samples too uniform or too few distinct bytes: stay uncompressed
            event = CodecDictionaryAdded(dict_id=register_dictionary(data), data=data, trained_on=len(samples))
            return self.log.append(txn, [NewEvent(stream="engine:codec", event=event)], self.actor)

        self.environment.write(command)

    def sync_external_views(self) -> None:
        """Refresh every view's copies outside LMDB (after rebuild or replay)."""
        for view in self.views:
            view.sync_external(self)

    def _finish_abandoned_syncs(self) -> None:
        """Refresh every outside copy if a command died between its commit and its refresh (see pendingsync).

        If they cannot be refreshed now, the open goes ahead with a note in ``warnings``: the log and
        the views agree, the copies are an outside projection whose marks stay for a later writer,
        and a command of this handle that changes them is refused before it commits (``transact``).
        """
        marks = abandoned_marks(self.path)
        if not marks:
            return
        refused = outside_copies_hint(self.refget_path)
        if refused:  # not tried: its failure would only name a lock file's temporary name
            self.warnings.append(
                f"an earlier command's alias or FHR change is recorded, but the RefgetStore's alias TSVs / FHR files "
                f"are not refreshed yet: {refused}; run any command that writes the store (e.g. `rgstore rebuild`) "
                f"as a user who may write there (a store shared by a group: {SHARED_DOC})")
            return
        try:
            self.sync_external_views()
        except ExternalSyncError as exc:  # a full disk, the RefgetStore locked: the marks stay for the next open
            self.warnings.append(f"an earlier command's change is not yet copied into the RefgetStore: {exc}")
            return
        for mark in marks:
            mark.unlink(missing_ok=True)

    def refuse_unwritable_copies(self) -> None:
        """StorePermissionError unless this process may write where views keep outside copies (refget/).

        Called before a commit whose events such a view folds: the refresh runs after the commit,
        so without this the change would be recorded and its copies left stale behind a mark.
        """
        refused = outside_copies_hint(self.refget_path)
        if refused:
            raise StorePermissionError(
                f"nothing was recorded: {refused}, and this change must refresh the alias TSVs / FHR files there; "
                f"this user may not write the store's RefgetStore (ask the store's owner; a store shared by a "
                f"group: {SHARED_DOC})")

    def append(self, batch: Sequence[NewEvent], *, blobs: Sequence[str] = ()) -> list[int]:
        """Append a command's events (see ``transact``)."""
        return self.transact(lambda txn: batch, blobs=blobs)

    def _check_writable(self, txn: Txn) -> None:
        upstream = self.log.meta_get(txn, "replica_of")
        if upstream:
            raise ReadOnlyError(
                f"this store is a read-only mirror of {upstream.decode()}; "
                "write to the primary, or run `rgstore mirror promote` first"
            )

    # -- reading ------------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Txn]:
        """A short read transaction over the log and every view."""
        with self.environment.read() as txn:
            yield txn

    def head(self) -> tuple[int, str]:
        """(head seq, head chain hash as hex)."""
        with self.read() as txn:
            seq, digest = self.log.head(txn)
        return seq, digest.hex()

    def log_id(self) -> str:
        """The log's identity."""
        with self.read() as txn:
            return self.log.log_id(txn)

    def event(self, seq: int) -> Envelope:
        """The envelope at ``seq``; NotFoundError if there is none."""
        if seq < 1:
            raise NotFoundError(f"no event at seq {seq}; seqs start at 1 (see `rgstore log`)")
        with self.read() as txn:
            envelope = self.log.get(txn, seq) if seq < 1 << 64 else None  # past any key the log can hold
            head = self.log.head(txn)[0] if envelope is None else seq
        if envelope is None:
            if seq > head:  # the common miss: a seq from another store, or not appended yet
                raise NotFoundError(f"no event at seq {seq}: the head is {head}; see `rgstore log`")
            raise NotFoundError(f"no event at seq {seq}; see `rgstore log`")
        return envelope

    def events(
        self, *, stream: str | None = None, type: str | None = None, since: datetime | None = None,
        after: int = 0, limit: int | None = None, last: int | None = None, until: datetime | None = None,
        actor: str | None = None,
    ) -> list[Envelope]:
        """Envelopes in seq order, filtered by stream (exact, or a glob: ``alias:*``, ``*/hg38``), event
        type tag, time (``since`` <= time < ``until``), actor (exact or a glob) and seq; ``limit`` keeps
        the first N matches, ``last`` the most recent N (0: none; below 0: InvalidInputError)."""
        keep = _event_filter(type, since, until, actor)
        refuse_negative("limit", limit)
        refuse_negative("last", last)
        after = max(after, 0)
        if last == 0 or limit == 0:
            return []
        match = _stream_matcher(stream)
        out: list[Envelope] = []
        with self.read() as txn:
            if since is not None:
                floor = since_floor(self.log, txn, since if since.tzinfo else since.replace(tzinfo=timezone.utc), after)
                if floor is None:  # no event is that late
                    return []
                after = floor
            backwards = last is not None and limit is None  # the most recent N: from the head down, stop at N
            seqs = indexed_seqs(self.log, txn, stream, match, after, backwards=backwards) if stream and match else None
            if seqs is not None:  # only the named streams' events, found through the stream index
                source = envelopes_at(self.log, txn, seqs)
            elif backwards:
                source = self.log.envelopes_backwards(txn, after=after)
            else:
                source = self.log.envelopes(txn, after=after)
            for env in source:
                if match is not None and not match(env.stream):
                    continue
                if keep is not None and not keep(env):
                    continue
                out.append(env)
                if limit is not None and len(out) >= limit:
                    break
                if last is not None and limit is None and len(out) >= last:
                    break
        if last is not None and limit is None:
            out.reverse()
        return out[-last:] if last is not None else out

    def iter_events(
        self, *, stream: str | None = None, type: str | None = None, since: datetime | None = None,
        after: int = 0, page: int = 10_000, until: datetime | None = None, actor: str | None = None,
    ) -> Iterator[Envelope]:
        """``events`` as an iterator over every match, ``page`` at a time, each page in its own short read.

        Memory stays that of one page however long the log (a million-event audit), and no read
        transaction is held while the caller writes output. Events appended meanwhile may be included.
        """
        if page < 1:  # else an empty page would end nothing, and the next page start from batch[-1]
            raise InvalidInputError(f"page must be a positive number of events, got {page}")
        if stream and any(c in stream for c in GLOB_CHARS) and literal_prefix(stream):
            # A glob over many streams: take its seqs from the index once, then read them page by page
            # (asking the index again per page would re-walk every matching stream's earlier seqs).
            after = yield from self._iter_indexed(stream, _event_filter(type, since, until, actor), after, page)
        while True:
            batch = self.events(stream=stream, type=type, since=since, after=after, limit=page, until=until, actor=actor)
            yield from batch
            if len(batch) < page:
                return
            after = batch[-1].seq

    def _iter_indexed(
        self, stream: str, keep: Callable[[Envelope], bool] | None, after: int, page: int,
    ) -> Generator[Envelope, None, int]:
        """``iter_events`` for a glob with a literal prefix, up to the head of now; returns that head."""
        match = _stream_matcher(stream)
        assert match is not None
        with self.read() as txn:
            head = self.log.head(txn)[0]
            seqs = indexed_seqs(self.log, txn, stream, match, max(after, 0))
            if seqs is None:  # the index cannot answer now: the caller's pages scan from ``after``
                return after
            todo = array("Q", seqs)  # 8 bytes a match, not an envelope
        for start in range(0, len(todo), page):
            with self.read() as txn:
                batch = [env for env in envelopes_at(self.log, txn, todo[start:start + page])
                         if keep is None or keep(env)]
            yield from batch
        return max(after, head)

    def stream_version(self, stream: str) -> int:
        """Number of events on a stream (0 if none)."""
        with self.read() as txn:
            return StreamsView.get(txn, self.environment.db("streams"), stream)[0]

    # -- views --------------------------------------------------------------------------------

    def _refuse_stale_views(self) -> None:
        # An index whose readers fall back to the log (an older rgstore lacked it) costs speed, not truth.
        stale = [(view, why) for view, why in out_of_step(self) if not view.reads_fall_back]
        if stale:
            raise stale_views_error(self.path, stale)

    def _refresh_stale_views(self, progress: ProgressFactory) -> None:
        stale = out_of_step(self)
        # Behind only (an older rgstore appended since): fold what it appended, not the whole log again.
        behind = [view for view, why in stale if not why and type(view).sync_external is View.sync_external]
        left = self.environment.write(lambda txn: self.log.catch_up_views(txn, behind, progress)) if behind else []
        stale = [(view, why) for view, why in stale if view in left or view not in behind]
        if stale:
            try:
                self._rebuild([view for view, _ in stale], progress=progress)
            except ExternalSyncError:
                pass  # the views are rebuilt; their copies' mark stays, and _finish_abandoned_syncs (next) says so
            self.repaired.extend(f"view {view.name!r} was out of step with the log ({why}); rebuilt from the log"
                                 for view, why in stale if why)

    def rebuild(self, views: Sequence[View] | None = None, *, progress: ProgressFactory = null_progress) -> int:
        """Drop the given views (default: all) and fold the whole log into them again.

        The whole rebuild is one write transaction: other writers wait for it (they never see a
        half-built view, and never append against one), readers keep the old views until it
        commits, and a rebuild that is killed changes nothing. Returns the number of events
        folded; the result is byte-identical to incremental folding.
        """
        if self.readonly:
            raise ReadOnlyError("rebuild needs a writable store")
        if any(type(v).sync_external is not View.sync_external for v in (views if views is not None else self.views)):
            self.refuse_unwritable_copies()
        return self._rebuild(views, progress=progress)

    def _rebuild(self, views: Sequence[View] | None = None, *, progress: ProgressFactory = null_progress) -> int:
        """``rebuild``, also where this process may not write the outside copies (they stay marked as pending)."""
        targets = list(views) if views is not None else list(self.views)

        def run(txn: Txn) -> int:
            head, _ = self.log.head(txn)
            bar = progress("rebuild", total=head, unit="ev")
            try:
                for view in targets:
                    view.clear(txn, self.environment)
                ctx = FoldContext(txn, self.environment)
                done = 0
                while done < head:
                    upto = min(done + REBUILD_BATCH, head)
                    self.log.fold_batch(ctx, self.log.envelope_list(txn, done, upto), targets)
                    bar.update(upto - done)
                    done = upto
                for view in targets:
                    self.log.set_checkpoint(txn, view, head)
                count_rebuild(self.log, txn)
            finally:
                bar.close()
            return int(head)

        # Views with outside copies refresh them after the commit: a mark covers the gap (rgstore.pendingsync).
        mark = PendingSync(self.path) if any(type(v).sync_external is not View.sync_external for v in targets) else None
        committed = False
        was_enabled = _gc.isenabled()
        _gc.disable()  # folds allocate many short-lived objects; GC passes cost ~30% (measured)
        try:
            head = self.environment.write(run)
            committed = True
            self.generation += 1
            for view in targets:
                view.sync_external(self)
        except BaseException as exc:
            if mark is not None:
                mark.settle(exc, committed=committed)
            raise
        finally:
            if was_enabled:
                _gc.enable()
        if mark is not None:
            mark.done()
        return head

    def verify(self, *, progress: ProgressFactory = null_progress) -> VerifyReport:
        """Check the log, every view against a replay, every blob, cache file and sequence (see rgstore.verify)."""
        from .verify import verify_store

        # A store moved or deleted under this handle is not a damaged one: say so, not "every blob missing".
        self.environment.check_in_place()
        return verify_store(self, progress=progress)

    @property
    def aliases(self) -> Aliases:
        """Collection and sequence aliases (see ``rgstore.aliases``)."""
        from .aliases import Aliases

        svc: Aliases = self.service("aliases", Aliases)
        return svc

    @property
    def refpkgs(self) -> Refpkgs:
        """Reference packages (taxtastic refpkgs; see ``rgstore.refpkgs``)."""
        from .refpkgs import Refpkgs

        svc: Refpkgs = self.service("refpkgs", Refpkgs)
        return svc

    @property
    def cache(self) -> Cache:
        """The two-level FASTA cache (see ``rgstore.cache``)."""
        from .cache import Cache

        svc: Cache = self.service("cache", Cache)
        return svc

    @property
    def genomes(self) -> Genomes:
        """Genomes and their sequences (see ``rgstore.genomes``)."""
        svc = self._services.get("genomes")  # getseq's hot path: skip the import statement
        if svc is None:
            from .genomes import Genomes

            svc = self.service("genomes", Genomes)
        return svc  # type: ignore[no-any-return]

    def getseq(
        self, name: str, seq: str, start: int | None = None, end: int | None = None, *, by_digest: bool = False
    ) -> str:
        """Residues ``[start, end)`` (0-based) of sequence ``seq`` of genome ``name`` (a digest with ``by_digest``)."""
        # The hot path of sequence reads: skip the property and the Genomes frame (see tools/bench/genome.py).
        text: str = (self._services.get("genomes") or self.genomes).sequences.getseq(
            name, seq, start, end, by_digest=by_digest)
        return text

    def read_sequence(self, ident: str, start: int | None = None, end: int | None = None, *,
                      revcomp: bool = False) -> str:
        """Residues ``[start, end)`` (0-based) of the sequence a refget id names (see ``Genomes.read_sequence``)."""
        return self.genomes.read_sequence(ident, start, end, revcomp=revcomp)

    def getseqs(
        self, name: str, regions: Sequence[Region | tuple[str, int | None, int | None]], *,
        by_digest: bool = False, revcomp: bool = False,
    ) -> list[str]:
        """``getseq`` for many ``(seq, start, end)`` regions of one genome, optionally reverse-complemented."""
        return self.genomes.getseqs(name, regions, by_digest=by_digest, revcomp=revcomp)


