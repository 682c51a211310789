"""Reading the TOML files a user writes (the project file, the config file) with errors worth reading.

Every problem is one ``ConfigError`` line naming the file and the place in it: the line and
column of a syntax error, the key path of a schema error (``workers[0].command``). Of several
schema errors the one most likely to be the cause comes first (an unknown key, then a wrong
value, then a missing key: ``command = "python3 main.py"`` is reported as "a list of strings",
not as the missing key after it), an unknown key gets "did you mean", and a wrong value says
what is expected in the file's terms, not pydantic's. The environment file (``environments/environment.py``)
is read with the same functions.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from orkes_provision.errors import ConfigError, Problem
from orkes_provision.names import closest
from orkes_provision.toml.write import FileLines

_TOML_POSITION = re.compile(r"\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)\s*$")
_TOML_EOF = re.compile(r"\s*\(at end of document\)\s*$")
# The order in which problems are reported: the cause before its consequences.
_RANK = {"extra_forbidden": 0, "missing": 2}


def read_toml(path: Path, what: str, *, missing_hint: str) -> dict[str, Any]:
    """The TOML document at ``path``; ``what`` names the kind of file in messages ("project file")."""
    shown = display(path)
    return parse_toml(read_file(path, shown, what, missing_hint=missing_hint), shown)


def read_file(path: Path, shown: str, what: str, *, missing_hint: str, directory_hint: str | None = None) -> bytes:
    """The bytes of the file the user named; a ``ConfigError`` saying why it cannot be read, shown as ``shown``."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{shown}: no such {what}", missing_hint) from None
    except IsADirectoryError:
        article = "an" if what[:1] in "aeiou" else "a"
        raise ConfigError(f"{shown}: is a directory, not {article} {what}",
                          directory_hint or f"remove or rename the directory, or point at the {what} itself") from None
    except OSError as err:
        raise ConfigError(f"{shown}: cannot read: {err.strerror}", "check the file's permissions") from None


def parse_toml(raw: bytes, shown: str) -> dict[str, Any]:
    """TOML bytes to a dict; ``ConfigError`` naming the line and column of a syntax error."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{shown}: not UTF-8 text (byte {err.start})", "save the file as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        position = _TOML_POSITION.search(message)
        if position is not None:
            message = message[:position.start()]
            where = f"line {position['line']}, column {position['col']}"
        else:
            message = _TOML_EOF.sub("", message)
            where = f"line {text.count(chr(10)) + 1} (end of file)"
        message = f"TOML syntax: {first_lower(message.strip().rstrip('.') or 'invalid TOML')}"
        error = ConfigError(f"{shown}: {where}: {message}", "fix the TOML at that place (syntax: https://toml.io)")
        line = int(position["line"]) if position is not None else text.count("\n") + 1
        error.problems = [Problem(file=shown, line=line, path="", message=message, hint=error.hint)]
        raise error from None
    except (ValueError, RecursionError):
        # tomllib only promises TOMLDecodeError, but deeply nested input can exhaust the stack.
        raise ConfigError(f"{shown}: TOML syntax: the document is nested too deeply or malformed",
                          "fix the TOML (syntax: https://toml.io)") from None


def validation_error(shown: str, err: ValidationError, model: type[BaseModel], docs: str) -> ConfigError:
    """One ``ConfigError`` for a failed ``model.model_validate``: the likeliest cause first, located.

    ``docs`` ends each hint: where the user finds every key (``see docs/workers.md for the project file``).
    """
    errors = sorted(err.errors(include_url=False), key=lambda e: _RANK.get(str(e.get("type")), 1))
    first = errors[0]
    loc = tuple(first.get("loc", ()))
    more = len(errors) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    message, hint = _describe(first, model, docs)
    where = format_location(loc[:-1] if first.get("type") == "missing" else loc)
    return ConfigError(" ".join(f"{shown}: {where + ': ' if where else ''}{message}{suffix}".split()), hint)


def schema_problems(shown: str, lines: FileLines, err: ValidationError, model: type[BaseModel],
                    docs: str) -> list[Problem]:
    """Every problem of a failed ``model.model_validate``, each at its line of the file (``lines``)."""
    problems = []
    for error in err.errors(include_url=False):
        loc = tuple(error.get("loc", ()))
        message, hint = _describe(error, model, docs)
        held = loc[:-1] if error.get("type") == "missing" else loc
        label = key_label(held, model)
        problems.append(Problem(file=shown, line=lines.line(loc, error.get("input")), path=format_location(loc),
                                message=" ".join(f"{label + ': ' if label else ''}{message}".split()), hint=hint))
    return problems


def key_label(loc: tuple[int | str, ...], model: type[BaseModel]) -> str:
    """How the file names the place ``loc``: its key (``access``, also for an element of its list), or the
    header of its table (``[[applications.grants]]``); empty for the top-level table."""
    while loc and isinstance(loc[-1], int) and _model_in(_annotation(model, loc)) is None:
        loc = loc[:-1]  # an element of a list of values: the key holding the list
    if loc and isinstance(loc[-1], str):
        return loc[-1]
    tables = [str(part) for part in loc if isinstance(part, str)]
    return f"[[{'.'.join(tables)}]]" if tables else ""


def _describe(error: Any, model: type[BaseModel], docs: str) -> tuple[str, str]:
    """What is wrong with one pydantic error, in the file's terms, and the fix."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type")
    if kind == "extra_forbidden":
        allowed = allowed_keys(model, loc[:-1])
        guess = closest(str(loc[-1]), allowed, cutoff=0.6) if loc else None
        did_you_mean = f"; did you mean {guess!r}?" if guess else ""
        return (f"unknown key{did_you_mean} (allowed: {', '.join(allowed) or 'none'})",
                f"rename the key to {guess!r}" if guess else f"remove the key; {docs}")
    if kind == "missing":
        return f"required key {loc[-1] if loc else '?'!r} is missing", f"add it; {docs}"
    message = _value_message(error, _annotation(model, loc))
    value = error.get("input")
    if kind == "literal_error" and (guess := _literal_guess(error)) is not None:
        case = " (values are case-sensitive)" if guess.lower() == str(value).lower() else ""
        return message, f"replace {_short(value)} with {guess!r}{case}"
    if kind in _NUMBER_OR_BOOL and isinstance(value, str) and _unquoted(value) is not None:
        return message, f"remove the quotes: {loc[-1]} = {_unquoted(value)}"
    return message, f"fix the value; {docs}"


