"""A ProgressFactory that records what each bar was told, for claims about progress reporting."""

from __future__ import annotations


class Bars:
    """Records each bar as ``[description, total, [updates]]``, each bar's unit in ``units``, and closes in ``closed``."""

    def __init__(self) -> None:
        self.bars: list[list[object]] = []
        self.units: list[str] = []
        self.closed: list[str] = []  # the description of the latest bar opened, once per close

    def __call__(self, desc: str, total: int | None = None, unit: str = "it") -> Bars:
        self.bars.append([desc, total, []])
        self.units.append(unit)
        return self

    def update(self, n: int = 1) -> None:
        self.bars[-1][2].append(n)  # type: ignore[union-attr]

    def close(self) -> None:
        self.closed.append(str(self.bars[-1][0]))

    def totals(self) -> list[list[object]]:
        """Each bar as ``[description, total, sum of its updates]``."""
        return [[desc, total, sum(steps)] for desc, total, steps in self.bars]  # type: ignore[call-overload]
