"""The real-cluster fixture's rules: skipped where the control plane is missing, failed where CI requires
it, and ``scripts/build-kube --check`` tells a stale or missing build apart without building."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.kube.cluster import BUILD, REQUIRED_VARIABLE, unavailable


def test_a_missing_cluster_skips_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRED_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Kubernetes API server: etcd is not installed"):
        unavailable("etcd is not installed")


def test_a_missing_cluster_fails_when_ci_requires_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRED_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match=f"etcd is not installed \\({REQUIRED_VARIABLE}=1\\)"):
        unavailable("etcd is not installed")


def test_build_check_refuses_a_cache_built_for_another_go_mod(tmp_path: Path) -> None:
    release = next(line.split()[2] for line in (BUILD.parents[1] / "tests/kube/module/go.mod").read_text().splitlines()
                   if line.startswith("require k8s.io/kubernetes "))
    bin_dir = tmp_path / release / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    (bin_dir / ".stamp").write_text("built-for-another-go-mod\n")
    env = {"PATH": "/usr/bin:/bin", "ORKES_PROVISION_KUBE_CACHE": str(tmp_path)}
    stale = subprocess.run([str(BUILD), "--check"], capture_output=True, text=True, env=env, timeout=30, check=False)
    assert stale.returncode == 1
    assert f"{bin_dir} is not built for this go.mod; run scripts/build-kube" in stale.stderr
    assert not stale.stdout
