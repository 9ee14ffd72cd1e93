"""The XML model: the seed's example requests and response, both result shapes, errors."""

from __future__ import annotations

import json

import pytest
from lxml import etree

from airflow_provider_ci.exceptions import CloudInfiniteValidationError
from airflow_provider_ci.model import MqConfig, PicProcessJob, decode, is_error, jobs_page, output_info

# Verbatim from shared/seed/submit-image-processing-job.txt.
SEED_TEMPLATE_REQUEST = (
    "<Request><Tag>PicProcess</Tag><Input><Object>input/deer.jpg</Object></Input><Operation>"
    "<TemplateId>t10461fe2bd5a649db9022452ec71e0381</TemplateId><Output><Region>ap-chongqing</Region>"
    "<Bucket>test-123456789</Bucket><Object>output/out.jpg</Object></Output><UserData>This is my data.</UserData>"
    "<JobLevel>0</JobLevel></Operation><CallBack>http://callback.demo.com</CallBack>"
    "<CallBackFormat>JSON</CallBackFormat></Request>"
)
SEED_RULE_REQUEST = (
    "<Request><Tag>PicProcess</Tag><Input><Object>input/deer.jpg</Object></Input><Operation><PicProcess>"
    "<IsPicInfo>true</IsPicInfo><ProcessRule>imageMogr2/rotate/90</ProcessRule></PicProcess><Output>"
    "<Region>ap-chongqing</Region><Bucket>test-123456789</Bucket><Object>output/out.jpg</Object></Output>"
    "<UserData>This is my data.</UserData><JobLevel>0</JobLevel></Operation><CallBack>http://callback.demo.com"
    "</CallBack><CallBackFormat>JSON</CallBackFormat></Request>"
)
SEED_RESPONSE = (
    b"<Response><JobsDetail><Code>Success</Code><Message/><JobId>c93984788066911ed89ed352d4d9d2084</JobId>"
    b"<State>Submitted</State><CreationTime>2022-07-18T15:16:43+0800</CreationTime><EndTime>-</EndTime>"
    b"<StartTime>-</StartTime><QueueId>p2911917386e148639319e13c285cc774</QueueId><Tag>PicProcess</Tag><Input>"
    b"<BucketId>test-1234567890</BucketId><Object>input/deer.jpg</Object><Region>ap-chongqing</Region></Input>"
    b"<Operation><Output><Bucket>test-1234567890</Bucket><Object>output/out.jpg</Object><Region>ap-chongqing"
    b"</Region></Output><TemplateId>t10461fe2bd5a649db9022452ec71e0381</TemplateId><TemplateName>test"
    b"</TemplateName><UserData>This is my data.</UserData><JobLevel>0</JobLevel></Operation></JobsDetail>"
    b"</Response>"
)
COMMON = {
    "input_object": "input/deer.jpg",
    "output_object": "output/out.jpg",
    "output_bucket": "test-123456789",
    "output_region": "ap-chongqing",
    "user_data": "This is my data.",
    "job_level": 0,
    "callback": "http://callback.demo.com",
    "callback_format": "JSON",
}


def _tree(xml: str | bytes) -> list:
    """An order-preserving, comparable form of an XML tree."""
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    return [(el.tag, (el.text or "").strip()) for el in root.iter()]


def test_seed_template_request():
    job = PicProcessJob(template_id="t10461fe2bd5a649db9022452ec71e0381", **COMMON).validated()
    assert _tree(job.to_xml()) == _tree(SEED_TEMPLATE_REQUEST)


def test_seed_rule_request():
    job = PicProcessJob(process_rule="imageMogr2/rotate/90", is_pic_info=True, **COMMON).validated()
    assert _tree(job.to_xml()) == _tree(SEED_RULE_REQUEST)


