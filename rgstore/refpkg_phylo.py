"""phylo_model from a tree-inference log (``tree_stats``): RAxML info files, FastTree logs, PhyML stats.

``taxit create -s F`` and ``taxit update P tree_stats=F`` store F and also derive the package's
``phylo_model``: the JSON in which pplacer reads the substitution model (``datatype``,
``subs_model``, ``subs_rates`` for GTR, ``empirical_frequencies``) and the rate model
(``ras_model`` "gamma" with ``gamma.n_cats``/``alpha``, or "Price-CAT" with FastTree's
categories). This module is written from the log formats and from taxit's observed output,
not from taxtastic's (GPL) code. The JSON equals taxit 1.0.1's for every log taxit reads
correctly; where taxit writes a model pplacer cannot use (no alpha, no GTR rates, no rate
categories, a non-GTR nucleotide model) this refuses the log with the reason instead.

Read in one streaming pass, so a FastTree log with a tree per round costs no more memory
than its longest line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InvalidInputError

__all__ = ["phylo_model_from_stats", "render_phylo_model", "with_derived_phylo_model", "PHYLO_MODEL_NAME"]

PHYLO_MODEL_NAME = "phylo_model.json"
_PAIRS = ("ac", "ag", "at", "cg", "ct", "gt")
_RAXML_CATEGORIES = 4  # RAxML's GAMMA model always uses four discrete rate categories
_FASTTREE_AA = {"Jones-Taylor-Thorton": "JTT", "Whelan-And-Goldman": "WAG", "Le-Gascuel 2008": "LG"}
"""FastTree's names for its amino-acid models (its ML Model line); any other model is nucleotide GTR."""

# One pattern per fact, with whether the first or the last occurrence counts (taxit's choice:
# RAxML and PhyML report the first search; FastTree's later rounds refine the earlier ones).
_FACTS: dict[str, tuple[re.Pattern[str], bool]] = {
    "raxml_ng": (re.compile(r"^RAxML-NG v\. "), False),
    "raxml": (re.compile(r"This is RAxML version (\S+)"), False),
    "raxml_datatype": (re.compile(r"^DataType: (\S+)"), False),
    "raxml_matrix": (re.compile(r"^Substitution Matrix: (\S+)"), False),
    "raxml_empirical": (re.compile(r"^Using empirical base frequencies"), False),
    # The alpha value as taxit reads it: the first "alpha[0]: " (a search's line) or "alpha: " (RAxML 8 -f e)
    # anywhere in a line, followed by digits and dots, and only those ("0.38e-2" is 0.38; "x0.38", "nan",
    # "-0.5" are no alpha at all, so a later one counts). Digits and dots that are no number ("0.3.8") fail.
    "raxml_alpha": (re.compile(r"alpha[\[\]0-9]*: ([0-9.]+)"), False),
    # The rates as taxit reads them: six runs of digits and dots after the first such label, else none.
    "raxml_rates": (re.compile(r"rates\[0\] ac ag at cg ct gt: ([0-9.]+(?: [0-9.]+){5})"), False),
    "raxml_rate8": (re.compile(r"^rate ([ACGT]) <-> ([ACGT]): (\S+)"), False),
    "fasttree": (re.compile(r"^(FastTree Version .*?)\s*$"), False),
    "fasttree_model": (re.compile(r"^ML Model: ([^,]+)"), False),
    "fasttree_gtr": (re.compile(r"^GTRRates\s+(.+)"), True),
    "fasttree_ncat": (re.compile(r"^NCategories\s+(\S+)"), True),
    "fasttree_rates": (re.compile(r"^Rates\s+(.+)"), True),
    "fasttree_sites": (re.compile(r"^SiteCategories\s+(.+)"), True),
    "phyml": (re.compile(r"---\s+(PhyML \S+)\s+---"), False),
    "phyml_model": (re.compile(r"^\. Model of (nucleotides|amino acids) substitution:\s+(\S+)"), False),
    "phyml_gamma": (re.compile(r"^\. Discrete gamma model:\s+(\S+)"), False),
    "phyml_ncat": (re.compile(r"^\s+- Number of categories:\s+(\S+)"), False),
    # taxit's reading again: digits, a dot, digits ("1", ".5", "-0.5", "nan" are no shape parameter).
    "phyml_alpha": (re.compile(r"Gamma shape parameter:\s+([0-9]+\.[0-9]+)"), False),
    "phyml_rate": (re.compile(r"^\s+([ACGT]) <-> ([ACGT])\s+(\S+)"), False),
}
_PER_PAIR = ("raxml_rate8", "phyml_rate")
"""Facts kept per nucleotide pair (the first occurrence of each)."""


