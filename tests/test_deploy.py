"""Deployment files: cluster.yaml passes Ray's own validator; the KubeRay RayJob is well formed;
no credentials anywhere in the repository."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from deepnets.sweep_plan import plan_sweep

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_passes_rays_validator(cluster):
    from ray.autoscaler._private.util import prepare_config, validate_config

    # As `ray up` does: merge with Ray's AWS defaults, then check against Ray's JSON schema
    # (raises on any unknown or malformed field).
    prepared = prepare_config(cluster)
    validate_config(prepared)
    assert prepared["provider"]["type"] == "aws"
    broken = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    broken["available_node_types"]["head"]["min_wrokers"] = 1  # a typo the validator must catch
    with pytest.raises(Exception, match="min_wrokers"):
        validate_config(prepare_config(broken))


def test_cluster_has_a_cpu_head_and_autoscaling_gpu_workers(cluster):
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert head["resources"] == {"CPU": 0}  # training never lands on the head
    (gpu_name,) = [name for name in types if name != cluster["head_node_type"]]
    gpu = types[gpu_name]
    assert gpu["min_workers"] == 0 < gpu["max_workers"] <= cluster["max_workers"]
    assert gpu["node_config"]["InstanceType"].startswith(("g", "p"))  # AWS GPU families


def test_cluster_installs_this_project_with_token_auth_and_a_loopback_dashboard(cluster):
    assert cluster["file_mounts"]["~/deepnets"] == "."
    assert any("pip install" in c and "-e ~/deepnets" in c for c in cluster["setup_commands"])
    head_start = " ".join(cluster["head_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in head_start and "--dashboard-host=127.0.0.1" in head_start
    assert all("RAY_AUTH_MODE=token" in c for c in cluster["worker_start_ray_commands"][1:])
    assert "s3://" in (ROOT / "cluster.yaml").read_text()  # results on S3, as documented


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return yaml.safe_load((ROOT / "deploy/kuberay/rayjob.yaml").read_text())


def test_rayjob_structure(rayjob):
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    spec = rayjob["spec"]["rayClusterSpec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (group,) = spec["workerGroupSpecs"]
    assert group["minReplicas"] == 0 < group["maxReplicas"]
    containers = [spec["headGroupSpec"]["template"]["spec"]["containers"][0]]
    containers += [group["template"]["spec"]["containers"][0]]
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    for container in containers:
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]  # from a Secret, not inline


def test_rayjob_entrypoint_is_a_valid_sweep(rayjob, tmp_path):
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert argv[:2] == ["python", "jobs/sweep.py"]
    args = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert args["--storage"].startswith("s3://")
    plan = plan_sweep(ROOT / args["--space"], fidelity=args["--fidelity"], storage=str(tmp_path),
                      name=None)  # fmt: skip
    assert plan.resources.gpus_per_worker > 0


def test_dockerfile_copies_what_exists():
    lines = (ROOT / "deploy/kuberay/Dockerfile").read_text().splitlines()
    for line in lines:
        if line.startswith("COPY"):
            for source in line.split()[2:-1]:
                assert (ROOT / source).exists(), source


SECRET_PATTERNS = [
    r"AKIA[0-9A-Z]{16}",  # AWS access key id
    r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+]{40}",
    r"-----BEGIN (RSA |EC |OPENSSH )?PRIVATE KEY-----",
    r"(?i)auth_token\s*[=:]\s*['\"]?[0-9a-f]{32,}",
]


def test_no_credentials_in_the_repository():
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    found = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".png", ".pt", ".jpg"}:
            continue
        text = path.read_text(errors="ignore")
        found += [f"{name}: {p}" for p in SECRET_PATTERNS if re.search(p, text)]
    assert not found
