"""Deliveries: every key knows its home.

A *delivery* is (server, application id and name, key id, normalised store spec, time), recorded
on this machine each time a key is written to a store (never the secret). With the store itself
and the server, it answers for every command "which key does application A use on server S,
where is it, and does it still work":

- ``choose_store``: where A's key is, in this order: ``--store``, ``ORKES_PROVISION_STORE``,
  the project file (for its own application), the delivery recorded on this machine, the
  config's ``default_store``, the keyring; the answer says which one it was.
- ``choose_key_server``: which server a key belongs to: ``--server``, else the server the store
  recorded with the key (an env file or a Kubernetes Secret names it), else the project file's
  (for its own application), ``CONDUCTOR_SERVER_URL``, the profile's, the recorded delivery's.
  A project file never redirects another credential: when it names another server than the
  key or the provisioning credentials, ``ConfigError`` names both and ``--server``.
- ``find_stored_key``: the key a store holds for A on S, also when it was written under another
  spelling of the same server URL (an alias, a proxy); the caller proves the alias by asking S.
- ``deliveries`` / ``where_delivered``: every place a key went, e.g. before rotation retires it.
- ``begin_key_creation`` / ``end_key_creation``: the intent to create a key is recorded before
  the request, so a run killed while the server answers leaves a trace, and the next run can
  retire a key whose secret was never stored (``access.keys.retire_lost_keys``).
- ``Hints``: the commands printed as next steps and fixes, quoted and carrying ``--store`` and
  the profile, so that each runs as printed in a fresh shell.

Files (``state_dir()``): ``deliveries.json`` ``{server: {app: [{store, key_id, app_id, time}]}}``,
one row per store; ``key-intents.json`` ``{server: {app: [intent]}}``.
"""

from __future__ import annotations

import json
import os
import shlex
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orkes_provision.errors import ConfigError, NotFound, UsageError
from orkes_provision.fileio import read_json, write_state
from orkes_provision.locks import file_lock
from orkes_provision.orkes.urls import normalize_server_url
from orkes_provision.paths import state_dir

if TYPE_CHECKING:
    from orkes_provision.credentials.stores import CredentialStore, StoredKey

STORE_VARIABLE = "ORKES_PROVISION_STORE"
# Stores that hold nothing this tool can read back or write again unattended.
WRITE_ONCE_STORES = {"json": "the json store prints the key once", "memory": "the memory store lives in one process"}
_RECORD_WHAT = "the deliveries record"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _server(url: str) -> str:
    return normalize_server_url(url, insecure_http=True)


# ----- store specs -------------------------------------------------------------------------------

def normalize_store_spec(spec: str, *, base: Path | None = None) -> str:
    """The one spelling of a store spec: ``env-file:`` with an absolute path (relative to ``base``,
    default the current directory), ``k8s-secret:NS/NAME`` checked; ``UsageError`` for anything else.

    Two specs name the same store exactly when their normalised forms are equal
    (``env-file:dup.env`` and ``env-file:./dup.env`` do).
    """
    from orkes_provision.credentials.stores import STORE_FORMS

    text = spec.strip()
    kind, sep, arg = text.partition(":")
    if text in ("keyring", "json", "memory"):
        return text
    if kind == "env-file":
        if not sep or not arg.strip():
            raise UsageError("--store env-file needs a path", "write it as --store env-file:./worker.env")
        path = Path(arg.strip()).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        return f"env-file:{os.path.normpath(path)}"
    if kind == "mounted-secret" and arg.strip():
        return f"mounted-secret:{os.path.normpath(Path(arg.strip()).expanduser().absolute())}"
    if kind == "k8s-secret":
        from orkes_provision.credentials.stores.k8s_secret import PREFIX, parse_spec

        namespace, name = parse_spec(arg)
        return f"{PREFIX}{namespace}/{name}"
    raise UsageError(f"unknown credential store {text!r}", f"use one of: {STORE_FORMS}")


def _recorded_spec(spec: str) -> str:
    # A store of a plugin or a test double has a spec of its own: recorded as it names itself.
    try:
        return normalize_store_spec(spec)
    except UsageError:
        return spec.strip()


