"""Help: every command and subcommand has an example, summaries are whole, only the options that do
something there are shown, --store lists every kind, every duration takes units, every destructive
command has --yes, and a mistyped command gets "did you mean". Table-driven over ``tree.walk()``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orkes_provision.cli.common import Duration
from tests.conventions.runner import run_cli
from tests.conventions.tree import Node, commands, leaves, walk

SERVER_OPTIONS = {"--server", "--profile", "--insecure-http"}
ALL_GLOBALS = SERVER_OPTIONS | {"--json", "-v"}
# Commands that talk to no server show no server options; -v only where something is logged;
# --json only where there is a result (schema always prints JSON, completion a script).
GLOBALS: dict[str, set[str]] = {
    "sandbox": {"--json"},
    "sandbox status": {"--json"},
    "sandbox stop": {"--json"},
    "init": {"--json"},
    "audit": {"--json"},
    "audit verify": {"--json"},
    "worker list": {"--json"},
    "lint": {"--json"},
    "schema": set(),
    "completion": set(),
}
# Commands whose --store may name a store to write the new key to; 'json' prints it once.
STORE_WRITERS = {"app", "keys create", "keys rotate"}
STORE_KINDS = ("keyring", "env-file:PATH", "k8s-secret:NAMESPACE/NAME")
# Commands that can cut a worker off: they ask on a terminal and need --yes without one.
DESTRUCTIVE = {"apps delete", "keys delete", "keys deactivate", "revoke", "apply"}
# Commands whose name sounds destructive but that cut no worker off, and why.
NOT_DESTRUCTIVE = {
    "keys prune": "deletes only keys INACTIVE for longer than --grace: no worker can use them",
    "keys rotate": "the new key is delivered and verified before the old one is retired (cron-safe)",
}
DESTRUCTIVE_WORDS = ("delete", "remove", "revoke", "deactivate", "destroy", "prune", "rotate", "purge")
# Options about time must take a duration (units); these say their unit or take more than a duration.
TIME_WORDS = ("wait", "timeout", "grace", "ttl", "interval", "delay", "period", "since", "age", "latency")
NOT_DURATIONS = {
    "--latency-ms": "milliseconds as a whole number, the unit in its name",
    "--since": "a duration (parsed by orkes_provision/durations.py) or an ISO time",
}

ALL = commands()
IDS = [n.path for n in ALL]
LEAVES = leaves()
LEAF_IDS = [n.path for n in LEAVES]


def test_the_walk_sees_every_command_and_subcommand() -> None:
    paths = {n.path for n in ALL}
    assert {"app", "keys", "keys rotate", "worker list", "deploy kubernetes", "completion"} <= paths
    assert len(paths) >= 25


@pytest.mark.parametrize("node", ALL, ids=IDS)
def test_every_command_and_subcommand_has_an_example_of_itself(node: Node) -> None:
    text = node.help_text()
    assert re.search(r"^\s*Examples?:", text, flags=re.MULTILINE), f"'provision {node.path} --help' has no example"
    block = text.split("Example", 1)[1].split("Options:", 1)[0]
    assert f"provision {node.path}" in block, f"the example of 'provision {node.path}' does not run it"


@pytest.mark.parametrize("node", [n for n in walk() if n.is_group], ids=lambda n: n.path or "provision")
def test_no_summary_in_a_command_list_is_cut_short(node: Node) -> None:
    listing = node.help_text().split("Commands:", 1)[1]
    assert "..." not in listing, listing


@pytest.mark.parametrize("node", ALL, ids=IDS)
def test_global_options_appear_only_where_they_do_something(node: Node) -> None:
    shown = node.option_names() & ALL_GLOBALS
    assert shown == GLOBALS.get(node.path, ALL_GLOBALS), f"provision {node.path}"


@pytest.mark.parametrize("node", LEAVES, ids=LEAF_IDS)
def test_every_store_option_lists_every_kind_of_store(node: Node) -> None:
    for option in node.options():
        if "--store" not in option.opts:
            continue
        text = option.help or ""
        for kind in STORE_KINDS:
            assert kind in text, f"provision {node.path} --store: help lacks {kind}: {text}"
        assert ("json" in text.replace("k8s", "")) == (node.path in STORE_WRITERS), text


@pytest.mark.parametrize("node", LEAVES, ids=LEAF_IDS)
def test_every_duration_option_takes_units(node: Node) -> None:
    for option in node.options():
        name = option.opts[-1]
        assert option.metavar != "SECONDS", f"provision {node.path} {name}: a duration with units, not SECONDS"
        if isinstance(option.type, Duration):
            assert option.metavar == "DURATION", name
            assert option.type.convert("5s", option, None).total_seconds() == 5
            assert option.type.convert("1m30s", option, None).total_seconds() == 90
            if option.default is not None:
                option.type.convert(option.default, option, None)
        elif not option.is_flag and set(name.lstrip("-").split("-")) & set(TIME_WORDS):
            assert name in NOT_DURATIONS, f"provision {node.path} {name} is about time but takes no units"


@pytest.mark.parametrize("node", LEAVES, ids=LEAF_IDS)
def test_every_destructive_command_has_yes(node: Node) -> None:
    sounds_destructive = any(word in node.path.split()[-1] for word in DESTRUCTIVE_WORDS)
    if node.path in DESTRUCTIVE:
        assert "--yes" in node.option_names(), f"provision {node.path} needs --yes"
        assert "(needed when stdin is not a terminal)" in (next(o for o in node.options()
                                                                if "--yes" in o.opts).help or "")
    else:
        assert not sounds_destructive or node.path in NOT_DESTRUCTIVE, \
            f"provision {node.path}: add it to DESTRUCTIVE (confirm + --yes) or say why it is not"


@pytest.mark.parametrize("node", ALL, ids=IDS)
def test_a_mistyped_command_gets_did_you_mean(node: Node, tmp_path: Path) -> None:
    name = node.argv[-1]
    typo = name[:-1] + ("x" if name[-1] != "x" else "z")
    result = run_cli([*node.argv[:-1], typo], env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, cwd=tmp_path)
    assert result.code == 2, result
    assert result.err.splitlines()[0] == f"error: no such command '{typo}'", result
    assert f"did you mean '{name}'" in result.err.splitlines()[1] or f"'{name}'" in result.err, result
    assert result.out == ""
