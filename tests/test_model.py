"""Aliases and refpkgs mean what a small pure-Python model says they mean, after any command sequence.

A hypothesis state machine drives the real ``Store`` (real LMDB, real gtars genomes) with random
alias and refpkg commands, mirrors each one in a model written from the documented semantics
(taxtastic's zipper, ``aliases.find_genome_alias``'s bare-name rule, ``choose_filename``), and
compares every query after every step; every few steps it reopens the store, and once per run it
rebuilds every view from the log. ``tests/test_views.py`` proves incremental views equal a
rebuild; this proves the views say the right thing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from rgstore.aliases import AliasChange
from rgstore.errors import ConflictError, NotFoundError, NothingToRedoError, NothingToUndoError
from rgstore.store import Store

ACTOR = "model@test"
NAMESPACES = ("refgenie", "ncbi", "ucsc")
NAMES = ("g0", "hg", "mm")
"""Alias names; ``refgenie:g0`` is genome 0's init name, so the pool starts with one live alias."""
GENOME_SEQS = ("ACGTACGTAA", "GGGCCCAATT", "TTTTAAAACC")
PACKAGES = ("pa", "pb")
FILE_KEYS = ("aln_fasta", "tree", "readme", "custom")
BASENAMES = ("seqs.fasta", "tree.nwk")
CONTENTS = (b">a\nACGT\n", b"(a,b);\n", b"hello\n", b">a\nACGA\n")
META_KEYS = ("author", "package_version", "locus", "note")
META_VALUES = ("Jane", "0.2", "", "a=b")
REOPEN_EVERY = 5
REBUILD_AT = 7


@dataclass
class AliasModel:
    """One alias stream: its events as history shows them and the zipper over its steps."""

    events: list[tuple[int, str, str | None]] = field(default_factory=list)
    """(seq, action tag, target left) of every event on the stream, oldest first."""
    done: list[int] = field(default_factory=list)
    """Indexes into ``events`` of the done set/remove steps; the last is current."""
    undone: list[int] = field(default_factory=list)
    """Indexes of undone steps; the last is the next redo."""

    @property
    def target(self) -> str | None:
        return self.events[self.done[-1]][2] if self.done else None

    def history(self) -> list[tuple[int, str, str | None, str]]:
        """(seq, action, target, state) of each event, as ``Aliases.history`` lists the stream."""
        expected = []
        for i, (seq, action, digest) in enumerate(self.events):
            if action in ("undone", "redone"):
                state = ""
            elif self.done and i == self.done[-1]:
                state = "current"
            elif i in self.done:
                state = "done"
            elif i in self.undone:
                state = "undone"
            else:
                state = "discarded"
            expected.append((seq, action, digest, state))
        return expected


class StoreMachine(RuleBasedStateMachine):
    """A state machine over its own store copy at ``path``, counting the seqs its commands should append."""

    store: Store
    path: Path
    next_seq: int
    runs = 0
    """Examples started, across machines: each gets its own copy of the template store."""

    def _copy_and_open(self, root: Path) -> None:
        """Copy ``root/store`` to a fresh ``root/runN`` and open it; the next seq follows its head."""
        StoreMachine.runs += 1
        self.path = root / f"run{StoreMachine.runs}"
        shutil.copytree(root / "store", self.path)
        self.store = Store.open(self.path, actor=ACTOR)
        with self.store.read() as txn:
            self.next_seq = self.store.log.head(txn)[0] + 1

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def _take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq


@dataclass(frozen=True)
class PkgState:
    """One refpkg state: files as (name, content index), metadata, log as (message, crediting seq)."""

    seq: int
    files: dict[str, tuple[str, int]]
    metadata: dict[str, str]
    log: list[tuple[str, int]]


@dataclass
class PkgModel:
    done: list[PkgState]
    """The current state last; a rollback reaches every other one."""
    redo: list[PkgState] = field(default_factory=list)
    """The last is the next rollforward."""
    added: int = 0
    """File keys set since the last strip (taxtastic adds a file per key set)."""


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str], list[int]]]:
    """A closed store with three tiny genomes (aliases refgenie:g0..g2), its digests and their alias seqs."""
    root = tmp_path_factory.mktemp("model-template")
    digests, seqs = [], []
    with Store.open(root / "store", actor=ACTOR) as store:
        for i, bases in enumerate(GENOME_SEQS):
            fasta = root / f"g{i}.fa"
            fasta.write_text(f">chr1\n{bases}\n>chr2\n{bases[::-1]}\n")
            result = store.genomes.init(fasta, [f"g{i}"])
            digests.append(result.genome.digest)
            seqs.append(store.aliases.entry(f"refgenie:g{i}").seq)
    for b, basename in enumerate(BASENAMES):
        for c, content in enumerate(CONTENTS):
            (root / f"f{b}{c}").mkdir()
            (root / f"f{b}{c}" / basename).write_bytes(content)
    yield root, digests, seqs


