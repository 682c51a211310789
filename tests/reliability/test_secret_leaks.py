"""The secret-leak suite: secrets driven through every command ``provision --help`` lists (every store,
``--json``, ``--verbose``, error paths, ``run`` and ``worker run``), then looked for everywhere.

A secret may be where it is meant to be: its credential store (env files, the keyring, the
Kubernetes Secret the stand-in kubectl keeps, a rendered Secret manifest, the sandbox's admin.env)
and the worker's environment, plus exactly once on the stdout of a ``--store json`` run. It must
appear in no other stdout, no stderr, log record, reported exception, audit record, plan, other
file (state, config, sandbox logs and database, cassettes), or command line of any process (the
workers check every process's command line while they run; kubectl's argv is recorded).

``PLAN`` is the list of runs; ``test_every_command_of_provision_help_is_in_the_plan`` fails when a
command is added to the CLI without a run here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orkes_provision.sandbox.harness import SandboxProcess
from tests.orkes.wire import CASSETTES
from tests.reliability.leaks import PROBE, SENTINEL, LeakSession, Run, command_path, leaf_commands

APP, TASK = "leak-app", "leak-task"


@dataclass(frozen=True)
class Step:
    """One run: ``args`` are templates filled from ``LeakSession``'s values; ``mode`` says how it runs."""

    command: str
    args: tuple[str, ...]
    expect: int = 0
    variant: str = "admin"
    stdin: str = ""
    mode: str = "cli"  # cli | subprocess | sandbox
    json_store: bool = False
    before: Callable[[Context], None] | None = None
    after: Callable[[Context, Run], None] | None = None


@dataclass
class Context:
    session: LeakSession
    values: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.session.root

    def fill(self, template: str) -> str:
        return template.format(**self.values)


def sentinel_store(ctx: Context, name: str, key_id: str, server: str | None = None) -> Path:
    """An env file (allowed to hold a secret) with key ``key_id`` and SENTINEL as its secret."""
    path = ctx.root / name
    path.write_text(f"CONDUCTOR_SERVER_URL={server or ctx.session.sandbox.url}\nCONDUCTOR_AUTH_KEY={key_id}\n"
                    f"CONDUCTOR_AUTH_SECRET={SENTINEL}\n")
    path.chmod(0o600)
    ctx.session.allow(path)
    return path


def seed_stale_store(ctx: Context) -> None:
    """An env file holding a key that is not on the server, with SENTINEL as its secret."""
    sentinel_store(ctx, "stale.env", "stale-key-id")


def seed_wrong_secret_store(ctx: Context) -> None:
    """The real key id of leak-stale with SENTINEL as its secret: the server must refuse it."""
    from orkes_provision.credentials.stores.envfile import EnvFileStore, parse_env

    key_id = parse_env((ctx.root / "stale.env").read_text())["CONDUCTOR_AUTH_KEY"]
    path = sentinel_store(ctx, "wrong.env", key_id)
    assert EnvFileStore(path).load(ctx.session.sandbox.url, "leak-stale") is not None


def seed_sentinel_worker_store(ctx: Context) -> None:
    sentinel_store(ctx, "sentinel-run.env", "sentinel-key-id")


# The pods must reach the server, so deploy refuses the loopback sandbox's key: the deploy steps
# use a key (SENTINEL as its secret) stored for an address a cluster could reach.
REACHABLE = "https://conductor.example.com/api"


def seed_reachable_store(ctx: Context) -> None:
    sentinel_store(ctx, "deploy.env", "deploy-key-id", REACHABLE)


def write_environment(ctx: Context) -> None:
    directory = ctx.root / "env"
    (directory / "secrets").mkdir(parents=True, exist_ok=True)
    (directory / "env.toml").write_text(
        f'name = "leak"\n\n[[tasks]]\nname = "{TASK}"\n\n[[applications]]\nname = "leak-env-app"\n'
        f'store = "env-file:secrets/leak.env"\n[[applications.grants]]\ntasks = ["{TASK}"]\n')
    ctx.session.allow(directory / "secrets" / "leak.env")


