"""The ``tencent_ci`` connection form for Airflow 3.1, derived from the declarative one.

Airflow 3.2+ builds the form from ``conn-fields`` / ``ui-field-behaviour`` in the provider info
without importing the hook. Airflow 3.1 only knows the hook-method form:
``get_connection_form_widgets()`` (WTForms fields, which its UI API reads through mocks, so
FAB itself need not be installed, only WTForms) and ``get_ui_field_behaviour()``. Both are
built here from the declarative definition, so each field is declared once.
"""

from __future__ import annotations

from typing import Any

CONNECTION_TYPE = "tencent_ci"


def _connection_type() -> dict[str, Any]:
    from airflow_provider_ci import get_provider_info

    (conn_type,) = [
        entry for entry in get_provider_info()["connection-types"] if entry["connection-type"] == CONNECTION_TYPE
    ]
    return dict(conn_type)


def ui_field_behaviour() -> dict[str, Any]:
    """``ui-field-behaviour`` in the snake_case keys ``get_ui_field_behaviour()`` returns."""
    behaviour = _connection_type()["ui-field-behaviour"]
    return {
        "hidden_fields": list(behaviour.get("hidden-fields", [])),
        "relabeling": dict(behaviour.get("relabeling", {})),
        "placeholders": dict(behaviour.get("placeholders", {})),
    }


def form_widgets() -> dict[str, Any]:
    """One WTForms field per ``conn-fields`` entry, keyed by the extra key it is saved under.

    Raises ``ImportError`` (``name="wtforms"``) without WTForms, which Airflow 3.1 takes as
    "no UI widgets" and shows the generic form. Secrets (``format: password``) become password
    fields, integers integer fields, enums an ``any_of`` choice; everything else is text (the
    connection parser checks numbers, so a text ``max_qps`` is still validated).
    """
    from wtforms import IntegerField, PasswordField, StringField
    from wtforms.validators import Optional, any_of

    try:  # FAB's Bootstrap widgets where FAB is installed, as official providers use
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget

        text_widget: Any = BS3TextFieldWidget()
        password_widget: Any = BS3PasswordFieldWidget()
    except ImportError:
        text_widget = password_widget = None

    widgets: dict[str, Any] = {}
    for name, field in _connection_type()["conn-fields"].items():
        schema = field.get("schema", {})
        types = schema.get("type", "string")
        types = set(types) if isinstance(types, list) else {types}
        validators: list[Any] = [Optional()]
        choices = [value for value in schema.get("enum", []) if value is not None]
        if choices:
            validators.append(any_of(choices))
        if schema.get("format") == "password":
            field_class, widget = PasswordField, password_widget
        elif "integer" in types:
            field_class, widget = IntegerField, text_widget
        else:
            field_class, widget = StringField, text_widget
        kwargs: dict[str, Any] = {"validators": validators, "description": field.get("description", "")}
        if widget is not None:
            kwargs["widget"] = widget
        widgets[name] = field_class(field["label"], **kwargs)
    return widgets
