"""Write safety for every command that writes: an overwrite guard, a per-output lock, a free-disk
check, atomic writes (a hidden temporary sibling renamed into place) and signal cleanup.

The rules, so that a hostile or unlucky invocation never loses or half-writes anything:

- an existing output (file or directory) is replaced only when the user said ``--overwrite``,
  and even then a directory is replaced only when it is one dpsynth wrote (it holds a marker
  file such as ``generator.json``): an unrelated folder is never deleted;
- one writer per output: :func:`output_lock` takes an exclusive ``fcntl.flock`` on a hidden
  sibling ``.NAME.lock``; a second writer fails at once with a one-line error, and the lock
  file is removed when the first one finishes (a killed holder's kernel lock dies with it);
- outputs are written to a temporary sibling and renamed into place (:func:`atomic_file`,
  :func:`atomic_dir`); on any exception, including the ones :func:`signals_raise` turns
  SIGINT/SIGTERM/SIGHUP into, the temporary is removed with those signals held back;
- ``-n`` rows are checked against a row cap and against the free space of the target disk
  before any row is sampled.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from dpsynth.errors import DpsynthError

RUN_MARKERS = ("generator.json", "ledger.json", "weights.safetensors")
_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEFAULT_MAX_ROWS = 10_000_000


class OutputError(DpsynthError):
    """An output path cannot be written safely (exists, is a directory, is locked, disk full)."""


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM or SIGHUP (SIGINT raises
    the plain KeyboardInterrupt); unwinds ``finally`` blocks like Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# ---- signals ----------------------------------------------------------------------------
def _raise_for(signum, frame):  # noqa: ARG001 - the signal module's handler signature
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


@contextmanager
def signals_raise() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into exceptions while the block runs, so every
    ``try/finally`` cleanup runs; restores the previous handlers afterwards. Outside the main
    thread (where handlers cannot be installed) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _HANDLED}
    for s in _HANDLED:
        signal.signal(s, _raise_for)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back SIGINT/SIGTERM/SIGHUP while cleaning up; they are delivered when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def remove_path(path: Path) -> None:
    """Remove a file or directory tree if it exists, with signals held back."""
    with _signals_held():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink()
            except FileNotFoundError:
                pass


# ---- the overwrite guard ----------------------------------------------------------------
def is_dpsynth_dir(path: Path, markers: Iterable[str] = RUN_MARKERS) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in markers)


def check_output_file(path: str | Path, *, overwrite: bool, option: str = "--output") -> Path:
    """Refuse an output file that exists (without ``overwrite``), is a directory, or whose
    parent is a file. Returns the path."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: {option} is an existing directory; give a file name")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputError(f"{path}: output exists (pass --overwrite to replace it)")
        if not path.is_file():
            raise OutputError(f"{path}: output exists and is not a regular file; refusing to replace it")
    _check_parent(path, option)
    return path


def check_output_dir(path: str | Path, *, overwrite: bool, option: str = "--out",
                     markers: Iterable[str] = RUN_MARKERS, what: str = "run directory") -> Path:
    """Refuse an output directory that is a file, or is non-empty without ``overwrite``; with
    ``overwrite``, refuse one that dpsynth did not write (none of ``markers`` in it)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: {option} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise OutputError(f"{path}: {what} exists and is not empty (pass --overwrite to replace it)")
        if not is_dpsynth_dir(path, markers):
            raise OutputError(f"{path}: exists and is not a dpsynth {what} (no {' / '.join(markers)}); "
                              "refusing to replace it, choose another path")
    _check_parent(path, option)
    return path


def _check_parent(path: Path, option: str) -> None:
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{path}: {option} lies under {parent}, which is not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputError(f"{path}: {option} cannot be written ({parent} is read-only)")
            return


# ---- one writer per output --------------------------------------------------------------
def lock_path(target: str | Path) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.lock"


@contextmanager
def output_lock(target: str | Path) -> Iterator[Path]:
    """An exclusive lock on ``target`` (a file or directory that may not exist yet), held in a
    hidden sibling ``.NAME.lock``. A second holder fails at once with a one-line OutputError.
    The lock file is removed on exit; a holder killed with SIGKILL leaves a file whose kernel
    lock is gone, so the next writer takes it over."""
    target = Path(target)
    lock = lock_path(target)
    _check_parent(target, "the output")
    created = [p for p in (lock.parent, *lock.parent.parents) if not p.exists()]  # removed again if left empty
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target}: cannot create its folder ({exc.strerror})") from None
    try:
        fd = _acquire(lock, target)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        with _signals_held():
            try:
                lock.unlink()
            except FileNotFoundError:
                pass
            os.close(fd)
            _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            return


def _acquire(lock: Path, target: Path) -> int:
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{target}: cannot create lock file {lock} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OutputError(f"{target}: another dpsynth process is writing it (lock {lock}); "
                                  "wait for it to finish or choose another path") from None
            raise
        try:  # the file we locked may have been unlinked by a holder that just finished
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


# ---- atomic writes ----------------------------------------------------------------------
@contextmanager
def atomic_file(out: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary sibling of ``out``; rename it onto ``out`` when the block
    succeeds, remove it on any exception (signals included)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        remove_path(tmp)
        raise


@contextmanager
def atomic_dir(out: str | Path, *, overwrite: bool = False, markers: Iterable[str] = RUN_MARKERS,
               what: str = "run directory") -> Iterator[Path]:
    """Yield a hidden temporary sibling directory of ``out``; on success it replaces ``out``
    (an existing ``out`` only with ``overwrite`` and only when dpsynth wrote it), on any
    exception it is removed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        check_output_dir(out, overwrite=overwrite, markers=markers, what=what)
        with _signals_held():
            if out.exists():
                old = out.parent / f".{out.name}.old-{os.getpid()}"
                os.replace(out, old)
                os.replace(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, out)
    except BaseException:
        remove_path(tmp)
        raise


# ---- size of what is asked for ----------------------------------------------------------
def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


def check_rows(n: int, *, max_rows: int | None, option: str = "-n") -> None:
    if n <= 0:
        raise OutputError(f"{option} must be > 0, got {n}")
    if max_rows is not None and n > max_rows:
        raise OutputError(f"{option} {n} is above --max-rows {max_rows}; pass a larger --max-rows to allow it")


def check_free_space(out: str | Path, *, need_bytes: float, what: str, margin: float = 1.2,
                     reserve_bytes: int = 64 * 2**20) -> None:
    """Refuse when ``need_bytes`` (times ``margin``, plus a reserve) exceed the free space of
    the disk that will hold ``out``."""
    out = Path(out).absolute()
    probe = next((p for p in (out.parent, *out.parent.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free
    if need_bytes * margin + reserve_bytes > free:
        raise OutputError(f"{out}: {what} need about {human_bytes(need_bytes)} but {probe} has only "
                          f"{human_bytes(free)} free")


def table_row_bytes(columns) -> int:
    """An upper estimate of one CSV row's size from the schema's public columns: numbers as
    their longest float text, categories as their longest label, plus separators."""
    width = 0
    for col in columns:
        if col.kind == "continuous":
            width += 24
        elif col.kind == "integer":
            width += max(len(str(int(col.low))), len(str(int(col.high))), 1) + 2
        else:
            width += max((len(str(c)) for c in col.categories), default=1) + 2
        width += 1
    return width + 1