class StoreModel(StoreMachine):
    """Random alias and refpkg commands against the real store and the model, compared after every step."""

    root: Path
    digests: list[str]
    initial_seqs: list[int]

    def __init__(self) -> None:
        super().__init__()
        self._copy_and_open(self.root)
        self.aliases: dict[tuple[str, str], AliasModel] = {}
        for i, seq in enumerate(self.initial_seqs):
            self.aliases[("refgenie", f"g{i}")] = AliasModel(events=[(seq, "alias-set", self.digests[i])], done=[0])
        self.pkgs: dict[str, PkgModel] = {}
        self.steps = 0
        self.rebuilt = False

    # -- aliases --------------------------------------------------------------------------------

    def _alias(self, ns: str, name: str) -> AliasModel:
        return self.aliases.setdefault((ns, name), AliasModel())

    def _target(self, ns: str, name: str) -> str | None:
        model = self.aliases.get((ns, name))
        return model.target if model else None

    @rule(ns=st.sampled_from(NAMESPACES), name=st.sampled_from(NAMES), genome=st.integers(0, 2),
          force=st.booleans(), spelled=st.sampled_from(("ns:name", "namespace=", "bare")))
    def alias_set(self, ns: str, name: str, genome: int, force: bool, spelled: str) -> None:
        digest = self.digests[genome]
        model = self._alias(ns, name)
        current = model.target
        if spelled == "ns:name":
            call = lambda: self.store.aliases.set(f"{ns}:{name}", digest, force=force)  # noqa: E731
        elif spelled == "namespace=" or ns != "refgenie":
            call = lambda: self.store.aliases.set(name, digest, namespace=ns, force=force)  # noqa: E731
        else:
            call = lambda: self.store.aliases.set(name, digest, force=force)  # noqa: E731
        if current is not None and current != digest and not force:
            with pytest.raises(ConflictError):
                call()
            return
        change = call()
        assert (change.namespace, change.name, change.digest, change.previous) == (ns, name, digest, current)
        if current == digest:
            assert change.seq == 0
            assert change.shadows is msgspec.UNSET
            return
        seq = self._take_seq()
        assert change.seq == seq
        self._check_shadows(change, ns, name, current, digest)
        model.events.append((seq, "alias-set", digest))
        model.done.append(len(model.events) - 1)
        model.undone.clear()

    def _check_shadows(self, change: AliasChange, ns: str, name: str, current: str | None, target: str | None) -> None:
        """A refgenie alias that comes into being names the other namespaces' genomes it takes the bare name from."""
        shadows = {}
        if ns == "refgenie" and current is None and target is not None:
            shadows = {f"{other}:{name}": t for other in NAMESPACES if other != "refgenie"
                       and (t := self._target(other, name)) not in (None, target)}
        assert change.shadows == (shadows or msgspec.UNSET)

    @rule(ns=st.sampled_from(NAMESPACES), name=st.sampled_from(NAMES))
    def alias_remove(self, ns: str, name: str) -> None:
        model = self._alias(ns, name)
        current = model.target
        if current is None:
            with pytest.raises(NotFoundError):
                self.store.aliases.remove(f"{ns}:{name}")
            return
        change = self.store.aliases.remove(name, namespace=ns)
        seq = self._take_seq()
        assert (change.digest, change.previous, change.seq) == (None, current, seq)
        model.events.append((seq, "alias-removed", None))
        model.done.append(len(model.events) - 1)
        model.undone.clear()

    @rule(ns=st.sampled_from(NAMESPACES), name=st.sampled_from(NAMES), redo=st.booleans())
    def alias_undo_redo(self, ns: str, name: str, redo: bool) -> None:
        model = self._alias(ns, name)
        current = model.target
        move = self.store.aliases.redo if redo else self.store.aliases.undo
        if not (model.undone if redo else model.done):
            with pytest.raises(NothingToRedoError if redo else NothingToUndoError):
                move(f"{ns}:{name}")
            return
        if redo:
            model.done.append(model.undone.pop())
        else:
            model.undone.append(model.done.pop())
        change = move(f"{ns}:{name}")
        seq = self._take_seq()
        assert (change.digest, change.previous, change.seq) == (model.target, current, seq)
        self._check_shadows(change, ns, name, current, model.target)
        model.events.append((seq, "redone" if redo else "undone", model.target))

    def _resolved(self, name: str) -> str | type[Exception]:
        """What a bare genome name means: refgenie's alias, else the one other namespaces agree on."""
        own = self._target("refgenie", name)
        if own is not None:
            return own
        hits = {t for ns in NAMESPACES[1:] if (t := self._target(ns, name)) is not None}
        if len(hits) > 1:
            return ConflictError
        return hits.pop() if hits else NotFoundError

    # -- refpkgs --------------------------------------------------------------------------------

    def _path(self, basename: int, content: int) -> str:
        return str(self.root / f"f{basename}{content}" / BASENAMES[basename])

    def _named(self, pkg: PkgModel | None, files: list[tuple[str, int, int]]) -> dict[str, tuple[str, int]]:
        """File names as ``choose_filename`` picks them: a name no retained state gives other content."""
        owners: dict[str, str] = {}
        for state in (pkg.done + pkg.redo) if pkg else []:
            for fname, content in state.files.values():
                assert owners.setdefault(fname, _sha(CONTENTS[content])) == _sha(CONTENTS[content])
        out: dict[str, tuple[str, int]] = {}
        for key, basename, content in files:
            sha = _sha(CONTENTS[content])
            stem, ext = os.path.splitext(BASENAMES[basename])
            for width in (0, 8, 16, 32, 64):
                fname = f"{stem}{sha[:width]}{ext}" if width else BASENAMES[basename]
                if owners.get(fname, sha) == sha:
                    break
            owners[fname] = sha
            out[key] = (fname, content)
        return out

    @initialize(files=st.dictionaries(st.sampled_from(FILE_KEYS), st.tuples(st.integers(0, 1), st.integers(0, 3)),
                                      max_size=3))
    def both_packages(self, files: dict[str, tuple[int, int]]) -> None:
        """Start with every package created, so most commands find one (removal then makes room for creation)."""
        for name in PACKAGES:
            self.refpkg_create(name, "16S", files, None)

    @rule(name=st.sampled_from(PACKAGES), locus=st.sampled_from(("16S", "rpoB")),
          files=st.dictionaries(st.sampled_from(FILE_KEYS), st.tuples(st.integers(0, 1), st.integers(0, 3)), max_size=3),
          author=st.sampled_from((None, "Ref Author")))
    def refpkg_create(self, name: str, locus: str, files: dict[str, tuple[int, int]], author: str | None) -> None:
        pairs = [(key, self._path(b, c)) for key, (b, c) in files.items()]
        if name in self.pkgs:
            with pytest.raises(ConflictError):
                self.store.refpkgs.create(name, locus=locus, files=pairs, author=author)
            return
        state = self.store.refpkgs.create(name, locus=locus, files=pairs, author=author)
        seq = self._take_seq()
        metadata = {"create_date": state.metadata.get("create_date", "?"), "format_version": "1.1", "locus": locus}
        if author is not None:
            metadata["author"] = author
        named = self._named(None, [(key, b, c) for key, (b, c) in files.items()])
        log = [("Stripped refpkg (removed 0 files)", seq), ("Loaded initial files into empty refpkg", seq)]
        self.pkgs[name] = PkgModel(done=[PkgState(seq, named, metadata, log)], added=len(files))

    @rule(name=st.sampled_from(PACKAGES),
          changes=st.lists(st.tuples(st.sampled_from(FILE_KEYS), st.integers(0, 1), st.integers(0, 3)),
                           min_size=1, max_size=3))
    def refpkg_update_files(self, name: str, changes: list[tuple[str, int, int]]) -> None:
        items = [f"{key}={self._path(b, c)}" for key, b, c in changes]
        pkg = self.pkgs.get(name)
        if pkg is None:
            with pytest.raises(NotFoundError):
                self.store.refpkgs.update_files(name, items)
            return
        self.store.refpkgs.update_files(name, items)
        last: dict[str, tuple[str, int, int]] = {}
        for key, b, c in changes:  # a later duplicate key wins, in its own place
            last.pop(key, None)
            last[key] = (key, b, c)
        base = pkg.done[-1]
        seq = self._take_seq()
        files = {**base.files, **self._named(pkg, list(last.values()))}
        message = "Updates files: " + ", ".join(items)
        pkg.done.append(PkgState(seq, files, base.metadata, [(message, seq), *base.log]))
        pkg.redo.clear()
        pkg.added += len(changes)  # taxit copies a file per pair named, so a key named twice leaves one for strip

    @rule(name=st.sampled_from(PACKAGES),
          changes=st.lists(st.tuples(st.sampled_from(META_KEYS), st.sampled_from(META_VALUES)), min_size=1, max_size=3))
    def refpkg_update_metadata(self, name: str, changes: list[tuple[str, str]]) -> None:
        items = [f"{key}={value}" for key, value in changes]
        pkg = self.pkgs.get(name)
        if pkg is None:
            with pytest.raises(NotFoundError):
                self.store.refpkgs.update_metadata(name, items)
            return
        self.store.refpkgs.update_metadata(name, items)
        base = pkg.done[-1]
        seq = self._take_seq()
        message = "Updated metadata: " + ", ".join(items)
        pkg.done.append(PkgState(seq, base.files, {**base.metadata, **dict(changes)}, [(message, seq), *base.log]))
        pkg.redo.clear()

    @rule(name=st.sampled_from(PACKAGES), n=st.integers(1, 3), forward=st.booleans())
    def refpkg_roll(self, name: str, n: int, forward: bool) -> None:
        pkg = self.pkgs.get(name)
        call = self.store.refpkgs.rollforward if forward else self.store.refpkgs.rollback
        if pkg is None:
            with pytest.raises(NotFoundError):
                call(name, n)
            return
        if forward and len(pkg.redo) < n:
            with pytest.raises(NothingToRedoError, match=f"^Cannot rollforward {n} changes; refpkg only records "
                                                        f"{len(pkg.redo)} rolled back changes.$"):
                call(name, n)
            return
        if not forward and len(pkg.done) - 1 < n:
            with pytest.raises(NothingToUndoError, match=f"^Cannot rollback {n} changes; refpkg only records "
                                                         f"{len(pkg.done) - 1} changes.$"):
                call(name, n)
            return
        call(name, n)
        for _ in range(n):
            self._take_seq()
            if forward:
                pkg.done.append(pkg.redo.pop())
            else:
                pkg.redo.append(pkg.done.pop())

    @rule(name=st.sampled_from(PACKAGES))
    def refpkg_strip(self, name: str) -> None:
        pkg = self.pkgs.get(name)
        if pkg is None:
            with pytest.raises(NotFoundError):
                self.store.refpkgs.strip(name)
            return
        self.store.refpkgs.strip(name)
        seq = self._take_seq()
        keep = pkg.done[-1]
        removed = max(pkg.added - len(keep.files), 0)
        log = [(f"Stripped refpkg (removed {removed} files)", seq), *keep.log]
        self.pkgs[name] = PkgModel(done=[PkgState(keep.seq, keep.files, keep.metadata, log)], added=len(keep.files))

    @rule(name=st.sampled_from(PACKAGES))
    def refpkg_remove(self, name: str) -> None:
        pkg = self.pkgs.pop(name, None)
        if pkg is None:
            with pytest.raises(NotFoundError):
                self.store.refpkgs.remove(name)
            return
        removal = self.store.refpkgs.remove(name)
        assert (removal.seq, removal.files, removal.steps) == (
            self._take_seq(), len(pkg.done[-1].files), len(pkg.done) + len(pkg.redo))

    # -- the comparison -------------------------------------------------------------------------

    @invariant()
    def store_matches_model(self) -> None:
        self.steps += 1
        if self.steps % REOPEN_EVERY == 0:
            self.store.close()
            self.store = Store.open(self.path, actor=ACTOR)
        if self.steps == REBUILD_AT and not self.rebuilt:
            self.rebuilt = True
            self.store.rebuild()
        self._check_aliases()
        self._check_refpkgs()

    def _check_aliases(self) -> None:
        aliases = self.store.aliases
        live = sorted((ns, name, m.target, m.events[-1][0]) for (ns, name), m in self.aliases.items()
                      if m.target is not None)
        listed = [(e.namespace, e.name, e.digest, e.seq) for e in aliases.list()]
        assert listed == live
        assert [(e.namespace, e.name, e.digest, e.seq) for e in aliases.stream(chunk=2)] == live
        assert aliases.names() == [(ns, name) for ns, name, _d, _s in live]
        for ns in NAMESPACES:
            assert [(e.namespace, e.name, e.digest, e.seq) for e in aliases.list(namespace=ns)] == [
                row for row in live if row[0] == ns]
        for digest in self.digests:
            assert sorted((e.namespace, e.name, e.digest, e.seq) for e in aliases.list(digest=digest)) == [
                row for row in live if row[2] == digest]
        for ns in NAMESPACES:
            for name in NAMES:
                model = self.aliases.get((ns, name))
                target = model.target if model else None
                if target is None:
                    with pytest.raises(NotFoundError):
                        aliases.get(f"{ns}:{name}")
                else:
                    assert aliases.get(name, namespace=ns) == target
                if model is None or not model.events:
                    with pytest.raises(NotFoundError):
                        aliases.history(f"{ns}:{name}")
                    continue
                assert [(s.seq, s.action, s.digest, s.state) for s in aliases.history(f"{ns}:{name}")] == model.history()
        for name in NAMES:
            meaning = self._resolved(name)
            if isinstance(meaning, str):
                assert self.store.genomes.resolve(name) == meaning
            else:
                with pytest.raises(meaning):
                    self.store.genomes.resolve(name)

    def _check_refpkgs(self) -> None:
        refpkgs = self.store.refpkgs
        assert refpkgs.names() == sorted(self.pkgs)
        assert [(s.name, s.seq, s.locus, s.files, s.rollbacks, s.rollforwards) for s in refpkgs.list_all()] == [
            (name, pkg.done[-1].seq, pkg.done[-1].metadata["locus"], len(pkg.done[-1].files), len(pkg.done) - 1,
             len(pkg.redo)) for name, pkg in sorted(self.pkgs.items())]
        for name in PACKAGES:
            pkg = self.pkgs.get(name)
            if pkg is None:
                with pytest.raises(NotFoundError):
                    refpkgs.current(name)
                with pytest.raises(NotFoundError):
                    refpkgs.info(name)
                continue
            state = pkg.done[-1]
            files = {key: (fname, _sha(CONTENTS[c]), hashlib.md5(CONTENTS[c]).hexdigest(), len(CONTENTS[c]))
                     for key, (fname, c) in state.files.items()}
            current = refpkgs.current(name)
            assert {k: (r.name, r.sha256, r.md5, r.size) for k, r in current.files.items()} == files
            assert (current.seq, current.metadata, current.entry, current.rollbacks, current.rollforwards) == (
                state.seq, state.metadata, state.log[0][0], len(pkg.done) - 1, len(pkg.redo))
            info = refpkgs.info(name)
            assert {k: (r.name, r.sha256, r.md5, r.size) for k, r in info.files.items()} == files
            assert (info.seq, info.metadata, info.log, info.rollbacks, info.rollforwards) == (
                state.seq, state.metadata, [m for m, _ in state.log], len(pkg.done) - 1, len(pkg.redo))
            assert [(e.message, e.seq) for e in refpkgs.log(name)] == state.log


