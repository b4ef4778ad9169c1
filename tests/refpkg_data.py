"""Test inputs for reference packages: a small valid pplacer file set and the real `taxit`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["write_inputs", "taxit", "TAXIT", "contents", "VALID_FILES", "TREE_STATS", "write_tree_stats"]

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



# -- tree inference logs (tree_stats), written for these tests in each program's output format --


def _raxml(version: str, datatype: str, matrix: str, model_flag: str, result: str,
           frequencies: str | None = None, base: str | None = None) -> str:
    head = (f"\n\nThis is RAxML version {version} released by Alexandros Stamatakis in 2013.\n\n"
            "Alignment has 11 distinct alignment patterns\n\nRAxML rapid hill-climbing mode\n\n"
            "All free model parameters will be estimated by RAxML\n"
            "GAMMA model of rate heteorgeneity, ML estimate of alpha-parameter\n\n"
            f"Partition: 0\nAlignment Patterns: 11\nName: No Name Provided\nDataType: {datatype}\n"
            f"Substitution Matrix: {matrix}\n")
    if frequencies:
        head += f"Using {frequencies} base frequencies\n"
    head += f"\n\n\nRAxML was called as follows:\n\nraxmlHPC -m {model_flag} -n t -s seqs.fasta -p 1 \n\n\n"
    if base:
        head += f"Partition: 0 with name: No Name Provided\nBase frequencies: {base} \n\n"
    return head + result + "\nOverall execution time: 0.39 secs or 0.000109 hours\n\n"


def _search(alpha: str, rates: str = "") -> str:
    line = f"alpha[0]: {alpha}" + (f" rates[0] ac ag at cg ct gt: {rates}" if rates else "")
    return ("Inference[0]: Time 0.25 GAMMA-based likelihood -2365.188498, best rearrangement setting 5\n"
            f"{line} \n\n\nConducting final model optimizations on all 1 trees under GAMMA-based models ....\n"
            "Final GAMMA-based Score of best tree -2363.962363\n")


_EVALUATE = """Model Parameters of Partition 0, Name: No Name Provided, Type of Data: DNA
alpha: 0.463812
Tree-Length: 2.041094
rate A <-> C: 1.090285
rate A <-> G: 2.856148
rate A <-> T: 1.269340
rate C <-> G: 0.823089
rate C <-> T: 3.803108
rate G <-> T: 1.000000

freq pi(A): 0.251530
freq pi(C): 0.222017
freq pi(G): 0.303389
freq pi(T): 0.223064

Final GAMMA  likelihood: -1234.567
"""

_TREE = "((s1:0.00011,s2:0.00014):0.00895,s3:0.00701);"
_CAT_RATES = ("0.067666 0.092752 0.127137 0.174270 0.238877 0.327434 0.448823 0.615213 0.843288 1.155916 "
              "1.584444 2.171838 2.976994 4.080641 5.593440 7.667071 10.509451 14.405574 19.746088 27.066469")


def _fasttree(flags: str, distances: str, model: str, gtr: bool, rounds: int = 1) -> str:
    out = (f"Command: FastTree {flags} -log tree.log seqs.fasta\nFastTree Version 2.1.11 SSE3, OpenMP (2 threads)\n"
           f"Alignment: seqs.fasta\n{distances} Joins: balanced Support: SH-like 1000\n"
           "Search: Normal +NNI +SPR (2 rounds range 10) +ML-NNI opt-each=1\n"
           "TopHits: 1.00*sqrtN close=default refresh=0.80\n"
           f"ML Model: {model}, CAT approximation with 20 rate categories\n"
           f"Read 3 sequences, 11 positions\nNJ\t{_TREE}\nME_Lengths\t{_TREE}\n"
           "Total branch-length 0.015 after 0.01 sec\n")
    for r in range(1, rounds + 1):
        out += f"ML_NNI{r}\t{_TREE}\nTreeLogLk\tML_NNI{r}\t-1166.59{r}\tMaxChange\t3.16\n"
        if gtr:
            out += f"GTRFreq\t0.2587\t0.2256\t0.3024\t0.2133\nGTRRates\t0.826{r}\t1.8912\t1.4559\t0.4619\t3.1369\t1.0000\n"
        rates = _CAT_RATES if r == rounds else " ".join(str(0.1 * (i + 1)) for i in range(20))
        out += f"NCategories\t20\nRates {rates}\nSiteCategories 9 9 9 10 10 9 1{r} 9 10 8 9\n"
    return out + "TreeLogLk\tML_Lengths2\t-1165.1063\nTotal time: 0.08 seconds Unique: 3/3 Bad splits: 0/0\nTreeCompleted\n"


_PHYML = """
 oooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooo
                                    ---  PhyML 3.3.20190909  ---
                            http://www.atgc-montpellier.fr/phyml
 oooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooo


