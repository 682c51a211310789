"""Shared test configuration.

Tests marked ``secret_service`` need a real Secret Service: they run under
``scripts/with-keyring`` (which ``make test`` uses), skip without it, and fail instead of
skipping when ``REQUIRE_SECRET_SERVICE=1`` (as in CI).

Every test gets its own XDG directories, so none reads or writes the user's config, state
(audit log, deliveries, locks) or data.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["tests.sandbox_fixtures", "tests.hostile", "tests.second_user", "tests.scheduling"]

HAVE_SECRET_SERVICE = os.environ.get("ORKES_PROVISION_SECRET_SERVICE") == "1"
REQUIRE_SECRET_SERVICE = os.environ.get("REQUIRE_SECRET_SERVICE") == "1"


def pytest_configure(config: pytest.Config) -> None:
    # keyring picks its default backend once per process, from the environment of its first use: make
    # that this session's environment, not the cleared one of whichever test happens to come first.
    import keyring

    keyring.get_keyring()
    # The Ctrl-C tests send SIGINT as a terminal would. A suite started in the background of a shell
    # (`make test &`) has SIGINT ignored, and every process it starts would inherit that and ignore them.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_SECRET_SERVICE or REQUIRE_SECRET_SERVICE:
        return
    skip = pytest.mark.skip(reason="no Secret Service here; run via 'make test' (scripts/with-keyring)")
    for item in items:
        if "secret_service" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _secret_service_required(request: pytest.FixtureRequest) -> None:
    if "secret_service" in request.keywords and not HAVE_SECRET_SERVICE:
        pytest.fail("REQUIRE_SECRET_SERVICE=1 but no Secret Service session: run under scripts/with-keyring")


@pytest.fixture(autouse=True)
def _isolated_xdg(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Private config and state dirs per test; the keyring's data dir is left alone (it is private already)."""
    root = tmp_path_factory.mktemp("xdg")
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        (root / name).mkdir()
        monkeypatch.setenv(name, str(root / name))
    monkeypatch.delenv("ORKES_PROVISION_STATE_DIR", raising=False)
    for name in ("CONDUCTOR_SERVER_URL", "CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return root


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests import hint_log, kill_cells

    if kill_cells.CELLS:
        terminalreporter.write_sep("=", "kill tests: SIGKILL at each point, then one rerun (tests/kill_cells.py)")
        terminalreporter.write_line(kill_cells.render(kill_cells.CELLS))
    if hint_log.RUN:
        terminalreporter.write_sep("=", "hint test: every printed command, run verbatim in a fresh shell")
        terminalreporter.write_line(hint_log.render())


# The tables printed at the end of the run are filled in by the tests of each process; under
# pytest-xdist each worker hands its rows to the controller, which prints them as one run would.
_TABLES = {"tests.kill_cells": ("CELLS", "KillCell"), "tests.hint_log": ("RUN", "HintRun"),
           "tests.reliability.matrix": ("RESULTS", "Cell")}
_COUNTERS = {"tests.reliability.tally": "COUNTS"}


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is None:
        return
    rows: dict[str, Any] = {}
    for module, (name, _) in _TABLES.items():
        rows[module] = [dataclasses.asdict(row) for row in getattr(importlib.import_module(module), name)]
    for module, name in _COUNTERS.items():
        rows[module] = dict(getattr(importlib.import_module(module), name))
    output["summary_rows"] = json.dumps(rows)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    rows = json.loads(getattr(node, "workeroutput", {}).get("summary_rows", "{}"))
    for module, (name, cls) in _TABLES.items():
        loaded = importlib.import_module(module)
        getattr(loaded, name).extend(getattr(loaded, cls)(**row) for row in rows.get(module, []))
    for module, name in _COUNTERS.items():
        getattr(importlib.import_module(module), name).update(rows.get(module, {}))
