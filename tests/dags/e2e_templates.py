"""Test-only DAGs for templates as code (tests/test_template_operators.py).

Needs: the CI emulator behind ``tencent_ci_default`` with an image at ``input/deer.jpg``.
``e2e_template_ensure`` declares template ``params.name`` with ``params.rule`` and processes
the image with it; ``e2e_template_delete`` deletes the template of that name.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator
from airflow_provider_ci.operators.template import (
    CloudInfiniteCreateOrUpdateTemplateOperator,
    CloudInfiniteDeleteTemplateOperator,
)

PARAMS = {
    "name": Param("e2e-template", type="string"),
    "rule": Param("imageMogr2/thumbnail/!50p/format/png", type="string"),
}


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, params=PARAMS)
def e2e_template_ensure():
    template = CloudInfiniteCreateOrUpdateTemplateOperator(
        task_id="ensure", name="{{ params.name }}", process_rule="{{ params.rule }}"
    )
    CloudInfinitePicProcessOperator(
        task_id="process",
        template_id=template.output,
        input_object="input/deer.jpg",
        output_object="output/e2e-template/{{ params.name }}.png",
        deferrable=False,
        poll_interval=0.2,
    )


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, params=PARAMS)
def e2e_template_delete():
    CloudInfiniteDeleteTemplateOperator(task_id="delete", name="{{ params.name }}", missing_ok=False)


e2e_template_ensure()
e2e_template_delete()
