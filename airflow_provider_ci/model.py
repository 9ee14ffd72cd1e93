"""The CI XML model on lxml: the PicProcess submit body, and JobsDetail / list / error parsing.

Parsed values are plain JSON-serialisable dicts keyed by the API's own element names, so
they can go to XCom and trigger events unchanged. Typing is by element name: the fields
the API documents as numbers become ints, ``IsPicInfo`` a bool, an unset time (``-``) None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from lxml import etree

from airflow_provider_ci import validation as check
from airflow_provider_ci.exceptions import CloudInfiniteValidationError

TAG = "PicProcess"
#: Elements that repeat, so they always parse to lists (even with one or zero members).
LIST_ELEMENTS = frozenset({"JobsDetail", "NonExistJobIds", "CosHeaders", "TemplateList", "QueueList", "PicBucketList"})
INT_ELEMENTS = frozenset({"Width", "Height", "Size", "Quality", "Orientation", "JobLevel", "TotalCount"})
BOOL_ELEMENTS = frozenset({"IsPicInfo"})
TIME_ELEMENTS = frozenset({"CreationTime", "StartTime", "EndTime", "CreateTime", "UpdateTime"})

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True)


class MalformedResponseError(ValueError):
    """The body is not the XML the API documents."""


@dataclass(frozen=True)
class MqConfig:
    """TDMQ target of a job's callback (``CallBackMqConfig``)."""

    mq_mode: str
    mq_region: str
    mq_name: str

    @classmethod
    def from_value(cls, value: Any) -> MqConfig:
        """Accept an MqConfig or a mapping with MqMode/MqRegion/MqName (or snake_case) keys."""
        if isinstance(value, MqConfig):
            return value
        if not isinstance(value, Mapping):
            raise CloudInfiniteValidationError(
                "callback_mq_config", "must be a mapping with MqMode, MqRegion and MqName"
            )
        get = lambda api, snake: value.get(api, value.get(snake))  # noqa: E731
        return cls(
            mq_mode=check.one_of("callback_mq_config.MqMode", get("MqMode", "mq_mode"), check.MQ_MODES),
            mq_region=check.one_of("callback_mq_config.MqRegion", get("MqRegion", "mq_region"), check.MQ_REGIONS),
            mq_name=check.require_text("callback_mq_config.MqName", get("MqName", "mq_name")),
        )


@dataclass(frozen=True)
class PicProcessJob:
    """One PicProcess job as submitted with ``POST /jobs``; :meth:`validated` checks every field."""

    input_object: str
    output_object: str
    output_bucket: str
    output_region: str
    template_id: str | None = None
    process_rule: str | None = None
    is_pic_info: bool | str | None = None  # "true"/"false" as rendered from a template
    user_data: str | None = None
    job_level: int | str | None = None  # "0".."2" as rendered from a template
    callback: str | None = None
    callback_format: str | None = None
    callback_type: str | None = None
    callback_mq_config: MqConfig | None = field(default=None)

    def validated(self) -> PicProcessJob:
        """A copy with every field checked and normalised; raises on the first bad one."""
        if (self.template_id is None) == (self.process_rule is None):
            raise CloudInfiniteValidationError(
                "template_id/process_rule",
                "give exactly one: template_id (a saved template) or process_rule (e.g. 'imageMogr2/rotate/90')",
            )
        if self.template_id is not None and self.is_pic_info is not None:
            raise CloudInfiniteValidationError(
                "is_pic_info", "applies to process_rule only; a template sets its own IsPicInfo"
            )
        callback_type = self.callback_type
        if callback_type is not None:
            callback_type = check.one_of("callback_type", callback_type, check.CALLBACK_TYPES)
        mq = None if self.callback_mq_config is None else MqConfig.from_value(self.callback_mq_config)
        if callback_type == "TDMQ" and mq is None:
            raise CloudInfiniteValidationError("callback_mq_config", "is required when callback_type is TDMQ")
        if mq is not None and callback_type != "TDMQ":
            raise CloudInfiniteValidationError("callback_mq_config", "is only used when callback_type is TDMQ")
        return replace(
            self,
            input_object=check.object_key("input_object", self.input_object),
            output_object=check.object_key("output_object", self.output_object),
            output_bucket=check.bucket("output_bucket", self.output_bucket),
            output_region=check.region("output_region", self.output_region),
            template_id=None if self.template_id is None else check.template_id(self.template_id),
            process_rule=None if self.process_rule is None else check.process_rule(self.process_rule),
            is_pic_info=None if self.is_pic_info is None else check.flag("is_pic_info", self.is_pic_info),
            user_data=None if self.user_data is None else check.user_data(self.user_data),
            job_level=None if self.job_level is None else check.job_level(self.job_level),
            callback=None if self.callback is None else check.callback_url(self.callback),
            callback_format=None
            if self.callback_format is None
            else check.one_of("callback_format", self.callback_format, check.CALLBACK_FORMATS),
            callback_type=callback_type,
            callback_mq_config=mq,
        )

    def to_xml(self) -> bytes:
        """The ``<Request>`` body, elements in the order of the API's own samples."""
        root = etree.Element("Request")
        _add(root, "Tag", TAG)
        _add(etree.SubElement(root, "Input"), "Object", self.input_object)
        operation = etree.SubElement(root, "Operation")
        if self.template_id is not None:
            _add(operation, "TemplateId", self.template_id)
        else:
            pic = etree.SubElement(operation, "PicProcess")
            if self.is_pic_info is not None:
                _add(pic, "IsPicInfo", "true" if self.is_pic_info else "false")
            _add(pic, "ProcessRule", self.process_rule)
        output = etree.SubElement(operation, "Output")
        _add(output, "Region", self.output_region)
        _add(output, "Bucket", self.output_bucket)
        _add(output, "Object", self.output_object)
        _add(operation, "UserData", self.user_data)
        _add(operation, "JobLevel", None if self.job_level is None else str(self.job_level))
        _add(root, "CallBack", self.callback)
        _add(root, "CallBackFormat", self.callback_format)
        _add(root, "CallBackType", self.callback_type)
        if self.callback_mq_config is not None:
            mq = etree.SubElement(root, "CallBackMqConfig")
            _add(mq, "MqMode", self.callback_mq_config.mq_mode)
            _add(mq, "MqRegion", self.callback_mq_config.mq_region)
            _add(mq, "MqName", self.callback_mq_config.mq_name)
        return bytes(etree.tostring(root, encoding="utf-8"))


