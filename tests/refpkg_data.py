"""Test inputs for reference packages: a small valid pplacer file set and the real `taxit`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["write_inputs", "taxit", "TAXIT", "contents", "VALID_FILES"]

TAXIT = str(Path(sys.executable).with_name("taxit"))

_NAMES = ["s1", "s2", "s3"]
VALID_FILES: dict[str, tuple[str, str]] = {
    # key: (file name, content) -- mutually consistent, so `taxit check` passes
    "aln_fasta": ("seqs.fasta", "".join(f">{n} sample {n}\nACGT-ACGTAC\n" for n in _NAMES)),
    "aln_sto": ("seqs.sto", "# STOCKHOLM 1.0\n" + "".join(f"{n} ACGT-ACGTAC\n" for n in _NAMES) + "//\n"),
    "seq_info": ("seq_info.csv", '"seqname","accession","tax_id","species_name","is_type"\n'
                 + "".join(f'"{n}","A{i}","562","Escherichia coli","FALSE"\n' for i, n in enumerate(_NAMES))),
    "taxonomy": ("taxonomy.csv", "tax_id,parent_id,rank,tax_name,root,species\n"
                 "1,1,root,root,1,\n562,1,species,Escherichia coli,1,562\n"),
    "tree": ("tree.nwk", "((s1:0.1,s2:0.2):0.05,s3:0.3);\n"),
    "phylo_model": ("phylo_model.json", json.dumps({
        "datatype": "DNA", "subs_model": "GTR", "ras_model": "gamma", "empirical_frequencies": True,
        "gamma": {"alpha": 0.5, "n_cats": 4}, "program": "RAxML version 7.2.8",
        "subs_rates": {"ac": 1.0, "ag": 2.0, "at": 1.0, "cg": 1.0, "ct": 2.0, "gt": 1.0},
    }, indent=4)),
    "readme": ("README.txt", "A tiny reference package for tests.\n"),
}


def write_inputs(directory: Path) -> dict[str, Path]:
    """Write the valid file set into ``directory``; returns key -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, (name, text) in VALID_FILES.items():
        path = directory / name
        path.write_text(text)
        out[key] = path
    return out


def taxit(*args: str | Path, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real `taxit` (taxtastic 1.0.1) in a subprocess."""
    proc = subprocess.run([TAXIT, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)
    if check and proc.returncode != 0:
        command = " ".join(map(str, args))
        raise AssertionError(f"taxit {command} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def contents(package: Path) -> dict:  # type: ignore[type-arg]
    """A package directory's CONTENTS.json, parsed."""
    return json.loads((package / "CONTENTS.json").read_text())  # type: ignore[no-any-return]

