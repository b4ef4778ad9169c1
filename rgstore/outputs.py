"""Output paths a user names (``genome export OUT``, ``log export FILE``): written whole, or in place when special.

An ordinary path gets a temp file beside it that replaces it only when complete (a symlink's
target is replaced and the link kept); the temps a SIGKILLed writer left there go first. A FIFO
or device is written in place: renaming over it would replace the node itself (as root,
``/dev/null``). A name for one of this process's open
descriptors (``/dev/stdout``, ``/dev/fd/N``, a link to them) is written through that descriptor,
at its offset: ``>> all.fa`` appends, where reopening would truncate and following the link would
replace the shell's file.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .diskspace import WRITE_ERRNOS, free_bytes, limit_note, refusal_fix, refused_write
from .environment import fsync_dir
from .errors import DiskWriteError, InvalidInputError, NotFoundError
from .files import mkstemp, remove_dead_temps, temp_target
from .pathtext import given_path

__all__ = ["descriptor_of", "output_file", "output_path", "refused_output"]

_FD_LINK = re.compile(r"/proc/(?:self|thread-self|(\d+)(?:/task/\d+)?)/fd/(\d+)|/dev/fd/(\d+)")


def descriptor_of(path: Path) -> int | None:
    """The open descriptor of this process that ``path`` names through links (``/dev/stdout``, ``/dev/fd/1``), or None."""
    link = os.path.abspath(path)
    for _ in range(16):  # a chain of links: out.fa -> /dev/stdout -> /proc/self/fd/1
        m = _FD_LINK.fullmatch(link)
        if m is not None:
            pid, fd, dev_fd = m.groups()
            return None if pid is not None and int(pid) != os.getpid() else int(fd or dev_fd)
        try:
            target = os.readlink(link)
        except OSError:  # not a link (or none there): an ordinary path
            return None
        link = os.path.normpath(os.path.join(os.path.dirname(link), target))
    return None


def output_path(path: str | os.PathLike[str], what: str = "output file") -> Path:
    """``path`` as a Path, checked before any work: InvalidInputError if it is empty or names a directory."""
    path = given_path(path, what)
    if path.is_dir():
        raise InvalidInputError(_directory_refusal(path, what))
    return path


def _directory_refusal(path: Path, what: str) -> str:
    # Path("") is Path("."): say so, since the caller likely passed an empty string, not ".".
    where = " (the working directory)" if not path.parts else ""
    return f"cannot write {path}: it is a directory{where}; name the {what}"


@contextmanager
def output_file(
    path: Path, *, durable: bool = False, before_replace: Callable[[Path], None] | None = None,
) -> Iterator[BinaryIO]:
    """A binary file whose bytes become ``path`` only if the block completes (see the module docstring).

    ``durable`` fsyncs the file and its directory; ``before_replace(target)`` runs just before the
    rename (removing an index that would describe the old file). An interrupted or failed block
    leaves neither a partial file nor a temp file; a full disk is a DiskWriteError naming the target.
    """
    descriptor = descriptor_of(path)
    if descriptor is not None:
        try:
            fh = os.fdopen(os.dup(descriptor), "wb")
        except OSError as exc:
            raise InvalidInputError(f"cannot write {path}: descriptor {descriptor} is not open ({exc.strerror})") from None
        try:
            with fh:
                yield fh
        except OSError as exc:
            refused = refused_output(exc, str(path), descriptor)
            if refused is not None:
                raise refused from None
            if exc.errno != errno.EBADF:
                raise
            raise InvalidInputError(f"cannot write {path}: descriptor {descriptor} is open for reading only") from None
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if stat.S_ISDIR(mode):  # os.replace onto it fails obscurely ("Device or resource busy" for ".")
        raise InvalidInputError(_directory_refusal(path, "file"))
    if mode and not stat.S_ISREG(mode):
        try:
            with open(path, "wb") as fh:
                yield fh
        except OSError as exc:  # /dev/full, a full tape: a bare errno would name no file
            refused = refused_output(exc, str(path))
            if refused is not None:
                raise refused from None
            raise
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if not target.parent.is_dir():
        raise NotFoundError(f"cannot write {path}: directory {target.parent} does not exist")
    remove_dead_temps(target, lambda name: temp_target(name) == target.name)  # a SIGKILLed export's
    try:
        fd, tmp = mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except PermissionError as exc:  # the complete file is made beside ``path``: say so, not just the directory
        raise PermissionError(exc.errno, f"cannot write {path}: this user may not create files in {target.parent} "
                              f"({exc.strerror})") from None
    try:
        # Held until the temp is renamed or removed (``fd`` closes last), so the next export's sweep of a
        # killed one's temps (above) leaves this one however long it stalls.
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(fd, "wb", closefd=False) as fh:
            yield fh
            if durable:
                os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace(target)
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        refused = refused_write(exc, target.parent, target.name)
        if refused is not None:
            raise refused from None
        if isinstance(exc, PermissionError) and exc.filename2 is not None:  # os.replace: not the temp name they never chose
            raise PermissionError(exc.errno, f"cannot replace {path}: {exc.strerror}") from None
        raise
    finally:
        os.close(fd)
    if durable:
        fsync_dir(target.parent)


def refused_output(exc: BaseException, shown: str, descriptor: int | None = None) -> DiskWriteError | None:
    """The one-line error for output written in place (a device, standard output) that was refused for want of room.

    None for any other failure. ``shown`` is what the user named (a path, "standard output");
    ``descriptor``, when given, is the one written, whose file is named and, when it is a regular
    file, the free space of its disk too. What reached the output before the refusal stays there.
    """
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRNOS:
        return None
    behind = _file_behind(descriptor) if descriptor is not None else None
    where = f"{behind}: " if behind is not None and behind != shown else ""
    try:
        mode = os.fstat(descriptor).st_mode if descriptor is not None else os.stat(shown).st_mode
    except OSError:
        mode = 0
    free = ""
    room: int | None = None
    if stat.S_ISREG(mode):  # a device's filesystem (/dev) says nothing about the device's own room
        try:
            st = os.fstatvfs(descriptor) if descriptor is not None else None
            room = st.f_bavail * st.f_frsize if st is not None else free_bytes(Path(shown).parent)
        except OSError:
            room = None
        free = f"; {room or 0:,} bytes free"
    return DiskWriteError(
        f"no room for {shown} ({where}{exc.strerror}{free}{limit_note(exc, room)}); the output is incomplete: "
        f"{refusal_fix(exc, room)}"
    )


def _file_behind(descriptor: int) -> str | None:
    # Linux names a descriptor's file in /proc; a pipe's "pipe:[N]" or a socket's name is no path to show.
    try:
        name = os.readlink(f"/proc/self/fd/{descriptor}")
    except OSError:
        return None
    return name if name.startswith("/") else None
