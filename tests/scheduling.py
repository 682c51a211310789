"""How ``make test`` spreads the suite over its pytest-xdist workers (``--dist loadfile --no-loadscope-reorder``).

Every file stays on one worker, its tests in order (some files build on what their earlier tests
made, and module and package fixtures such as the convention runs are made once per worker that
needs them). Files in ``SPREAD`` are the exception: their tests share nothing with one another and
together take long, so each goes to whichever worker is free.

Files go out in collection order except that the ones in ``FIRST`` go first, longest first: a file
of one long test handed out last is the tail of the whole run. The figures are the files' total
seconds in a ``make test`` on a 2-core machine (the junit report's times); only the order matters.
"""

from __future__ import annotations

from typing import Any

import pytest

FIRST: dict[str, float] = {
    "tests/test_hints.py": 109,
    "tests/reliability/test_fault_matrix.py": 66,
    "tests/access/app/test_app_kill.py": 40,
    "tests/rotation/test_rotation_recipes.py": 28,
    "tests/agent/test_agent_rotation.py": 28,
    "tests/rotation/test_rotate_canary.py": 26,
    "tests/workers/test_launch_sandbox.py": 26,
    "tests/rotation/test_rotate_fleet.py": 25,
    "tests/kube/test_real_cluster.py": 22,
    "tests/workers/runtimes/test_java_e2e.py": 19,
}

SPREAD: frozenset[str] = frozenset({"tests/test_hints.py", "tests/reliability/test_fault_matrix.py"})


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A stable sort: the order of the tests within a file, and of the files not listed, stays.
    items.sort(key=lambda item: -FIRST.get(_file(item.nodeid), 0.0))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FilesButSpread(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = _file(nodeid)
            return nodeid if path in SPREAD else path

    return FilesButSpread(config, log)