def test_every_seed_field_including_tdmq_callback():
    job = PicProcessJob(
        process_rule="imageMogr2/thumbnail/!50p",
        callback_type="TDMQ",
        callback_mq_config={"MqMode": "Queue", "MqRegion": "bj", "MqName": "jobs-done"},
        **COMMON,
    ).validated()
    root = etree.fromstring(job.to_xml())
    assert root.findtext("CallBackType") == "TDMQ"
    assert [el.text for el in root.find("CallBackMqConfig")] == ["Queue", "bj", "jobs-done"]
    assert root.findtext("Operation/PicProcess/ProcessRule") == "imageMogr2/thumbnail/!50p"
    assert root.find("Operation/PicProcess/IsPicInfo") is None  # not sent unless given


def test_seed_response_parses_to_documented_fields():
    tag, data = decode(SEED_RESPONSE)
    page = jobs_page(data)
    assert (tag, page.non_exist_job_ids, page.next_token) == ("Response", [], None)
    (detail,) = page.jobs
    assert detail == {
        "Code": "Success",
        "Message": None,
        "JobId": "c93984788066911ed89ed352d4d9d2084",
        "State": "Submitted",
        "CreationTime": "2022-07-18T15:16:43+0800",
        "EndTime": None,
        "StartTime": None,
        "QueueId": "p2911917386e148639319e13c285cc774",
        "Tag": "PicProcess",
        "Input": {"BucketId": "test-1234567890", "Object": "input/deer.jpg", "Region": "ap-chongqing"},
        "Operation": {
            "Output": {"Bucket": "test-1234567890", "Object": "output/out.jpg", "Region": "ap-chongqing"},
            "TemplateId": "t10461fe2bd5a649db9022452ec71e0381",
            "TemplateName": "test",
            "UserData": "This is my data.",
            "JobLevel": 0,
        },
    }
    json.dumps(detail)  # plain JSON, fit for XCom and trigger events


SHAPE_A = b"""<Response><JobsDetail><JobId>c1</JobId><State>Success</State><Operation>
<PicProcess><IsPicInfo>true</IsPicInfo><ProcessRule>imageMogr2/rotate/90</ProcessRule></PicProcess>
<PicProcessResult><ObjectName>output/out.jpg</ObjectName><OriginalInfo><Etag>"d5a4"</Etag><ImageInfo>
<Ave>0xc64847</Ave><Format>JPEG</Format><Height>417</Height><Orientation>0</Orientation><Quality>68</Quality>
<Width>500</Width></ImageInfo></OriginalInfo><ProcessResult><Etag/><Format>JPEG</Format><Height>500</Height>
<Quality>68</Quality><Size>24911</Size><Width>417</Width></ProcessResult></PicProcessResult></Operation>
</JobsDetail></Response>"""
SHAPE_B = b"""<Response><JobsDetail><JobId>c2</JobId><State>Success</State><Operation><PicProcessResult>
<UploadResult/><OriginalInfo><Key>input/deer.jpg</Key><ETag>"aa"</ETag><ImageInfo><Format>PNG</Format>
<Width>10</Width><Height>20</Height></ImageInfo></OriginalInfo><ProcessResults><Object><Key>output/b.png</Key>
<Format>PNG</Format><Width>20</Width><Height>10</Height><Size>321</Size><ETag>"bb"</ETag></Object>
</ProcessResults></PicProcessResult></Operation></JobsDetail><NonExistJobIds>cx</NonExistJobIds>
<NonExistJobIds>cy</NonExistJobIds><NextToken>tok</NextToken></Response>"""


def test_result_shape_a_is_typed():
    (detail,) = jobs_page(decode(SHAPE_A)[1]).jobs
    result = detail["Operation"]["PicProcessResult"]
    assert result["OriginalInfo"]["ImageInfo"] == {
        "Ave": "0xc64847",
        "Format": "JPEG",
        "Height": 417,
        "Orientation": 0,
        "Quality": 68,
        "Width": 500,
    }
    assert detail["Operation"]["PicProcess"]["IsPicInfo"] is True
    assert output_info(detail) == {
        "Object": "output/out.jpg",
        "Format": "JPEG",
        "Width": 417,
        "Height": 500,
        "Size": 24911,
        "Etag": None,
    }


