"""Writing the website: into a new folder next to the target, then swapped in at once.

A visitor, a web server or a git-based deploy sees the old site or the new one, never half of
each. Linux swaps the two folders in one step (renameat2 with RENAME_EXCHANGE); elsewhere the old
folder is renamed away and the new one renamed in (a moment without a site, never a mixed one).
Any failure before the swap removes the new folder and leaves the previous site as it was.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from bot.errors import UsageError

# In every folder the bot writes. An existing folder without it is not replaced (it may be a
# folder of other things, given by mistake as SITE_DIR or -o).
MARKER = ".reading-group-bot-site"
MARKER_TEXT = b"This folder is written by `bot site build` and replaced whole at every build.\n"
STALE_SECONDS = 3600  # leftovers of a build killed half-way are removed after an hour
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target}: exists and is not a folder")
    if target.is_dir() and not (target / MARKER).exists() and any(target.iterdir()):
        raise UsageError(
            f"{target}: not replaced: it holds files that `bot site build` did not write "
            f"(no {MARKER} in it); give a new or empty folder"
        )


def _relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"not a path inside the site: {name!r}")
    return path


def _exchange(new: Path, target: Path) -> bool:
    """Swap two folders in one step (Linux); False where the system cannot."""
    if sys.platform != "linux":
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        rename = libc.renameat2
    except (OSError, AttributeError):  # an old C library
        return False
    done = rename(_AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(target), _RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # e.g. a file system without it
        return False
    raise OSError(code, os.strerror(code), str(target))


def _swap(new: Path, target: Path) -> None:
    if not target.exists():
        os.rename(new, target)
    elif _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # it now holds the previous site
    else:
        rename_swap(new, target)


def rename_swap(new: Path, target: Path) -> None:
    """The swap where folders cannot be exchanged: the old one out, the new one in."""
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale(target: Path) -> None:
    """Folders left by builds killed before their swap, once they are clearly abandoned."""
    now = time.time()
    name = glob.escape(target.name)
    for pattern in (f".{name}.new-*", f".{name}.old-*"):
        for leftover in target.parent.glob(pattern):
            with contextlib.suppress(OSError):
                if leftover.is_dir() and now - leftover.stat().st_mtime > STALE_SECONDS:
                    shutil.rmtree(leftover, ignore_errors=True)


def write_site(files: Mapping[str, bytes], target: Path) -> None:
    """Write `files` (relative path -> content) as the folder `target`, replacing it at once.

    UsageError when `target` cannot be a site folder; OSError when the disk refuses. Either way,
    the previous site is left as it was.
    """
    target = Path(target)
    if target.is_symlink():  # keep the link: replace the folder it points to
        target = target.resolve()
    target = target.absolute()
    _check_target(target)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        new = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=parent))
    except OSError as exc:
        raise UsageError(f"{target}: cannot write next to it ({exc.strerror or exc})") from exc
    try:
        made: set[PurePosixPath] = set()
        for name, data in files.items():
            path = _relative(name)
            folder = path.parent
            if folder not in made:
                (new / folder).mkdir(parents=True, exist_ok=True)
                made.add(folder)
            (new / path).write_bytes(data)
        (new / MARKER).write_bytes(MARKER_TEXT)
        os.chmod(new, 0o755)  # mkdtemp makes it private; a web server must read it
        _swap(new, target)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    _remove_stale(target)