# ----- the record --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    """Key ``key_id`` of application ``app`` (``app_id``) on ``server`` was written to ``store`` at ``time``."""

    server: str
    app: str
    app_id: str
    key_id: str
    store: str
    time: str


def deliveries_path() -> Path:
    return state_dir() / "deliveries.json"


def _load(path: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    try:
        data = read_json(path, {})
    except ValueError:
        return {}  # unreadable: treated as empty, rewritten by the next record
    return data if isinstance(data, dict) else {}


def _save(path: Path, data: dict[str, Any]) -> None:
    write_state(path, json.dumps(data, indent=2, sort_keys=True).encode())


def deliveries(server: str | None = None, app: str | None = None) -> list[Delivery]:
    """Every delivery recorded on this machine, or those of ``server`` and/or ``app``; newest first.

    With neither argument this lists every application whose key this machine delivered (what a
    fleet-wide rotation job iterates over).
    """
    out: list[Delivery] = []
    for row_server, apps in _load(deliveries_path()).items():
        if server is not None and row_server != _server(server):
            continue
        if not isinstance(apps, dict):
            continue
        for row_app, rows in apps.items():
            if app is not None and row_app != app:
                continue
            for row in rows if isinstance(rows, list) else []:
                try:
                    out.append(Delivery(server=row_server, app=row_app, app_id=str(row["app_id"]),
                                        key_id=str(row["key_id"]), store=str(row["store"]), time=str(row["time"])))
                except (KeyError, TypeError):
                    continue
    return sorted(out, key=lambda d: d.time, reverse=True)


def where_delivered(server: str, app: str, key_id: str) -> list[Delivery]:
    """The stores that received ``key_id`` (as far as this machine knows)."""
    return [d for d in deliveries(server, app) if d.key_id == key_id]


def record_delivery(server: str, app: str, app_id: str, store: str, key_id: str) -> Delivery:
    """Remember that ``key_id`` now lives in ``store`` (one row per store: it replaces that store's row)."""
    server = _server(server)
    delivery = Delivery(server=server, app=app, app_id=app_id, key_id=key_id, store=_recorded_spec(store),
                        time=_now())
    with file_lock("deliveries.json", what=_RECORD_WHAT):
        data = _load(deliveries_path())
        rows = [r for r in data.setdefault(server, {}).get(app, []) if r.get("store") != delivery.store]
        rows.append({"store": delivery.store, "key_id": key_id, "app_id": app_id, "time": delivery.time})
        data[server][app] = sorted(rows, key=lambda r: str(r["store"]))
        _save(deliveries_path(), data)
    return delivery


def forget_deliveries(server: str, app: str, store: str | None = None) -> None:
    """Forget where ``app``'s keys went (all stores, or ``store`` only): the application or key is gone."""
    server = _server(server)
    with file_lock("deliveries.json", what=_RECORD_WHAT):
        data = _load(deliveries_path())
        rows = data.get(server, {}).get(app)
        if rows is None:
            return
        kept = [r for r in rows if store is not None and r.get("store") != _recorded_spec(store)]
        if kept:
            data[server][app] = kept
        else:
            data[server].pop(app)
            if not data[server]:
                data.pop(server)
        _save(deliveries_path(), data)


# ----- intents: a key being created ---------------------------------------------------------------

@dataclass(frozen=True)
class KeyIntent:
    """A key creation under way: the keys the application had before, and where the new one goes."""

    id: str
    server: str
    app: str
    app_id: str
    known_key_ids: tuple[str, ...]
    stores: tuple[str, ...]
    time: str
    # When the create request gives up (its --timeout with retries): a key the server made later was
    # not made by it. None in intents recorded before the deadline was.
    deadline: str | None = None

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.time)

    @property
    def ends(self) -> datetime | None:
        return datetime.fromisoformat(self.deadline) if self.deadline else None


def intents_path() -> Path:
    return state_dir() / "key-intents.json"


