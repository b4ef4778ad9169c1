"""Genomes and sequence aliases mean what a small pure-Python model says they mean, after any command sequence.

A hypothesis state machine drives the real ``Store`` (real LMDB, real gtars) with random genome
inits (duplicate content under other names, same names and lengths with other residues, shared
sequences), removals (by bare name, ``ns:name`` and digest), genome undo/redo (a removal and the
aliases it took, by name or digest), genome and sequence alias set/remove/undo/redo (sequence digests given bare, as ``SQ.``, ``ga4gh:SQ.`` and as MD5), mirrors
each in a model written from the documented semantics (docs/python-api.md, ``Genomes.init`` and
``Genomes.remove``), and compares every query and a few ``getseq`` reads after every step; every
few steps it reopens the store, and once per run it rebuilds every view. ``tests/test_model.py``
does the same for genome aliases alone and refpkgs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule, run_state_machine_as_test

from rgstore.errors import ConflictError, NotFoundError, NothingToRedoError, NothingToUndoError
from rgstore.store import Store
from tests.test_model import ACTOR, AliasModel, StoreMachine

NAMESPACES = ("refgenie", "ncbi", "ucsc")
NAMES = ("hg", "mm")
SEQ_NAMESPACES = ("refseq", "insdc")
SEQ_NAMES = ("s1", "s2")
SPECIES = ("", "Homo", "Mus")
CONTENTS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("chr1", "ACGTACGTAA"), ("chr2", "GGCCAATT")),
    (("chr1", "ACGTACGTAA"), ("chr2", "GGCCAATT")),  # the same genome in another file
    (("chr1", "TTGCATGCAA"), ("chr2", "CCAATTGG")),  # the same names and lengths, other residues
    (("chrA", "ACGTACGTAA"), ("chrB", "GATTACA")),  # shares chr1 of the first
    (("x", "AAAACCCCGGGGTTTT"),),
    (("chr1 refseq:s1", "ACGTACGTAA"), ("chr2 refseq:s2 insdc:s1", "GGCCAATT")),  # the first, naming sequences
)
DIGEST_FORMS = ("bare", "SQ.", "SQ:", "ga4gh:SQ.", "GA4GH:SQ.", "md5")
REOPEN_EVERY = 5
REBUILD_AT = 7


@dataclass(frozen=True)
class Content:
    """What gtars makes of one FASTA: its genome digest and each record's (name, residues, bare digest, md5)."""

    digest: str
    records: tuple[tuple[str, str, str, str], ...]


@dataclass
class GenomeModel:
    content: Content
    species: str
    added_seq: int


@dataclass
class Removal:
    """A step of a genome's zipper: its removal, the genome as it was and (alias key, step index) of each alias it took."""

    seq: int
    genome: GenomeModel
    aliases: list[tuple[tuple[str, str], int]]


@dataclass
class GenomeSteps:
    """A genome stream's zipper (the model has no FHR steps): an init empties it, a removal is a step."""

    done: list[Removal] = field(default_factory=list)
    undone: list[Removal] = field(default_factory=list)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, empty_refget: Path) -> Iterator[tuple[Path, list[Content]]]:
    """An empty store, the FASTA files and what each one's genome is (learnt once from a scratch store)."""
    root = tmp_path_factory.mktemp("model-genomes")
    contents = []
    shutil.copytree(empty_refget, root / "store" / "refget")
    Store.open(root / "store", actor=ACTOR).close()
    shutil.copytree(root / "store", root / "scratch")
    with Store.open(root / "scratch", actor=ACTOR) as scratch:
        for i, records in enumerate(CONTENTS):
            fasta = root / f"c{i}.fa"
            fasta.write_text("".join(f">{name}\n{bases}\n" for name, bases in records))
            info = scratch.genomes.init(fasta, [f"c{i}"]).genome
            contents.append(Content(info.digest, tuple(
                (name.split()[0], bases, sq.removeprefix("SQ."), md5)
                for (name, bases), sq, md5 in zip(records, info.sequences, info.md5s))))
    shutil.rmtree(root / "scratch")
    yield root, contents


