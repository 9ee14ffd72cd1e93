"""CloudInfiniteJobLink: the console URL from the persisted coordinates; empty, never an error, otherwise."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from airflow.sdk.execution_time.xcom import XCom

from airflow_provider_ci.links.job import CloudInfiniteJobLink, console_url
from airflow_provider_ci.operators.pic_process import CloudInfinitePicProcessOperator
from tests.test_operator import FakeTI

# XCom reads need a running task's supervisor; here XCom.get_value is the one stand-in.


def test_link_is_listed_on_the_operator_and_named():
    assert CloudInfiniteJobLink.name == "Tencent CI Job"
    assert any(isinstance(link, CloudInfiniteJobLink) for link in CloudInfinitePicProcessOperator.operator_extra_links)


def test_persist_then_get_link(monkeypatch):
    ti = FakeTI()
    CloudInfiniteJobLink.persist({"ti": ti}, job_id="c123", bucket="pics-1250000000", region="ap-guangzhou")
    ((key, value),) = ti.pushed
    monkeypatch.setattr(XCom, "get_value", lambda **kwargs: value if kwargs["key"] == key else None)
    url = CloudInfiniteJobLink().get_link(None, ti_key=None)
    assert url == console_url("pics-1250000000", "ap-guangzhou")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "console.cloud.tencent.com", "/ci/bucket")
    # Only the documented parameters: the job itself is shown by the "Tencent CI" tab, not guessed here.
    assert parse_qs(parts.query) == {"bucket": ["pics-1250000000"], "region": ["ap-guangzhou"]}


@pytest.mark.parametrize("stored", [None, {}, {"job_id": "c1"}, "garbage"])
def test_no_job_yet_or_bad_value_gives_an_empty_link(monkeypatch, stored):
    monkeypatch.setattr(XCom, "get_value", lambda **kwargs: stored)
    assert CloudInfiniteJobLink().get_link(None, ti_key=None) == ""


def test_a_failing_xcom_read_gives_an_empty_link(monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("no supervisor")

    monkeypatch.setattr(XCom, "get_value", boom)
    assert CloudInfiniteJobLink().get_link(None, ti_key=None) == ""
