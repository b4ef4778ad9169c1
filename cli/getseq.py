"""``rgstore getseq``: print regions of a genome's sequences (bare lines or FASTA)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .complete import genome_names, sequence_names
from .main import Context, GivenPath, store_option

if TYPE_CHECKING:
    from rgstore.locus import Region

__all__ = ["getseq_cmd", "quiet_broken_pipe", "signals_unwind"]

pass_ctx = click.make_pass_decorator(Context)


@click.command("getseq")
@click.argument("name", required=False, shell_complete=genome_names)
@click.argument("loci", nargs=-1, shell_complete=sequence_names)
@click.option("--genome", "-g", "genome_opt", metavar="NAME", shell_complete=genome_names,
              help="The genome NAME, as refgenie's -g takes it (each LOCUS then goes with -l).")
@click.option("--locus", "-l", "locus_opt", metavar="LOCUS", multiple=True, shell_complete=sequence_names,
              help="A LOCUS as refgenie's -l gives it; repeatable.")
@click.option("--digest", metavar="D", help="Read from the genome with this digest (then every argument is a LOCUS).")
@click.option("--sequence", "sequence_id", metavar="ID",
              help="Read the sequence with this refget id (SQ.…, ga4gh:SQ.…, MD5, TRUNC512, or a sequence "
                   "alias ns:name such as insdc:BK006935.2) from whichever genome holds it, as the server's "
                   "/sequence/ID does; every argument is then a REGION, start-end or start (none: all of it).")
@click.option("--bed", type=GivenPath(path_type=Path, dir_okay=False, allow_dash=True),
              help="Also read regions from a BED file (- for standard input).")
@click.option("--revcomp", "-i", is_flag=True, help="Reverse-complement every region.")
@click.option("--strand", "-s", "stranded", is_flag=True,
              help="Reverse-complement the --bed rows whose 6th column is - (as bedtools getfasta -s; "
                   "+, . or none: forward); --fasta headers end in (+), (-), (.) or ().")
@click.option("--fasta", "as_fasta", is_flag=True, help="FASTA output with >seq:start-end headers.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON array, an object per region: name, start and end (0-based, half-open, "
                   "whatever --one-based says), strand (- when reverse-complemented, else +), sequence "
                   "and digest (its SQ. digest).")
@click.option("--one-based", "-1", "one_based", is_flag=True,
              help="LOCUS coordinates (and --fasta headers) are 1-based and inclusive, as in samtools faidx, "
                   "IGV and the UCSC browser: chr1:1-10 is the first ten bases. BED stays 0-based.")
@click.option("--width", type=click.IntRange(min=1), default=60, show_default=True,
              help="Residues per line with --fasta.")
@store_option
@pass_ctx
def getseq_cmd(
    ctx: Context, name: str | None, loci: tuple[str, ...], genome_opt: str | None, locus_opt: tuple[str, ...],
    digest: str | None, sequence_id: str | None, bed: Path | None, revcomp: bool, stranded: bool, as_fasta: bool,
    as_json: bool, one_based: bool, width: int,
) -> None:
    """Print regions of genome NAME (an alias: hg38 or ns:name); LOCUS is seq, seq:start or seq:start-end.

    Coordinates are 0-based and half-open (chr1:0-10 is the first ten bases), or with --one-based
    1-based and inclusive like samtools faidx (chr1:1-10). A bare NAME the refgenie namespace lacks
    is looked up in the other namespaces (hg38 -> ncbi:hg38); if several name different genomes, it is
    refused: give ns:name. A LOCUS that is exactly a sequence name
    of the genome (HLA:01) is that whole sequence. Output is upper case, one line per region, or
    FASTA with --fasta. With --sequence ID (a CRAM M5, an INSDC accession as insdc:ACC) the
    sequence is found by its id in whichever genome holds it; arguments are then REGIONs.
    refgenie's form, -g NAME -l LOCUS, is the same as the arguments NAME LOCUS.

    \b
    Example:
        rgstore getseq hg38 chr1:0-60 chrM
        rgstore getseq -g hg38 -l chr1:0-60  # refgenie's form, the same
        rgstore getseq hg38 --one-based chr1:11,874-14,409  # as UCSC shows it
        rgstore getseq --digest XZlrcEGi6mlopZ2uD8ObHkQB1d0oDwKk chrX:2-6 \\
            --revcomp --fasta
        rgstore getseq --sequence insdc:BK006935.2 --one-based 1-60 --fasta
        rgstore getseq hg38 --bed regions.bed --fasta --width 80
        rgstore getseq hg38 --bed genes.bed --strand --fasta
        bedtools merge -i peaks.bed | rgstore getseq hg38 --bed -
        rgstore getseq hg38 chr1:0-60 chrM --json
    """
    if as_json and as_fasta:
        raise click.UsageError("--json and --fasta are two outputs: give one")
    name, loci = _refgenie_form(name, loci, genome_opt, locus_opt, digest=digest, sequence_id=sequence_id)
    if sequence_id is not None:
        regions = ((name,) if name is not None else ()) + loci
        _sequence_usage(digest, bed, stranded, regions)
        with signals_unwind(), ctx.open(readonly=True) as store:  # a remote genome's first read fetches
            found = store.genomes.stream_sequence(sequence_id, regions, one_based=one_based, revcomp=revcomp)
            if as_json:
                _write_json(found, revcomp=revcomp, stranded=False)
            else:
                _write(found, as_fasta=as_fasta, width=width, revcomp=revcomp, stranded=False, one_based=one_based)
        return
    if digest is not None:
        loci = ((name,) if name is not None else ()) + loci
        genome, by_digest = digest, True
    elif name is None:
        raise click.UsageError("give a genome NAME (or --digest D) and at least one LOCUS")
    else:
        genome, by_digest = name, False
    if not loci and bed is None:
        raise click.UsageError("give at least one LOCUS or --bed FILE")
    if stranded and bed is None:  # it reads the BED's 6th column: without one it was silently ignored
        raise click.UsageError("--strand applies to --bed rows (their 6th column); for a LOCUS use --revcomp")
    if stranded and revcomp:
        raise click.UsageError("--strand and --revcomp cannot be combined: --revcomp reverse-complements every "
                               "region, --strand only the --bed rows on the - strand")
    with signals_unwind(), ctx.open(readonly=True) as store:  # a remote genome's first read imports
        found = store.genomes.stream_loci(genome, loci, bed=bed, by_digest=by_digest, revcomp=revcomp,
                                          one_based=one_based, strand=stranded)
        if as_json:
            _write_json(found, revcomp=revcomp, stranded=stranded)
        else:
            _write(found, as_fasta=as_fasta, width=width, revcomp=revcomp, stranded=stranded, one_based=one_based)


def _refgenie_form(name: str | None, loci: tuple[str, ...], genome: str | None, locus: tuple[str, ...], *,
                   digest: str | None, sequence_id: str | None) -> tuple[str | None, tuple[str, ...]]:
    """NAME and the loci, with refgenie's ``-g NAME -l LOCUS`` folded in; a UsageError for a form given twice.

    Positional loci and -l LOCUS are not mixed: click keeps no order between them, so the output's would be guessed.
    """
    if sequence_id is not None and (genome is not None or locus):
        raise click.UsageError("--sequence ID names one sequence of any genome: it takes no -g/--genome or "
                               "-l/--locus (arguments are REGIONs)")
    if genome is not None:
        if digest is not None:
            raise click.UsageError("-g/--genome and --digest both name the genome: give one")
        if name is not None:
            raise click.UsageError(f"-g {genome} names the genome and -l gives each LOCUS, so the argument "
                                   f"{name!r} is one too many: `rgstore getseq {genome} LOCUS...` or "
                                   f"`rgstore getseq -g {genome} -l LOCUS`")
        return genome, locus
    given = ((name,) if digest is not None and name is not None else ()) + loci  # --digest: every argument a LOCUS
    if locus and given:
        raise click.UsageError(f"give each LOCUS as an argument or with -l/--locus, not both ({given[0]!r} "
                               f"and -l {locus[0]})")
    return name, loci + locus


def _sequence_usage(digest: str | None, bed: Path | None, stranded: bool, regions: tuple[str, ...]) -> None:
    """UsageError for what --sequence cannot take: it names one sequence, so no genome and no BED."""
    if digest is not None or bed is not None:
        raise click.UsageError("--sequence ID names one sequence of any genome: it takes no --digest or --bed")
    if stranded:
        raise click.UsageError("--strand applies to --bed rows (their 6th column); for a REGION use --revcomp")
    named = [region for region in regions if not region[:1].isdigit()]
    if named:
        raise click.UsageError(f"--sequence ID takes REGIONs (start-end or start), not a genome NAME or LOCUS: "
                               f"{named[0]!r}")


def _write(found: list[tuple[Region, int, Iterator[str]]], *, as_fasta: bool, width: int, revcomp: bool,
           stranded: bool, one_based: bool) -> None:
    """Print regions as bare lines or FASTA, piece by piece: a chromosome never sits in memory."""
    with quiet_broken_pipe():
        write = sys.stdout.write
        for region, size, pieces in found:
            if not as_fasta:
                for piece in pieces:
                    write(piece)
                write("\n")
                continue
            start = region.start or 0
            end = region.end if region.end is not None else start + size
            # bedtools getfasta -s names: the strand in parentheses, empty for a row without one.
            tag = "/rc" if revcomp else f"({region.strand or ''})" if stranded else ""
            write(f">{region.seq}:{start + one_based}-{end}{tag}\n")
            carry = ""  # a line split across two pieces
            for piece in pieces:
                text = carry + piece
                cut = len(text) - len(text) % width
                write("".join([text[i:i + width] + "\n" for i in range(0, cut, width)]))
                carry = text[cut:]
            if carry:
                write(carry + "\n")


def _write_json(found: list[tuple[Region, int, Iterator[str]]], *, revcomp: bool, stranded: bool) -> None:
    """Print one JSON array, an object per region, written whole only once every residue has been read:
    a read failing midway (a remote genome's fetch) leaves stdout empty, as for every --json command.

    The array is spooled (to a temp file past 32 MiB), so a chromosome never sits in memory whole.
    """
    import shutil
    import tempfile

    import msgspec

    from rgstore.aliases import sequence_id
    from rgstore.diskspace import refused_write
    from rgstore.seqcol import Sha512t24u

    encode = msgspec.json.encode
    temp = Path(tempfile.gettempdir())
    with tempfile.SpooledTemporaryFile(max_size=32 << 20) as spool:

        def put(data: bytes) -> None:
            # A full temp disk must say so, not "No space left on device" as if standard output's were full.
            try:
                spool.write(data)
            except OSError as exc:
                refused = refused_write(exc, temp, "getseq --json's spooled output (TMPDIR picks another disk)")
                if refused is None:
                    raise
                raise refused from None

        put(b"[")
        for i, (region, size, pieces) in enumerate(found):
            start = region.start or 0
            end = region.end if region.end is not None else start + size
            minus = revcomp or (stranded and region.strand == "-")
            head = {"name": region.seq, "start": start, "end": end, "strand": "-" if minus else "+"}
            put((b"," if i else b"") + encode(head)[:-1] + b',"sequence":"')
            digest = Sha512t24u()
            for piece in pieces:
                digest.update(piece)
                put(encode(piece)[1:-1])  # the piece as a JSON string's inside
            put(b'","digest":' + encode(sequence_id(digest.digest())) + b"}")
        put(b"]\n")
        spool.seek(0)
        with quiet_broken_pipe():
            shutil.copyfileobj(spool, sys.stdout.buffer, 1 << 20)


@contextmanager
def quiet_broken_pipe(to_stdout: bool = True) -> Iterator[None]:
    """A reader that stops early (``| head``) ends the command quietly with status 0, as `cat` does.

    When the block writes to stdout (``to_stdout``), a full disk or device behind it (``> /dev/full``)
    is one line naming standard output and what it leads to, not a bare "No space left on device".
    """
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
        raise SystemExit(0) from None
    except OSError as exc:
        from rgstore.outputs import refused_output

        try:
            descriptor: int | None = sys.stdout.fileno()
        except (OSError, ValueError):  # no real descriptor behind stdout (an in-process runner)
            descriptor = None
        refused = refused_output(exc, "standard output", descriptor) if to_stdout else None
        if refused is None:
            raise
        _stdout_to_devnull()
        raise refused from None


def _stdout_to_devnull() -> None:
    # stdout now leads to /dev/null, so the interpreter's last flush of what is left cannot fail again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real descriptor behind stdout (an in-process runner)
        pass


@contextmanager
def signals_unwind() -> Iterator[None]:
    """SIGTERM (SystemExit 143), SIGHUP (129) and Ctrl-C (KeyboardInterrupt) unwind the block so its cleanup runs.

    All go through ``rgstore.interrupts.interrupt``: Python's own SIGINT handler would raise the
    moment a gtars import returns, before the import's result is bound, and the collection it
    added could then not be taken back. SIGHUP (the terminal closed, an ssh session dropped) killed
    the process outright, leaving scratch dirs and staged stores behind. A SIGINT or SIGHUP the parent
    set to be ignored (``nohup``) stays ignored.
    """
    from rgstore.interrupts import interrupt, redelivered

    def stop_term(signum: int, _frame: Any) -> None:
        interrupt(SystemExit(128 + signum), signum)

    def stop_int(signum: int, _frame: Any) -> None:
        interrupt(KeyboardInterrupt(), signum)

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, stop_term)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, stop_int)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_DFL:
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, stop_term)
    try:
        with redelivered():  # a signal handled inside a weakref callback (an import's lock) is not lost
            yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
