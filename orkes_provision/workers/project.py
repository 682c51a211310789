"""The project file, ``orkes-provision.toml``: which server, which application, which workers.

A project file sits at the top of a worker project (``provision init`` writes one). It holds no
secrets: the key lives in the credential store named by ``application.store``. Example::

    server = "http://127.0.0.1:8080/api"     # optional; the server of this application's key, never of others
    profile = "sandbox"                      # optional; a profile from 'provision login'

    [application]
    name = "greetings-app"
    roles = ["WORKER"]                       # default ["WORKER"]
    grants = ["greetings"]                   # task names the application may EXECUTE
    store = "keyring"                        # credential store spec; default: where its key was delivered

    [[workers]]
    name = "greetings"
    runtime = "python"                       # python | java | javascript | go | csharp
    command = ["python3", "main.py"]         # argv, run without a shell
    cwd = "."                                # relative to this file; default: its directory
    env = { LOG_LEVEL = "INFO" }             # extra environment; never CONDUCTOR_AUTH_*
    replicas = 1                             # processes to run, >= 1
    restart = "on-failure"                   # always | on-failure | never
    stop_grace = "15s"                       # after SIGTERM, how long the worker may finish its task before SIGKILL
    tasks = ["greetings"]                    # tasks it polls (preflight); default: application grants

Errors name the file and the key path, e.g.
``orkes-provision.toml: workers[0].runtime: 'pyhton' is not one of python, java, ...; did you mean 'python'?``
(see ``orkes_provision.toml.read``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from orkes_provision import trust
from orkes_provision.access.spec import Name, not_blank
from orkes_provision.credentials.delivery import ProjectDefaults
from orkes_provision.durations import parse_duration
from orkes_provision.environments.lint import ProjectDecl, WorkerDecl
from orkes_provision.errors import ConfigError, UsageError
from orkes_provision.toml.read import parse_toml, read_file, validation_error

PROJECT_FILE = "orkes-provision.toml"

Runtime = Literal["python", "java", "javascript", "go", "csharp"]
RUNTIMES: tuple[str, ...] = ("python", "java", "javascript", "go", "csharp")
RestartPolicy = Literal["always", "on-failure", "never"]
RESTART_POLICIES: tuple[str, ...] = ("always", "on-failure", "never")
# SIGTERM to SIGKILL. The Java SDK drains for 10 s (TaskRunnerConfigurer's shutdown grace, which the
# template sets), the JavaScript template waits up to 10 s for its task's result to reach the server:
# 15 s lets both finish. A worker whose tasks run longer sets its own.
DEFAULT_STOP_GRACE = "15s"
MAX_STOP_GRACE_SECONDS = 600.0

# provision sets these from the store; a value in the project file would be a secret in a file
# (or silently overridden), so the file may not carry them.
RESERVED_ENV = frozenset({
    "CONDUCTOR_SERVER_URL", "CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET",
    "CONDUCTOR_SERVER_AUTH_KEY", "CONDUCTOR_SERVER_AUTH_SECRET", "CONDUCTOR_AUTH_TOKEN",
})


def _clean_names(values: list[str]) -> list[str]:
    cleaned = [not_blank(v) for v in values]
    return list(dict.fromkeys(cleaned))


class ApplicationSection(BaseModel):
    """``[application]``: the application the workers authenticate as."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    roles: list[str] = Field(default_factory=lambda: ["WORKER"])
    grants: list[str] = Field(default_factory=list)
    store: str | None = None

    @field_validator("roles")
    @classmethod
    def _roles_upper(cls, value: list[str]) -> list[str]:
        return [r.upper() for r in _clean_names(value)]

    @field_validator("grants")
    @classmethod
    def _grants_clean(cls, value: list[str]) -> list[str]:
        return _clean_names(value)