class _UnusableModel(InvalidInputError):
    """A log taxit reads, but whose model pplacer cannot use (moot when phylo_model is given explicitly)."""


class _Log:
    """The facts of one log; ``bad(why)`` builds the error naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.facts: dict[str, tuple[str, ...]] = {}
        self.pairs: dict[str, dict[str, str]] = {name: {} for name in _PER_PAIR}
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                self._scan(line)

    def _scan(self, line: str) -> None:
        for name, (pattern, last) in _FACTS.items():
            match = pattern.search(line)
            if match is None:
                continue
            if name in _PER_PAIR:
                self.pairs[name].setdefault((match[1] + match[2]).lower(), match[3])
            elif last or name not in self.facts:
                self.facts[name] = match.groups()

    def get(self, name: str) -> str | None:
        found = self.facts.get(name)
        return None if found is None else (found[0] if found else "")

    def bad(self, why: str) -> InvalidInputError:
        return InvalidInputError(f"tree stats {self.path}: {why}")

    def unusable(self, why: str) -> InvalidInputError:
        return _UnusableModel(f"tree stats {self.path}: {why}")

    def number(self, text: str, what: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise self.bad(f"{what} {text!r} is not a number") from None

    def numbers(self, text: str, what: str) -> list[float]:
        return [self.number(word, what) for word in text.split()]

    def count(self, text: str, what: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise self.bad(f"{what} {text!r} is not a whole number") from None

    def rates(self, values: Sequence[float] | dict[str, str], what: str) -> dict[str, float]:
        """GTR rates as pplacer's ``subs_rates`` (ac, ag, at, cg, ct, gt)."""
        if isinstance(values, dict):
            if set(values) != set(_PAIRS):
                raise self.unusable(f"no GTR substitution rates found ({what})")
            return {pair: self.number(values[pair], "GTR rate") for pair in _PAIRS}
        if len(values) != len(_PAIRS):
            raise self.unusable(f"expected 6 GTR rates ({what}), found {len(values)}")
        return dict(zip(_PAIRS, values, strict=True))


def phylo_model_from_stats(path: Path) -> dict[str, Any]:
    """pplacer's phylo_model for a RAxML info file, FastTree log or PhyML stats file.

    InvalidInputError (one line, naming the file) for anything else, and for a log whose model
    pplacer cannot use.
    """
    log = _Log(path)
    if log.get("raxml_ng") is not None:
        raise log.bad("RAxML-NG logs are not supported; give the package a phylo_model file instead")
    if log.get("raxml") is not None:
        return _raxml(log)
    if log.get("fasttree") is not None:
        return _fasttree(log)
    if log.get("phyml") is not None:
        return _phyml(log)
    raise log.bad("couldn't guess its log type (expected a RAxML info file, FastTree log or PhyML stats)")


def _raxml(log: _Log) -> dict[str, Any]:
    datatype = log.get("raxml_datatype")
    if datatype not in ("DNA", "AA"):
        raise log.bad(f"RAxML DataType {datatype!r}: pplacer reads only DNA and AA models"
                      if datatype else "RAxML log names no DataType")
    model: dict[str, Any] = {
        "program": f"RAxML version {log.get('raxml')}",
        "datatype": datatype,
        # RAxML's nucleotide GTR always uses empirical frequencies; protein models say which.
        "empirical_frequencies": datatype == "DNA" or log.get("raxml_empirical") is not None,
        "subs_model": log.get("raxml_matrix") or "",
    }
    if not model["subs_model"]:
        raise log.unusable("RAxML log names no Substitution Matrix")
    alpha = log.get("raxml_alpha")
    if alpha is None:
        raise log.unusable("no GAMMA alpha parameter found (pplacer needs a GAMMA model; CAT is not enough)")
    if datatype == "DNA":
        rates = log.get("raxml_rates")
        model["subs_rates"] = (log.rates(log.numbers(rates, "GTR rate"), "the alpha[0] line") if rates
                               else log.rates(log.pairs["raxml_rate8"], "'rate A <-> C' lines"))
    model["gamma"] = {"n_cats": _RAXML_CATEGORIES, "alpha": log.number(alpha, "alpha")}
    model["ras_model"] = "gamma"
    return model


