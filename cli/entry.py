"""The console script's entry: a Ctrl-C while the command line is still loading ends as one later would.

``rgstore_cli.main`` imports click, lmdb and the engine's errors (~50-100 ms) before its own handler is
in place; a Ctrl-C landing then used to print a KeyboardInterrupt traceback. This module imports
nothing heavy, so the windows left are Python's own start-up and the import of this package.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run the ``rgstore`` command line; a Ctrl-C at any point prints one line and exits 130."""
    try:
        try:
            from rgstore_cli.main import main as run

            run()
        finally:
            # The command is over: a Ctrl-C during the interpreter's shutdown (joining threads, flushing) now
            # ends the process by the signal, silently, instead of "Exception ignored ... KeyboardInterrupt".
            import signal  # here, not at the top: building its enums takes a millisecond of the start-up window

            signal.signal(signal.SIGINT, signal.SIG_DFL)
    except (KeyboardInterrupt, RuntimeError) as exc:
        if not _interrupted(exc):
            raise
        try:
            sys.stderr.write(f"{chr(10) if sys.stderr.isatty() else ''}error: interrupted\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed or gone: the exit status still says what happened
            pass
        sys.exit(130)


def _interrupted(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a Ctrl-C or an error raised from one.

    Python 3.11 raises what a descriptor's ``__set_name__`` raises, while a class is built, as
    ``RuntimeError("Error calling __set_name__ ...")`` from it; the stdlib builds such classes all through
    click's imports (every enum), so a Ctrl-C landing there arrives as that RuntimeError.
    """
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__
    return False


if __name__ == "__main__":
    main()
