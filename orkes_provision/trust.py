"""The one rule for local files the tool trusts: git's ``safe.directory`` and ssh's StrictModes.

On a shared host (a CI runner, a build box, ``/tmp``) another user may own a parent directory or
plant a file where this tool looks. A file it reads instructions or credentials from (a project
file, an env file, ``admin.env``, the config file, the deliveries record and intents, rotation
records, locks, the audit log) is trusted only when

- its owner is the invoking user (the effective uid) or root,
- it is neither group- nor world-writable, and
- its directory is one no other user can write to: owned by the invoking user or root and not
  group- or world-writable, or, like ``/tmp``, sticky, and the file is the invoking user's own.

The check and the use happen on one open file descriptor: the directory is opened, the file is
opened relative to it without following a link, and both are ``fstat``-ed, so the file checked is
the file read (no second look-up of the path that another user could swap in between).
A refused file is one ``ProvisionError`` line naming the file, its owner and mode, and the
``chown``/``chmod`` that fixes it (the caller adds its own way out, such as ``--project FILE``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path

from orkes_provision.errors import ConfigError, ProvisionError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def describe_user(uid: int) -> str:
    """``mallory (uid 1001)``, or ``uid 1001`` for a uid with no name."""
    name = user_name(uid)
    return f"{name} (uid {uid})" if name != str(uid) else f"uid {uid}"


def _trusted_owner(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def directory_problem(info: os.stat_result) -> str | None:
    """Why no file in a directory with this ``stat`` can be trusted (ignoring stickiness), or ``None``."""
    if not _trusted_owner(info.st_uid):
        return f"owned by {describe_user(info.st_uid)}"
    if info.st_mode & _WRITABLE_BY_OTHERS:
        return "writable by other users"
    return None


def file_problem(info: os.stat_result, directory: os.stat_result | None) -> str | None:
    """Why a file with this ``stat`` in ``directory`` is not trusted, or ``None`` when it is."""
    if not _trusted_owner(info.st_uid):
        return f"it is owned by {describe_user(info.st_uid)}, not by you ({describe_user(os.geteuid())}) or root"
    mode = stat.S_IMODE(info.st_mode)
    writable = [who for who, bit in (("group", stat.S_IWGRP), ("world", stat.S_IWOTH)) if mode & bit]
    if writable:
        return f"it is {'- and '.join(writable)}-writable, so someone else may have written into it"
    if directory is None:
        return None
    problem = directory_problem(directory)
    if problem is None:
        return None
    # A sticky directory (/tmp) keeps others from renaming or removing our own file; its owner still can.
    sticky_ok = (directory.st_mode & stat.S_ISVTX and _trusted_owner(directory.st_uid)
                 and info.st_uid == os.geteuid())
    if sticky_ok:
        return None
    return f"its directory is {problem}, who could replace it"


def refusal(path: Path | str, info: os.stat_result, problem: str, *, error: type[ProvisionError] = ConfigError,
            way_out: str | None = None) -> ProvisionError:
    """The one-line error for an untrusted file: what, owner, mode, and the command that fixes it."""
    mode = stat.S_IMODE(info.st_mode)
    me = user_name(os.geteuid())
    if problem.startswith("its directory"):
        fix = f"move it to a directory only you can write, or: chmod go-w {Path(path).parent}"
    elif problem.startswith("it is owned"):
        fix = f"check what it holds, then: chown {me} {path}"
    else:
        fix = f"check what it holds, then: chmod go-w {path}"
    return error(f"refusing to use {path}: {problem} (owner {describe_user(info.st_uid)}, mode {mode:04o})",
                 fix + (f"; {way_out}" if way_out else ""))


def directory_refusal(path: Path, info: os.stat_result, problem: str, *, could: str, hint: str,
                      error: type[ProvisionError] = ConfigError) -> ProvisionError:
    """The one-line error for writing into a directory another user owns or can write."""
    return error(f"refusing to write into {path}: the directory is {problem} (owner {describe_user(info.st_uid)}, "
                 f"mode {stat.S_IMODE(info.st_mode):04o}), who could {could}", hint)


@contextlib.contextmanager
def opened_directory(directory: Path) -> Iterator[tuple[int, os.stat_result]]:
    """An fd on ``directory`` and its ``fstat``: files are then opened, checked and replaced relative to it."""
    fd = os.open(directory, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        yield fd, os.fstat(fd)
    finally:
        os.close(fd)


def new_file_problem(directory: os.stat_result) -> str | None:
    """Why a file created in ``directory`` could not be trusted afterwards, or ``None``."""
    problem = directory_problem(directory)
    if problem is None or (directory.st_mode & stat.S_ISVTX and _trusted_owner(directory.st_uid)):
        return None
    return f"its directory is {problem}, who could replace it"


def open_in(dir_fd: int, directory: os.stat_result, path: Path, *, error: type[ProvisionError] = ConfigError,
            way_out: str | None = None) -> tuple[int, os.stat_result] | None:
    """An fd on ``path`` (in the directory open as ``dir_fd``) and its ``fstat`` once it passes the rule;
    ``None`` when it does not exist.

    A symbolic link at ``path`` is refused, never followed; so is anything but a regular file.
    ``OSError`` other than a missing file propagates for the caller to word.
    """
    try:
        # O_NONBLOCK: a planted FIFO must not hang the open; it is refused below as not a regular file.
        fd = os.open(path.name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise error(f"refusing to use {path}: it is a symbolic link",
                        "give the real path of the file (links are not followed)") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"cannot use {path}: it is not a regular file", "remove it or choose another path")
        problem = file_problem(info, directory)
        if problem is not None:
            raise refusal(path, info, problem, error=error, way_out=way_out)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def open_trusted(path: Path, *, error: type[ProvisionError] = ConfigError, way_out: str | None = None) -> int | None:
    """An fd on ``path`` for reading once it passes the rule; ``None`` when it does not exist."""
    with opened_directory(path.parent) as (dir_fd, directory):
        opened = open_in(dir_fd, directory, path, error=error, way_out=way_out)
    return None if opened is None else opened[0]


def read_trusted(path: Path, *, error: type[ProvisionError] = ConfigError, way_out: str | None = None) -> bytes | None:
    """The bytes of ``path`` if it passes the rule, read from the fd that was checked; ``None`` when missing."""
    fd = open_trusted(path, error=error, way_out=way_out)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def check_directory(path: Path, *, error: type[ProvisionError] = ConfigError) -> None:
    """Refuse a directory of ours (state, config) that another user owns or can write to, or a link to one."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        info = os.stat(path)  # a link the user made to a directory of their own is fine; its target is checked
    if not stat.S_ISDIR(info.st_mode):
        raise error(f"cannot use {path}: it is not a directory", "remove it or point the variable elsewhere")
    problem = directory_problem(info)
    if problem is not None:
        mode = stat.S_IMODE(info.st_mode)
        fix = (f"chown {user_name(os.geteuid())} {path}" if problem.startswith("owned")
               else f"chmod go-w {path}")
        raise error(f"refusing to use {path}: the directory is {problem} (owner {describe_user(info.st_uid)}, "
                    f"mode {mode:04o}), who could plant or swap its files", f"check what it holds, then: {fix}")


def private_directory(path: Path, *, error: type[ProvisionError] = ConfigError) -> Path:
    """``path`` made (0700, with its missing parents) or checked: the tool's own state and config directories."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as err:
        raise error(f"cannot create {path}: {err.strerror or err}", "check the permissions of its parent") from None
    check_directory(path, error=error)
    return path
