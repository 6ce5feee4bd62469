"""docker/ checked without a Docker engine: Debian's ``docker-compose config`` (v1, installed by ``make
setup-test``) validates and interpolates ``docker/docker-compose.yml``, and the tests read what it renders.

The file must keep a real stack (HDFS, an S3 store, PostgreSQL, Airflow's components), bind every published
port to 127.0.0.1 unless ``HYBRID_BIND`` says otherwise, and ship no credential: each secret is a required
variable, and ``config`` stops naming the one missing. The test values are random per run, so a literal in the
file can never pass for one.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
#: The variables the stack needs and has no default for.
REQUIRED = ("HYBRID_POSTGRES_PASSWORD", "HYBRID_S3_ACCESS_KEY", "HYBRID_S3_SECRET_KEY", "HYBRID_AIRFLOW_SECRET",
            "HYBRID_ADMIN_PASSWORD", "HYBRID_GATEWAY_ACCESS_KEY", "HYBRID_GATEWAY_SECRET_KEY")
SERVICES = {"namenode", "datanode", "minio", "minio-init", "postgres", "airflow-init", "airflow-api",
            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "gateway"}
#: Environment keys and JSON fields that hold a credential.
SECRET_KEY = re.compile(r"PASSWORD|SECRET|(?<![A-Z])KEY$|ACCESS_KEY|TOKEN|^password$", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail("docker-compose is not installed (Debian's `docker-compose`); `make setup-test` installs it",
                    pytrace=False)
    return path


@pytest.fixture(scope="module")
def values() -> dict[str, str]:
    """A random test value per required variable (hex: URL- and JSON-safe, as docker/README.md asks)."""
    return {name: f"{name.lower()}-{secrets.token_hex(8)}" for name in REQUIRED}


def config(compose: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``docker-compose config`` with only ``env`` (no docker/.env a developer made: an empty env file)."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return subprocess.run(  # noqa: S603 - docker-compose on the project's file
        [compose, "-f", str(COMPOSE), "--env-file", str(env_file), "config"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}, capture_output=True, text=True, timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def rendered(compose, values, tmp_path_factory) -> dict[str, Any]:
    done = config(compose, values, tmp_path_factory.mktemp("compose"))
    assert done.returncode == 0, f"docker-compose config failed with the test values:\n{done.stderr}"
    return yaml.safe_load(done.stdout)


def test_the_stack_keeps_hdfs_s3_postgres_and_airflow(rendered):
    assert set(rendered["services"]) == SERVICES, sorted(rendered["services"])
    images = {name: service.get("image", "") for name, service in rendered["services"].items()}
    assert images["namenode"].startswith("apache/hadoop:") and images["datanode"] == images["namenode"], images
    assert images["postgres"].startswith("postgres:"), images
    assert images["minio"].startswith("minio/minio:") and not images["minio"].endswith(":latest"), images
    commands = {name: rendered["services"][name]["command"] for name in SERVICES if name.startswith("airflow-")}
    for component in ("scheduler", "dag-processor", "triggerer"):
        assert commands[f"airflow-{component}"] == ["airflow", component], commands
    assert "exec airflow api-server" in commands["airflow-api"][-1], commands["airflow-api"]
    assert commands["airflow-init"] == ["airflow", "db", "migrate"], commands["airflow-init"]
    assert commands_of(rendered, "gateway")[:3] == ["airflow", "hybrid", "gateway"], commands_of(rendered, "gateway")
    for name in SERVICES - {"airflow-init"}:
        if name.startswith("airflow-") or name == "gateway":
            assert rendered["services"][name]["depends_on"]["airflow-init"] == {
                "condition": "service_completed_successfully"}, name


def commands_of(rendered: dict[str, Any], name: str) -> list[str]:
    return rendered["services"][name]["command"]


def _port(port: str | dict[str, Any]) -> str:
    """A published port as ``host_ip:published:target`` (the short syntax; the long one as a mapping)."""
    if isinstance(port, dict):
        return f"{port.get('host_ip', '')}:{port.get('published', '')}:{port.get('target')}"
    return str(port)


def _published(rendered: dict[str, Any]) -> dict[str, list[str]]:
    return {name: [_port(port) for port in service["ports"]] for name, service in rendered["services"].items()
            if service.get("ports")}


def test_every_published_port_is_bound_to_loopback_by_default(rendered, compose, values, tmp_path):
    published = _published(rendered)
    assert {"namenode", "minio", "airflow-api", "gateway"} <= set(published), published
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port!r}, not on 127.0.0.1"
    assert "postgres" not in published, f"PostgreSQL must not be published: {published['postgres']}"

    wide = config(compose, {**values, "HYBRID_BIND": "0.0.0.0"}, tmp_path)  # noqa: S104 - the opt-in being tested
    assert wide.returncode == 0, wide.stderr
    for name, ports in _published(yaml.safe_load(wide.stdout)).items():
        assert all(port.startswith("0.0.0.0:") for port in ports), f"HYBRID_BIND did not apply to {name}: {ports}"


def _credentials(value: Any, where: str) -> list[tuple[str, str]]:
    """``(where, credential)`` of every secret-named environment key or JSON field and every URL password in
    ``value`` (a rendered service, walked through its nested mappings and JSON strings)."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if SECRET_KEY.search(str(key)) and not str(key).endswith("_FILE") and isinstance(item, (str, int)):
                found.append((f"{where}.{key}", str(item)))
            found += _credentials(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _credentials(item, f"{where}[{index}]")
    elif isinstance(value, str):
        found += [(f"{where} (URL)", password) for password in re.findall(r"://[^:/@\s\"']+:([^@\s\"']+)@", value)]
        if value.lstrip().startswith("{"):  # a connection's JSON (it must parse)
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as error:
                raise AssertionError(f"{where} is not valid JSON ({error}): {value}") from None
            found += _credentials(parsed, f"{where} (JSON)")
    return found


def test_every_credential_comes_from_a_required_variable(rendered, values):
    found = _credentials(rendered["services"], "services")
    places = {where for where, _ in found}
    for expected in ("services.postgres.environment.POSTGRES_PASSWORD", "services.minio.environment.MINIO_ROOT_PASSWORD",
                     "services.airflow-api.environment.AIRFLOW__API_AUTH__JWT_SECRET",
                     "services.airflow-api.environment.AIRFLOW_CONN_AWS_DEFAULT (JSON).password",
                     "services.gateway.environment.AIRFLOW_CONN_GATEWAY_KEYS (JSON).password",
                     "services.airflow-scheduler.environment.AIRFLOW__DATABASE__SQL_ALCHEMY_CONN (URL)"):
        assert expected in places, f"no credential found at {expected} (the walk found {sorted(places)})"
    literal = [(where, secret) for where, secret in found if secret not in values.values()]
    assert not literal, f"credentials that are not a required variable's value: {literal}"
    assert values["HYBRID_ADMIN_PASSWORD"] == rendered["services"]["airflow-api"]["environment"]["HYBRID_ADMIN_PASSWORD"]
    for name, service in rendered["services"].items():
        assert service.get("environment", {}).get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS") in (None, "False"), (
            f"{name} lets anyone in as admin"
        )


@pytest.mark.parametrize("missing", REQUIRED)
def test_config_stops_and_names_a_missing_variable(compose, values, tmp_path, missing):
    for env in ({k: v for k, v in values.items() if k != missing}, {**values, missing: ""}):
        done = config(compose, env, tmp_path)
        assert done.returncode != 0, f"docker-compose config passed without {missing}:\n{done.stdout[:500]}"
        assert f"set {missing}" in done.stderr, f"expected the error to say 'set {missing}', it says:\n{done.stderr}"
        assert not [v for v in env.values() if v and v in done.stderr], "the error shows a secret's value"


def test_the_dockerfile_copies_only_what_exists():
    root = DOCKER.parent
    dockerfile = (DOCKER / "Dockerfile").read_text()
    sources = [src for line in dockerfile.splitlines() if line.startswith("COPY ")
               for src in line.split()[1:-1] if not src.startswith("--")]
    assert sources, dockerfile
    missing = [src for src in sources if not (root / src).exists()]
    assert not missing, f"the Dockerfile copies {missing}, which are not in the repository"