def write_project(ctx: Context) -> None:
    """Replace the scaffolded project file: the key in w.env, a worker that is the leak probe."""
    project = ctx.root / "proj"
    assert (project / "orkes-provision.toml").exists(), "provision init wrote a project file"
    command = json.dumps([sys.executable, str(PROBE), str(ctx.root / "worker-probe.json")])
    (project / "orkes-provision.toml").write_text(
        f'server = "{ctx.session.sandbox.url}"\n\n[application]\nname = "{APP}"\ngrants = ["{TASK}"]\n'
        f'store = "env-file:{ctx.root / "w.env"}"\n\n[[workers]]\nname = "probe"\nruntime = "python"\n'
        f'command = {command}\nrestart = "never"\n')


def remember_created_key(ctx: Context, run: Run) -> None:
    ctx.values["key2"] = json.loads(run.out)["keyId"]


def allow_stores(*names: str) -> Callable[[Context], None]:
    def before(ctx: Context) -> None:
        ctx.session.allow(*(ctx.root / name for name in names))

    return before


def allow_rendered_secret(ctx: Context, run: Run) -> None:
    # The rendered Secret manifest is a credential store (0600); the other manifests are scanned.
    for path in (ctx.root / "k8s").iterdir():
        if (path.stat().st_mode & 0o077) == 0:
            ctx.session.allow(path)


def track_detached_sandbox(ctx: Context, run: Run) -> None:
    """A sandbox started with --detach: its admin secret is looked for, in its data dir too (server.log)."""
    from orkes_provision.credentials.stores.envfile import parse_env

    data_dir = ctx.root / "bg-sandbox"
    ctx.session.detached.append(data_dir)
    ctx.session.secrets.add(parse_env((data_dir / "admin.env").read_text())["CONDUCTOR_AUTH_SECRET"])
    ctx.session.allow(data_dir / "admin.env")
    ctx.session.scan_dirs.append(data_dir)