#: A job's fields, declared once (by :class:`PicProcessJob`): the hook's submit arguments and the
#: operators' templated fields are these, plus where to send the job.
JOB_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PicProcessJob))
SUBMIT_FIELDS: tuple[str, ...] = ("bucket", "region", *JOB_FIELDS)


def template_xml(name: str, process_rule: str, is_pic_info: bool | None) -> bytes:
    """The body of ``POST /template`` and ``PUT /template/<id>`` for a PicProcess template."""
    root = etree.Element("Request")
    _add(root, "Tag", TAG)
    _add(root, "Name", check.template_name(name))
    pic = etree.SubElement(root, "PicProcess")
    if is_pic_info is not None:
        _add(pic, "IsPicInfo", "true" if check.flag("is_pic_info", is_pic_info) else "false")
    _add(pic, "ProcessRule", check.process_rule(process_rule))
    return bytes(etree.tostring(root, encoding="utf-8"))


def _add(parent: etree._Element, tag: str, text: str | None) -> None:
    if text is not None:
        etree.SubElement(parent, tag).text = text


@dataclass(frozen=True)
class JobsPage:
    """A parsed ``GET /jobs`` (by id or listing) or ``POST /jobs`` response."""

    jobs: list[dict[str, Any]]
    non_exist_job_ids: list[str]
    next_token: str | None


def parse_xml(body: bytes) -> etree._Element:
    try:
        return etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MalformedResponseError(f"response body is not well-formed XML: {exc}") from None


def element_to_dict(element: etree._Element) -> dict[str, Any]:
    """Convert an element's children to a dict, typed by element name (see module docstring)."""
    result: dict[str, Any] = {}
    for child in element:
        if not isinstance(child.tag, str):  # comments, processing instructions
            continue
        name = child.tag
        value = element_to_dict(child) if len(child) else _scalar(name, child.text)
        if name in LIST_ELEMENTS:
            result.setdefault(name, []).append(value)
        elif name in result:  # an undocumented repeat: keep every value rather than the last
            previous = result[name]
            result[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            result[name] = value
    return result


def _scalar(name: str, text: str | None) -> Any:
    text = None if text is None else text.strip()
    if not text:
        return None
    if name in TIME_ELEMENTS and text == "-":
        return None
    if name in INT_ELEMENTS:
        try:
            return int(text)
        except ValueError:
            return text
    if name in BOOL_ELEMENTS and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def jobs_page(data: Mapping[str, Any]) -> JobsPage:
    """The jobs of a decoded ``<Response>`` (submit, get by ids, or list)."""
    jobs = data.get("JobsDetail", [])
    if not all(isinstance(job, dict) and job.get("JobId") for job in jobs):
        raise MalformedResponseError("a JobsDetail element has no JobId")
    missing = [str(job_id) for job_id in data.get("NonExistJobIds", []) if job_id]
    return JobsPage(jobs=list(jobs), non_exist_job_ids=missing, next_token=data.get("NextToken"))


def decode(body: bytes) -> tuple[str, dict[str, Any]]:
    """(root tag, fields) of a response body; an empty body decodes to ``("", {})``."""
    if not body.strip():
        return "", {}
    root = parse_xml(body)
    return str(root.tag), element_to_dict(root)


def is_error(tag: str, data: Mapping[str, Any]) -> bool:
    """An ``<Error>``, or a business error: a ``<Response>`` with its own non-Success Code and no jobs."""
    if tag == "Error":
        return True
    return tag == "Response" and "JobsDetail" not in data and data.get("Code") not in (None, "Success")


def output_info(detail: Mapping[str, Any]) -> dict[str, Any]:
    """Object, Format, Width, Height, Size, Etag of a finished job's output, whichever result shape.

    The service documents two shapes for ``PicProcessResult`` (ci_api.md §2.5): the samples'
    ``ObjectName`` + ``ProcessResult`` and the table's ``ProcessResults/Object``. Empty when none.
    """
    operation = detail.get("Operation") or {}
    result = operation.get("PicProcessResult") or {}
    if not result:
        return {}
    processed = result.get("ProcessResult") or (result.get("ProcessResults") or {}).get("Object") or {}
    if isinstance(processed, list):
        processed = processed[0] if processed else {}
    obj = result.get("ObjectName") or processed.get("Key") or (operation.get("Output") or {}).get("Object")
    return {
        "Object": obj,
        "Format": processed.get("Format"),
        "Width": processed.get("Width"),
        "Height": processed.get("Height"),
        "Size": processed.get("Size"),
        "Etag": processed.get("Etag") or processed.get("ETag"),
    }
