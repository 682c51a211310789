"""Worker project scaffolds: ``provision init`` copies one of ``templates/<language>/``.

The templates live inside the package (``orkes_provision/workers/templates``) so that an installed
``provision`` has them too. Two conventions keep them out of the way of this project's own
tools and of packaging: a ``.tmpl`` suffix is dropped (``main.py.tmpl`` becomes ``main.py``,
so the type checker does not check the template as part of the package), and a ``dot-``
prefix becomes ``.`` (``dot-gitignore`` becomes ``.gitignore``, which package-data globs skip).
``{{app}}`` in any file becomes the application name.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

from orkes_provision import trust
from orkes_provision.errors import ConfigError, UsageError

LANGUAGES: tuple[str, ...] = ("python", "java", "javascript", "go", "csharp")
DEFAULT_APP = "greetings-worker"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# The name goes into TOML strings and READMEs: keep it to characters that need no escaping anywhere.
_APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@ -]{0,99}$")


@dataclass(frozen=True)
class Scaffolded:
    """What ``scaffold`` wrote."""

    language: str
    directory: Path
    files: list[Path]
    app: str
    keyring: bool = True  # a keyring works here: the key can go to the default store

    @property
    def next_steps(self) -> list[str]:
        # 'provision app' in the project takes its application, roles and grants from the file; where
        # no keyring works, the printed step names the env file the .gitignore already covers.
        store = [] if self.keyring else ["--store", "env-file:worker.env"]
        return [shlex.join(["cd", str(self.directory)]), *setup_commands(self.language),
                shlex.join(["provision", "app", "--register-tasks", *store]),
                "provision worker run greetings"]

    def to_dict(self) -> dict[str, object]:
        return {"language": self.language, "directory": str(self.directory), "app": self.app,
                "files": [str(f.relative_to(self.directory)) for f in self.files], "next": self.next_steps}


def setup_commands(language: str) -> list[str]:
    """What a language needs before its worker can run (fetching the SDK)."""
    return {
        "python": ["python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt"],
        "java": ["mvn -q package"],
        "javascript": ["npm ci"],
        "go": ["go build -o greetings ."],
        "csharp": ["dotnet build"],
    }[language]


def template_files(language: str) -> list[tuple[Path, Path]]:
    """``(source, relative destination)`` for every file of the language's template, sorted."""
    root = TEMPLATES_DIR / language
    if language not in LANGUAGES or not root.is_dir():
        raise UsageError(f"no template for language {language!r}", f"choose one of: {', '.join(LANGUAGES)}")
    out = []
    for source in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        out.append((source, _destination(source.relative_to(root))))
    return out


def _destination(relative: Path) -> Path:
    parts = list(relative.parts)
    name = parts[-1].removesuffix(".tmpl")
    if name.startswith("dot-"):
        name = "." + name.removeprefix("dot-")
    parts[-1] = name
    return Path(*parts)


def default_app_name(directory: Path) -> str:
    """The application a project in ``directory`` runs as by default: named after the directory
    (``greetings`` -> ``greetings-worker``), so that two projects on one server never share an
    application, and its keys, by accident."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory.resolve().name).strip("-._")
    if not stem:
        return DEFAULT_APP
    name = stem if stem.endswith("-worker") else f"{stem}-worker"
    return name[:100]


def check_app_name(app: str) -> str:
    app = app.strip()
    if not _APP_NAME.match(app):
        raise UsageError(f"application name {app!r} is not usable in a scaffold",
                         "use letters, digits, space and _ . : @ - (at most 100), starting with a letter or digit")
    return app


def scaffold(language: str, directory: Path, *, app: str | None = None, force: bool = False) -> Scaffolded:
    """Write the ``language`` template into ``directory`` (created if missing).

    A directory that exists and is not empty is refused unless ``force``, in which case the
    template's files replace files of the same name and nothing else is touched. So is a directory
    another user owns or can write to (they could plant a link where a file is about to be written,
    or change the files later). Every file is created relative to the checked directory's fd, with
    O_EXCL and without following links (with ``force``, a new file renamed over the old one).
    """
    app = check_app_name(app if app is not None else default_app_name(directory))
    files = template_files(language)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory", "give a new or empty directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise UsageError(f"{directory} is not empty", "give a new or empty directory, or pass --force to write into it")
    written: list[Path] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with trust.opened_directory(directory) as (dir_fd, info):
            problem = trust.directory_problem(info)
            if problem is not None:
                raise trust.directory_refusal(directory, info, problem, could="redirect or change its files",
                                              hint="give a directory only you can write")
            for source, relative in files:
                text = source.read_text(encoding="utf-8").replace("{{app}}", app)
                mode = 0o777 if os.access(source, os.X_OK) else 0o666  # less the umask
                _create(dir_fd, relative, text.encode("utf-8"), mode, replace=force)
                written.append(directory / relative)
    except OSError as err:
        raise ConfigError(f"cannot write the project into {directory}: {err.strerror or err}",
                          "check the directory's permissions, or choose another one") from None
    from orkes_provision.credentials.stores.keyring_store import usable_keyring

    return Scaffolded(language, directory, written, app, keyring=usable_keyring() is not None)


_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _create(dir_fd: int, relative: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """``relative`` (below ``dir_fd``) created with ``data``: no link followed, no existing file written through."""
    *parents, name = relative.parts
    fds: list[int] = []
    try:
        parent = dir_fd
        for part in parents:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=parent)
            parent = os.open(part, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=parent)
            fds.append(parent)
        target = f".{name}.{secrets.token_hex(6)}.tmp" if replace else name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode, dir_fd=parent)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        if replace:
            os.replace(target, name, src_dir_fd=parent, dst_dir_fd=parent)  # replaces a link, never follows it
    finally:
        for fd in fds:
            os.close(fd)
