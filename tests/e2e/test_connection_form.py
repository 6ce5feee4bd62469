"""The ``hybrid_mount`` connection form as a running Airflow 3 API server serves it (``/ui/connections/hook_meta``),
the form's Test button on it, and connection lookups through ``HybridMountHook`` without Airflow's RFC 3986
scheme warning."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from airflow_hybrid.mount.options import parse_mount_options
from tests.airflow_deployment import AirflowDeployment
from tests.mounts import local_mount_extra

FIELDS = ["members", "priority.read", "collection.create", "cache", "catalog_url", "mount_options"]
RFC_WARNING = "shall not contain '_' according to RFC3986"


@pytest.fixture(scope="module")
def api_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("form-airflow")
    dags = home / "dags"
    dags.mkdir()
    env = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    with AirflowDeployment(home, bundles={"form-dags": dags}, env=env, components=("api-server",)) as airflow:
        yield airflow


@pytest.fixture(scope="module")
def hook_meta(api_server) -> dict:
    response = httpx.get(f"{api_server.api_url}/ui/connections/hook_meta", timeout=60)
    assert response.status_code == 200, response.text
    (meta,) = [m for m in response.json() if m["connection_type"] == "hybrid_mount"]
    return meta


def test_the_form_has_the_hook_name_and_the_mount_fields_with_labels_and_help(hook_meta):
    assert hook_meta["hook_name"] == "Hybrid Mount (HDFS + S3 union)"
    assert hook_meta["hook_class_name"] == "airflow_hybrid.hooks.hybrid_mount.HybridMountHook"
    fields = hook_meta["extra_fields"]
    assert list(fields) == FIELDS  # in the form's order
    labels = {name: field["schema"]["title"] for name, field in fields.items()}
    assert labels == {
        "members": "Members",
        "priority.read": "Read priority",
        "collection.create": "Create new files in",
        "cache": "Cache",
        "catalog_url": "Cache catalog URL",
        "mount_options": "Alluxio mount options",
    }
    assert fields["members"]["schema"]["type"] == ["object", "null"]
    assert fields["cache"]["schema"]["type"] == ["object", "null"]
    assert fields["mount_options"]["schema"] == {
        "type": ["string", "null"], "format": "multiline", "title": "Alluxio mount options"
    }
    assert fields["priority.read"]["schema"]["examples"] == ["s3,hdfs", "hdfs,s3"]
    for name, field in fields.items():  # optional, empty by default, each with its help text
        assert field["value"] is None, name
        assert "null" in field["schema"]["type"], name
        assert field["description"], name
    assert "alluxio-union.hdfs.uri=" in fields["mount_options"]["description"]
    assert '"quota": "200GB"' in fields["cache"]["description"]


def test_the_form_hides_the_fields_a_mount_does_not_use(hook_meta):
    standard = hook_meta["standard_fields"]
    for name in ("host", "port", "login", "password", "url_schema"):
        assert standard[name]["hidden"] is True, name
    assert standard["description"] is None  # shown as it is


def test_the_extra_placeholder_is_a_mount_that_parses(api_server):
    """The Extra editor's example, as Airflow's providers manager loads it."""
    script = ("import json; from airflow.providers_manager import ProvidersManager; "
              "print(json.dumps(ProvidersManager().field_behaviours['hybrid_mount']))")
    result = subprocess.run(  # noqa: S603 - this interpreter on a fixed script
        [sys.executable, "-c", script], env=api_server.env, capture_output=True, text=True, timeout=300, check=True,
    )
    behaviour = json.loads(result.stdout.strip().splitlines()[-1])
    example = json.loads(behaviour["placeholders"]["extra"])

    spec = parse_mount_options("example", example)
    assert (sorted(spec.members), spec.read_order, spec.create_members) == (["hdfs", "s3"], ["s3", "hdfs"], ["s3"])
    assert behaviour["hidden_fields"] == ["host", "schema", "port", "login", "password"]


def _form_body(conn_id: str, extra: dict) -> dict:
    """A connection as the form posts it: every field of the form under its plain name, null when empty."""
    return {"connection_id": conn_id, "conn_type": "hybrid_mount",
            "extra": json.dumps({name: None for name in FIELDS} | extra)}


def test_the_test_button_checks_a_mount_entered_in_the_form(api_server, tmp_path):
    for member in ("s3", "hdfs", "tier-ssd"):
        (tmp_path / member).mkdir()
    extra = local_mount_extra(tmp_path, "s3,hdfs", "s3", {"SSD": "4MB"})
    api_server.api("POST", "/connections", json=_form_body("form_lake", extra))

    stored = api_server.api("GET", "/connections/form_lake")
    assert json.loads(stored["extra"])["priority.read"] == "s3,hdfs"  # stored under the field's own name
    answer = api_server.api("POST", "/connections/test", json=_form_body("form_lake", extra))
    assert answer == {
        "status": True,
        "message": "members s3, hdfs reachable (create in s3); "
        f"cache tiers SSD 4.0 MiB (evicts from 95% to 70%) writable; catalog sqlite:///{tmp_path}/catalog.db "
        "(created on first use)",
    }


def test_the_test_button_names_a_quota_that_is_not_a_size(api_server, tmp_path):
    for member in ("s3", "hdfs"):
        (tmp_path / member).mkdir()
    extra = local_mount_extra(tmp_path, "s3,hdfs", "s3", {"SSD": "2 gigs"})

    answer = api_server.api("POST", "/connections/test", json=_form_body("form_bad_quota", extra))

    assert answer["status"] is False
    assert "1 problem: cache.tiers[0].quota: " in answer["message"], answer
    assert "'2 gigs'" in answer["message"]


def test_the_api_server_logs_no_rfc3986_warning_for_the_mount(api_server, tmp_path):
    for member in ("s3", "hdfs"):
        (tmp_path / member).mkdir()
    extra = local_mount_extra(tmp_path, "s3,hdfs", "s3")
    api_server.api("POST", "/connections", json=_form_body("form_rfc", extra))
    for _ in range(2):
        assert api_server.api("POST", "/connections/test", json=_form_body("form_rfc", extra))["status"] is True
        api_server.api("GET", "/connections/form_rfc")

    log = (api_server.logs / "api-server.log").read_text(errors="replace")
    lines = log.splitlines()
    warned = [i for i, line in enumerate(lines) if RFC_WARNING in line]
    assert warned == [], "\n".join(lines[max(0, warned[0] - 15):warned[0] + 2])


def test_the_api_server_imports_the_hook_without_flask_appbuilder_or_deprecations(api_server, tmp_path):
    """The Test button imports the hook (``ProvidersManager.hooks``): with the form in the provider info Airflow
    neither reaches for wtforms nor warns of ``get_connection_form_widgets`` / ``get_ui_field_behaviour``."""
    (tmp_path / "a").mkdir()
    body = _form_body("form_import", {"members": {"a": {"uri": tmp_path.joinpath("a").as_uri()}}})
    assert api_server.api("POST", "/connections/test", json=body)["status"] is True

    log = (api_server.logs / "api-server.log").read_text(errors="replace")
    assert "POST /api/v2/connections/test" in log or "path=/api/v2/connections/test" in log
    for line in log.splitlines():
        assert not ("airflow_hybrid" in line and ("not fully initialized" in line or "Exception when importing" in line
                                                  or "Failed to add field behaviour" in line
                                                  or "defines get_" in line)), line


# -- connection lookups without the RFC 3986 warning ----------------------------------------------------------
@pytest.fixture
def server_process(monkeypatch):
    """What the API server, the scheduler and the triggerer set: lookups go to the metadata database (core's
    ``Connection`` and its ``get_uri``)."""
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")


def _logged(capsys, caplog) -> str:
    return capsys.readouterr().out + caplog.text


def test_core_connection_get_uri_warns_for_an_underscore_type(airflow_db, server_process, capsys, caplog):
    """The control: this capture sees the warning Airflow core logs for any other type with an underscore."""
    from airflow.models.connection import Connection

    uri = Connection(conn_id="gcp", conn_type="google_cloud_platform").get_uri()

    assert uri.startswith("google-cloud-platform://")
    assert "Connection schemes (type: google_cloud_platform) " + RFC_WARNING in _logged(capsys, caplog)


def test_no_rfc3986_warning_on_lookups_of_a_metadata_db_connection(airflow_db, server_process, tmp_path,
                                                                   capsys, caplog):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    from airflow_hybrid.hooks.hybrid_mount import HybridMountHook

    extra = local_mount_extra(tmp_path, "s3,hdfs", "s3")
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == "db_lake").delete()
        session.add(Connection(conn_id="db_lake", conn_type="hybrid_mount", extra=json.dumps(extra)))
    capsys.readouterr()

    for _ in range(3):  # each hook looks its connection up again
        assert HybridMountHook("db_lake").spec.read_order == ["s3", "hdfs"]
    stored = Connection.get_connection_from_secrets("db_lake")  # what the Execution API serves a task

    assert RFC_WARNING not in _logged(capsys, caplog)
    assert stored.get_uri().startswith("hybrid-mount://")  # the URI as before, RFC 3986's spelling
    assert RFC_WARNING not in _logged(capsys, caplog)


@pytest.mark.parametrize("context", ["server", "client"])
def test_no_rfc3986_warning_on_lookups_of_an_environment_connection(airflow_db, tmp_path, monkeypatch, capsys,
                                                                    caplog, context):
    from airflow.models.connection import Connection

    from airflow_hybrid.hooks.hybrid_mount import HybridMountHook

    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", context)
    extra = local_mount_extra(tmp_path, "s3,hdfs", "s3")
    monkeypatch.setenv("AIRFLOW_CONN_ENV_LAKE", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))

    for _ in range(3):
        assert HybridMountHook("env_lake").spec.create_members == ["s3"]
    assert Connection.get_connection_from_secrets("env_lake").conn_type == "hybrid_mount"

    assert RFC_WARNING not in _logged(capsys, caplog)
