"""Each scaffold checked offline, in seconds: what a template must hold for its build and its run.

The real builds and runs (Python, Java, Go, JavaScript against the sandbox, with a key rotation)
are in ``runtimes/``; C#, which cannot be built here, is held to its SDK by the runtime contract
(``test_runtime_contract.py``). Here:

- python: main.py (the worker) and start.py (starts the workflow) compiled, and their imports
  resolve against conductor-python 2.0.0;
- java: the pom pins every plugin it runs (Maven 3.8's default compiler plugin predates
  ``release``) and an slf4j binding of the SDK's slf4j-api line;
- javascript: ``node --check`` (syntax, as an ES module), the SDK pinned by package-lock.json;
- go: structure, go.sum present, gofmt clean;
- csharp: structure only (no .NET toolchain): the files, the SDK dependency, the host that reads
  the credentials from the environment, balanced brackets.
"""

from __future__ import annotations

import json
import py_compile
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orkes_provision.workers.project import load_project
from orkes_provision.workers.scaffold import LANGUAGES, scaffold

CREDENTIAL = re.compile(r"(keyId|key_id|keySecret|key_secret|AUTH_SECRET|AUTH_KEY)\s*[:=]\s*[\"'][^\"']{8,}")


def render(tmp_path: Path, language: str) -> Path:
    return scaffold(language, tmp_path / language, app="greetings-worker").directory


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_project_file_of_every_template_is_valid_and_wired_to_the_greetings_worker(tmp_path: Path,
                                                                                       language: str) -> None:
    directory = render(tmp_path, language)
    project = load_project(directory / "orkes-provision.toml")
    assert project is not None
    assert project.app_name == "greetings-worker"
    assert project.application is not None
    assert project.application.grants == ["greetings"]
    worker = project.worker("greetings")
    assert worker.runtime == language
    assert project.worker_tasks(worker) == ["greetings"]
    # The command's program file, where it names a source file, is part of the template.
    for arg in worker.command[1:]:
        if arg.endswith((".py", ".js")):
            assert (directory / arg).is_file(), arg


@pytest.mark.parametrize(("program", "sdk_imports"), [("main.py", 3), ("start.py", 6)])
def test_python_template_compiles_and_its_sdk_imports_resolve(tmp_path: Path, program: str,
                                                               sdk_imports: int) -> None:
    directory = render(tmp_path, "python")
    py_compile.compile(str(directory / program), doraise=True)
    source = (directory / program).read_text()
    imports = re.findall(r"^from (conductor\.[\w.]+) import (\w+)$", source, flags=re.M)
    assert len(imports) == sdk_imports
    check = "; ".join(f"from {module} import {name}" for module, name in imports)
    subprocess.run([sys.executable, "-c", check], check=True, timeout=60)
    assert (directory / "requirements.txt").read_text().strip() == "conductor-python==2.0.0"
    assert {"main.py": 'task_definition_name="greetings"', "start.py": 'WORKFLOW = "greetings"'}[program] in source


def test_java_pom_declares_the_sdk_and_the_main_class(tmp_path: Path) -> None:
    directory = render(tmp_path, "java")
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(directory / "pom.xml").getroot()
    artifacts = {(d.findtext("m:groupId", namespaces=ns), d.findtext("m:artifactId", namespaces=ns))
                 for d in pom.iterfind("m:dependencies/m:dependency", ns)}
    versions = {d.findtext("m:artifactId", namespaces=ns): d.findtext("m:version", namespaces=ns)
                for d in pom.iterfind("m:dependencies/m:dependency", ns)}
    assert ("org.conductoross", "conductor-client") in artifacts
    # conductor-client 6.0.0 depends on slf4j-api 1.7.36: a 2.x binding would find no provider and log nothing.
    assert versions["slf4j-simple"] == "1.7.36"
    plugins = {p.findtext("m:artifactId", namespaces=ns): p for p in pom.iterfind("m:build/m:plugins/m:plugin", ns)}
    for name in ("maven-compiler-plugin", "maven-resources-plugin", "maven-surefire-plugin", "maven-jar-plugin",
                 "maven-dependency-plugin"):
        assert plugins[name].findtext("m:version", namespaces=ns), f"{name} is not pinned"
    assert plugins["maven-compiler-plugin"].findtext("m:configuration/m:release", namespaces=ns)
    command = load_project(directory / "orkes-provision.toml").worker("greetings").command  # type: ignore[union-attr]
    assert command[-1] == "greetings.Main"
    assert "package com.netflix" not in (directory / "src/main/java/greetings/Main.java").read_text()