def begin_key_creation(server: str, app: str, app_id: str, known_key_ids: Iterable[str],
                       stores: Iterable[str], *, deadline_seconds: float | None = None) -> KeyIntent:
    """Record, before the create request is sent, that a key of ``app`` is about to be created,
    and by when the request ends (``deadline_seconds`` from now)."""
    now = datetime.now(UTC)
    deadline = (now + timedelta(seconds=deadline_seconds)).isoformat() if deadline_seconds is not None else None
    intent = KeyIntent(id=uuid.uuid4().hex, server=_server(server), app=app, app_id=app_id,
                       known_key_ids=tuple(sorted(known_key_ids)),
                       stores=tuple(_recorded_spec(s) for s in stores), time=now.isoformat(), deadline=deadline)
    with file_lock("key-intents.json", what="the key-intents record"):
        data = _load(intents_path())
        row = asdict(intent)
        del row["server"], row["app"]
        data.setdefault(intent.server, {}).setdefault(app, []).append(row)
        _save(intents_path(), data)
    return intent


def end_key_creation(intent: KeyIntent) -> None:
    """The key of ``intent`` is stored (or was cleaned up): forget the intent."""
    with file_lock("key-intents.json", what="the key-intents record"):
        data = _load(intents_path())
        rows = data.get(intent.server, {}).get(intent.app)
        if rows is None:
            return
        kept = [r for r in rows if r.get("id") != intent.id]
        if kept:
            data[intent.server][intent.app] = kept
        else:
            data[intent.server].pop(intent.app)
            if not data[intent.server]:
                data.pop(intent.server)
        _save(intents_path(), data)


def pending_key_creations(server: str, app: str) -> list[KeyIntent]:
    """Key creations of ``app`` on ``server`` that started and never finished (a killed run)."""
    server = _server(server)
    rows = _load(intents_path()).get(server, {}).get(app, [])
    out: list[KeyIntent] = []
    for row in rows if isinstance(rows, list) else []:
        try:
            deadline = row.get("deadline")
            out.append(KeyIntent(id=str(row["id"]), server=server, app=app, app_id=str(row["app_id"]),
                                 known_key_ids=tuple(row["known_key_ids"]), stores=tuple(row["stores"]),
                                 time=str(row["time"]), deadline=str(deadline) if deadline else None))
        except (KeyError, TypeError):
            continue
    return out


# ----- resolution ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Choice:
    """A resolved value and where it came from (said to the user: "store X (from the project file)")."""

    value: str
    source: str


@dataclass(frozen=True)
class ProjectDefaults:
    """What a project file says about its own application (``workers.project.Project.defaults``)."""

    path: Path
    app: str | None = None
    store: str | None = None
    server: str | None = None

    def for_app(self, app: str) -> bool:
        return self.app is not None and self.app == app


def choose_app_name(name: str | None, *, project: ProjectDefaults | None = None,
                    tasks: Iterable[str] = ()) -> Choice:
    """The application: the argument, else the project file's, else ``<first task>-worker``."""
    if name:
        return Choice(name, "argument")
    if project is not None and project.app:
        return Choice(project.app, f"project file {project.path}")
    first = next(iter(tasks), None)
    if first:
        return Choice(f"{first}-worker", "first granted task")
    raise UsageError("no application name given",
                     "name it ('provision app NAME'), or grant a task ('--grant greetings' names it greetings-worker)")


def choose_store(flag: str | None, *, app: str, server: str | None = None,
                 project: ProjectDefaults | None = None, env: Mapping[str, str] | None = None) -> Choice:
    """Where ``app``'s key is (or goes), normalised, with the source; see the module docstring for the order.

    ``server`` narrows the recorded deliveries to that server (``None``: any server). Deliveries
    to write-once stores (json) are skipped: nothing can be read back from them.
    """
    from orkes_provision.credentials.settings import Settings, load_config

    env = os.environ if env is None else env
    if flag and flag.strip():
        return Choice(normalize_store_spec(flag), "--store")
    from_env = env.get(STORE_VARIABLE, "").strip()
    if from_env:
        return Choice(normalize_store_spec(from_env), STORE_VARIABLE)
    if project is not None and project.store and project.for_app(app):
        return Choice(normalize_store_spec(project.store, base=project.path.parent), f"project file {project.path}")
    rows = [d for d in deliveries(server, app) if d.store not in WRITE_ONCE_STORES]
    if project is not None and project.for_app(app):
        # The project's own store before the latest delivery elsewhere (another project's key).
        inside = [d for d in rows if _under(d.store, project.path.parent)]
        rows = inside + [d for d in rows if d not in inside]
    for delivery in rows:
        return Choice(delivery.store, f"where this machine delivered its key on {delivery.time}")
    settings = Settings.from_env(env)
    default = load_config(settings.config_file).default_store
    if default:
        return Choice(normalize_store_spec(default), f"default_store in {settings.config_file}")
    return Choice("keyring", DEFAULT_STORE_SOURCE)


