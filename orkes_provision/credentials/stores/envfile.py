"""The env-file store: ``CONDUCTOR_SERVER_URL``, ``CONDUCTOR_AUTH_KEY``, ``CONDUCTOR_AUTH_SECRET`` in a file.

The file is what a worker reads (``set -a; source w.env``, python-dotenv, ``docker --env-file``,
Compose). Writes keep every unrelated line and comment in place, create the file 0600 from its
first byte and replace it atomically; a symlink at the path is refused, never followed.

Values are written so that bash and python-dotenv read back exactly the same string: bare when
they consist only of characters no parser treats specially (the usual key ids, secrets and
URLs, which docker's literal env-file reader then also gets right), otherwise in single quotes.
python-dotenv expands ``${VAR}`` even inside single quotes and unescapes ``\\'`` there, while bash
does neither, so a value holding ``$``, ``'``, ``\\`` or a control character has no form both read
alike: it is refused.

Beside the three variables the store writes one comment, ``# orkes-provision app: NAME``, so
that ``load`` for another application does not return this key.

An existing file is used only when it is safe, as ssh's StrictModes wants of a key file: owned by
the caller and neither group- nor world-writable (someone else may have planted lines in it, such
as ``PYTHONPATH=``). A rewrite keeps the file's group, and its group-read bit only when others get
nothing (``root:svc 0640`` stays so; a ``0644`` file, the umask's default, becomes ``0600``).
Lines are split where bash splits them, on ``\n`` alone, and kept byte for byte; a file with
carriage returns (CRLF line endings, which bash reads into the values) is not rewritten.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from pydantic import SecretStr

from orkes_provision import trust
from orkes_provision.credentials.stores.base import StoredKey, canonical_server
from orkes_provision.errors import StoreError, UsageError
from orkes_provision.fileio import PRIVATE_MODE, write_private_file
from orkes_provision.names import describe_character, forbidden_character

SERVER_VAR = "CONDUCTOR_SERVER_URL"
KEY_VAR = "CONDUCTOR_AUTH_KEY"
SECRET_VAR = "CONDUCTOR_AUTH_SECRET"
MANAGED_VARS = (SERVER_VAR, KEY_VAR, SECRET_VAR)
HEADER = "# Written by orkes-provision. Contains secrets: keep it private (mode 0600), do not commit it."
MARKER_PREFIX = "# orkes-provision app: "

# Blanks are what bash takes for blanks (space, tab), not every character str.isspace() knows.
_ASSIGNMENT = re.compile(r"^(?P<indent>[ \t]*)(?P<export>export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)[ \t]*="
                         r"(?P<rest>.*)$")
# Characters that mean nothing special to bash, python-dotenv or docker in an unquoted value.
_BARE_SAFE = re.compile(r"^[A-Za-z0-9_\-.:/@%+=,]+$")
# Also refused: what str.splitlines() (this module's reader) takes for a line break although bash
# and python-dotenv do not (NEL, U+2028, U+2029), and lone surrogates, which UTF-8 cannot encode.
_UNREPRESENTABLE = re.compile("[$'\\\\\x00-\x1f\x7f\x85\u2028\u2029\ud800-\udfff]")


def quote_value(value: str, *, name: str = "value") -> str:
    """The value as written in the file; ``StoreError`` when no form reads back identically everywhere."""
    if _BARE_SAFE.match(value):
        return value
    bad = _UNREPRESENTABLE.search(value)
    if bad is not None:
        what = {"$": "'$'", "'": "a single quote", "\\": "a backslash", "\u2028": "a line separator",
                "\u2029": "a paragraph separator"}.get(bad.group(), "a control character")
        if "\ud800" <= bad.group() <= "\udfff":
            what = "a lone surrogate (not valid Unicode)"
        raise StoreError(f"{name} contains {what}, which bash and python-dotenv would read differently",
                         "use --store keyring or --store json for this value")
    return f"'{value}'"


def check_read_values(path: Path, values: dict[str, str]) -> None:
    """The reader refuses what the writer refuses: a managed value no form reads back alike (a NUL or
    other control character, ``$``, a quote, a backslash) is one ``StoreError`` line, not a worker that
    gets another value, or a traceback when it is put in an environment."""
    for name in MANAGED_VARS:
        value = values.get(name)
        if not value:
            continue
        try:
            quote_value(value, name=name)
        except StoreError as err:
            raise StoreError(f"cannot use {path}: {err.message}",
                             f"rewrite {name} there without it, or deliver the key again with 'provision app'") \
                from None


def parse_env(text: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines as the writer writes them (also ``export``, double quotes, comments).

    Later assignments win, as they would in bash.
    """
    values: dict[str, str] = {}
    for line in _lines(text):
        match = _ASSIGNMENT.match(line)
        if match is None:
            continue
        values[match.group("name")] = _parse_value(match.group("rest"))
    return values