W = "env-file:{root}/w.env"
BG = "{root}/bg-sandbox"
PROJECT = "{root}/proj/orkes-provision.toml"
PLAN: tuple[Step, ...] = (
    Step("sandbox", ("sandbox",), mode="sandbox"),
    Step("sandbox", ("sandbox", "--detach", "--port", "0", "--data-dir", BG, "--json"), variant="none",
         after=track_detached_sandbox),
    Step("sandbox status", ("sandbox", "status", "--data-dir", BG, "--json"), variant="none"),
    Step("sandbox stop", ("sandbox", "stop", "--data-dir", BG), variant="none"),
    Step("sandbox status", ("sandbox", "status", "--data-dir", BG), variant="none", expect=8),
    Step("login", ("login", "--profile", "leak", "--server", "{server}", "--key-id", "{admin_key}", "-v"),
         variant="none", stdin="{admin_secret}\n"),
    Step("login", ("login", "--profile", "refused", "--server", "{server}", "--key-id", "{admin_key}", "--json"),
         variant="none", stdin=f"{SENTINEL}\n", expect=4),
    Step("app", ("app", APP, "--worker", "--grant", TASK, "--register-tasks", "--store", W, "-vv"),
         before=allow_stores("w.env")),
    Step("app", ("app", APP, "--worker", "--grant", TASK, "--store", W, "--json")),
    Step("app", ("app", "leak-keyring", "--worker", "--grant", TASK, "--profile", "leak", "-v"), variant="none"),
    Step("app", ("app", "leak-json", "--role", "METADATA_API", "--store", "json", "--json"), json_store=True),
    Step("app", ("app", "leak-stale", "--store", "env-file:{root}/stale.env", "-v"), before=seed_stale_store),
    Step("app", ("app", "leak-k8s", "--worker", "--grant", TASK, "--store", "k8s-secret:workers/leak-k8s", "-v")),
    Step("app", ("app", "leak-dry", "--worker", "--grant", TASK, "--dry-run", "--json")),
    Step("app", ("app", APP, "--worker", "--grant", TASK, "--store", W, "-v"), variant="sentinel", expect=4),
    Step("agent", ("agent", "--app", APP, "--store", W, "--listen", "0.0.0.0:0", "--json"), expect=2),
    Step("apps list", ("apps", "list", "--json")),
    Step("apps show", ("apps", "show", APP, "-v")),
    Step("apps show", ("apps", "show", "no-such-application", "--json"), expect=6),
    Step("apps delete", ("apps", "delete", "leak-json", "--yes", "-v")),
    Step("keys list", ("keys", "list", APP, "--json")),
    Step("keys create", ("keys", "create", APP, "--store", "env-file:{root}/w2.env", "--json"),
         before=allow_stores("w2.env"), after=remember_created_key),
    Step("keys deactivate", ("keys", "deactivate", APP, "{key2}", "--yes", "-v")),
    Step("keys activate", ("keys", "activate", APP, "{key2}", "--json")),
    Step("keys delete", ("keys", "delete", APP, "{key2}", "--yes", "-v")),
    Step("keys rotate", ("keys", "rotate", APP, "--store", W, "--grace", "0s", "--switch-wait", "0", "--json", "-v")),
    Step("keys rotate", ("keys", "rotate", "no-such-application", "--json"), expect=6),
    Step("keys prune", ("keys", "prune", APP, "--grace", "0s", "-v")),
    Step("grant", ("grant", APP, TASK, "--access", "READ", "-v")),
    Step("revoke", ("revoke", APP, TASK, "--access", "READ", "--yes", "--json")),
    Step("doctor", ("doctor", APP, "--task", TASK, "--store", W, "-v")),
    Step("doctor", ("doctor", "leak-stale", "--store", "env-file:{root}/wrong.env", "--json"), expect=11,
         before=seed_wrong_secret_store),
    Step("doctor", ("doctor", APP, "--store", W), variant="sentinel", expect=4),
    Step("explain", ("explain", APP, "--task", TASK, "-v")),
    Step("explain", ("explain", APP, "--workflow", "leak-missing-flow", "--json"), expect=11),
    Step("schema", ("schema",)),
    Step("completion", ("completion", "bash")),
    Step("plan", ("plan", "-f", "{root}/env/env.toml", "--json", "-v"), before=write_environment),
    Step("apply", ("apply", "-f", "{root}/env/env.toml", "--auto-approve", "-vv")),
    Step("apply", ("apply", "-f", "{root}/env/env.toml", "--auto-approve", "--json")),
    Step("plan", ("plan", "-f", "{root}/env/env.toml"), variant="sentinel", expect=4),
    Step("drift", ("drift", "-f", "{root}/env/env.toml", "-vv")),
    Step("drift", ("drift", "-f", "{root}/env/env.toml", "--json"), variant="sentinel", expect=1),
    Step("export", ("export", "-o", "{root}/exported/env.toml", "--json", "-v")),
    Step("export", ("export", "--application", APP, "-v")),
    Step("export", ("export", "-o", "{root}/exported/env.toml"), variant="sentinel", expect=4),
    Step("lint", ("lint", "-f", "{root}/exported/env.toml", "--json")),
    Step("lint", ("lint", "-f", "{root}/no-such.toml"), expect=1),
    Step("init", ("init", "--lang", "python", "--app", APP, "{root}/proj"), after=lambda ctx, run: write_project(ctx)),
    Step("worker list", ("worker", "list", "--project", PROJECT, "--json")),
    Step("deploy kubernetes", ("deploy", "kubernetes", "probe", "--server", REACHABLE, "--image",
                               "example.org/probe:1", "--store", "env-file:{root}/deploy.env", "--render",
                               "{root}/k8s", "--project", PROJECT, "-v"),
         before=seed_reachable_store, after=allow_rendered_secret),
    Step("deploy kubernetes", ("deploy", "kubernetes", "probe", "--server", REACHABLE, "--image",
                               "example.org/probe:1", "--store", "env-file:{root}/deploy.env", "--apply",
                               "-n", "workers", "--project", PROJECT, "--json")),
    # --no-agent: the real key in the worker's environment, and nowhere else; the agent run after them.
    Step("run", ("run", "--app", APP, "--store", W, "--task", TASK, "-v", "--no-agent", "--", sys.executable,
                 str(PROBE), "{root}/run-probe.json"), mode="subprocess"),
    Step("run", ("run", "--app", APP, "--store", W, "--task", TASK, "-v", "--", sys.executable, str(PROBE),
                 "{root}/agent-probe.json"), mode="subprocess"),
    Step("run", ("run", "--app", "sentinel-app", "--store", "env-file:{root}/sentinel-run.env", "--no-preflight",
                 "--no-agent", "--", sys.executable, str(PROBE), "{root}/sentinel-probe.json"), mode="subprocess",
         before=seed_sentinel_worker_store),
    Step("run", ("run", "--app", "no-key-app", "--store", "env-file:{root}/none.env", "--", "true"),
         mode="subprocess", expect=3),
    Step("worker run", ("worker", "run", "probe", "--project", PROJECT, "-v", "--no-agent"), mode="subprocess"),
    Step("worker run", ("worker", "run", "probe", "--project", PROJECT, "--json"), variant="sentinel",
         mode="subprocess", expect=4),
    Step("probe", ("probe", "-v")),
    Step("probe", ("probe", "--json"), variant="sentinel", expect=4),
    Step("audit", ("audit", "--since", "1h", "--json")),
    Step("audit", ("audit",)),
    Step("audit verify", ("audit", "verify", "--json")),
    # A minted token is meant for stdout, and the suite counts every minted token as a secret: the runs
    # here are the refusals (a TTL over the maximum, a store whose secret the server refuses).
    Step("token", ("token", APP, "--store", W, "--ttl", "2h", "-v"), expect=2),
    Step("token", ("token", "leak-stale", "--store", "env-file:{root}/wrong.env", "--json"), expect=4),
)


