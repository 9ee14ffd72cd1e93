"""Bad input, table-driven, across operator, sensor, hook and connection.

Each case must be refused before any request with a message that names the field, and the
emulator must have seen nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_ci.exceptions import CloudInfiniteValidationError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.operators.batch import CloudInfiniteBatchPicProcessOperator
from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator
from airflow_provider_ci.sensors.job import CloudInfiniteJobSensor
from tests.test_operator import context

RULE = "imageMogr2/rotate/90"


def op(**kwargs: Any) -> Callable[[], Any]:
    """Run the operator as Airflow would after rendering its templates to these values."""
    args = {"task_id": "t", "input_object": "in/a.jpg", "output_object": "out/a.jpg", "process_rule": RULE}
    return lambda: CloudInfinitePicProcessOperator(**{**args, **kwargs}).execute(context())


def hook_submit(**kwargs: Any) -> Callable[[], Any]:
    args = {"input_object": "in/a.jpg", "output_object": "out/a.jpg", "process_rule": RULE}
    return lambda: CloudInfiniteHook().submit_pic_process_job(**{**args, **kwargs})


def sensor(job_id: Any) -> Callable[[], Any]:
    return lambda: CloudInfiniteJobSensor(task_id="s", job_id=job_id).poke({})


def batch(**kwargs: Any) -> Callable[[], Any]:
    args = {"task_id": "b", "items": [{"input_object": "in/a.jpg", "output_object": "out/a.jpg"}], "process_rule": RULE}
    return lambda: CloudInfiniteBatchPicProcessOperator(**{**args, **kwargs}).execute(context())


def connection(edit: Callable[[dict], Any]) -> Callable[[], Any]:
    def run() -> Any:
        conn = json.loads(os.environ["AIRFLOW_CONN_TENCENT_CI_DEFAULT"])
        edit(conn)
        os.environ["AIRFLOW_CONN_TENCENT_CI_DEFAULT"] = json.dumps(conn)
        return CloudInfiniteHook().get_job("c1")

    return run


CASES: list[tuple[str, Callable[[], Any], str]] = [
    # operator, values as rendered from templates
    ("job_level out of range", op(job_level=3), "job_level"),
    ("job_level not a number", op(job_level="high"), "job_level"),
    ("job_level a bool", op(job_level=True), "job_level"),
    ("user_data too long", op(user_data="x" * 1025), "user_data"),
    ("user_data not ASCII", op(user_data="缩略图"), "user_data"),
    ("user_data a dict", op(user_data={"a": 1}), "user_data"),
    ("empty input key after rendering", op(input_object=""), "input_object"),
    ("absolute output key", op(output_object="/out/a.jpg"), "output_object"),
    ("key with ..", op(input_object="in/../../etc/passwd"), "input_object"),
    ("key with a newline", op(output_object="out/a\n.jpg"), "output_object"),
    ("key not a string", op(input_object=42), "input_object"),
    ("bucket without APPID", op(bucket="examplebucket"), "bucket"),
    ("bucket with upper case", op(bucket="Example-1250000000"), "bucket"),
    ("output bucket malformed", op(output_bucket="out_bucket-1250000000"), "output_bucket"),
    ("region malformed", op(region="Chongqing"), "region"),
    ("output region malformed", op(output_region="ap chongqing"), "output_region"),
    ("rule with spaces after rendering", op(process_rule="imageMogr2/rotate/ 90"), "process_rule"),
    ("template id with punctuation", op(process_rule=None, template_id="t1;drop"), "template_id"),
    ("is_pic_info not a flag", op(is_pic_info="maybe"), "is_pic_info"),
    ("callback not a URL", op(callback="callback.demo.com"), "callback"),
    ("callback format unknown", op(callback_format="YAML"), "callback_format"),
    ("callback type unknown", op(callback_type="Kafka"), "callback_type"),
    ("TDMQ without mq config", op(callback_type="TDMQ"), "callback_mq_config"),
    (
        "mq region unknown",
        op(callback_type="TDMQ", callback_mq_config={"MqMode": "Queue", "MqRegion": "us", "MqName": "q"}),
        "callback_mq_config.MqRegion",
    ),
    (
        "negative timeout",
        lambda: CloudInfinitePicProcessOperator(
            task_id="t", input_object="a", output_object="b", process_rule=RULE, timeout=-5
        ),
        "timeout",
    ),
    # hook
    ("hook: neither template nor rule", hook_submit(process_rule=None), "template_id/process_rule"),
    ("hook: both template and rule", hook_submit(template_id="t1abc"), "template_id/process_rule"),
    ("hook: job id list smuggled in", lambda: CloudInfiniteHook().get_job("c1,c2"), "job_id"),
    ("hook: list page size", lambda: CloudInfiniteHook().list_jobs(page_size=0), "page_size"),
    ("hook: list order", lambda: CloudInfiniteHook().list_jobs(order_by_time="Newest"), "order_by_time"),
    (
        "hook: naive datetime",
        lambda: CloudInfiniteHook().list_jobs(start_creation_time=__import__("datetime").datetime(2026, 1, 1)),
        "start_creation_time",
    ),
    # sensor, job id as rendered from XCom
    ("sensor: empty job id", sensor(""), "job_id"),
    ("sensor: job id with a path", sensor("../jobs"), "job_id"),
    # batch
    ("batch: an item without output", batch(items=[{"input_object": "in/a.jpg"}]), "items[0]"),
    (
        "batch: a bad item key",
        batch(items=[{"input_object": "in/a.jpg", "output_object": "/x"}]),
        "items[0].output_object",
    ),
    # connection
    ("connection: no SecretId", connection(lambda c: c.pop("login")), "login"),
    ("connection: no SecretKey", connection(lambda c: c.pop("password")), "password"),
    ("connection: no region", connection(lambda c: c["extra"].pop("region")), "region"),
    ("connection: unknown region form", connection(lambda c: c["extra"].update(region="moon-base")), "extra.region"),
    (
        "connection: endpoint_url scheme",
        connection(lambda c: c["extra"].update(endpoint_url="ftp://h")),
        "endpoint_url",
    ),
    (
        "connection: endpoint_url with a path",
        connection(lambda c: c["extra"].update(endpoint_url="http://h/x")),
        "endpoint_url",
    ),
    ("connection: typo in extra", connection(lambda c: c["extra"].update(bukcet="b-1250000000")), "extra"),
    ("connection: scheme", connection(lambda c: c["extra"].update(scheme="gopher")), "extra.scheme"),
]


@pytest.mark.parametrize(("case", "call", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_request(ci_emulator, ci_emulator_conn, monkeypatch, case, call, field):
    monkeypatch.setenv("AIRFLOW_CONN_TENCENT_CI_DEFAULT", os.environ["AIRFLOW_CONN_TENCENT_CI_DEFAULT"])
    with pytest.raises(CloudInfiniteValidationError) as info:
        call()
    assert info.value.field.endswith(field), (info.value.field, field)
    assert str(info.value).startswith(info.value.field)
    assert ci_emulator.requests == [], case


def test_the_table_is_big_enough():
    assert len(CASES) >= 25