. Sequence filename: \t\t\tseqs.phy

. Data set: \t\t\t\t#1

. Tree topology search : \t\tNNIs

. Initial tree: \t\t\tBioNJ

. Model of nucleotides substitution: \tGTR

. Number of taxa: \t\t\t3

. Log-likelihood: \t\t\t-26675.55067

. Discrete gamma model: \t\tYes
  - Number of categories: \t\t4
  - Gamma shape parameter: \t\t0.448

. Nucleotides frequencies:

  - f(A)= 0.20191
  - f(C)= 0.25916
  - f(G)= 0.20919
  - f(T)= 0.32974

. GTR relative rate parameters :

  A <-> C    1.13747
  A <-> G    5.40642
  A <-> T    7.09944
  C <-> G    2.57697
  C <-> T    6.90929
  G <-> T    1.00000


. Instantaneous rate matrix :

  [A---------C---------G---------T------]
  -1.20755   0.09450   0.36257   0.75048
   0.07363  -0.97682   0.17282   0.73038


. Time used 0h0m1s

 oooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooooo
"""

TREE_STATS: dict[str, str] = {
    # name: a log taxit 1.0.1 turns into a usable phylo_model
    "RAxML_info.dna": _raxml("7.2.8", "DNA", "GTR", "GTRGAMMA",
                             _search("0.384677", "0.491059 1.225010 0.913008 0.539137 2.673436 1.000000")),
    "RAxML_info.dna_freqs": _raxml("7.7.2", "DNA", "GTR", "GTRGAMMA",
                                   _search("0.678906", "1.437514 3.282160 0.550950 0.659876 2.641523 1.000000")
                                   + _search("0.5", "9.0 9.0 9.0 9.0 9.0 1.0"),
                                   base="0.342 0.195 0.224 0.238"),
    "RAxML_info.evaluate": _raxml("8.2.12", "DNA", "GTR", "GTRGAMMA -f e -t tree.nwk", _EVALUATE),
    "RAxML_info.aa_fixed": _raxml("7.7.2", "AA", "WAG", "PROTGAMMAWAG", _search("2.296570"),
                                  frequencies="fixed", base=" ".join(["0.050"] * 20)),
    "RAxML_info.aa_empirical": _raxml("7.7.2", "AA", "LG", "PROTGAMMALGF", _search("2.259922"),
                                      frequencies="empirical", base=" ".join(["0.050"] * 20)),
    "fasttree_gtr.log": _fasttree("-nt -gtr", "Nucleotide distances: Jukes-Cantor",
                                  "Generalized Time-Reversible", gtr=True, rounds=2),
    "fasttree_jtt.log": _fasttree("", "Amino acid distances: BLOSUM45", "Jones-Taylor-Thorton", gtr=False),
    "fasttree_wag.log": _fasttree("-wag", "Amino acid distances: BLOSUM45", "Whelan-And-Goldman", gtr=False),
    "fasttree_lg.log": _fasttree("-lg", "Amino acid distances: BLOSUM45", "Le-Gascuel 2008", gtr=False),
    "phyml_stats.txt": _PHYML,
}


def write_tree_stats(directory: Path) -> dict[str, Path]:
    """Write every log of TREE_STATS into ``directory``; returns name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, text in TREE_STATS.items():
        out[name] = directory / name
        out[name].write_text(text)
    return out