def execute(ctx: Context, step: Step) -> Run:
    if step.before is not None:
        step.before(ctx)
    args = [ctx.fill(a) for a in step.args]
    session = ctx.session
    if step.mode == "sandbox":
        run = session.sandbox_command(ctx.root / "own-sandbox")
    elif step.mode == "subprocess":
        run = session.subprocess(args, variant=step.variant)
    else:
        run = session.cli(args, stdin=ctx.fill(step.stdin), variant=step.variant, json_store=step.json_store)
    if step.after is not None and run.code == step.expect:
        step.after(ctx, run)
    return run


@pytest.fixture(scope="module")
def leak_session(rel_sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeakSession]:
    """Every step of PLAN, run once for the whole module; the tests below look at what it left."""
    root = tmp_path_factory.mktemp("leaks")
    with LeakSession(root, rel_sandbox) as session:
        ctx = Context(session, {"root": str(root), "server": rel_sandbox.url, "admin_key": rel_sandbox.admin_key_id,
                                "admin_secret": rel_sandbox.admin_secret.get_secret_value()})
        for step in PLAN:
            run = execute(ctx, step)
            assert run.command == step.command, f"{step.args} ran {run.command!r}"
            assert run.code == step.expect, \
                f"{' '.join(run.args)}: exit {run.code}\n{run.out}\n{run.err}\n{run.crashed}"
        yield session


def test_every_command_of_provision_help_is_in_the_plan() -> None:
    from orkes_provision.cli import COMMANDS

    planned = {step.command for step in PLAN}
    leaves = leaf_commands()
    assert {name.split()[0] for name in leaves} == set(COMMANDS)
    assert leaves - planned == set(), "add a leak-suite run (PLAN in this file) for the new command"
    for step in PLAN:
        if step.mode != "sandbox":
            assert command_path(list(step.args)) == step.command


def test_every_command_ran_with_json_and_verbose_and_an_error_path_where_it_has_one(leak_session: LeakSession) -> None:
    runs = leak_session.runs
    assert {r.command for r in runs} == leaf_commands()
    assert any("--json" in r.args for r in runs) and any("-vv" in r.args for r in runs)
    errors = {r.command for r in runs if r.code != 0}
    assert errors >= {"login", "app", "apps show", "keys rotate", "doctor", "plan", "run", "worker run", "drift",
                      "export"}
    assert all(r.crashed is None for r in runs), [r.crashed for r in runs if r.crashed]
    assert len(leak_session.key_secrets) >= 8, "keys were really created (and so looked for)"


def test_no_secret_in_any_output_log_record_or_exception(leak_session: LeakSession) -> None:
    found = {f"{' '.join(run.args)} -> {place}: {label}"
             for run in leak_session.runs for place, text in run.places().items()
             for label in leak_session.leaks_in(text)}
    assert found == set()


