"""Input rules, checked before any request is sent.

Each check raises :class:`CloudInfiniteValidationError` naming the field and the rule it
broke, so a DAG author can fix the call without reading the service's documentation.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_ci.exceptions import CloudInfiniteValidationError as Invalid

#: ``name-appid``: the name is lowercase letters, digits and hyphens, the APPID digits.
BUCKET_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]{5,12}$")
BUCKET_MAX_LEN = 60
#: ``<area>-<city>[-<zone>]`` with Tencent Cloud's areas (Asia-Pacific, North and South America,
#: Europe, Middle East), e.g. ``ap-chongqing``, ``na-siliconvalley``, ``ap-shanghai-fsi``. A list
#: of today's regions would refuse tomorrow's, so only the form is checked.
REGION_RE = re.compile(r"^(?:ap|na|sa|eu|me)-[a-z]+(?:-[a-z0-9]+)?$")
OBJECT_KEY_MAX_BYTES = 850
USER_DATA_MAX = 1024
JOB_LEVELS = (0, 1, 2)
CALLBACK_FORMATS = ("JSON", "XML")
CALLBACK_TYPES = ("Url", "TDMQ")
MQ_MODES = ("Queue", "Topic")
MQ_REGIONS = ("sh", "bj", "gz", "cd", "hk")
TEMPLATE_ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")
#: Template names: Chinese or English letters, digits, ``_``, ``-`` and ``*``; at most 64.
TEMPLATE_NAME_RE = re.compile(r"^[\w\-*\u4e00-\u9fff]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def require_text(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise Invalid(field, "must not be empty")
    return value


def bucket(field: str, value: Any) -> str:
    value = require_text(field, value)
    if len(value) > BUCKET_MAX_LEN or not BUCKET_RE.match(value):
        raise Invalid(
            field,
            f"{value!r} is not a bucket in name-APPID form (lowercase letters, digits and hyphens, "
            "then '-' and the numeric APPID, e.g. 'examplebucket-1250000000')",
        )
    return value


def region(field: str, value: Any) -> str:
    value = require_text(field, value)
    if not REGION_RE.match(value):
        raise Invalid(field, f"{value!r} is not a region such as 'ap-chongqing' or 'na-siliconvalley'")
    return value


def object_key(field: str, value: Any) -> str:
    value = require_text(field, value)
    if value.startswith("/"):
        raise Invalid(field, f"object keys do not start with '/': use {value.lstrip('/')!r}")
    if _CONTROL.search(value):
        raise Invalid(field, "object keys must not contain control characters")
    if len(value.encode("utf-8")) > OBJECT_KEY_MAX_BYTES:
        raise Invalid(field, f"object keys are at most {OBJECT_KEY_MAX_BYTES} bytes of UTF-8")
    if any(part in (".", "..") for part in value.split("/")):
        raise Invalid(field, "object keys must not contain '.' or '..' path segments")
    return value


def job_level(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Invalid("job_level", f"must be one of 0, 1, 2, got {value!r}")
    try:
        level = int(value)
    except ValueError:
        level = -1
    if level not in JOB_LEVELS:
        raise Invalid("job_level", f"must be one of 0, 1, 2 (higher runs first), got {value!r}")
    return level


def user_data(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("user_data", f"must be a string, got {type(value).__name__}")
    if len(value) > USER_DATA_MAX:
        raise Invalid("user_data", f"must be at most {USER_DATA_MAX} characters, got {len(value)}")
    if not all(" " <= ch <= "~" for ch in value):
        raise Invalid("user_data", "must be printable ASCII (0x20-0x7E)")
    return value


def number(field: str, value: Any, low: float, high: float, *, integer: bool = False) -> float:
    """A number in [low, high]; also from its rendered-template or JSON-string form."""
    kind = "an integer" if integer else "a number"
    try:
        parsed = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or (integer and not parsed.is_integer()) or not low <= parsed <= high:
        raise Invalid(field, f"must be {kind} from {low:g} to {high:g}, got {value!r}")
    return parsed


def seconds(field: str, value: Any) -> float:
    """A positive duration, as seconds or a ``timedelta``."""
    total = value.total_seconds() if hasattr(value, "total_seconds") else number(field, value, 0, float("inf"))
    if total <= 0:
        raise Invalid(field, f"must be positive, got {value!r}")
    return float(total)


def failure_budget(value: Any) -> int:
    """``max_consecutive_failures``: failed polls in a row that end a wait (1-1000)."""
    return int(number("max_consecutive_failures", value, 1, 1000, integer=True))


def flag(field: str, value: Any) -> bool:
    """A boolean, also from its rendered-template form ``"true"``/``"false"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise Invalid(field, f"must be true or false, got {value!r}")


def one_of(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise Invalid(field, f"must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def template_id(value: Any) -> str:
    value = require_text("template_id", value)
    if not TEMPLATE_ID_RE.match(value):
        raise Invalid("template_id", f"{value!r} is not a template id (letters and digits, e.g. 't1a2b3...')")
    return value


def template_name(value: Any) -> str:
    value = require_text("name", value)
    if not TEMPLATE_NAME_RE.match(value):
        raise Invalid("name", f"{value!r}: at most 64 Chinese or English letters, digits, '_', '-' or '*'")
    return value


def process_rule(value: Any) -> str:
    value = require_text("process_rule", value)
    if _CONTROL.search(value) or " " in value:
        raise Invalid("process_rule", "must not contain spaces or control characters")
    return value


def callback_url(value: Any) -> str:
    value = require_text("callback", value)
    if value == "no":  # CI: "no" suppresses the queue's callback for this job
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid("callback", f"must be an http(s) URL or 'no', got {value!r}")
    return value


def endpoint_url(value: Any) -> str:
    value = require_text("endpoint_url", value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("endpoint_url", f"must be an http:// or https:// URL, got {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise Invalid("endpoint_url", "must be a base URL without path, query or fragment")
    return value.rstrip("/")