def test_result_shape_b_non_exist_ids_and_next_token():
    page = jobs_page(decode(SHAPE_B)[1])
    assert page.non_exist_job_ids == ["cx", "cy"]
    assert page.next_token == "tok"
    assert output_info(page.jobs[0]) == {
        "Object": "output/b.png",
        "Format": "PNG",
        "Width": 20,
        "Height": 10,
        "Size": 321,
        "Etag": '"bb"',
    }


def test_output_info_is_empty_before_a_result_exists():
    assert output_info(jobs_page(decode(SEED_RESPONSE)[1]).jobs[0]) == {}


def test_error_bodies():
    tag, data = decode(b"<Error><Code>NoSuchBucket</Code><Message>m</Message><RequestId>r</RequestId></Error>")
    assert is_error(tag, data)
    assert data["Code"] == "NoSuchBucket"
    business = b"<Response><Code>InvalidArgument</Code><Message>bad</Message><State>Failed</State></Response>"
    assert is_error(*decode(business))
    assert not is_error(*decode(SEED_RESPONSE))
    assert not is_error(*decode(b""))


def test_empty_list_page():
    page = jobs_page(decode(b"<Response></Response>")[1])
    assert (page.jobs, page.non_exist_job_ids, page.next_token) == ([], [], None)


def test_xml_entities_are_not_expanded():
    bomb = b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]><Response><NextToken>&e;</NextToken></Response>'
    assert "root:" not in str(decode(bomb)[1])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"template_id": None}, "template_id/process_rule"),
        ({"process_rule": "imageMogr2/rotate/90"}, "template_id/process_rule"),
        ({"is_pic_info": True}, "is_pic_info"),
        ({"job_level": 3}, "job_level"),
        ({"job_level": True}, "job_level"),
        ({"user_data": "x" * 1025}, "user_data"),
        ({"user_data": "tab\there"}, "user_data"),
        ({"user_data": "数据"}, "user_data"),
        ({"input_object": ""}, "input_object"),
        ({"input_object": "/abs.jpg"}, "input_object"),
        ({"output_object": "a/../b.jpg"}, "output_object"),
        ({"output_bucket": "NoAppId"}, "output_bucket"),
        ({"output_region": "chongqing"}, "output_region"),
        ({"callback_format": "YAML"}, "callback_format"),
        ({"callback_type": "Kafka"}, "callback_type"),
        ({"callback_type": "TDMQ"}, "callback_mq_config"),
        ({"callback_mq_config": {"MqMode": "Queue", "MqRegion": "bj", "MqName": "q"}}, "callback_mq_config"),
        (
            {"callback_type": "TDMQ", "callback_mq_config": {"MqMode": "Queue", "MqRegion": "xx", "MqName": "q"}},
            "callback_mq_config.MqRegion",
        ),
        ({"callback": "ftp://x"}, "callback"),
        ({"template_id": "t1-bad id"}, "template_id"),
    ],
)
def test_validation_names_the_field(changes, field):
    base = {**COMMON, "template_id": "t10461fe2bd5a649db9022452ec71e0381"}
    with pytest.raises(CloudInfiniteValidationError) as info:
        PicProcessJob(**{**base, **changes}).validated()
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_rendered_template_values_are_normalised():
    job = PicProcessJob(process_rule="imageMogr2/rotate/90", **{**COMMON, "job_level": "2"}, is_pic_info="TRUE")
    checked = job.validated()
    assert (checked.job_level, checked.is_pic_info) == (2, True)
    assert MqConfig.from_value({"mq_mode": "Topic", "mq_region": "gz", "mq_name": "t"}).mq_mode == "Topic"