@pytest.mark.skipif(shutil.which("node") is None, reason="no node here")
def test_javascript_template_is_valid_module_syntax(tmp_path: Path) -> None:
    directory = render(tmp_path, "javascript")
    package = json.loads((directory / "package.json").read_text())
    assert package["type"] == "module"
    assert "@io-orkes/conductor-javascript" in package["dependencies"]
    result = subprocess.run(["node", "--check", str(directory / "worker.js")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    source = (directory / "worker.js").read_text()
    assert 'taskDefName: "greetings"' in source
    assert "OrkesClients.from()" in source  # reads CONDUCTOR_* from the environment
    assert "process.env.ORKES_PROVISION_WORKER_ID" in source  # polls under the supervisor's worker id
    lock = json.loads((directory / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@io-orkes/conductor-javascript"]["version"] == \
        package["dependencies"]["@io-orkes/conductor-javascript"]
    # A plain 'npm install' of the SDK fails on its conflicting optional peers without this.
    assert "legacy-peer-deps=true" in (directory / ".npmrc").read_text().splitlines()


def balanced(source: str) -> bool:
    # Strip string and rune literals and comments, then check (), [] and {} nest properly.
    stripped = re.sub(r'"(\\.|[^"\\])*"|`[^`]*`|\'(\\.|[^\'\\])*\'|//[^\n]*|/\*.*?\*/', "", source, flags=re.S)
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for ch in stripped:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


def test_go_template_structure(tmp_path: Path) -> None:
    directory = render(tmp_path, "go")
    source = (directory / "main.go").read_text()
    assert source.count("package main") == 1
    assert "client.NewAPIClientFromEnv()" in source
    assert 'os.Getenv("ORKES_PROVISION_WORKER_ID")' in source  # polls under the supervisor's worker id
    assert "Workerid: optional.NewString(id)" in source
    assert balanced(source)
    module = (directory / "go.mod").read_text()
    assert re.search(r"^\s*github\.com/conductor-sdk/conductor-go v\d+\.\d+\.\d+$", module, flags=re.M)
    version = re.search(r"conductor-go (v[\d.]+)", module)
    assert version is not None
    # go.sum ships with the template: 'go build' needs no 'go mod tidy' and fetches exactly what it pins.
    assert f"github.com/conductor-sdk/conductor-go {version.group(1)} h1:" in (directory / "go.sum").read_text()


@pytest.mark.skipif(shutil.which("gofmt") is None, reason="no Go toolchain here")
def test_go_template_is_gofmt_clean(tmp_path: Path) -> None:
    directory = render(tmp_path, "go")
    result = subprocess.run(["gofmt", "-l", str(directory / "main.go")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""




def test_csharp_template_structure(tmp_path: Path) -> None:
    directory = render(tmp_path, "csharp")
    project = ET.parse(directory / "Greetings.csproj").getroot()
    references = {r.get("Include"): r.get("Version") for r in project.iter("PackageReference")}
    assert "conductor-csharp" in references
    assert project.findtext("PropertyGroup/OutputType") == "Exe"
    source = (directory / "Program.cs").read_text()
    assert 'TaskType => "greetings"' in source
    assert 'GetEnvironmentVariable("ORKES_PROVISION_WORKER_ID")' in source  # polls under the supervisor's worker id
    assert "WorkflowTaskHost.CreateWorkerHost(LogLevel.Information, new GreetingsWorker())" in source  # CONDUCTOR_*
    assert "static void Main(" in source
    assert balanced(source)


def test_templates_carry_no_credentials(tmp_path: Path) -> None:
    for language in LANGUAGES:
        directory = render(tmp_path, language)
        for path in directory.rglob("*"):
            if path.is_file():
                text = path.read_text()
                assert "_CHANGE_ME_" not in text
                assert not CREDENTIAL.search(text), path
        tomllib.loads((directory / "orkes-provision.toml").read_text())