def test_a_json_store_run_prints_its_new_secret_once_and_nothing_else_secret(leak_session: LeakSession) -> None:
    (run,) = [r for r in leak_session.runs if r.json_store]
    (secret,) = run.created
    assert run.out.count(secret) == 1
    assert leak_session.leaks_in(run.out.replace(secret, "")) == []


def test_no_secret_in_any_file_but_the_credential_stores(leak_session: LeakSession) -> None:
    scanned = list(leak_session.files())
    assert len(scanned) > 20
    found = {f"{path}: {label}" for path in scanned for label in leak_session.leaks_in(path.read_bytes())}
    assert found == set()
    cassettes = {f"{path}: {label}" for path in CASSETTES.iterdir()
                 for label in leak_session.leaks_in(path.read_bytes())}
    assert cassettes == set()


def test_audit_records_carry_key_ids_never_secrets(leak_session: LeakSession) -> None:
    audit = leak_session.root / "state" / "orkes-provision" / "audit.log"
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert len(entries) >= 15
    for entry in entries:
        assert {"time", "actor", "server", "action", "target", "result"} <= set(entry)
        assert set(entry) <= {"time", "actor", "server", "action", "target", "result", "app", "keyId", "prev", "hash"}
    assert leak_session.leaks_in(audit.read_bytes()) == []


def probe(leak_session: LeakSession, name: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((leak_session.root / name).read_text())
    return report


def test_workers_get_the_secret_in_their_environment_and_on_no_command_line(leak_session: LeakSession) -> None:
    stored = {line.partition("=")[0]: line.partition("=")[2]
              for line in (leak_session.root / "w.env").read_text().splitlines() if "=" in line}
    for name, secret in (("run-probe.json", stored["CONDUCTOR_AUTH_SECRET"]), ("sentinel-probe.json", SENTINEL),
                         ("worker-probe.json", stored["CONDUCTOR_AUTH_SECRET"])):
        report = probe(leak_session, name)
        assert report["secretSha256"] == hashlib.sha256(secret.encode()).hexdigest(), f"{name}: the key reached it"
        assert report["cmdlineHits"] == [], f"{name}: a process had the secret on its command line"
        for line in (report["cmdline"], report["parentCmdline"]):
            assert leak_session.leaks_in(" ".join(line)) == []
    worker = probe(leak_session, "worker-probe.json")
    assert "worker" in worker["parentCmdline"] and "run" in worker["parentCmdline"], "the supervisor is its parent"


def test_behind_the_agent_a_worker_gets_neither_the_real_key_id_nor_the_secret(leak_session: LeakSession) -> None:
    stored = {line.partition("=")[0]: line.partition("=")[2]
              for line in (leak_session.root / "w.env").read_text().splitlines() if "=" in line}
    report = probe(leak_session, "agent-probe.json")
    assert report["secretSha256"] != hashlib.sha256(stored["CONDUCTOR_AUTH_SECRET"].encode()).hexdigest()
    assert report["keyId"] and report["keyId"] != stored["CONDUCTOR_AUTH_KEY"]
    assert report["cmdlineHits"] == []


def test_kubectl_never_gets_a_secret_on_its_command_line(leak_session: LeakSession) -> None:
    calls = [json.loads(line) for line in (leak_session.kubectl_bin / "calls.jsonl").read_text().splitlines()]
    assert any(c["argv"][:1] == ["apply"] for c in calls)
    assert [leak_session.leaks_in(" ".join(c["argv"])) for c in calls if leak_session.leaks_in(" ".join(c["argv"]))] \
        == []
    assert all(not c["leaked_env"] for c in calls), "no Conductor credential in kubectl's environment"


def test_the_detector_finds_a_planted_secret_in_every_form_and_place(leak_session: LeakSession) -> None:
    created = sorted(leak_session.key_secrets)[0]
    for text in (f"log line {created} end", base64.b64encode(created.encode()).decode(), f"x{SENTINEL}x"):
        assert leak_session.leaks_in(text), "a planted secret is found"
    planted = leak_session.root / "state" / "planted.txt"
    planted.write_text(f"oops {created}\n")
    try:
        assert planted in list(leak_session.files())
        assert leak_session.leaks_in(planted.read_bytes())
    finally:
        planted.unlink()
    assert leak_session.leaks_in("nothing secret here, key ids only: " + leak_session.sandbox.admin_key_id) == []
