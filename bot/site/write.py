"""Writing the website: into a folder next to the target, then swapped in at once.

A visitor, a web server or a git-based deploy sees the old site or the new one, never half of
each. Linux swaps the two folders in one step (renameat2 with RENAME_EXCHANGE); elsewhere the old
folder is renamed away and the new one renamed in (a moment without a site, never a mixed one).
Any failure before the swap leaves the previous site as it was.

The folder a swap puts aside is kept as `.NAME.spare` and made into the next build: only the files
that differ are written and only the ones gone are removed, so a rebuild after one change writes
a few files instead of creating and deleting thousands (unchanged files keep their times, too).
A lock file, `.NAME.lock`, keeps two builds (the worker and a command) from sharing the spare.
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
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath

from bot.errors import UsageError

# In every folder the bot writes. An existing folder without it is not replaced (it may be a
# folder of other things, given by mistake as SITE_DIR or -o).
MARKER = ".reading-group-bot-site"
MARKER_TEXT = b"This folder is written by `bot site build` and replaced whole at every build.\n"
STALE_SECONDS = 3600  # folders of builds killed half-way are removed after an hour
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
    if path.is_absolute() or ".." in path.parts or not path.parts or name == MARKER:
        raise ValueError(f"not a path inside the site: {name!r}")
    return path


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """One build at a time for `target` (on systems without flock, no lock)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        yield
        return
    with open(target.parent / f".{target.name}.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _fill(folder: Path, files: Mapping[str, bytes]) -> None:
    """Make `folder` hold exactly `files` (and the marker), writing only what differs."""
    wanted = {_relative(name): data for name, data in files.items()}
    wanted[PurePosixPath(MARKER)] = MARKER_TEXT
    folders = {parent for path in wanted for parent in path.parents if parent.parts}
    if folders & wanted.keys():
        raise ValueError(f"a path is both a file and a folder: {sorted(folders & wanted.keys())}")
    for root, dirs, names in os.walk(folder):
        here = PurePosixPath(Path(root).relative_to(folder).as_posix())
        for name in names:
            if (here / name if here.parts else PurePosixPath(name)) not in wanted:
                (Path(root) / name).unlink()
        for name in list(dirs):
            if (here / name if here.parts else PurePosixPath(name)) not in folders:
                _remove(Path(root) / name)
                dirs.remove(name)
    made: set[PurePosixPath] = set()
    for path, data in wanted.items():
        target = folder / path
        if path.parent not in made:  # what the walk above left are folders of `wanted`
            (folder / path.parent).mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        with contextlib.suppress(FileNotFoundError):
            if target.stat().st_size == len(data) and target.read_bytes() == data:
                continue
        target.write_bytes(data)


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


def _swap(new: Path, target: Path, spare: Path) -> None:
    """Put `new` in the place of `target`; the previous site ends up as `spare`."""
    if not target.exists():
        os.rename(new, target)
    elif _exchange(new, target):
        if new != spare:
            os.rename(new, spare)
    else:
        rename_swap(new, target, spare)


def rename_swap(new: Path, target: Path, spare: Path) -> None:
    """The swap where folders cannot be exchanged: the old one out (as `spare`), the new in."""
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rmdir(aside)
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(aside, target)
        raise
    if spare.exists():
        _remove(spare)
    os.rename(aside, spare)


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
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _locked(target):
            _write_locked(files, target)
    except PermissionError as exc:
        raise UsageError(f"{target}: cannot write next to it ({exc.strerror or exc})") from exc
    _remove_stale(target)


def _write_locked(files: Mapping[str, bytes], target: Path) -> None:
    spare = target.parent / f".{target.name}.spare"
    if spare.exists() and not (spare.is_dir() and not spare.is_symlink()):
        _remove(spare)
    new = (
        spare
        if spare.exists()
        else Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    )
    try:
        _fill(new, files)
        os.chmod(new, 0o755)  # mkdtemp makes it private; a web server must read it
        _swap(new, target, spare)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)  # a spare in an unknown state is not kept
        raise