def _parse_value(rest: str) -> str:
    rest = rest.strip()
    if rest.startswith("'"):
        end = rest.find("'", 1)
        return rest[1:end] if end != -1 else rest[1:]
    if rest.startswith('"'):
        out: list[str] = []
        i = 1
        while i < len(rest):
            ch = rest[i]
            if ch == "\\" and i + 1 < len(rest):
                nxt = rest[i + 1]
                out.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
                i += 2
                continue
            if ch == '"':
                break
            out.append(ch)
            i += 1
        return "".join(out)
    comment = re.search(r"\s#", rest)
    return (rest[: comment.start()] if comment else rest).strip()


class EnvFileStore:
    """One application's key in an env file at ``path`` (absolute)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
        self.spec = f"env-file:{self.path}"

    def check_writable(self) -> None:
        """Fail early, before a key exists, when ``save`` could not write the file."""
        with self._directory() as (dir_fd, directory):
            existing, _ = self._snapshot(dir_fd, directory)
        _refuse_carriage_returns(self.path, existing)
        target = self.path if existing is not None else self.path.parent
        if not os.access(self.path.parent, os.W_OK | os.X_OK) or not os.access(target, os.W_OK):
            raise StoreError(f"cannot write {self.path}: permission denied",
                             "choose a path in a directory you can write, e.g. --store env-file:./worker.env")

    def read(self) -> StoredKey | None:
        """The key in the file with the server and application it names (``app`` is "" without the
        header line), whatever they are; ``None`` when it holds no complete key."""
        text = self._read()
        if text is None:
            return None
        values = parse_env(text)
        check_read_values(self.path, values)
        url, key_id, secret = (values.get(name, "").strip() for name in MANAGED_VARS)
        if not (url and key_id and secret):
            return None
        try:
            server = canonical_server(url)
        except UsageError:
            return None
        return StoredKey(server=server, app=_marker(text) or "", key_id=key_id, secret=SecretStr(secret))

    def load(self, server: str, app: str) -> StoredKey | None:
        text = self._read()
        if text is None:
            return None
        values = parse_env(text)
        check_read_values(self.path, values)
        marker = _marker(text)
        if marker is not None and marker != app:
            return None
        url, key_id, secret = (values.get(name, "").strip() for name in MANAGED_VARS)
        if not (url and key_id and secret):
            return None
        try:
            if canonical_server(url) != canonical_server(server):
                return None
        except UsageError:
            return None
        return StoredKey(server=canonical_server(server), app=app, key_id=key_id, secret=SecretStr(secret))

    def save(self, key: StoredKey) -> None:
        bad = forbidden_character(key.app)
        if bad is not None:  # it goes into the marker comment: it must not start a line of its own
            raise StoreError(f"the application name contains {describe_character(bad)}", "rename the application")
        wanted = {
            SERVER_VAR: quote_value(canonical_server(key.server), name=SERVER_VAR),
            KEY_VAR: quote_value(key.key_id, name=KEY_VAR),
            SECRET_VAR: quote_value(key.secret.get_secret_value(), name=SECRET_VAR),
        }
        self.check_writable()
        with self._directory() as (dir_fd, directory):
            existing, info = self._snapshot(dir_fd, directory)
            _refuse_carriage_returns(self.path, existing)
            lines = [HEADER, MARKER_PREFIX + key.app] if existing is None else _lines(existing)
            out: list[str] = []
            seen: set[str] = set()
            marker_written = False
            for line in lines:
                if line.startswith(MARKER_PREFIX):
                    if not marker_written:
                        out.append(MARKER_PREFIX + key.app)
                        marker_written = True
                    continue
                match = _ASSIGNMENT.match(line)
                name = match.group("name") if match else None
                if match is None or name not in wanted:
                    out.append(line)
                    continue
                if name in seen:
                    continue  # a duplicate assignment would shadow the one we write
                seen.add(name)
                out.append(f"{match.group('indent')}{match.group('export') or ''}{name}={wanted[name]}")
            missing = [name for name in MANAGED_VARS if name not in seen]
            if not marker_written:
                out.append(MARKER_PREFIX + key.app)
            out.extend(f"{name}={wanted[name]}" for name in missing)
            self._write(dir_fd, "\n".join(out) + "\n", info)

    def delete(self, server: str, app: str) -> None:
        if self.load(server, app) is None:
            return
        with self._directory() as (dir_fd, directory):
            text, info = self._snapshot(dir_fd, directory)
            _refuse_carriage_returns(self.path, text)
            kept = [line for line in _lines(text or "")
                    if not line.startswith(MARKER_PREFIX)
                    and not ((m := _ASSIGNMENT.match(line)) and m.group("name") in MANAGED_VARS)]
            self._write(dir_fd, "\n".join(kept) + ("\n" if kept else ""), info)

    def describe(self, server: str | None = None, app: str | None = None) -> str:
        return f"env file {self.path}"

    @contextlib.contextmanager
    def _directory(self) -> Iterator[tuple[int, os.stat_result]]:
        directory = self.path.parent
        try:
            with trust.opened_directory(directory) as opened:
                yield opened
        except (FileNotFoundError, NotADirectoryError):
            raise StoreError(f"cannot write {self.path}: directory {directory} does not exist",
                             "create the directory first, or choose another --store env-file:PATH") from None
        except PermissionError as err:
            raise StoreError(f"cannot use {self.path}: {err.strerror or err}",
                             "check the file's permissions or choose another --store env-file:PATH") from None

    def _snapshot(self, dir_fd: int, directory: os.stat_result) -> tuple[str | None, os.stat_result | None]:
        """The file's text and ``fstat``, both from the one fd that passed the trust rule (StrictModes: a file
        someone else owns or may write, or in a directory they may write, may hold lines you did not write,
        or be swapped for theirs before the write); ``(None, None)`` when there is none yet."""
        try:
            opened = trust.open_in(dir_fd, directory, self.path, error=StoreError,
                                   way_out="or choose another --store env-file:PATH")
        except OSError as err:
            raise StoreError(f"cannot read {self.path}: {err.strerror or err}",
                             "check the file's permissions or choose another --store env-file:PATH") from None
        if opened is None:
            problem = trust.new_file_problem(directory)
            if problem is not None:
                raise StoreError(f"refusing to create {self.path}: {problem} (mode "
                                 f"{stat.S_IMODE(directory.st_mode):04o})",
                                 "choose a directory only you can write, e.g. --store env-file:./worker.env")
            return None, None
        fd, info = opened
        try:
            with os.fdopen(fd, "rb") as handle:
                data = handle.read()
        except OSError as err:
            raise StoreError(f"cannot read {self.path}: {err.strerror or err}", "check the file") from None
        try:
            return data.decode("utf-8"), info
        except UnicodeDecodeError:
            raise StoreError(f"cannot read {self.path}: it is not UTF-8 text", "choose another file") from None

    def _read(self) -> str | None:
        with self._directory() as (dir_fd, directory):
            return self._snapshot(dir_fd, directory)[0]

    def _write(self, dir_fd: int, text: str, info: os.stat_result | None) -> None:
        mode, group = PRIVATE_MODE, None
        if info is not None:
            # The file checked and read (``info`` is its fstat, not a second look-up by path): the owner
            # is the caller or root; keep the group, and its read bit only when others get nothing (a
            # deliberate share like root:svc 0640, not a umask default).
            group = info.st_gid
            if info.st_mode & stat.S_IRGRP and not info.st_mode & stat.S_IRWXO:
                mode = PRIVATE_MODE | stat.S_IRGRP
        try:
            write_private_file(self.path, text.encode("utf-8"), mode=mode, group=group, dir_fd=dir_fd)
        except OSError as err:
            raise StoreError(f"cannot write {self.path}: {err.strerror or err}",
                             "choose a path in a directory you can write, e.g. --store env-file:./worker.env") from None


def _lines(text: str) -> list[str]:
    """The lines of ``text`` as bash reads them: split on newlines only, each kept byte for byte."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _refuse_carriage_returns(path: Path, text: str | None) -> None:
    if text is not None and "\r" in text:
        raise StoreError(f"refusing to rewrite {path}: it has CR characters (CRLF, Windows line endings), which "
                         "bash reads into the values",
                         f"convert it first (dos2unix {path}), or choose another --store env-file:PATH")


def _marker(text: str) -> str | None:
    for line in _lines(text):
        if line.startswith(MARKER_PREFIX):
            return line[len(MARKER_PREFIX):]
    return None
