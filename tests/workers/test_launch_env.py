"""The pure parts of launching: the worker environment, the preflight verdict, the scaffolds."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from orkes_provision.access.doctor import DoctorReport
from orkes_provision.errors import UsageError, VerificationFailed
from orkes_provision.workers.launch import (
    CommandNotFound,
    check_preflight,
    describe_environment,
    require_program,
    worker_environment,
)
from orkes_provision.workers.scaffold import LANGUAGES, scaffold, template_files
from tests.workers.launch_helpers import FakeKey


def key(server: str = "https://example.orkesconductor.io", key_id: str = " kid-1\n",
        secret: str = "s3cret\n") -> FakeKey:
    return FakeKey(server, "app", key_id, SecretStr(secret))


@pytest.mark.parametrize("server", ["https://example.orkesconductor.io", "https://example.orkesconductor.io/",
                                    "https://example.orkesconductor.io/api", "https://example.orkesconductor.io/api/"])
def test_the_server_url_always_ends_in_api(server: str) -> None:
    env = worker_environment({}, key(server), "python")
    assert env["CONDUCTOR_SERVER_URL"] == "https://example.orkesconductor.io/api"


def test_key_and_secret_are_stripped_and_win_over_the_callers_own_credentials() -> None:
    base = {"CONDUCTOR_AUTH_KEY": "admin", "CONDUCTOR_AUTH_SECRET": "admin-secret", "PATH": "/usr/bin",
            "CONDUCTOR_SERVER_URL": "https://other/api", "CONDUCTOR_AUTH_TOKEN": "stale-token",
            "CONDUCTOR_SERVER_AUTH_SECRET": "java-fallback", "KEEP": "me"}
    env = worker_environment(base, key(), "java", {"EXTRA": "1", "CONDUCTOR_AUTH_KEY": "from-project"})
    assert env["CONDUCTOR_AUTH_KEY"] == "kid-1"
    assert env["CONDUCTOR_AUTH_SECRET"] == "s3cret"
    assert env["CONDUCTOR_SERVER_URL"] == "https://example.orkesconductor.io/api"
    assert "CONDUCTOR_AUTH_TOKEN" not in env
    assert "CONDUCTOR_SERVER_AUTH_SECRET" not in env
    assert env["KEEP"] == "me"
    assert env["EXTRA"] == "1"
    assert "admin-secret" not in env.values()


@pytest.mark.parametrize("runtime", [*LANGUAGES, None])
def test_every_runtime_gets_exactly_the_three_credential_variables(runtime: str | None) -> None:
    env = worker_environment({"HOME": "/root"}, key(), runtime)
    assert set(env) == {"HOME", "CONDUCTOR_SERVER_URL", "CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET"}


def test_describing_the_environment_masks_the_secret() -> None:
    lines = describe_environment(worker_environment({}, key()))
    assert "CONDUCTOR_AUTH_SECRET=********" in lines
    assert all("s3cret" not in line for line in lines)


def test_a_passing_doctor_report_lets_the_worker_start() -> None:
    report = DoctorReport(app="a")
    report.add("key", True, "key ok")
    check_preflight(report, "a")


def test_a_failing_doctor_report_refuses_with_the_first_fix_and_the_escape_hatch() -> None:
    report = DoctorReport(app="a")
    report.add("role", True, "a has WORKER")
    report.add("execute", False, "a lacks EXECUTE on task greetings", "provision grant a greetings")
    report.add("task", False, "task definition missing: other", "provision app a --grant other --register-tasks")
    with pytest.raises(VerificationFailed) as caught:
        check_preflight(report, "a")
    assert caught.value.message == "preflight: a lacks EXECUTE on task greetings (and 1 more problem)"
    # The command comes last, as printed by every hint, so that it can be copied as it is.
    assert caught.value.hint == ("fix it (or pass --no-preflight to start the worker anyway): "
                                 "provision grant a greetings")
    assert caught.value.exit_code == 11


def test_a_program_is_looked_up_on_the_workers_path(tmp_path: Path) -> None:
    program = tmp_path / "my-worker"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert require_program(["my-worker"], {"PATH": str(tmp_path)}) == str(program)
    with pytest.raises(CommandNotFound):
        require_program(["my-worker"], {"PATH": "/nonexistent"})


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_template_has_a_worker_a_project_file_a_readme_and_a_gitignore(tmp_path: Path, language: str) -> None:
    result = scaffold(language, tmp_path / "p", app="my-app")
    names = {str(p.relative_to(tmp_path / "p")) for p in result.files}
    assert {"orkes-provision.toml", "README.md", ".gitignore"} <= names
    assert not any(name.endswith(".tmpl") or "dot-" in name for name in names)
    for path in result.files:
        assert "{{app}}" not in path.read_text()
    gitignore = (tmp_path / "p" / ".gitignore").read_text().splitlines()
    assert "*.env" in gitignore
    assert ".env" in gitignore
    readme = (tmp_path / "p" / "README.md").read_text()
    assert "provision app --worker --grant greetings" in readme
    assert "provision worker run greetings" in readme
    assert "my-app" in readme
    assert [f for f, _ in template_files(language)]


def test_scaffold_refuses_a_non_empty_directory_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UsageError) as caught:
        scaffold("python", tmp_path)
    assert "--force" in caught.value.hint
    scaffold("python", tmp_path, force=True)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert (tmp_path / "main.py").exists()


def test_scaffold_refuses_an_app_name_that_would_break_the_toml(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        scaffold("python", tmp_path / "p", app='bad"name')
