"""Each scaffold checked with what this machine has, offline (the SDKs cannot be downloaded here).

- python: main.py (the worker) and start.py (starts the workflow) compiled, and their imports
  resolve against conductor-python 2.0.0 (the real runs against the sandbox are in
  test_launch_sandbox.py);
- java: compiled by javac against stub declarations of the SDK classes it uses (java_stubs/),
  and its pom.xml validated by Maven offline;
- javascript: ``node --check`` (syntax, as an ES module) and package.json parsed;
- go: structure (the SDK dependency, the calls that read the credentials from the environment,
  balanced brackets), and where a Go toolchain exists, gofmt and a build against stub
  declarations of the SDK API it uses (go_stubs/);
- csharp: structure only (no .NET toolchain): the files, the SDK dependency, the host that reads
  the credentials from the environment, balanced brackets.
"""

from __future__ import annotations

import json
import os
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
from tests.workers.launch_helpers import HERE

JAVA_STUBS = HERE / "java_stubs"
GO_STUBS = HERE / "go_stubs"
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
    # The command's program file, where it names one, is part of the template.
    for arg in worker.command[1:]:
        if "." in arg and "/" not in arg and arg not in (".",) and not arg.startswith(("-", "exec:")):
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


@pytest.mark.skipif(shutil.which("javac") is None, reason="no javac here")
def test_java_template_compiles_against_the_sdk_signatures_it_uses(tmp_path: Path) -> None:
    directory = render(tmp_path, "java")
    main = directory / "src/main/java/greetings/Main.java"
    result = subprocess.run(["javac", "-d", str(tmp_path / "classes"), "-sourcepath", str(JAVA_STUBS), str(main)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "classes/greetings/Main.class").is_file()
    assert (tmp_path / "classes/greetings/Main$Greetings.class").is_file()


def test_java_pom_declares_the_sdk_and_the_main_class(tmp_path: Path) -> None:
    directory = render(tmp_path, "java")
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(directory / "pom.xml").getroot()
    artifacts = {(d.findtext("m:groupId", namespaces=ns), d.findtext("m:artifactId", namespaces=ns))
                 for d in pom.iterfind("m:dependencies/m:dependency", ns)}
    assert ("org.conductoross", "conductor-client") in artifacts
    assert pom.findtext("m:properties/m:exec.mainClass", namespaces=ns) == "greetings.Main"


@pytest.mark.skipif(shutil.which("mvn") is None, reason="no maven here")
def test_java_pom_is_a_valid_maven_project_offline(tmp_path: Path) -> None:
    directory = render(tmp_path, "java")
    result = subprocess.run(["mvn", "-o", "-q", "-B", "validate"], cwd=directory, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr


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
    assert 'StartWorker("greetings", greetings' in source
    assert "func greetings(task *model.Task) (interface{}, error)" in source
    assert balanced(source)
    module = (directory / "go.mod").read_text()
    assert re.search(r"^require github\.com/conductor-sdk/conductor-go v\d+\.\d+\.\d+$", module, flags=re.M)
    imports = re.findall(r'"(github\.com/conductor-sdk/conductor-go/[^"]+)"', source)
    assert sorted(imports) == ["github.com/conductor-sdk/conductor-go/sdk/client",
                               "github.com/conductor-sdk/conductor-go/sdk/model",
                               "github.com/conductor-sdk/conductor-go/sdk/worker"]


@pytest.mark.skipif(shutil.which("gofmt") is None, reason="no Go toolchain here")
def test_go_template_is_gofmt_clean(tmp_path: Path) -> None:
    directory = render(tmp_path, "go")
    result = subprocess.run(["gofmt", "-l", str(directory / "main.go")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain here")
def test_go_template_builds_against_the_sdk_signatures_it_uses(tmp_path: Path) -> None:
    directory = render(tmp_path, "go")
    with (directory / "go.mod").open("a") as handle:
        handle.write(f"\nreplace github.com/conductor-sdk/conductor-go => {GO_STUBS}\n")
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod", "GOPATH": str(tmp_path / "gopath"),
           "GOCACHE": str(tmp_path / "gocache"), "GOTOOLCHAIN": "local"}
    result = subprocess.run(["go", "vet", "."], cwd=directory, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    result = subprocess.run(["go", "build", "-o", str(tmp_path / "greetings"), "."], cwd=directory, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr


def test_csharp_template_structure(tmp_path: Path) -> None:
    directory = render(tmp_path, "csharp")
    project = ET.parse(directory / "Greetings.csproj").getroot()
    references = {r.get("Include"): r.get("Version") for r in project.iter("PackageReference")}
    assert "conductor-csharp" in references
    assert project.findtext("PropertyGroup/OutputType") == "Exe"
    source = (directory / "Program.cs").read_text()
    assert 'taskType: "greetings"' in source
    assert "WorkflowTaskHost.CreateWorkerHost(" in source  # configuration from CONDUCTOR_* in the environment
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
