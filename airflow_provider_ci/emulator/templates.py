"""PicProcess templates: a named, stored ``ProcessRule`` + ``IsPicInfo`` that jobs refer to by id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from .xmlio import format_time

CATEGORY = "Custom"


@dataclass(eq=False)
class Template:
    template_id: str
    bucket: str
    name: str
    rule: str
    is_pic_info: bool
    created: float
    updated: float

    def detail(self) -> dict[str, Any]:
        return {
            "Tag": "PicProcess",
            "TemplateId": self.template_id,
            "Name": self.name,
            "BucketId": self.bucket,
            "Category": CATEGORY,
            "PicProcess": {"IsPicInfo": str(self.is_pic_info).lower(), "ProcessRule": self.rule},
            "CreateTime": format_time(self.created),
            "UpdateTime": format_time(self.updated),
        }


class TemplateStore:
    """Templates per bucket in creation order (event-loop thread only)."""

    def __init__(self) -> None:
        self._by_bucket: dict[str, dict[str, Template]] = {}

    def create(self, bucket: str, name: str, rule: str, is_pic_info: bool, now: float) -> Template:
        template = Template(f"t1{uuid.uuid4().hex}", bucket, name, rule, is_pic_info, now, now)
        self._by_bucket.setdefault(bucket, {})[template.template_id] = template
        return template

    def get(self, bucket: str, template_id: str) -> Template | None:
        return self._by_bucket.get(bucket, {}).get(template_id)

    def delete(self, bucket: str, template_id: str) -> bool:
        return self._by_bucket.get(bucket, {}).pop(template_id, None) is not None

    def all(self, bucket: str) -> list[Template]:
        return list(self._by_bucket.get(bucket, {}).values())