def test_aliases_and_refpkgs_match_the_model_after_any_commands(
        template: tuple[Path, list[str], list[int]]) -> None:
    """Every alias and refpkg query equals the model after each random command, across reopens and a rebuild."""
    root, digests, seqs = template
    StoreModel.root, StoreModel.digests, StoreModel.initial_seqs = root, digests, seqs
    run_state_machine_as_test(StoreModel, settings=settings(
        max_examples=50, stateful_step_count=40, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))


def test_an_undo_that_brings_back_a_refgenie_alias_names_the_bare_names_it_takes(
        template: tuple[Path, list[str], list[int]], tmp_path: Path) -> None:
    """Undoing a ``refgenie:hg`` removal makes bare ``hg`` mean its genome again: ``shadows`` says so, as ``set`` does."""
    root, digests, _seqs = template
    shutil.copytree(root / "store", tmp_path / "store")
    with Store.open(tmp_path / "store", actor=ACTOR) as store:
        store.aliases.set("refgenie:hg", digests[0])
        store.aliases.remove("refgenie:hg")
        store.aliases.set("ncbi:hg", digests[1])
        assert store.genomes.resolve("hg") == digests[1]
        back = store.aliases.undo("refgenie:hg")
        assert store.genomes.resolve("hg") == digests[0]
        assert back.shadows == {"ncbi:hg": digests[1]}
        gone = store.aliases.undo("refgenie:hg")  # the set itself: the bare name falls back to ncbi
        assert (gone.digest, gone.shadows) == (None, msgspec.UNSET)
        assert store.aliases.redo("refgenie:hg").shadows == {"ncbi:hg": digests[1]}
