"""Signed HTTP clients and request builders for the emulator's own tests.

CI calls are built with ``requests`` and signed by ``airflow_provider_ci.signing``; COS object
calls go through cos-python-sdk-v5's ``CosS3Client``, so the emulator's verifier is checked
against the official SDK's signer too.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from lxml import etree
from PIL import Image
from qcloud_cos import CosConfig, CosS3Client

from airflow_provider_ci import signing
from airflow_provider_ci.emulator import Emulator

BUCKET = "examplebucket-1250000000"
OUT_BUCKET = "outputs-1250000000"
REGION = "ap-chongqing"
TERMINAL = ("Success", "Failed", "Cancel")


class CiClient:
    """Signed requests to the CI host of one bucket, through the emulator's URL."""

    def __init__(
        self,
        emulator: Emulator,
        bucket: str = BUCKET,
        *,
        secret_id: str | None = None,
        secret_key: str | None = None,
        token: str | None = None,
        token_header: str = "x-ci-security-token",
        host: str | None = None,
    ) -> None:
        self.emulator = emulator
        self.url = emulator.url
        self.host = host or f"{bucket}.ci.{REGION}.myqcloud.com"
        self.secret_id = secret_id or emulator.secret_id
        self.secret_key = secret_key or emulator.secret_key
        self.token = token
        self.token_header = token_header
        self.session = requests.Session()

    def headers(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        body: bytes = b"",
        *,
        start: int | None = None,
        lifetime: int = 600,
    ) -> dict[str, str]:
        headers = {"Host": self.host}
        if body:
            headers |= {"Content-Type": "application/xml", "Content-Length": str(len(body))}
        if self.token is not None:
            headers[self.token_header] = self.token
        start = int(time.time()) - 60 if start is None else start
        headers["Authorization"] = signing.authorization(
            method=method,
            path=path,
            params=dict(params or {}),
            headers=signing.signable_headers(headers),
            secret_id=self.secret_id,
            secret_key=self.secret_key,
            start=start,
            end=start + lifetime,
        )
        return headers

    def call(
        self, method: str, path: str, params: Mapping[str, str] | None = None, body: bytes | str = b""
    ) -> requests.Response:
        data = body.encode() if isinstance(body, str) else body
        return self.send(method, path, self.headers(method, path, params, data), params, data)

    def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> requests.Response:
        return self.session.request(
            method, self.url + path, params=params, data=body, headers=dict(headers), timeout=10
        )

    def submit(self, **fields: Any) -> requests.Response:
        return self.call("POST", "/jobs", body=job_body(**fields))

    def submit_ok(self, **fields: Any) -> str:
        response = self.submit(**fields)
        assert response.status_code == 200, response.text
        return xml_text(response.text, "JobId")

    def job(self, job_id: str) -> str:
        response = self.call("GET", f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.text

    def wait(self, job_id: str, states: tuple[str, ...] = TERMINAL, timeout: float = 10.0) -> str:
        """Poll until the job is in one of ``states`` (default: terminal); returns that ``<Response>``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.job(job_id)
            if xml_text(text, "State") in states:
                return text
            time.sleep(0.01)
        raise AssertionError(f"job {job_id} did not reach {states} within {timeout} s")


def job_body(
    input_object: str = "in/pic.jpg",
    output_object: str = "out/pic.jpg",
    *,
    rule: str | None = "imageMogr2/thumbnail/!50p",
    is_pic_info: str | None = "true",
    template_id: str | None = None,
    output_bucket: str = BUCKET,
    user_data: str | None = "This is my data.",
    job_level: str | None = None,
    tag: str = "PicProcess",
    extra: str = "",
) -> str:
    """A ``POST /jobs`` body shaped like the seed's samples."""
    operation = ""
    if template_id is not None:
        operation += f"<TemplateId>{template_id}</TemplateId>"
    if rule is not None:
        info = f"<IsPicInfo>{is_pic_info}</IsPicInfo>" if is_pic_info is not None else ""
        operation += f"<PicProcess>{info}<ProcessRule>{rule}</ProcessRule></PicProcess>"
    operation += (
        f"<Output><Region>{REGION}</Region><Bucket>{output_bucket}</Bucket><Object>{output_object}</Object></Output>"
    )
    if user_data is not None:
        operation += f"<UserData>{user_data}</UserData>"
    if job_level is not None:
        operation += f"<JobLevel>{job_level}</JobLevel>"
    return (
        f"<Request><Tag>{tag}</Tag><Input><Object>{input_object}</Object></Input>"
        f"<Operation>{operation}</Operation>{extra}</Request>"
    )


def parse(text: str | bytes) -> etree._Element:
    return etree.fromstring(text.encode() if isinstance(text, str) else text)


def xml_text(text: str | bytes, path: str) -> str:
    """Text of the first element at ``.//path`` (``""`` for an empty one); fails if absent."""
    found = parse(text).find(f".//{path}")
    assert found is not None, f"no <{path}> in {text!r}"
    return found.text or ""


def xml_all(text: str | bytes, path: str) -> list[str]:
    return [element.text or "" for element in parse(text).findall(f".//{path}")]


def error_code(response: requests.Response) -> str:
    """The ``Code`` of an error answer, after checking it has the CI/COS error shape."""
    root = parse(response.content)
    assert root.tag == "Error", response.text
    assert response.headers["Content-Type"].startswith("application/xml")
    return root.findtext("Code") or ""


def jpeg(size: tuple[int, int] = (8, 6), color: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def cos_client(emulator: Emulator, token: str | None = None, secret_key: str | None = None) -> CosS3Client:
    port = int(emulator.url.rsplit(":", 1)[1])
    config = CosConfig(
        Region=REGION,
        SecretId=emulator.secret_id,
        SecretKey=secret_key or emulator.secret_key,
        Token=token,
        Scheme="http",
        IP="127.0.0.1",
        Port=port,
    )
    return CosS3Client(config, retry=0)


def make_emulator(path: Path, **options: Any) -> Emulator:
    """A fast emulator for tests of its API; no rate limit, which only its own tests turn on."""
    defaults: dict[str, Any] = {"queue_delay": 0.05, "run_time": 0.05, "buckets": [BUCKET, OUT_BUCKET], "qps_limit": 0}
    return Emulator(path, **(defaults | options))
