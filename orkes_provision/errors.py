"""The failures a user can cause, each with an exit code and a hint.

Every error the library raises for a user is a ``ProvisionError``; the CLI turns it into one
line of error, one line of hint and the exit code below. Messages never carry secrets.
The exit-code table of docs/exit-codes.md is generated from ``EXIT_CODES``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

# Three base64url parts, the first a JSON header ("eyJ" is '{"' encoded): a JWT, such as an Orkes token.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_AUTH_VALUE = re.compile(r"(?i)((?:x-)?authorization[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s\"',;]+")


def redact_tokens(text: str) -> str:
    """``text`` with JWT-shaped strings and authorization header values replaced by ``[redacted]``.

    For what a server or a file says, which may echo the caller's token back; secrets the code
    knows by value are redacted where they are known (``OrkesClient``).
    """
    return _JWT.sub("[redacted]", _AUTH_VALUE.sub(lambda m: m.group(1) + "[redacted]", text))


class ProvisionError(Exception):
    """Base of every user-facing failure."""

    exit_code: ClassVar[int] = 1
    kind: ClassVar[str] = "error"
    default_hint: ClassVar[str] = "run with -v for details"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint
        # Where a command gives a kind of failure another code (drift and lint: 2 means "found
        # something", so their usage errors exit 1), the process and the JSON must say the same.
        self.exit_override: int | None = None
        # Words of the command line that were typos, with what was meant (``greetngs`` -> ``greetings``):
        # the CLI then offers the corrected command as the hint.
        self.corrections: dict[str, str] = {}
        # Every problem found in a file the user wrote, each at its line (``with_problems``).
        self.problems: list[Problem] = []

    @property
    def code(self) -> int:
        """The exit code this failure ends the process with."""
        return self.exit_code if self.exit_override is None else self.exit_override

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"error": self.kind, "message": self.message, "hint": self.hint,
                                   "exitCode": self.code}
        if self.problems:
            data["problems"] = [p.to_dict() for p in self.problems]
        return data


@dataclass(frozen=True)
class Problem:
    """One thing wrong at one place of a file the user wrote, and how to fix it there.

    ``path`` is the key path (``applications[3].grants[0].access[1]``), for scripts; people read the line.
    """

    file: str
    line: int | None
    path: str
    message: str
    hint: str

    @property
    def location(self) -> str:
        if self.line is not None:
            return f"{self.file}:{self.line}"
        return f"{self.file}: {self.path}" if self.path else self.file

    def render(self) -> str:
        return f"{self.location}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "path": self.path, "message": self.message, "hint": self.hint}


def with_problems(kind: type[ProvisionError], problems: Iterable[Problem], *, docs: str = "") -> ProvisionError:
    """One error of ``kind`` carrying every problem, sorted by file and line.

    One problem is the error itself (its line and hint); of several, the error is the count and the
    CLI lists each before it. ``docs`` says where the file's keys are documented.
    """
    found = sorted(problems, key=lambda p: (p.file, p.line or 0, p.path))
    if len(found) == 1:
        error = kind(found[0].render(), found[0].hint)
    else:
        files = ", ".join(dict.fromkeys(p.file for p in found))
        error = kind(f"{files}: {len(found)} problems",
                     "fix each at its line, then run the command again" + (f"; {docs}" if docs else ""))
    error.problems = found
    return error


class UsageError(ProvisionError):
    """A flag, argument or value the user gave is not acceptable."""

    exit_code = 2
    kind = "usage"
    default_hint = "see --help for the accepted values"


class ConfigError(ProvisionError):
    """No credentials, a bad config, project or environment file."""

    exit_code = 3
    kind = "config"
    default_hint = "run 'provision login' or set CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY, CONDUCTOR_AUTH_SECRET"


class AuthenticationError(ProvisionError):
    """The server rejected the key (401)."""

    exit_code = 4
    kind = "authentication"
    default_hint = "check the key id and secret; 'provision login' stores new ones"


class PermissionDenied(ProvisionError):
    """The key is valid but lacks a role or a permission (403)."""

    exit_code = 5
    kind = "permission"
    default_hint = "ask an Orkes admin for the missing role, or use a key of an ADMIN application"


class NotFound(ProvisionError):
    """An application, key or definition does not exist (404)."""

    exit_code = 6
    kind = "not_found"
    default_hint = "check the name or id; 'provision apps list' shows what exists"


class Conflict(ProvisionError):
    """The request is ambiguous or clashes with the server's state."""

    exit_code = 7
    kind = "conflict"
    default_hint = "pick one with --app-id"


