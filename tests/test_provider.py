"""Provider packaging: what Airflow reads from our entry point, validated the way Airflow does."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest
from airflow import __version__ as airflow_version
from packaging.utils import canonicalize_name
from packaging.version import Version

import airflow_provider_ci
from airflow_provider_ci import get_provider_info

DIST = "airflow-provider-ci"


def test_entry_point_and_package_name():
    (entry_point,) = [ep for ep in metadata.entry_points(group="apache_airflow_provider") if ep.dist.name == DIST]
    assert entry_point.load() is get_provider_info
    info = get_provider_info()
    assert info["package-name"] == canonicalize_name(DIST)
    assert info["versions"][0] == airflow_provider_ci.__version__ == metadata.version(DIST)


def test_provider_info_matches_airflows_schema():
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def _listed_modules(info: dict) -> list[str]:
    modules = []
    for key in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(key, []):
            modules.extend(entry["python-modules"])
    return modules


def _listed_classes(info: dict) -> list[str]:
    return [ct["hook-class-name"] for ct in info["connection-types"]] + list(info.get("extra-links", []))


def test_every_listed_module_and_class_imports():
    info = get_provider_info()
    for module in _listed_modules(info):
        importlib.import_module(module)
    for path in _listed_classes(info):
        module, _, name = path.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), name), type)


def test_connection_type_matches_hook():
    from airflow_provider_ci.hooks.ci import CloudInfiniteHook

    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == CloudInfiniteHook.conn_type == "tencent_ci"
    assert conn_type["hook-name"] == CloudInfiniteHook.hook_name == "Tencent Cloud Infinite"
    assert CloudInfiniteHook.default_conn_name == "tencent_ci_default"
    fields = conn_type["conn-fields"]
    assert set(fields) == {"region", "bucket", "token", "scheme", "endpoint_url", "max_qps", "poll_batch_size"}
    assert fields["token"]["schema"]["format"] == "password"
    assert conn_type["ui-field-behaviour"]["relabeling"] == {"login": "SecretId", "password": "SecretKey"}


@pytest.mark.skipif(
    Version(airflow_version) < Version("3.2"), reason="Airflow reads declarative connection forms from 3.2 on"
)
def test_providers_manager_builds_the_connection_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert DIST in manager.providers
    behaviour = manager.field_behaviours["tencent_ci"]
    assert behaviour["relabeling"] == {"login": "SecretId", "password": "SecretKey"}
    assert {"host", "schema", "port"} <= set(behaviour["hidden_fields"])
    widgets = manager.connection_form_widgets
    assert {f"extra__tencent_ci__{name}" for name in ("region", "bucket", "token", "scheme", "endpoint_url")} <= set(
        widgets
    )
    assert widgets["extra__tencent_ci__token"].is_sensitive


@pytest.mark.skipif(not os.environ.get("AIRFLOW_HOME"), reason="needs the suite's AIRFLOW_HOME (conftest)")
def test_airflow_providers_list_shows_the_provider():
    airflow_cli = Path(sys.executable).with_name("airflow")
    out = subprocess.run(
        [str(airflow_cli), "providers", "list", "-o", "json"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    start = re.search(r"^\[", out, re.M)  # the CLI may log lines before the JSON
    assert start, out
    listed = {p["package_name"]: p for p in json.loads(out[start.start() :])}
    assert listed[DIST]["version"] == airflow_provider_ci.__version__
