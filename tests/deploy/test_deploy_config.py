"""The deployment files (deploy/**.yaml, the Dockerfile) name only settings the app knows
and probe only routes it serves.

A misspelt `METAMEDIA_*` variable is silently ignored by the settings loader and a
wrong probe path keeps every pod unready, so neither may reach a deployment: the
checker reads every YAML file under deploy/, collects the variables each sets and
the HTTP paths each probes on an API container, and compares them with
`Settings` and the routes of the app that `create_app` builds. It is shown to
catch both mistakes on a deliberately wrong snippet.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.routing import Match

from metamedia.api.app import create_app
from metamedia.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
VARIABLE = re.compile(r"^METAMEDIA_[A-Z0-9_]+$")
ASSIGNMENT = re.compile(r"^(METAMEDIA_[A-Z0-9_]+)=")
URL_PATH = re.compile(r"https?://[^/\s'\"]+(/[A-Za-z0-9_./-]*)")
API_IMAGE = "metamedia"


@dataclass
class Found:
    """Variables set and paths probed, each with where it was found."""

    variables: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def collect_variables(document: Any, where: str, found: Found) -> None:
    """Keys of env maps and ConfigMaps, `name:` of Kubernetes env entries, and
    `NAME=value` items of Compose's list form."""
    for node in walk(document):
        if isinstance(node, dict):
            for key in node:
                if isinstance(key, str) and VARIABLE.match(key):
                    found.variables.setdefault(key, where)
            name = node.get("name")
            if isinstance(name, str) and VARIABLE.match(name):
                found.variables.setdefault(name, where)
        elif isinstance(node, str) and (match := ASSIGNMENT.match(node)):
            found.variables.setdefault(match.group(1), where)


def is_api(spec: dict[str, Any]) -> bool:
    """A Compose service or Kubernetes container that runs the app."""
    image = spec.get("image")
    return "build" in spec or (isinstance(image, str) and image.startswith(API_IMAGE))


def api_specs(document: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(document, dict):
        return
    services = document.get("services")
    if isinstance(services, dict):  # Compose
        yield from (s for s in services.values() if isinstance(s, dict) and is_api(s))
    for node in walk(document):  # Kubernetes pod specs
        if isinstance(node, dict) and isinstance(node.get("containers"), list):
            yield from (c for c in node["containers"] if isinstance(c, dict) and is_api(c))


def collect_paths(document: Any, where: str, found: Found) -> None:
    """`httpGet.path` of every probe and URLs in healthcheck commands, on API containers."""
    for spec in api_specs(document):
        for node in walk(spec):
            if isinstance(node, dict) and isinstance(node.get("httpGet"), dict):
                found.paths.setdefault(node["httpGet"]["path"], where)
        for node in walk(spec.get("healthcheck", {})):
            if isinstance(node, str):
                for match in URL_PATH.finditer(node):
                    found.paths.setdefault(match.group(1), where)
    if isinstance(document, dict):  # Prometheus scrape jobs aim at the API
        for job in document.get("scrape_configs", []) or []:
            found.paths.setdefault(job.get("metrics_path", "/metrics"), where)


def collect_dockerfile(text: str, where: str, found: Found) -> None:
    for line in text.splitlines():
        for name in re.findall(r"\b(METAMEDIA_[A-Z0-9_]+)=", line):
            found.variables.setdefault(name, where)
        if "HEALTHCHECK" in line or line.lstrip().startswith("CMD"):
            for match in URL_PATH.finditer(line):
                found.paths.setdefault(match.group(1), where)


def problems(found: Found, settings: set[str], serves: Callable[[str], bool]) -> list[str]:
    wrong = [
        f"{where}: {name} is not a setting (no field {name.removeprefix('METAMEDIA_').lower()!r})"
        for name, where in sorted(found.variables.items())
        if name.removeprefix("METAMEDIA_").lower() not in settings
    ]
    wrong += [
        f"{where}: probe path {path} is not a route of the app"
        for path, where in sorted(found.paths.items())
        if not serves(path)
    ]
    return wrong


def setting_names() -> set[str]:
    return set(Settings.model_fields)


@pytest.fixture(scope="module")
def serves(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], bool]:
    """Whether the app the public factory builds routes a GET of a path to a handler.

    Asked of the router itself (no runtime opens without a request), so included
    routers and mounts answer as they would for a real request.
    """
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("deploy-routes")))

    def routed(path: str) -> bool:
        scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
        return any(route.matches(scope)[0] == Match.FULL for route in app.routes)

    return routed