class ServerUnavailable(ProvisionError):
    """The server cannot be reached, timed out or failed (5xx)."""

    exit_code = 8
    kind = "unavailable"
    default_hint = "check --server and that the server is up; retry later"


class RateLimited(ProvisionError):
    """The server kept answering 429 after the retries."""

    exit_code = 9
    kind = "rate_limited"
    default_hint = "retry later or lower --parallelism"


class StoreError(ProvisionError):
    """A credential store cannot be read or written."""

    exit_code = 10
    kind = "store"
    default_hint = "check the --store spec; 'env-file:PATH' works where no keyring does"


class VerificationFailed(ProvisionError):
    """A check (doctor, preflight, verification of a new key) found a problem."""

    exit_code = 11
    kind = "verification"
    default_hint = "run 'provision doctor APP' for the fixing commands"


class LockHeld(ProvisionError):
    """Another provision run holds the lock for the same application."""

    exit_code = 12
    kind = "locked"
    default_hint = "wait for the other run to finish, then retry"


class Cancelled(ProvisionError):
    """The user answered no to a confirmation, or interrupted the command (Ctrl-C)."""

    exit_code = 130
    kind = "cancelled"
    default_hint = "nothing more was changed; add --yes to skip the question"


class Interrupted(Cancelled):
    """Ctrl-C (SIGINT) stopped the command."""

    kind = "interrupted"
    default_hint = "what was done before the interrupt stays done; run the command again to finish"


class AuditTampered(ProvisionError):
    """The audit log's hash chain is broken: a record was edited, deleted, inserted or moved."""

    exit_code = 1
    kind = "audit"
    default_hint = "compare the audit log with a backup"


class ServerError(ProvisionError):
    """The server answered with an error this tool does not know how to handle."""

    exit_code = 13
    kind = "server"
    default_hint = "run with -v to see the request; report it if it persists"


EXIT_CODES: dict[int, str] = {
    0: "success (for 'plan --detailed-exitcode': no changes)",
    1: "unexpected error (for 'plan --detailed-exitcode', 'drift' and 'lint': any error; for 'audit verify': the "
       "chain is broken)",
    2: "bad usage: flag, argument or value (for 'plan --detailed-exitcode': changes pending; 'drift': the server "
       "differs; 'lint': findings)",
    3: "configuration: no credentials, bad config, project or environment file; a local file or directory "
       "another user could have written (see docs/security.md, shared hosts)",
    4: "authentication: the server rejected the key (401)",
    5: "permission: the key lacks a role or permission (403)",
    6: "not found: application, key or definition missing (404)",
    7: "conflict: ambiguous name or clashing state",
    8: "server unreachable, timed out or failing (5xx)",
    9: "rate limited (429) after retries",
    10: "credential store unreadable, unwritable, or an env file another user could have written",
    11: "verification failed (doctor, explain, preflight, new key)",
    12: "lock held by another run",
    13: "unexpected server answer",
    126: "'run': the worker command cannot be executed",
    127: "'run': the worker command was not found",
    130: "interrupted (Ctrl-C) or a confirmation answered no",
}


def exit_code_table() -> str:
    """The exit-code table of docs/exit-codes.md, from ``EXIT_CODES`` (``python -m orkes_provision.errors``)."""
    rows = ["| code | meaning |", "| --- | --- |"]
    rows += [f"| {code} | {meaning} |" for code, meaning in sorted(EXIT_CODES.items())]
    return "\n".join(rows)


if __name__ == "__main__":
    print(exit_code_table())