class WorkerSpec(BaseModel):
    """One ``[[workers]]`` entry: a command that runs workers for some tasks."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    runtime: Runtime
    command: list[str] = Field(min_length=1)
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    replicas: int = Field(default=1, ge=1, le=64)
    restart: RestartPolicy = "on-failure"
    stop_grace: str = DEFAULT_STOP_GRACE
    tasks: list[str] | None = None

    @field_validator("command")
    @classmethod
    def _program_not_blank(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the program (first item) must not be blank")
        return value

    @field_validator("env")
    @classmethod
    def _no_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(set(value) & RESERVED_ENV)
        if reserved:
            raise ValueError(f"{', '.join(reserved)} is set by provision from the credential store; remove it here")
        return value

    @field_validator("stop_grace")
    @classmethod
    def _grace_is_a_duration(cls, value: str) -> str:
        seconds = _grace_seconds(value)
        if not 0 < seconds <= MAX_STOP_GRACE_SECONDS:
            raise ValueError(f"{value!r} is out of range: give more than 0s and at most 10m")
        return value

    @property
    def stop_grace_seconds(self) -> float:
        """After SIGTERM, how long the worker's processes may take to finish before they are killed."""
        return _grace_seconds(self.stop_grace)

    @field_validator("tasks")
    @classmethod
    def _tasks_clean(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _clean_names(value)


def _grace_seconds(value: str) -> float:
    try:
        return parse_duration(value, unit_for_bare="s").total_seconds()
    except UsageError as err:
        raise ValueError(f"{err.message}; {err.hint}") from None


class Project(BaseModel):
    """A parsed ``orkes-provision.toml``; ``path`` is where it was read from."""

    model_config = ConfigDict(extra="forbid")

    server: str | None = None
    profile: str | None = None
    application: ApplicationSection | None = None
    workers: list[WorkerSpec] = Field(default_factory=list)

    _path: Path | None = PrivateAttr(default=None)
    _text: str = PrivateAttr(default="")  # as read and checked: never read again by path

    @model_validator(mode="after")
    def _unique_worker_names(self) -> Project:
        seen: set[str] = set()
        for worker in self.workers:
            if worker.name in seen:
                raise ValueError(f"two workers are named {worker.name!r}; names must be unique")
            seen.add(worker.name)
        return self

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def root(self) -> Path:
        """The directory relative paths are taken from: the file's, else the current one."""
        return self._path.parent if self._path is not None else Path.cwd()

    @property
    def app_name(self) -> str | None:
        return self.application.name if self.application else None

    @property
    def store(self) -> str | None:
        return self.application.store if self.application else None

    def defaults(self) -> ProjectDefaults:
        """What this file says about its own application's key (``credentials.delivery`` resolves with it)."""
        return ProjectDefaults(path=self._path or self.root / PROJECT_FILE, app=self.app_name, store=self.store,
                               server=self.server)

    def worker(self, name: str) -> WorkerSpec:
        """The worker called ``name``; ``ConfigError`` listing the known names otherwise."""
        for worker in self.workers:
            if worker.name == name:
                return worker
        known = ", ".join(w.name for w in self.workers) or "none"
        raise ConfigError(f"{self._shown()}: no worker named {name!r} (workers: {known})",
                          f"add a [[workers]] entry with name = {name!r}, or pick one of the names above")

    def worker_cwd(self, worker: WorkerSpec) -> Path:
        """Where ``worker`` runs: its ``cwd`` relative to the project file's directory."""
        if worker.cwd is None:
            return self.root
        cwd = Path(worker.cwd)
        return cwd if cwd.is_absolute() else (self.root / cwd).resolve()

    def worker_tasks(self, worker: WorkerSpec) -> list[str]:
        """The tasks the worker polls: its own list, else the application's grants."""
        if worker.tasks is not None:
            return list(worker.tasks)
        return list(self.application.grants) if self.application else []

    def _shown(self) -> str:
        return _display(self._path) if self._path is not None else PROJECT_FILE


def find_project_file(start: Path | None = None) -> Path | None:
    """The nearest ``orkes-provision.toml`` in ``start`` (default: the cwd) or one of its parents.

    The search stops at the first one found, whoever owns it: ``load_project`` then refuses it unless
    it passes the trust rule (``orkes_provision.trust``), rather than the search skipping to one above.
    """
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / PROJECT_FILE
        if os.path.lexists(candidate):  # a directory or a link of that name is reported, not skipped
            return candidate
    return None


def load_project(path: Path | None = None, *, start: Path | None = None) -> Project | None:
    """Read and validate a project file.

    With ``path`` the file must exist. Without it, the nearest ``orkes-provision.toml`` from
    ``start`` (default: the cwd) upwards is read, and ``None`` means there is none.
    Raises ``ConfigError`` naming the file and the key path for any syntax or schema error.
    """
    if path is None:
        path = find_project_file(start)
        if path is None:
            return None
    else:
        path = path.resolve()  # a link the user named is theirs to follow; a link found by the search is not
    raw = _read_trusted(path)
    data = parse_toml(raw, _display(path))
    try:
        project = Project.model_validate(data)
    except ValidationError as err:
        raise validation_error(_display(path), err, Project,
                               "'provision init' writes a complete example") from None
    project._path = path.resolve()
    project._text = raw.decode("utf-8")
    return project


def _read_trusted(path: Path) -> bytes:
    """The project file's bytes, read only when another user could not have written or planted it."""
    shown = _display(path)
    if path.is_dir():
        return read_file(path, shown, "project file", missing_hint="")  # its error names the directory
    way_out = f"or give a file of your own with --project FILE (or work outside {path.parent})"
    try:
        raw = trust.read_trusted(Path(os.path.abspath(path)), way_out=way_out)
    except OSError as err:
        raise ConfigError(f"{shown}: cannot read: {err.strerror}", "check the file's permissions") from None
    if raw is None:
        raise ConfigError(f"{shown}: no such project file",
                          "run 'provision init DIR' to create one, or give the right path")
    return raw


def project_decl(project: Project) -> ProjectDecl:
    """What ``provision lint`` checks in a project file: its application and the tasks each worker polls."""
    text = project._text
    app = project.application
    return ProjectDecl(file=project._shown(), text=text, app_name=app.name if app else None,
                       roles=tuple(app.roles) if app else (), tasks=tuple(app.grants) if app else (),
                       store=app.store if app else None,
                       workers=tuple(WorkerDecl(w.name, tuple(project.worker_tasks(w))) for w in project.workers))


def require_project(path: Path | None = None) -> Project:
    """Like ``load_project`` but a missing file is a ``ConfigError`` too."""
    project = load_project(path)
    if project is None:
        raise ConfigError(f"no {PROJECT_FILE} in {_display(Path.cwd())} or any parent directory",
                          "cd into the worker project, or run 'provision init DIR' to create one")
    return project


def _display(path: Path) -> str:
    # Show the path as the user would type it: relative to the cwd when it is below it.
    try:
        return os.path.relpath(path) if path.is_absolute() and Path.cwd() in path.parents else str(path)
    except ValueError:
        return str(path)
