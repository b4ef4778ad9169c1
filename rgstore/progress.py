"""Progress reporting for long work: a bar on a terminal, silence when piped or asked for JSON."""

from __future__ import annotations

import os
import sys
import weakref
from typing import Any, Protocol

__all__ = ["Progress", "ProgressFactory", "NullProgress", "terminal_progress", "null_progress", "clear_bars", "note"]

# Bars drawn and not yet closed: an error unwinding past a bar's close must not print its line glued to the bar.
_DRAWN: weakref.WeakSet[Any] = weakref.WeakSet()


class Progress(Protocol):
    """A running progress indicator."""

    def update(self, n: int = 1) -> Any: ...

    def close(self) -> Any: ...


class ProgressFactory(Protocol):
    """Starts a Progress for a task of ``total`` units (None: unknown)."""

    def __call__(self, desc: str, total: int | None = None, unit: str = "it") -> Progress: ...


class NullProgress:
    """Does nothing; the default everywhere in the engine."""

    def update(self, n: int = 1) -> None:
        """Ignore progress."""

    def close(self) -> None:
        """Nothing to close."""


def null_progress(desc: str, total: int | None = None, unit: str = "it") -> Progress:
    """A ProgressFactory that reports nothing."""
    return NullProgress()


def terminal_progress(desc: str, total: int | None = None, unit: str = "it") -> Progress:
    """A tqdm bar on stderr when stderr is a capable terminal and there is work (``total`` is not 0); otherwise nothing.

    A terminal whose ``TERM`` is ``dumb`` or ``unknown`` (Emacs' shell, some CI consoles) gets no bar: tqdm
    ignores ``TERM`` and moves the cursor up (``ESC[A``) to redraw stacked bars, which such terminals print as text.
    """
    # total=0 (a fresh store's view rebuild, an empty log): a bar would only flash "0ev" on screen.
    if total == 0 or not sys.stderr.isatty() or os.environ.get("TERM", "").lower() in ("dumb", "unknown"):
        return NullProgress()
    from tqdm import tqdm  # type: ignore[import-untyped]  # lazily: only interactive runs pay for it

    # Scaled (2.91G/3.12Gbp), not 3123783722bp: a human genome's residues are unreadable unscaled, and
    # so are a human GTF's 2,470,000 features or a million events.
    scale = unit in ("B", "bp") or (total is not None and total >= 100_000)
    bar: Progress = tqdm(
        desc=desc, total=total, unit=unit, unit_scale=scale, unit_divisor=1024 if unit == "B" else 1000,
        leave=False, file=sys.stderr, dynamic_ncols=True, mininterval=0.2,
    )
    _DRAWN.add(bar)
    return bar


def clear_bars() -> None:
    """Erase every terminal bar still drawn, so the next line (an error) starts on a clean line; closing twice is safe."""
    for bar in list(_DRAWN):
        bar.close()


def note(progress: ProgressFactory, text: str) -> None:
    """Print ``text`` as a short line on stderr when ``progress`` is ``terminal_progress`` and stderr a terminal.

    Quiet otherwise (``--json``, piped output): a note, such as a retry after a network blip, is for
    someone watching. A bar being drawn is kept intact (the line goes above it).
    """
    if progress is not terminal_progress or not sys.stderr.isatty():
        return
    if _DRAWN:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr, flush=True)
