"""Dependency caches for the runtime tests, so that a warm run downloads nothing.

One directory per language and per content of the template's dependency files
(``~/.cache/orkes-provision/runtimes/LANG-HASH``): a changed ``pom.xml``, ``go.sum`` or
``package-lock.json`` gets a directory of its own, seeded from the newest one of the same
language so that only what changed is fetched. The build steps run exactly as ``provision init``
prints them; the caches reach them through the environment each tool reads (Maven's
``maven.repo.local`` by ``MAVEN_OPTS``, ``GOMODCACHE``/``GOCACHE``, npm's ``npm_config_cache``,
Python is not built here: the test's own environment has conductor-python at the version
``requirements.txt`` pins (a fresh virtual environment costs 30 s or more on this machine).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The files that decide what each language's build downloads.
DEPENDENCY_FILES: dict[str, tuple[str, ...]] = {
    "java": ("pom.xml",),
    "go": ("go.mod", "go.sum"),
    "javascript": ("package.json", "package-lock.json", ".npmrc"),
}


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orkes-provision" / "runtimes"


def dependency_hash(language: str, project: Path) -> str:
    digest = hashlib.sha256()
    for name in DEPENDENCY_FILES[language]:
        path = project / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"")
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def language_cache(language: str, project: Path) -> Iterator[Path]:
    """The cache directory for ``project``'s dependency files, held (locked) while in use."""
    root = cache_root()
    directory = root / f"{language}-{dependency_hash(language, project)}"
    with _locked(root / f".{language}.lock"):
        if not directory.is_dir():
            # Never seed from a staging copy an interrupted run left behind.
            older = sorted((p for p in root.glob(f"{language}-*") if p.is_dir() and not p.name.endswith(".new")),
                           key=lambda p: p.stat().st_mtime)
            staging = directory.with_name(directory.name + ".new")
            shutil.rmtree(staging, ignore_errors=True)
            if older:
                subprocess.run(["cp", "-a", str(older[-1]), str(staging)], check=True, timeout=600)
            else:
                staging.mkdir(parents=True)
            staging.rename(directory)
        os.utime(directory)
        yield directory


def build_environment(language: str, cache: Path, project: Path) -> dict[str, str]:
    """What the build and the worker need besides the caller's environment, for ``language``."""
    if language == "java":
        return {"MAVEN_OPTS": f"-Dmaven.repo.local={cache / 'm2'}"}
    if language == "go":
        return {"GOMODCACHE": str(cache / "gomod"), "GOCACHE": str(cache / "gobuild"), "GOFLAGS": "-modcacherw",
                "GOTOOLCHAIN": "local"}
    if language == "javascript":
        return {"npm_config_cache": str(cache / "npm"), "npm_config_prefer_offline": "true",
                "npm_config_audit": "false", "npm_config_fund": "false", "npm_config_update_notifier": "false"}
    raise ValueError(language)