def _fasttree(log: _Log) -> dict[str, Any]:
    name = (log.get("fasttree_model") or "").strip()
    protein = _FASTTREE_AA.get(name)
    model: dict[str, Any] = {
        "program": log.get("fasttree"),
        "datatype": "AA" if protein else "DNA",
        "subs_model": protein or "GTR",
        "empirical_frequencies": not protein,
    }
    if not protein:
        rates = log.get("fasttree_gtr")
        if rates is None:
            raise log.bad(f"nucleotide model {name or '(unnamed)'} has no GTRRates line; "
                          "pplacer needs FastTree -gtr for nucleotides")
        model["subs_rates"] = log.rates(log.numbers(rates, "GTR rate"), "the GTRRates line")
    n_cats = log.get("fasttree_ncat")
    if n_cats is None:
        raise log.unusable("no NCategories line: pplacer needs FastTree's CAT rate categories (not -nocat)")
    cat: dict[str, Any] = {"n_cats": log.count(n_cats, "NCategories")}
    if (rates := log.get("fasttree_rates")) is not None:
        cat["Rates"] = log.numbers(rates, "CAT rate")
    if (sites := log.get("fasttree_sites")) is not None:
        cat["SiteCategories"] = [log.count(word, "site category") for word in sites.split()]
    model["ras_model"] = "Price-CAT"
    model["Price-CAT"] = cat
    return model


def _phyml(log: _Log) -> dict[str, Any]:
    found = log.facts.get("phyml_model")
    if found is None:
        raise log.bad("PhyML stats name no substitution model")
    kind, name = found
    if kind == "amino acids":
        raise log.bad("PhyML amino-acid stats do not say whether frequencies were empirical; "
                      "give the package a phylo_model file instead")
    if name != "GTR":
        raise log.unusable(f"PhyML nucleotide model {name}: pplacer reads only GTR")
    if log.get("phyml_gamma") != "Yes":
        raise log.unusable("PhyML ran without a discrete gamma model, which pplacer needs")
    n_cats, alpha = log.get("phyml_ncat"), log.get("phyml_alpha")
    if n_cats is None or alpha is None:
        raise log.unusable("PhyML gamma model without its number of categories or shape parameter")
    return {
        "program": log.get("phyml"),
        "datatype": "DNA",
        "subs_model": "GTR",
        "subs_rates": log.rates(log.pairs["phyml_rate"], "'A <-> C' lines"),
        "empirical_frequencies": True,
        "gamma": {"n_cats": log.count(n_cats, "number of categories"), "alpha": log.number(alpha, "alpha")},
        "ras_model": "gamma",
    }


def render_phylo_model(model: dict[str, Any]) -> bytes:
    """The phylo_model file's bytes: JSON indented by 4, as taxtastic writes it, plus a newline."""
    return (json.dumps(model, indent=4) + "\n").encode()


@contextmanager
def with_derived_phylo_model(
    pairs: Sequence[tuple[str, Path]], *, in_order: bool = False,
) -> Iterator[list[tuple[str, Path]]]:
    """``pairs`` (one per key) with phylo_model derived from the tree_stats pair, a temp file, while open.

    Unchanged if there is no tree_stats pair, or if phylo_model is given explicitly: then it wins,
    or with ``in_order`` (``taxit update``'s rule: each tree_stats pair re-derives phylo_model, so
    the later of the two wins; ``pairs`` ordered by each key's last mention) only if it comes after
    tree_stats, and a derived one replaces it in place. The log is parsed before anything is
    stored, so a bad one fails the command cleanly; one taxit cannot read fails it even when the
    explicit phylo_model wins (as ``taxit update`` does), one it reads but pplacer could not use
    does not.
    """
    keys = [key for key, _path in pairs]
    if "tree_stats" not in keys:
        yield list(pairs)
        return
    if "phylo_model" in keys and (not in_order or keys.index("phylo_model") > keys.index("tree_stats")):
        try:
            phylo_model_from_stats(dict(pairs)["tree_stats"])
        except _UnusableModel:
            pass  # the explicit phylo_model replaces the model anyway
        yield list(pairs)
        return
    import tempfile  # lazily: `refpkg info` loads this module, only a write derives a model file (~4 ms)

    data = render_phylo_model(phylo_model_from_stats(dict(pairs)["tree_stats"]))
    with tempfile.TemporaryDirectory(prefix="rgstore-phylo-") as tmp:
        path = Path(tmp) / PHYLO_MODEL_NAME
        path.write_bytes(data)
        if "phylo_model" in keys:
            yield [(key, path if key == "phylo_model" else given) for key, given in pairs]
        else:
            yield [("phylo_model", path), *pairs]
