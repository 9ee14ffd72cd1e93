"""Process an image with a saved PicProcess template.

Needs: a ``tencent_ci_default`` connection (Tencent Cloud, or the local emulator that
``make demo`` starts) whose bucket holds an image at ``input/deer.jpg`` (the DAG param
``input_object`` picks another). The first task keeps the template ``airflow-example-thumbnail``
(fit inside 400x400, WebP, image info on) as declared here: created on the first run, rewritten
only when this file's rule changes, untouched otherwise (templates as code, docs/templates.md).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator
from airflow_provider_ci.operators.template import CloudInfiniteCreateOrUpdateTemplateOperator

TEMPLATE_NAME = "airflow-example-thumbnail"
TEMPLATE_RULE = "imageMogr2/thumbnail/400x400>/format/webp/quality/85"


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "tencent-ci"],
    params={"input_object": Param("input/deer.jpg", type="string", description="image key in the bucket")},
)
def example_ci_template():
    template = CloudInfiniteCreateOrUpdateTemplateOperator(
        task_id="ensure_template", name=TEMPLATE_NAME, process_rule=TEMPLATE_RULE, is_pic_info=True
    )
    CloudInfinitePicProcessOperator(
        task_id="thumbnail",
        template_id=template.output,
        input_object="{{ params.input_object }}",
        output_object="output/template/{{ params.input_object.rsplit('/', 1)[-1].rsplit('.', 1)[0] }}.webp",
    )


example_ci_template()
