"""The COS v5 signer against the official vectors and, case by case, cos-python-sdk-v5's own signer."""

from __future__ import annotations

import random
import string
from types import SimpleNamespace
from unittest import mock
from urllib.parse import quote

import pytest
import qcloud_cos.cos_auth as sdk_auth
from qcloud_cos import CosConfig

from airflow_provider_ci import signing

# reference/ci_api.md §8: the two vectors of the COS signing page and the Go SDK's unit test.
DOC_SECRET_ID = "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q"
DOC_SECRET_KEY = "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz"
DOC_HOST = "examplebucket-1250000000.cos.ap-beijing.myqcloud.com"


def test_official_put_object_vector():
    headers = {
        "Content-Length": "13",
        "Content-MD5": "mQ/fVh815F3k6TAUm8m0eg==",
        "Content-Type": "text/plain",
        "Date": "Thu, 16 May 2019 06:45:51 GMT",
        "Host": DOC_HOST,
        "x-cos-acl": "private",
        "x-cos-grant-read": 'uin="100000000011"',
    }
    key_time = "1557989151;1557996351"
    http = signing.http_string("PUT", "/exampleobject(腾讯云)", {}, headers)
    assert signing.sign_key(DOC_SECRET_KEY, key_time) == "eb2519b498b02ac213cb1f3d1a3d27a3b3c9bc5f"
    assert signing.string_to_sign(key_time, http).split("\n")[2] == "8b2751e77f43a0995d6e9eb9477f4b685cca4172"
    auth = signing.authorization(
        method="PUT",
        path="/exampleobject(腾讯云)",
        params={},
        headers=headers,
        secret_id=DOC_SECRET_ID,
        secret_key=DOC_SECRET_KEY,
        start=1557989151,
        end=1557996351,
    )
    assert auth == (
        f"q-sign-algorithm=sha1&q-ak={DOC_SECRET_ID}&q-sign-time={key_time}&q-key-time={key_time}"
        "&q-header-list=content-length;content-md5;content-type;date;host;x-cos-acl;x-cos-grant-read"
        "&q-url-param-list=&q-signature=3b8851a11a569213c17ba8fa7dcf2abec6935172"
    )


def test_official_get_object_vector():
    params = {"response-content-type": "application/octet-stream", "response-cache-control": "max-age=600"}
    headers = {"Date": "Thu, 16 May 2019 06:55:53 GMT", "Host": DOC_HOST}
    key_time = "1557989753;1557996953"
    http = signing.http_string("GET", "/exampleobject(腾讯云)", params, headers)
    assert signing.sign_key(DOC_SECRET_KEY, key_time) == "937914bf490e9e8c189836aad2052e4feeb35eaf"
    assert signing.string_to_sign(key_time, http).split("\n")[2] == "54ecfe22f59d3514fdc764b87a32d8133ea611e6"
    auth = signing.authorization(
        method="GET",
        path="/exampleobject(腾讯云)",
        params=params,
        headers=headers,
        secret_id=DOC_SECRET_ID,
        secret_key=DOC_SECRET_KEY,
        start=1557989753,
        end=1557996953,
    )
    assert "&q-url-param-list=response-cache-control;response-content-type&" in auth
    assert auth.endswith("&q-signature=01681b8c9d798a678e43b685a9f1bba0f6c0e012")


def test_go_sdk_vector():
    headers = {
        "Host": "testbucket-125000000.cos.ap-guangzhou.myqcloud.com",
        "x-cos-content-sha1": "db8ac1c259eb89d4a131b253bacfca5f319d54f2",
        "x-cos-stroage-class": "nearline",
    }
    sig = signing.signature(
        method="PUT",
        path="/testfile2",
        params={},
        headers=headers,
        secret_key="AKIDZfbOA78asKUYBcXFrJD0a1ICvR98JM",
        key_time="1480932292;1481012292",
    )
    assert sig == "ce4ac0ecbcdb30538b3fee0a97cc6389694ce53a"


# -- randomized cross-check against cos-python-sdk-v5 ---------------------------------------------

RESERVED = "!*'();:@&=+$,/?#[]% \"<>{}|\\^`"
UNICODE = "腾讯云数据万象éßø✓😀"
ALPHABET = string.ascii_letters + string.digits + "-_.~" + RESERVED + UNICODE


