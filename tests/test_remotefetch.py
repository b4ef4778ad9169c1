"""Fetching a mirror's sequences on first read from its upstream's RefgetStore."""

from __future__ import annotations

from pathlib import Path

from rgstore.mirror import pull
from rgstore.segments import publish, publish_refget
from rgstore.store import Store


def test_a_lazy_mirror_of_a_directory_with_a_space_and_non_ascii_in_its_path_reads_its_sequences(
    tmp_path: Path,
) -> None:
    # The upstream's RefgetStore is recorded as a file:// URL (Path.as_uri: "pub%20d%C3%AFr"),
    # which gtars must be handed decoded, not as the directory "pub%20d%C3%AFr".
    (tmp_path / "g.fa").write_text(">chr1\nACGTACGTAAAACCCC\n>chrM\nGGGGCCCC\n")
    published = tmp_path / "pub dïr"
    with Store.open(tmp_path / "p") as primary:
        primary.genomes.init(tmp_path / "g.fa", ["tiny"])
        publish(primary, published)
        publish_refget(primary, published)
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(published))  # lazy: no sequence copied yet
        assert mirror.getseq("tiny", "chr1", 4, 12) == "ACGTAAAA"
        assert mirror.getseq("tiny", "chrM") == "GGGGCCCC"
