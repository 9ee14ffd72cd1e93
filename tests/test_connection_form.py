"""The ``tencent_ci`` connection form as the UI's API serves it, on Airflow 3.1 and on 3.2+.

Airflow 3.1 builds it from the hook's methods (WTForms fields read through its mocks), 3.2+
from the declarative ``conn-fields``; both must show the same fields. ``HookMetaService`` is
what ``GET /ui/connections/hook_meta`` returns to the connection form on both versions.
"""

from __future__ import annotations

import pytest
from airflow import __version__ as airflow_version
from packaging.version import Version

from airflow_provider_ci import get_provider_info
from airflow_provider_ci.hooks.ci import CloudInfiniteHook

(CONN_TYPE,) = get_provider_info()["connection-types"]


@pytest.fixture
def hook_meta():
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    HookMetaService.hook_meta_data.cache_clear()
    try:
        (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "tencent_ci"]
        yield meta
    finally:
        HookMetaService.hook_meta_data.cache_clear()


def test_the_ui_api_serves_every_field_with_its_label(hook_meta):
    extra = hook_meta.extra_fields
    assert set(extra) == set(CONN_TYPE["conn-fields"])
    for name, field in CONN_TYPE["conn-fields"].items():
        assert extra[name]["schema"]["title"] == field["label"], name
        assert extra[name]["description"] == field["description"], name
    assert extra["token"]["schema"]["format"] == "password"  # masked in the form
    assert extra["poll_batch_size"]["schema"]["type"][0] == "integer"
    assert "https" in extra["scheme"]["schema"]["enum"]


def test_the_ui_api_relabels_and_hides_the_standard_fields(hook_meta):
    standard = hook_meta.standard_fields
    assert (standard.login.title, standard.password.title) == ("SecretId", "SecretKey")
    assert standard.login.placeholder == "AKID..."
    assert standard.host.hidden and standard.port.hidden and standard.url_schema.hidden
    assert hook_meta.hook_name == "Tencent Cloud Infinite"


def test_hook_methods_mirror_the_declarative_form():
    from wtforms import IntegerField, PasswordField, StringField

    behaviour = CloudInfiniteHook.get_ui_field_behaviour()
    declared = CONN_TYPE["ui-field-behaviour"]
    assert behaviour == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }
    widgets = CloudInfiniteHook.get_connection_form_widgets()
    assert set(widgets) == set(CONN_TYPE["conn-fields"])  # unprefixed: saved under the keys the parser reads
    assert widgets["token"].field_class is PasswordField
    assert widgets["poll_batch_size"].field_class is IntegerField
    assert widgets["region"].field_class is StringField
    assert widgets["region"].args[0] == "Region"


@pytest.mark.skipif(Version(airflow_version) >= Version("3.2"), reason="the hook-method form is Airflow 3.1's")
def test_airflow_3_1_registers_the_hook_method_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    manager._cleanup()
    try:
        widgets = manager.connection_form_widgets
        assert {f"extra__tencent_ci__{name}" for name in CONN_TYPE["conn-fields"]} <= set(widgets)
        assert manager.field_behaviours["tencent_ci"]["relabeling"] == {"login": "SecretId", "password": "SecretKey"}
    finally:
        manager._cleanup()


def test_get_conn_returns_the_settings_without_secrets_in_repr(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_TENCENT_CI_FORM",
        '{"conn_type": "tencent_ci", "login": "AKIDFORMTEST", "password": "form-secret-key",'
        ' "extra": {"region": "ap-chongqing", "bucket": "examplebucket-1250000000", "token": "form-sts-token"}}',
    )
    settings = CloudInfiniteHook("tencent_ci_form").get_conn()
    assert (settings.region, settings.bucket, settings.credentials.secret_id) == (
        "ap-chongqing",
        "examplebucket-1250000000",
        "AKIDFORMTEST",
    )
    assert settings.credentials.token == "form-sts-token"
    assert "form-secret-key" not in repr(settings) and "form-sts-token" not in repr(settings)