def _text(rng: random.Random, low: int, high: int, alphabet: str = ALPHABET) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def _case(rng: random.Random) -> dict:
    method = rng.choice(["GET", "PUT", "POST", "DELETE", "HEAD"])
    path = "/" + "/".join(_text(rng, 1, 8) for _ in range(rng.randint(1, 4)))
    params: dict[str, str | None] = {}
    for _ in range(rng.randint(0, 5)):
        key = _text(rng, 1, 10)
        if key.lower() not in {k.lower() for k in params}:  # the SDK keys its dict by lowercased name
            params[key] = rng.choice([None, "", _text(rng, 0, 12)])
    host = f"bucket{rng.randint(0, 99)}-1250000000.{rng.choice(['ci', 'cos'])}.ap-chongqing.myqcloud.com"
    headers = {"Host": host}
    meta = "x-cos-meta-" + _text(rng, 1, 6, string.ascii_lowercase)
    pool = [
        *sorted(signing.SIGNED_HEADER_NAMES - {"host"}),
        meta,
        "x-ci-security-token",
        "x-cos-acl",
        "User-Agent",
        "Date",
    ]
    for name in rng.sample(pool, rng.randint(0, 6)):
        value_alphabet = string.printable.strip() + " " + UNICODE
        headers[rng.choice([name, name.upper(), name.title()])] = _text(rng, 0, 20, value_alphabet)
    return {"method": method, "path": path, "params": params, "headers": headers}


def _sdk_authorization(case: dict, secret_id: str, secret_key: str, now: int, expire: int) -> str:
    conf = CosConfig(Region="ap-chongqing", SecretId=secret_id, SecretKey=secret_key)
    sdk_params = {k: ("" if v is None else v) for k, v in case["params"].items()}
    auth = sdk_auth.CosS3Auth(conf, key=case["path"], params=sdk_params, expire=expire)
    url = "https://" + case["headers"]["Host"] + quote(case["path"].encode(), safe="/")
    request = SimpleNamespace(method=case["method"], url=url, headers=dict(case["headers"]))
    with mock.patch.object(sdk_auth, "time") as fake_time:
        fake_time.time.return_value = now
        auth(request)
    return request.headers["Authorization"]


CROSS_CHECK_CASES = 300


def test_randomized_cross_check_with_cos_python_sdk_v5():
    rng = random.Random(20261127)
    checked = 0
    for _ in range(CROSS_CHECK_CASES):
        case = _case(rng)
        secret_id = "AKID" + _text(rng, 10, 30, string.ascii_letters + string.digits)
        secret_key = _text(rng, 16, 40, string.ascii_letters + string.digits + "+/=")
        now, expire = rng.randint(1_500_000_000, 1_900_000_000), rng.randint(60, 10_000)
        expected = _sdk_authorization(case, secret_id, secret_key, now, expire)
        mine = signing.authorization(
            method=case["method"],
            path=case["path"],
            params=case["params"],
            headers=signing.signable_headers(case["headers"]),
            secret_id=secret_id,
            secret_key=secret_key,
            start=now - 60,
            end=now + expire,
        )
        assert mine == expected, case
        checked += 1
    assert checked == CROSS_CHECK_CASES


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("q-sign-algorithm=sha1&q-ak=a", "lacks"),
        (
            "q-sign-algorithm=sha1&q-ak=a&q-sign-time=x&q-key-time=x&q-header-list=&q-url-param-list=&q-signature=0",
            "q-sign-time",
        ),
        (
            "q-sign-algorithm=sha1&q-ak=a&q-sign-time=9;1&q-key-time=9;1&q-header-list=&q-url-param-list=&q-signature=0",
            "starts after",
        ),
    ],
)
def test_parse_authorization_rejects_malformed(value, message):
    with pytest.raises(ValueError, match=message):
        signing.parse_authorization(value)


def test_parse_authorization_round_trip():
    auth = signing.authorization(
        method="GET",
        path="/jobs",
        params={"tag": "PicProcess"},
        headers={"Host": "h"},
        secret_id="AKIDx",
        secret_key="k",
        start=10,
        end=20,
    )
    parsed = signing.parse_authorization(auth)
    assert (parsed.secret_id, parsed.window, parsed.header_list, parsed.param_list) == (
        "AKIDx",
        (10, 20),
        ("host",),
        ("tag",),
    )
