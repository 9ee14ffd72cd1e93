"""Signature and token checks: what is rejected, with which code, and that it changes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from emulator_client import (
    BUCKET,
    REGION,
    CiClient,
    cos_client,
    error_code,
    job_body,
    make_emulator,
    xml_text,
)
from qcloud_cos import CosConfig, CosS3Auth
from qcloud_cos.cos_exception import CosServiceError

from airflow_provider_ci.emulator import Emulator

TOKEN = "sts-session-token-for-tests"
BODY = job_body().encode()


def tamper(signature_value: str) -> str:
    head, _, sig = signature_value.rpartition("=")
    return f"{head}={'0' if sig[0] != '0' else '1'}{sig[1:]}"


def signed(ci: CiClient, *, start: int | None = None, lifetime: int = 600) -> dict[str, str]:
    return ci.headers("POST", "/jobs", None, BODY, start=start, lifetime=lifetime)


def replaced(headers: dict[str, str], name: str, value: str | None) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name} | ({name: value} if value is not None else {})


# Each case: the headers of a POST /jobs made by a client holding the emulator's credentials.
REJECTIONS: dict[str, tuple[Callable[[CiClient], dict[str, str]], str, str]] = {
    "unsigned": (
        lambda ci: replaced(signed(ci), "Authorization", None),
        "AccessDenied",
        "Request has no Authorization",
    ),
    "tampered signature": (
        lambda ci: replaced(signed(ci), "Authorization", tamper(signed(ci)["Authorization"])),
        "SignatureDoesNotMatch",
        "signature",
    ),
    "signed header changed": (
        lambda ci: replaced(signed(ci), "Content-Type", "text/plain"),
        "SignatureDoesNotMatch",
        "signature",
    ),
    "expired": (lambda ci: signed(ci, start=int(time.time()) - 7200, lifetime=3600), "AccessDenied", "expired"),
    "not yet valid": (lambda ci: signed(ci, start=int(time.time()) + 600), "AccessDenied", "future"),
    "malformed": (
        lambda ci: replaced(signed(ci), "Authorization", "q-sign-algorithm=sha1"),
        "AccessDenied",
        "malformed",
    ),
    "unknown key": (
        lambda ci: signed(CiClient(ci.emulator, secret_id="AKIDunknown")),
        "InvalidAccessKeyId",
        "q-ak",
    ),
    "wrong secret": (
        lambda ci: signed(CiClient(ci.emulator, secret_key="wrong")),
        "SignatureDoesNotMatch",
        "signature",
    ),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_rejected_submit_answers_403_and_creates_no_job(emulator: Emulator, ci: CiClient, case: str) -> None:
    make_headers, code, message = REJECTIONS[case]

    response = ci.send("POST", "/jobs", make_headers(ci), body=BODY)

    assert response.status_code == 403
    assert error_code(response) == code
    assert message in xml_text(response.content, "Message")
    assert response.headers["x-ci-request-id"]
    assert response.headers["x-ci-trace-id"]
    assert emulator.jobs() == []
    assert [record.status for record in emulator.requests] == [403]


def test_a_listed_query_parameter_missing_from_the_request_is_a_mismatch(ci: CiClient) -> None:
    headers = ci.headers("GET", "/jobs", {"tag": "PicProcess", "size": "5"})

    response = ci.send("GET", "/jobs", headers, {"tag": "PicProcess"})

    assert (response.status_code, error_code(response)) == (403, "SignatureDoesNotMatch")
    assert "size" in xml_text(response.content, "Message")


def test_the_official_sdk_signer_is_accepted_on_the_ci_host(emulator: Emulator, ci: CiClient) -> None:
    config = CosConfig(Region=REGION, SecretId=emulator.secret_id, SecretKey=emulator.secret_key)
    params = {"tag": "PicProcess", "orderByTime": "Desc", "states": "All", "size": "10", "nextToken": ""}
    auth = CosS3Auth(config, key="/jobs", params=params)

    response = requests.get(f"{emulator.url}/jobs", params=params, headers={"Host": ci.host}, auth=auth, timeout=5)

    assert response.status_code == 200, response.text


def test_cos_object_calls_through_the_official_sdk(emulator: Emulator) -> None:
    client = cos_client(emulator)

    put = client.put_object(Bucket=BUCKET, Key="dir/中文 name.txt", Body=b"hello")
    got = client.get_object(Bucket=BUCKET, Key="dir/中文 name.txt")
    head = client.head_object(Bucket=BUCKET, Key="dir/中文 name.txt")
    listing = client.list_objects(Bucket=BUCKET, Prefix="dir/")

    assert got["Body"].get_raw_stream().read() == b"hello"
    assert put["ETag"] == head["ETag"] == '"5d41402abc4b2a76b9719d911017c592"'
    assert head["Content-Length"] == "5"
    assert [entry["Key"] for entry in listing["Contents"]] == ["dir/中文 name.txt"]
    assert emulator.get_object(BUCKET, "dir/中文 name.txt") == b"hello"
    client.delete_object(Bucket=BUCKET, Key="dir/中文 name.txt")
    with pytest.raises(FileNotFoundError):
        emulator.get_object(BUCKET, "dir/中文 name.txt")


def test_cos_listing_pages_with_marker(emulator: Emulator) -> None:
    client = cos_client(emulator)
    for key in ("p/a", "p/b", "p/c"):
        emulator.put_object(BUCKET, key, b"x")

    first = client.list_objects(Bucket=BUCKET, Prefix="p/", MaxKeys=2)
    rest = client.list_objects(Bucket=BUCKET, Prefix="p/", Marker=first["NextMarker"])

    assert [entry["Key"] for entry in first["Contents"]] == ["p/a", "p/b"]
    assert first["IsTruncated"] == "true"
    assert [entry["Key"] for entry in rest["Contents"]] == ["p/c"]


def test_cos_errors_carry_resource_and_cos_request_id(emulator: Emulator) -> None:
    client = cos_client(emulator)

    with pytest.raises(CosServiceError) as missing:
        client.get_object(Bucket=BUCKET, Key="absent.jpg")

    assert missing.value.get_status_code() == 404
    assert missing.value.get_error_code() == "NoSuchKey"
    assert missing.value.get_resource_location() == f"{BUCKET}.cos.{REGION}.myqcloud.com/absent.jpg"
    assert missing.value.get_request_id()


def test_cos_put_with_a_wrong_key_writes_nothing(emulator: Emulator) -> None:
    client = cos_client(emulator, secret_key="not-the-key")

    with pytest.raises(CosServiceError) as rejected:
        client.put_object(Bucket=BUCKET, Key="forged.txt", Body=b"evil")

    assert rejected.value.get_error_code() == "SignatureDoesNotMatch"
    with pytest.raises(FileNotFoundError):
        emulator.get_object(BUCKET, "forged.txt")


def test_unknown_bucket_and_unknown_host(emulator: Emulator) -> None:
    missing_bucket = CiClient(emulator, "nosuch-1250000000").call("GET", "/jobs", {"tag": "PicProcess"})
    other_host = CiClient(emulator, host="example.com").call("GET", "/jobs")

    assert (missing_bucket.status_code, error_code(missing_bucket)) == (404, "NoSuchBucket")
    assert (other_host.status_code, error_code(other_host)) == (400, "InvalidURI")


@pytest.fixture(scope="module")
def token_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with make_emulator(tmp_path_factory.mktemp("token"), token=TOKEN) as emulator:
        yield emulator


@pytest.fixture
def tokened(token_emulator: Emulator) -> Emulator:
    token_emulator.reset()
    return token_emulator


@pytest.mark.parametrize("header", ["x-ci-security-token", "x-cos-security-token"])
def test_token_signed_in_either_header_is_accepted_on_the_ci_host(tokened: Emulator, header: str) -> None:
    ci = CiClient(tokened, token=TOKEN, token_header=header)

    assert ci.submit().status_code == 200
    assert len(tokened.jobs()) == 1


@pytest.mark.parametrize(
    ("token", "sign_token", "code"),
    [(None, True, "AccessDenied"), ("wrong-token", True, "InvalidToken"), (TOKEN, False, "AccessDenied")],
)
def test_token_rejections_create_no_job(tokened: Emulator, token: str | None, sign_token: bool, code: str) -> None:
    ci = CiClient(tokened, token=token)
    headers = signed(ci)
    if not sign_token:  # sign without the token, then add it
        headers = signed(CiClient(tokened)) | {"x-ci-security-token": TOKEN}

    response = ci.send("POST", "/jobs", headers, body=BODY)

    assert (response.status_code, error_code(response)) == (403, code)
    assert tokened.jobs() == []


def test_cos_host_needs_the_cos_token_header(tokened: Emulator) -> None:
    with_token = cos_client(tokened, token=TOKEN)
    with_token.put_object(Bucket=BUCKET, Key="ok.txt", Body=b"ok")
    assert tokened.get_object(BUCKET, "ok.txt") == b"ok"

    for client in (cos_client(tokened), cos_client(tokened, token="wrong")):
        with pytest.raises(CosServiceError) as rejected:
            client.put_object(Bucket=BUCKET, Key="no.txt", Body=b"no")
        assert rejected.value.get_status_code() == 403
    with pytest.raises(FileNotFoundError):
        tokened.get_object(BUCKET, "no.txt")


def test_connection_extra_carries_the_token(tokened: Emulator, tmp_path: Path) -> None:
    assert tokened.connection_extra(BUCKET, REGION)["token"] == TOKEN
    with make_emulator(tmp_path) as plain:
        assert "token" not in plain.connection_extra(BUCKET, REGION)