DEFAULT_STORE_SOURCE = "the default"


def unknown_application(app: str, choice: Choice) -> NotFound | None:
    """The error for an application nothing on this machine knows, when its store was only a guess.

    ``choice`` is where the key was looked for. When that is the bare default (no ``--store``, no
    project file, no delivery, no ``default_store``) and no key of ``app`` was ever delivered here,
    a failure of that store (no keyring backend, no key in it) would hide the point: the name is
    unknown here. ``None`` when the store was chosen by something that names ``app``.
    """
    if choice.source != DEFAULT_STORE_SOURCE or deliveries(None, app):
        return None
    import difflib

    known = sorted({d.app for d in deliveries()})
    close = difflib.get_close_matches(app, known, n=1, cutoff=0.75)
    err = NotFound(f"unknown application {app!r}: this machine delivered no key of it, and no project file here "
                   "names it",
                   f"did you mean {close[0]!r}?" if close else
                   f"create it with its key: {shlex.join(['provision', 'app', app, '--worker'])}, or give "
                   "--store SPEC where its key is")
    if close:
        err.corrections = {app: close[0]}
    return err


def _under(store: str, directory: Path) -> bool:
    """Is ``store`` an env file inside ``directory``?"""
    kind, _, path = store.partition(":")
    return kind == "env-file" and Path(path).is_relative_to(directory.resolve())


def stored_home(store: CredentialStore) -> StoredKey | None:
    """The key a store holds with the server and application it names itself (env file, Kubernetes
    Secret); ``None`` for stores keyed by server and application (keyring) or holding nothing."""
    read = getattr(store, "read", None)
    return read() if callable(read) else None


def choose_key_server(*, app: str, store: CredentialStore, flag: str | None, project: ProjectDefaults | None,
                      env: Mapping[str, str] | None = None,
                      credentials_server: Callable[[], Choice | None] = lambda: None,
                      insecure_http: bool = False) -> Choice:
    """The server ``app``'s key belongs to (order in the module docstring), checked against the project file.

    ``credentials_server`` gives the server of the provisioning credentials with their source (a
    profile, ``CONDUCTOR_SERVER_URL``), or ``None``; it is asked only when needed.
    """
    env = os.environ if env is None else env

    def url(value: str) -> str:
        return normalize_server_url(value, insecure_http=insecure_http)

    project_server = (Choice(url(project.server), f"the project file {project.path}")
                      if project is not None and project.server and project.for_app(app) else None)
    if flag:
        return Choice(url(flag), "--server")
    held = stored_home(store)
    if held is not None and (not held.app or held.app == app):
        chosen = Choice(held.server, store.describe(held.server, app))
        check_same_server(project_server, chosen)
        return chosen
    if project_server is not None:
        other = Choice(url(env["CONDUCTOR_SERVER_URL"]), "CONDUCTOR_SERVER_URL") \
            if env.get("CONDUCTOR_SERVER_URL", "").strip() else credentials_server()
        check_same_server(project_server, other)
        return project_server
    if env.get("CONDUCTOR_SERVER_URL", "").strip():
        return Choice(url(env["CONDUCTOR_SERVER_URL"]), "CONDUCTOR_SERVER_URL")
    from_credentials = credentials_server()
    if from_credentials is not None:
        return from_credentials
    for delivery in deliveries(None, app):
        return Choice(delivery.server, f"where this machine delivered its key on {delivery.time}")
    raise ConfigError(f"no server known for application {app!r}",
                      "pass --server URL, set CONDUCTOR_SERVER_URL, or set 'server' in orkes-provision.toml")