_NUMBER_OR_BOOL = {"int_type", "int_parsing", "int_from_float", "bool_type", "bool_parsing"}


def _unquoted(value: str) -> str | None:
    """A quoted number or boolean as TOML writes it without quotes, if it is one."""
    text = value.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return str(int(text))
    return text.lower() if text.lower() in ("true", "false") else None


def format_location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the table at ``loc`` accepts, as they are spelled in the file."""
    current: type[BaseModel] | None = model
    in_mapping = False
    for part in loc:
        if isinstance(part, int) or current is None or in_mapping:
            in_mapping = False  # a list index, or the user's own key of a mapping ([profiles.NAME])
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        current, in_mapping = _model_in(field.annotation), _is_mapping(field.annotation)
    if current is None or in_mapping:
        return []  # the keys of a mapping (env, profiles) are the user's own
    # Fields excluded from dumps are not written in the file (a profile's name is its table's).
    return [field.alias or name for name, field in current.model_fields.items() if not field.exclude]


def display(path: Path) -> str:
    """The path as the user would type it: relative to the cwd when it is below it."""
    try:
        absolute = path if path.is_absolute() else Path.cwd() / path
        return os.path.relpath(absolute) if Path.cwd() in absolute.parents else str(path)
    except (ValueError, OSError):
        return str(path)


def _annotation(model: type[BaseModel], loc: tuple[int | str, ...]) -> Any:
    current: type[BaseModel] | None = model
    annotation: Any = None
    for part in loc:
        if isinstance(part, int):
            continue
        if current is None:
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        current = _model_in(annotation)
    return annotation


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly, in a list or a mapping, or optionally."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _is_mapping(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_is_mapping(a) for a in get_args(annotation))
    return origin is dict


def _holds_strings(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_holds_strings(a) for a in get_args(annotation))
    return origin is list and get_args(annotation) == (str,)


def _value_message(error: Any, annotation: Any) -> str:
    kind = str(error.get("type", ""))
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "list_type":
        if _holds_strings(annotation):
            example = f", e.g. {json.dumps(_words(value))}" if isinstance(value, str) and value.strip() else ""
            return f"must be a list of strings{example} (got {_short(value)})"
        return f"must be a list (got {_short(value)})"
    if kind == "literal_error":
        guess = _literal_guess(error)
        did_you_mean = f"; did you mean {guess!r}?" if guess else ""
        return f"{_short(value)} is not one of {', '.join(_expected(error))}{did_you_mean}"
    if kind == "string_type":
        return f"must be a string (got {_short(value)})"
    quoted = ", a string" if isinstance(value, str) else ""
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number (got {_short(value)}{quoted})"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false (got {_short(value)}{quoted})"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a table (got {_short(value)})"
    if kind == "too_short":
        return "must not be empty"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bound = next(iter(ctx.values()), "?")
        words = {"greater_than_equal": "at least", "less_than_equal": "at most",
                 "greater_than": "more than", "less_than": "less than"}[kind]
        return f"must be {words} {bound} (got {_short(value)})"
    return first_lower(str(error.get("msg", "invalid value")).removeprefix("Value error, "))


def _expected(error: Any) -> list[str]:
    expected = str((error.get("ctx") or {}).get("expected", ""))
    return [e.strip().strip("'") for e in re.split(r",| or ", expected) if e.strip()]


def _literal_guess(error: Any) -> str | None:
    value = error.get("input")
    return closest(value, _expected(error), cutoff=0.6) if isinstance(value, str) else None


def _words(value: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def first_lower(message: str) -> str:
    return message[:1].lower() + message[1:] if message[:2] != message[:2].upper() else message