def _spell(record: tuple[str, str, str, str], form: str) -> str:
    """A sequence digest in one of the forms ``aliases.set`` and ``aliases.list`` take."""
    _name, _bases, bare, md5 = record
    return {"bare": bare, "SQ.": f"SQ.{bare}", "SQ:": f"SQ:{bare}", "ga4gh:SQ.": f"ga4gh:SQ.{bare}",
            "GA4GH:SQ.": f"GA4GH:SQ.{bare}", "md5": md5}[form]


class GenomesModel(StoreMachine):
    """Random genome and alias commands against the real store and the model, compared after every step."""

    root: Path
    contents: list[Content]
    moved: dict[str, int] = {}
    """Genome undos and redos that succeeded, across runs: the test checks the rule reached both."""

    def __init__(self) -> None:
        super().__init__()
        self._copy_and_open(self.root)
        self.genomes: dict[str, GenomeModel] = {}
        self.stored: set[str] = set()
        """Genome digests whose collection the RefgetStore holds (a removal leaves it there)."""
        self.aliases: dict[tuple[str, str], AliasModel] = {}
        self.seq_aliases: dict[tuple[str, str], AliasModel] = {}
        self.genome_steps: dict[str, GenomeSteps] = {}
        """Digest -> its genome stream's zipper, for every genome ever added."""
        self.steps = 0
        self.rebuilt = False

    def _records(self) -> list[tuple[str, str, str, str]]:
        """Every distinct sequence of the contents, in a fixed order."""
        seen: dict[str, tuple[str, str, str, str]] = {}
        for content in self.contents:
            for record in content.records:
                seen.setdefault(record[2], record)
        return list(seen.values())

    def _held(self, bare: str) -> bool:
        """Whether the RefgetStore holds a sequence: some stored collection has it."""
        return any(bare == r[2] for c in self.contents if c.digest in self.stored for r in c.records)

    @staticmethod
    def _target(pool: dict[tuple[str, str], AliasModel], ns: str, name: str) -> str | None:
        model = pool.get((ns, name))
        return model.target if model else None

    def _step(self, model: AliasModel, action: str, target: str | None) -> int:
        seq = self._take_seq()
        model.events.append((seq, action, target))
        model.done.append(len(model.events) - 1)
        model.undone.clear()
        return seq

    def _shadows(self, name: str, target: str) -> dict[str, str]:
        return {f"{ns}:{name}": t for ns in NAMESPACES[1:]
                if (t := self._target(self.aliases, ns, name)) not in (None, target)}

    # -- genomes --------------------------------------------------------------------------------

    @initialize(content=st.integers(0, len(CONTENTS) - 1), ns=st.sampled_from(NAMESPACES[1:]),
                moved=st.sampled_from(("redone", "undone", "removed", "kept")))
    def a_genome_with_two_names(self, content: int, ns: str, moved: str) -> None:
        """Start with a genome named in two namespaces, so removals, and undos past them, meet aliases; ``moved``
        takes it that far through remove, undo and redo (runs drawn by another hypothesis version, as CI installs
        the newest, could otherwise reach no redo: 1 of 8 seeds tried)."""
        self.init(content, ["hg"], "", False, None)
        self.alias_set(ns, "mm", content, False)
        if moved != "kept":
            self.remove(1, "hg", "digest", ns)  # the one genome there is
            for redo in (False, True)[: ("removed", "undone", "redone").index(moved)]:
                assert self._genome_move(1, redo, True) == self.contents[content].digest

    @rule(content=st.integers(0, len(CONTENTS) - 1), names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=2),
          species=st.sampled_from(SPECIES), force=st.booleans(), seq_namespace=st.sampled_from((None, *SEQ_NAMESPACES)))
    def init(self, content: int, names: list[str], species: str, force: bool, seq_namespace: str | None) -> None:
        genome = self.contents[content]
        digest = genome.digest
        existing = self.genomes.get(digest)
        wanted = list(dict.fromkeys(names))
        fasta = self.root / f"c{content}.fa"
        tokens = [(token.partition(":")[2], record[2]) for (header, _bases), record in zip(CONTENTS[content], genome.records)
                  for token in header.split()[1:] if seq_namespace and token.startswith(f"{seq_namespace}:")]
        taken = [n for n in wanted if self._target(self.aliases, "refgenie", n) not in (None, digest)]
        taken += [local for local, bare in tokens if self._target(self.seq_aliases, seq_namespace or "", local)
                  not in (None, bare)]
        call = lambda: self.store.genomes.init(fasta, names, species=species, force=force,  # noqa: E731
                                               seq_namespace=seq_namespace)
        if (taken and not force) or (existing and species and species != existing.species):
            with pytest.raises(ConflictError):
                call()
            return
        result = call()
        seqs = []
        if existing is None:
            seqs.append(self._take_seq())
            self.genomes[digest] = GenomeModel(genome, species, seqs[-1])
            self.genome_steps[digest] = GenomeSteps()  # GenomeAdded ends the stream's history
        self.stored.add(digest)
        added, shadows = [], {}
        for name in wanted:
            model = self.aliases.setdefault(("refgenie", name), AliasModel())
            if model.target == digest:
                continue
            if model.target is None:
                shadows.update(self._shadows(name, digest))
            added.append(f"refgenie:{name}")
            seqs.append(self._step(model, "alias-set", digest))
        seq_added = 0
        for local, bare in tokens:
            model = self.seq_aliases.setdefault((seq_namespace or "", local), AliasModel())
            if model.target != bare:
                seq_added += 1
                seqs.append(self._step(model, "sequence-alias-set", bare))
        assert (result.added, result.aliases_added, result.seqs, result.shadows, result.sequence_aliases_added) == (
            existing is None, added, seqs, shadows or msgspec.UNSET, seq_added)
        assert result.genome.digest == digest

    @rule(genome=st.integers(0, len(CONTENTS) - 1), name=st.sampled_from(NAMES),
          spelled=st.sampled_from(("bare", "ns:name", "digest")), ns=st.sampled_from(NAMESPACES))
    def remove(self, genome: int, name: str, spelled: str, ns: str) -> None:
        if spelled == "digest":  # mostly a genome there is
            present = sorted(self.genomes)
            asked = present[genome % len(present)] if present and genome else self.contents[genome].digest
            call = lambda: self.store.genomes.remove(asked, by_digest=True)  # noqa: E731
            digest: str | None = asked if asked in self.genomes else None
        elif spelled == "bare":  # the refgenie namespace only, never another namespace's genome
            digest = self._target(self.aliases, "refgenie", name)
            call = lambda: self.store.genomes.remove(name)  # noqa: E731
        else:
            digest = self._target(self.aliases, ns, name)
            call = lambda: self.store.genomes.remove(f"{ns}:{name}")  # noqa: E731
        if digest is None:
            with pytest.raises(NotFoundError):
                call()
            return
        seqs = call()
        expected = [self._take_seq()]
        removal = Removal(expected[0], self.genomes.pop(digest), [])
        for key in sorted(k for k, m in self.aliases.items() if m.target == digest):
            expected.append(self._step(self.aliases[key], "alias-removed", None))
            removal.aliases.append((key, len(self.aliases[key].events) - 1))
        assert seqs == expected
        steps = self.genome_steps[digest]
        steps.done.append(removal)
        steps.undone.clear()

    @rule(genome=st.integers(0, len(CONTENTS) - 1), redo=st.booleans(), by_digest=st.booleans())
    def genome_undo_redo(self, genome: int, redo: bool, by_digest: bool) -> None:
        self._genome_move(genome, redo, by_digest)

    def _genome_move(self, genome: int, redo: bool, by_digest: bool) -> str | None:
        """Undo or redo a genome's latest step as the model says it goes; the digest moved, if it moved."""
        movable = sorted(d for d, z in self.genome_steps.items() if (z.undone if redo else z.done))
        # Mostly a genome with a step to move (else few moves succeed); genome 0 also tries one without.
        digest = movable[genome % len(movable)] if movable and genome else self.contents[genome % len(self.contents)].digest
        owned = sorted(k for k, m in self.aliases.items() if m.target == digest)
        name, by_digest = (digest, True) if by_digest or not owned else (f"{owned[0][0]}:{owned[0][1]}", False)
        move = self.store.genomes.redo if redo else self.store.genomes.undo
        steps = self.genome_steps.get(digest)
        if steps is None:
            with pytest.raises(NotFoundError):
                move(name, by_digest=by_digest)
            return None
        stack = steps.undone if redo else steps.done
        if not stack:
            with pytest.raises(NothingToRedoError if redo else NothingToUndoError):
                move(name, by_digest=by_digest)
            return None
        removal = stack[-1]
        takes = {key for key, _index in removal.aliases}
        changed = any((self.aliases[key].undone[-1:] if redo else self.aliases[key].done[-1:]) != [index]
                      for key, index in removal.aliases)
        if changed or (redo and set(owned) - takes):
            with pytest.raises(ConflictError):
                move(name, by_digest=by_digest)
            return None
        shadows = {} if redo else {k: v for key in removal.aliases if key[0][0] == "refgenie"
                                   for k, v in self._shadows(key[0][1], digest).items()}
        result = move(name, by_digest=by_digest)
        expected = [self._take_seq()]
        for key, _index in removal.aliases:
            model = self.aliases[key]
            if redo:
                model.done.append(model.undone.pop())
            else:
                model.undone.append(model.done.pop())
            expected.append(self._take_seq())
            model.events.append((expected[-1], "redone" if redo else "undone", model.target))
        if redo:
            del self.genomes[digest]
            steps.done.append(steps.undone.pop())
        else:
            self.genomes[digest] = removal.genome
            steps.undone.append(steps.done.pop())
        assert (result.digest, result.step_seq, result.present, result.seqs, result.shadows) == (
            digest, removal.seq, not redo, expected, shadows or msgspec.UNSET)
        assert result.aliases == [f"{ns}:{n}" for (ns, n), _index in removal.aliases]
        GenomesModel.moved[result.action] = GenomesModel.moved.get(result.action, 0) + 1
        return digest

    @precondition(lambda self: any(z.done or z.undone for z in self.genome_steps.values()))
    @rule(genome=st.integers(1, 8), redo=st.booleans(), by_digest=st.booleans())
    def genome_step_moved(self, genome: int, redo: bool, by_digest: bool) -> None:
        """``genome_undo_redo`` once there is a step to move: rule choice alone reached few of them."""
        self.genome_undo_redo(genome, redo, by_digest)

    # Undo and redo each once there is a removal to move that way: with the rules above alone, the draws of
    # another hypothesis version (CI installs the newest) could move nothing: 1 of 6 seeds tried made no undo,
    # and with an undo rule alone 1 of 10 made no redo (the undone state rarely lasted until a redo was drawn).
    @precondition(lambda self: any(z.done for z in self.genome_steps.values()))
    @rule(genome=st.integers(1, 8), by_digest=st.booleans(), redo_at_once=st.booleans())
    def genome_removal_undone(self, genome: int, by_digest: bool, redo_at_once: bool) -> None:
        """``genome_undo_redo``'s undo once a removal can be undone; with ``redo_at_once`` its redo right after."""
        digest = self._genome_move(genome, False, by_digest)
        if digest is not None and redo_at_once:
            movable = sorted(d for d, z in self.genome_steps.items() if z.undone)
            self._genome_move(movable.index(digest) + len(movable), True, by_digest)  # picks ``digest``

    @precondition(lambda self: any(z.undone for z in self.genome_steps.values()))
    @rule(genome=st.integers(1, 8), by_digest=st.booleans())
    def genome_removal_redone(self, genome: int, by_digest: bool) -> None:
        """``genome_undo_redo``'s redo once an undone removal can be redone."""
        self.genome_undo_redo(genome, True, by_digest)

    # -- genome aliases -------------------------------------------------------------------------

    @rule(ns=st.sampled_from(NAMESPACES), name=st.sampled_from(NAMES), genome=st.integers(0, len(CONTENTS) - 1),
          force=st.booleans())
    def alias_set(self, ns: str, name: str, genome: int, force: bool) -> None:
        digest = self.contents[genome].digest
        model = self.aliases.setdefault((ns, name), AliasModel())
        current = model.target
        call = lambda: self.store.aliases.set(f"{ns}:{name}", digest, force=force)  # noqa: E731
        if current == digest:
            assert call().seq == 0
            return
        if current is not None and not force:
            with pytest.raises(ConflictError):
                call()
            return
        if digest not in self.genomes:
            with pytest.raises(NotFoundError):
                call()
            return
        shadows = self._shadows(name, digest) if ns == "refgenie" and current is None else {}
        change = call()
        assert (change.digest, change.previous, change.shadows) == (digest, current, shadows or msgspec.UNSET)
        assert change.seq == self._step(model, "alias-set", digest)

    @rule(ns=st.sampled_from(NAMESPACES), name=st.sampled_from(NAMES))
    def alias_remove(self, ns: str, name: str) -> None:
        model = self.aliases.setdefault((ns, name), AliasModel())
        if model.target is None:
            with pytest.raises(NotFoundError):
                self.store.aliases.remove(f"{ns}:{name}")
            return
        current = model.target
        change = self.store.aliases.remove(f"{ns}:{name}")
        assert (change.digest, change.previous, change.seq) == (None, current, self._step(model, "alias-removed", None))

    def _move(self, model: AliasModel, redo: bool, held: bool, call: object) -> tuple[str | None, int] | None:
        """Mirror an undo/redo: None if the store must refuse it (and does), else (target before, seq)."""
        assert callable(call)
        if not (model.undone if redo else model.done):
            with pytest.raises(NothingToRedoError if redo else NothingToUndoError):
                call()
            return None
        current = model.target
        index = model.undone[-1] if redo else model.done[-2] if len(model.done) > 1 else None
        target = model.events[index][2] if index is not None else None
        if target is not None and target != current and not held:
            with pytest.raises(NotFoundError):  # the genome (or sequence) it would name is gone
                call()
            return None
        call()
        if redo:
            model.done.append(model.undone.pop())
        else:
            model.undone.append(model.done.pop())
        assert model.target == target
        seq = self._take_seq()
        model.events.append((seq, "redone" if redo else "undone", target))
        return current, seq

    @rule(ns=st.sampled_from(NAMESPACES), name=st.sampled_from(NAMES), redo=st.booleans())
    def alias_undo_redo(self, ns: str, name: str, redo: bool) -> None:
        model = self.aliases.setdefault((ns, name), AliasModel())
        move = self.store.aliases.redo if redo else self.store.aliases.undo
        index = (model.undone[-1] if model.undone else None) if redo else (
            model.done[-2] if len(model.done) > 1 else None)
        target = model.events[index][2] if index is not None else None
        shadows = self._shadows(name, target) if ns == "refgenie" and model.target is None and target else {}
        changes: list[object] = []
        moved = self._move(model, redo, target in self.genomes, lambda: changes.append(move(f"{ns}:{name}")))
        if moved is None:
            return
        change = changes[0]
        assert isinstance(change, msgspec.Struct)
        assert (change.digest, change.previous, change.seq, change.shadows) == (  # type: ignore[attr-defined]
            model.target, moved[0], moved[1], shadows or msgspec.UNSET)

    # -- sequence aliases -----------------------------------------------------------------------

    @rule(ns=st.sampled_from(SEQ_NAMESPACES), name=st.sampled_from(SEQ_NAMES), which=st.integers(0, 7),
          form=st.sampled_from(DIGEST_FORMS), force=st.booleans())
    def seq_alias_set(self, ns: str, name: str, which: int, form: str, force: bool) -> None:
        record = self._records()[which % len(self._records())]
        bare = record[2]
        model = self.seq_aliases.setdefault((ns, name), AliasModel())
        current = model.target
        call = lambda: self.store.aliases.set(name, _spell(record, form), namespace=ns, force=force,  # noqa: E731
                                              sequence=True)
        if not self._held(bare):
            with pytest.raises(NotFoundError):
                call()
            return
        if current not in (None, bare) and not force:
            with pytest.raises(ConflictError):
                call()
            return
        change = call()
        assert (change.digest, change.previous, change.ga4gh, change.previous_ga4gh) == (
            bare, current, f"SQ.{bare}", current and f"SQ.{current}")
        if current == bare:
            assert change.seq == 0
            return
        assert change.seq == self._step(model, "sequence-alias-set", bare)

    @rule(ns=st.sampled_from(SEQ_NAMESPACES), name=st.sampled_from(SEQ_NAMES))
    def seq_alias_remove(self, ns: str, name: str) -> None:
        model = self.seq_aliases.setdefault((ns, name), AliasModel())
        if model.target is None:
            with pytest.raises(NotFoundError):
                self.store.aliases.remove(f"{ns}:{name}", sequence=True)
            return
        current = model.target
        change = self.store.aliases.remove(name, namespace=ns, sequence=True)
        assert (change.digest, change.previous, change.ga4gh, change.previous_ga4gh) == (
            None, current, None, f"SQ.{current}")
        assert change.seq == self._step(model, "sequence-alias-removed", None)

    @rule(ns=st.sampled_from(SEQ_NAMESPACES), name=st.sampled_from(SEQ_NAMES), redo=st.booleans())
    def seq_alias_undo_redo(self, ns: str, name: str, redo: bool) -> None:
        model = self.seq_aliases.setdefault((ns, name), AliasModel())
        move = self.store.aliases.redo if redo else self.store.aliases.undo
        index = (model.undone[-1] if model.undone else None) if redo else (
            model.done[-2] if len(model.done) > 1 else None)
        target = model.events[index][2] if index is not None else None
        changes: list[object] = []
        moved = self._move(model, redo, target is not None and self._held(target),
                           lambda: changes.append(move(f"{ns}:{name}", sequence=True)))
        if moved is None:
            return
        change = changes[0]
        assert isinstance(change, msgspec.Struct)
        assert (change.digest, change.previous, change.seq, change.ga4gh) == (  # type: ignore[attr-defined]
            model.target, moved[0], moved[1], model.target and f"SQ.{model.target}")

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
        self._check_genomes()
        self._check_aliases(sequence=False)
        self._check_aliases(sequence=True)

    def _alias_names(self, digest: str) -> list[str]:
        owned = sorted(k for k, m in self.aliases.items() if m.target == digest)
        ordered = sorted(owned, key=lambda a: (a[0] != "refgenie", a[0], a[1]))
        return [n if ns == "refgenie" else f"{ns}:{n}" for ns, n in ordered]

    def _resolved(self, name: str) -> str | type[Exception]:
        own = self._target(self.aliases, "refgenie", name)
        if own is not None:
            return own
        hits = {t for ns in NAMESPACES[1:] if (t := self._target(self.aliases, ns, name)) is not None}
        if len(hits) > 1:
            return ConflictError
        return hits.pop() if hits else NotFoundError

    def _check_genomes(self) -> None:
        genomes = self.store.genomes
        expected = []
        for digest, model in self.genomes.items():
            names = self._alias_names(digest)
            records = model.content.records
            expected.append(((not names, names[0] if names else digest), (
                digest, names, [r[0] for r in records], [len(r[1]) for r in records],
                [f"SQ.{r[2]}" for r in records], [r[3] for r in records], model.species, model.added_seq)))
        expected_rows = [row for _key, row in sorted(expected)]

        def rows(infos: object) -> list[tuple[object, ...]]:
            return [(g.digest, g.aliases, g.names, g.lengths, g.sequences, g.md5s, g.species, g.added_seq)
                    for g in infos]  # type: ignore[attr-defined]

        assert rows(genomes.list()) == expected_rows
        assert rows(genomes.stream(chunk=2)) == expected_rows
        for content in self.contents:
            if content.digest not in self.genomes:
                with pytest.raises(NotFoundError):
                    genomes.show(content.digest, by_digest=True)
                continue
            info = genomes.show(content.digest, by_digest=True)
            assert (info.n_sequences, info.total_length) == (
                len(content.records), sum(len(r[1]) for r in content.records))
            for seqname, bases, _bare, _md5 in content.records:
                assert genomes.getseq(content.digest, seqname, by_digest=True) == bases
                assert genomes.getseq(content.digest, seqname, 1, 4, by_digest=True) == bases[1:4]
        for (ns, name), model in self.aliases.items():
            if model.target is None:
                with pytest.raises(NotFoundError):
                    genomes.show(f"{ns}:{name}")
            else:
                assert genomes.show(f"{ns}:{name}").digest == model.target
        for name in NAMES:
            meaning = self._resolved(name)
            if isinstance(meaning, str):
                assert genomes.resolve(name) == meaning
                records = self.genomes[meaning].content.records
                assert self.store.getseq(name, records[-1][0], 2) == records[-1][1][2:]
            else:
                with pytest.raises(meaning):
                    genomes.resolve(name)

    def _check_aliases(self, *, sequence: bool) -> None:
        aliases = self.store.aliases
        pool = self.seq_aliases if sequence else self.aliases
        namespaces = SEQ_NAMESPACES if sequence else NAMESPACES
        live = sorted((ns, name, m.target, m.events[-1][0]) for (ns, name), m in pool.items() if m.target is not None)

        def rows(entries: object) -> list[tuple[str, str, str, int]]:
            out = []
            for e in entries:  # type: ignore[attr-defined]
                assert e.ga4gh == (f"SQ.{e.digest}" if sequence else msgspec.UNSET)
                out.append((e.namespace, e.name, e.digest, e.seq))
            return out

        assert rows(aliases.list(sequence=sequence)) == live
        assert rows(aliases.stream(sequence=sequence, chunk=2)) == live
        assert aliases.names(sequence=sequence) == [(ns, name) for ns, name, _d, _s in live]
        for ns in namespaces:
            assert rows(aliases.list(namespace=ns, sequence=sequence)) == [r for r in live if r[0] == ns]
        if sequence:
            for record in self._records():
                mine = [r for r in live if r[2] == record[2]]
                for form in DIGEST_FORMS:
                    if form == "md5" and not self._held(record[2]):
                        continue  # an MD5 is only known through a stored sequence
                    assert rows(aliases.list(digest=_spell(record, form), sequence=True)) == mine, form
        else:
            for content in self.contents:
                assert rows(aliases.list(digest=content.digest)) == [r for r in live if r[2] == content.digest]
        for (ns, name), model in pool.items():
            if model.target is None:
                with pytest.raises(NotFoundError):
                    aliases.get(f"{ns}:{name}", sequence=sequence)
            else:
                assert aliases.get(name, namespace=ns, sequence=sequence) == model.target
            if not model.events:
                with pytest.raises(NotFoundError):
                    aliases.history(f"{ns}:{name}", sequence=sequence)
                continue
            steps = aliases.history(f"{ns}:{name}", sequence=sequence)
            expected = model.history()
            assert [(s.seq, s.action, s.digest, s.state) for s in steps] == expected
            if sequence:
                assert [s.ga4gh for s in steps] == [d and f"SQ.{d}" for _s, _a, d, _t in expected]


def test_genomes_and_sequence_aliases_match_the_model_after_any_commands(
        template: tuple[Path, list[Content]]) -> None:
    """Every genome, alias and sequence-alias query equals the model after each random command, across reopens
    and a rebuild."""
    root, contents = template
    GenomesModel.root, GenomesModel.contents = root, contents
    GenomesModel.moved.clear()  # this run's moves only
    run_state_machine_as_test(GenomesModel, settings=settings(
        max_examples=15, stateful_step_count=30, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
    assert GenomesModel.moved.get("undo") and GenomesModel.moved.get("redo"), GenomesModel.moved