def check_project_server(project: ProjectDefaults | None, app: str, chosen: Choice) -> None:
    """``ConfigError`` when the project file names a server for ``app`` other than ``chosen`` (not ``--server``)."""
    if project is None or not project.server or not project.for_app(app) or chosen.source == "--server":
        return
    check_same_server(Choice(_server(project.server), f"the project file {project.path}"), chosen)


def check_same_server(named: Choice | None, other: Choice | None) -> None:
    """``ConfigError`` when a file names server ``named`` and ``other`` (a key, credentials) is for another."""
    if named is None or other is None or named.value == other.value:
        return
    raise ConfigError(f"{named.source} names server {named.value}, but {other.source} is for {other.value}; "
                      "a project or environment file never redirects a credential to another server",
                      f"choose the server explicitly: --server {other.value} (or --server {named.value})")


def find_stored_key(store: CredentialStore, server: str, app: str) -> StoredKey | None:
    """The key ``store`` holds for ``app`` on ``server``, else one it holds for ``app`` under another
    server URL (the same server spelled differently?). The caller must prove the alias: the key is an
    ACTIVE key of the application on ``server`` and authenticates there; otherwise it is not this server's.
    """
    found = store.load(server, app)
    if found is not None:
        return found
    held = stored_home(store)
    if held is not None and held.app == app:
        return held
    for delivery in deliveries(None, app):
        if delivery.store == store.spec and delivery.server != _server(server):
            other = store.load(delivery.server, app)
            if other is not None:
                return other
    return None


# ----- hints ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hints:
    """Commands printed as next steps and fixes for one application: quoted, complete, runnable as printed.

    ``store`` is the normalised spec the key is in (carried as ``--store`` by every command that
    reads or writes the key); ``options`` the global options that choose the credentials in a fresh
    shell (``--profile NAME``); ``server`` the key's server (carried by ``run`` when the store does
    not name it itself).
    """

    app: str
    store: str | None = None
    options: tuple[str, ...] = ()
    server: str | None = None
    tasks: tuple[str, ...] = field(default=())
    next_run: str | None = None  # what runs the workers, when a project says it better than 'run'

    def command(self, *words: str) -> str:
        return shlex.join(["provision", *self.options, *words])

    def _store(self) -> list[str]:
        return ["--store", self.store] if self.store else []

    def create_app(self, *flags: str, tasks: Iterable[str] | None = None) -> str:
        grants = [w for t in (self.tasks if tasks is None else tasks) for w in ("--grant", t)]
        return self.command("app", self.app, *flags, *grants, *self._store())

    def new_key(self) -> str:
        return self.command("app", self.app, "--new-key", *self._store())

    def grant(self, tasks: Iterable[str] = (), *, workflows: Iterable[str] = (), access: str = "EXECUTE") -> str:
        targets = [*tasks, *(w for name in workflows for w in ("--workflow", name))]
        return self.command("grant", self.app, *targets, *(("--access", access) if access != "EXECUTE" else ()))

    def keys(self, action: str, *args: str) -> str:
        # A printed step is run as printed, often with no terminal to answer the question the
        # destructive actions ask; printing it is the moment the user decides.
        confirm = ("--yes",) if action in ("deactivate", "delete") else ()
        return self.command("keys", action, self.app, *args, *confirm)

    def explain(self, *, tasks: Iterable[str] = (), workflows: Iterable[str] = ()) -> str:
        named = [*(w for t in tasks for w in ("--task", t)), *(w for f in workflows for w in ("--workflow", f))]
        return self.command("explain", self.app, *named)

    def doctor(self) -> str:
        tasks = [w for t in self.tasks for w in ("--task", t)]
        return self.command("doctor", self.app, *tasks, *self._store())

    def run(self, placeholder: str = "<worker command>", *, starter: bool = False) -> str:
        server = ["--server", self.server] if self.server and not (self.store or "").startswith(
            ("env-file:", "k8s-secret:")) else []
        flags = ["--starter"] if starter else []
        return self.command("run", "--app", self.app, *server, *self._store(), *flags, "--") + f" {placeholder}"
