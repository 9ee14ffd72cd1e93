"""Templates as code: create or update by name, idempotently; delete; bad input stopped before sending.

Runs ``tests/dags/e2e_templates.py`` through ``dag.test()`` against the emulator and counts
the template calls the emulator received.
"""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image

from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from airflow_provider_ci.exceptions import CloudInfiniteError, CloudInfiniteServiceError, CloudInfiniteValidationError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.operators.template import (
    CloudInfiniteCreateOrUpdateTemplateOperator,
    CloudInfiniteDeleteTemplateOperator,
    find_template,
)
from tests.support import jpeg
from tests.test_example_dags import _xcom, run

pytestmark = pytest.mark.airflow_e2e

HALF = "imageMogr2/thumbnail/!50p/format/png"
QUARTER = "imageMogr2/thumbnail/!25p/format/png"


@pytest.fixture
def emulator(ci_emulator, ci_emulator_conn):
    ci_emulator.put_object(DEFAULT_BUCKET, "input/deer.jpg", jpeg(64, 48))
    return ci_emulator


def template_calls(emulator) -> list[str]:
    """Method and path of every template call since the last clear."""
    return [f"{r.method} {r.path}" for r in emulator.requests if r.path.startswith("/template")]


def templates_named(name: str) -> list[dict]:
    return [t for t in CloudInfiniteHook().get_templates(name=name) if t["Name"] == name]


def ensure(emulator, name: str, rule: str) -> tuple[str, list[str]]:
    """Run the ensure DAG; (template id it pushed, template calls it made)."""
    emulator.clear_requests()
    run_, states = run("e2e_template_ensure", conf={"name": name, "rule": rule})
    assert run_.state == "success", states
    assert _xcom(run_, "ensure", "return_value") == _xcom(run_, "ensure", "template_id")
    return _xcom(run_, "ensure", "template_id"), template_calls(emulator)


def test_created_once_not_rewritten_when_unchanged_updated_in_place_when_changed(airflow_db, emulator):
    name = f"e2e-{uuid.uuid4().hex[:8]}"

    created, calls = ensure(emulator, name, HALF)
    assert calls == ["GET /template", "POST /template"]

    again, calls = ensure(emulator, name, HALF)
    assert (again, calls) == (created, ["GET /template"])  # one lookup, no write

    updated, calls = ensure(emulator, name, QUARTER)
    assert (updated, calls) == (created, ["GET /template", f"PUT /template/{created}"])
    (template,) = templates_named(name)
    assert template["PicProcess"]["ProcessRule"] == QUARTER
    # The job of that run used the rewritten template: a quarter of 64x48.
    out = Image.open(io.BytesIO(emulator.get_object(DEFAULT_BUCKET, f"output/e2e-template/{name}.png")))
    assert out.size == (16, 12)


def test_delete_by_name_then_a_second_delete_fails_with_missing_ok_false(airflow_db, emulator):
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    created, _ = ensure(emulator, name, HALF)

    emulator.clear_requests()
    run_, states = run("e2e_template_delete", conf={"name": name})
    assert run_.state == "success", states
    assert _xcom(run_, "delete", "template_id") == created
    assert template_calls(emulator) == ["GET /template", f"DELETE /template/{created}"]
    assert templates_named(name) == []

    _, states = run("e2e_template_delete", conf={"name": name})
    assert states["delete"] == "failed"


def test_two_templates_of_one_name_are_refused_not_guessed(airflow_db, emulator):
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    hook = CloudInfiniteHook()
    ids = {hook.create_template(name=name, process_rule=HALF)["TemplateId"] for _ in range(2)}
    emulator.clear_requests()
    _, states = run("e2e_template_ensure", conf={"name": name, "rule": QUARTER})
    assert states["ensure"] == "failed"
    assert template_calls(emulator) == ["GET /template"]  # no write
    assert {t["PicProcess"]["ProcessRule"] for t in templates_named(name)} == {HALF}
    with pytest.raises(CloudInfiniteError, match="2 templates are named") as caught:
        find_template(hook, name, None, None)
    assert all(template_id in str(caught.value) for template_id in ids)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "has space", "process_rule": HALF}, "name"),
        ({"name": "x" * 65, "process_rule": HALF}, "name"),
        ({"name": "ok", "process_rule": "imageMogr2/rotate/90 "}, "process_rule"),
        ({"name": "ok", "process_rule": ""}, "process_rule"),
        ({"name": "ok", "process_rule": HALF, "is_pic_info": "maybe"}, "is_pic_info"),
    ],
)
def test_bad_input_is_named_before_anything_is_sent(emulator, kwargs, field):
    operator = CloudInfiniteCreateOrUpdateTemplateOperator(task_id="t", **kwargs)
    emulator.clear_requests()
    with pytest.raises(CloudInfiniteValidationError) as caught:
        operator.execute({})  # type: ignore[arg-type]
    assert caught.value.field == field
    assert emulator.requests == []


def test_delete_checks_its_input_before_sending(emulator):
    with pytest.raises(CloudInfiniteValidationError, match="give exactly one"):
        CloudInfiniteDeleteTemplateOperator(task_id="t")
    with pytest.raises(CloudInfiniteValidationError, match="give exactly one"):
        CloudInfiniteDeleteTemplateOperator(task_id="t", template_id="t1abc", name="x")
    emulator.clear_requests()
    with pytest.raises(CloudInfiniteValidationError) as caught:
        CloudInfiniteDeleteTemplateOperator(task_id="t", template_id="t1/../x").execute({})  # type: ignore[arg-type]
    assert caught.value.field == "template_id"
    with pytest.raises(CloudInfiniteValidationError) as caught:
        CloudInfiniteDeleteTemplateOperator(task_id="t", name="bad name").execute({})  # type: ignore[arg-type]
    assert caught.value.field == "name"
    assert emulator.requests == []


def test_hook_update_and_delete_of_an_unknown_template_name_the_service_error(emulator):
    hook = CloudInfiniteHook()
    with pytest.raises(CloudInfiniteServiceError) as caught:
        hook.update_template("t1doesnotexist", name="x", process_rule=HALF)
    assert (caught.value.status, caught.value.code) == (404, "NoSuchTemplate")
    with pytest.raises(CloudInfiniteServiceError) as caught:
        hook.delete_template("t1doesnotexist")
    assert caught.value.status == 404


def test_a_retried_delete_that_finds_the_template_gone_succeeds(emulator):
    """The first DELETE is applied but its answer lost (reset after): the retry's 404 means done."""
    hook = CloudInfiniteHook()
    template = hook.create_template(name=f"e2e-{uuid.uuid4().hex[:8]}", process_rule=HALF)
    emulator.faults.add("reset_after", method="DELETE", path=f"/template/{template['TemplateId']}", count=1)
    emulator.clear_requests()
    hook.delete_template(template["TemplateId"])
    assert template_calls(emulator) == [f"DELETE /template/{template['TemplateId']}"] * 2
    assert templates_named(template["Name"]) == []