def deploy_documents() -> list[tuple[str, Any]]:
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    documents = []
    for path in files:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            documents.append((str(path.relative_to(ROOT)), document))
    return documents


def scan_deploy() -> Found:
    found = Found()
    for where, document in deploy_documents():
        collect_variables(document, where, found)
        collect_paths(document, where, found)
    collect_dockerfile(DOCKERFILE.read_text(encoding="utf-8"), "Dockerfile", found)
    return found


def test_every_variable_and_probe_path_in_the_deploy_files_is_known(
    serves: Callable[[str], bool],
) -> None:
    found = scan_deploy()
    assert problems(found, setting_names(), serves) == []
    # The scan really saw the files: the settings a deployment must set, and the probes.
    assert {
        "METAMEDIA_DATABASE_URL",
        "METAMEDIA_REDIS_URL",
        "METAMEDIA_ADMIN_KEY",
        "METAMEDIA_VECTOR_STORE",
        "METAMEDIA_DATA_DIR",
    } <= set(found.variables)
    assert {"/healthz", "/readyz", "/metrics"} <= set(found.paths)


WRONG = """
services:
  api:
    image: metamedia:0.1.0
    environment:
      METAMEDIA_REDIS_URLL: redis://redis:6379/0
      METAMEDIA_DATABASE_URL: postgresql://mm@db/mm
    healthcheck:
      test: ["CMD", "curl", "-f", "http://127.0.0.1:8000/ready"]
  other:
    image: grafana/grafana
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:3000/api/health"]
---
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: api
          image: metamedia:0.1.0
          env:
            - name: METAMEDIA_ADMINKEY
              value: x
          args: ["--env", "METAMEDIA_ANONYMOUS=read", "METAMEDIA_ANONYMUS=open"]
          readinessProbe:
            httpGet: {path: /readyz, port: 8000}
          livenessProbe:
            httpGet: {path: /health, port: 8000}
"""


def test_the_checker_names_a_misspelt_variable_and_a_missing_probe_path(
    serves: Callable[[str], bool],
) -> None:
    found = Found()
    for document in yaml.safe_load_all(WRONG):
        collect_variables(document, "wrong.yaml", found)
        collect_paths(document, "wrong.yaml", found)
    collect_dockerfile("ENV METAMEDIA_DATADIR=/data\n", "Dockerfile.wrong", found)
    wrong = problems(found, setting_names(), serves)
    assert sorted(wrong) == [
        "Dockerfile.wrong: METAMEDIA_DATADIR is not a setting (no field 'datadir')",
        "wrong.yaml: METAMEDIA_ADMINKEY is not a setting (no field 'adminkey')",
        "wrong.yaml: METAMEDIA_ANONYMUS is not a setting (no field 'anonymus')",
        "wrong.yaml: METAMEDIA_REDIS_URLL is not a setting (no field 'redis_urll')",
        "wrong.yaml: probe path /health is not a route of the app",
        "wrong.yaml: probe path /ready is not a route of the app",
    ]


def test_compose_runs_two_replicas_with_every_service_health_checked() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    replicas = [name for name, spec in services.items() if is_api(spec)]
    assert len(replicas) == 2
    assert {"postgres", "redis", "prometheus", "grafana"} <= set(services)
    assert services["postgres"]["image"].startswith("pgvector/pgvector:pg")
    for name, spec in services.items():
        assert spec.get("healthcheck", {}).get("test"), f"{name} has no health check"
    # Files the services mount exist, and Prometheus scrapes every replica.
    for spec in services.values():
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
    config_arg = next(a for a in services["prometheus"]["command"] if "--config.file" in a)
    config = DEPLOY / "prometheus" / Path(config_arg.split("=", 1)[1]).name
    targets = yaml.safe_load(config.read_text(encoding="utf-8"))["scrape_configs"][0]
    hosts = {t.split(":")[0] for t in targets["static_configs"][0]["targets"]}
    assert hosts == set(replicas)


def test_kubernetes_deployment_has_probes_limits_and_secret_references() -> None:
    documents = {
        doc["kind"]: doc
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
    }
    assert {"Deployment", "Service", "ConfigMap"} <= set(documents)
    pod = documents["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert set(container["resources"]["limits"]) >= {"cpu", "memory"}
    assert set(container["resources"]["requests"]) >= {"cpu", "memory"}
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert "METAMEDIA_ADMIN_KEY" in secrets
    config_map = documents["ConfigMap"]["metadata"]["name"]
    assert {"configMapRef": {"name": config_map}} in container["envFrom"]
    labels = documents["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert documents["Service"]["spec"]["selector"].items() <= labels.items()
