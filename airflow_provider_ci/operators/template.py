"""PicProcess templates as code: create or update one by name, idempotently, or delete it.

A DAG that declares its template by name and rule can run any number of times: the first run
creates it, later runs compare the template the bucket holds with the declared one and write
only when they differ (an unchanged template is not rewritten, so its ``UpdateTime`` keeps
saying when it really changed). The template id goes to XCom (``template_id``, and the return
value), so a :class:`~airflow_provider_ci.operators.pic_process.CloudInfinitePicProcessOperator`
downstream can take ``template_id=<this task>.output``.

Names are matched exactly (the service's ``name`` filter is a prefix match). Two templates of
one name make the name ambiguous: the operators then fail, listing the ids, rather than guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_ci import validation as check
from airflow_provider_ci.exceptions import CloudInfiniteError, CloudInfiniteServiceError, CloudInfiniteValidationError
from airflow_provider_ci.hooks.ci import CloudInfiniteHook
from airflow_provider_ci.model import template_xml

if TYPE_CHECKING:
    from airflow.sdk import Context

XCOM_TEMPLATE_ID = "template_id"


def find_template(hook: CloudInfiniteHook, name: str, bucket: str | None, region: str | None) -> dict[str, Any] | None:
    """The bucket's one custom template named exactly ``name``; None if there is none.

    :raises CloudInfiniteError: when more than one template has that name.
    """
    same = [t for t in hook.get_templates(name=name, bucket=bucket, region=region) if t.get("Name") == name]
    if len(same) > 1:
        ids = ", ".join(str(t.get("TemplateId")) for t in same)
        raise CloudInfiniteError(f"{len(same)} templates are named {name!r} ({ids}); delete all but one by id")
    return same[0] if same else None


def _rule_of(template: dict[str, Any]) -> tuple[str | None, bool]:
    """(ProcessRule, IsPicInfo) of a template as the service describes it."""
    pic = template.get("PicProcess") or {}
    flag = pic.get("IsPicInfo")
    return pic.get("ProcessRule"), (flag if isinstance(flag, bool) else str(flag).lower() == "true")


class CloudInfiniteCreateOrUpdateTemplateOperator(BaseOperator):
    """Make the bucket's PicProcess template ``name`` hold ``process_rule``; push and return its id.

    Creates the template when the bucket has none of that name, rewrites it (``PUT
    /template/<id>``) when its rule or ``is_pic_info`` differ, and sends nothing but the one
    lookup when it already matches. Every field is checked before the lookup.

    :param name: the template's name: at most 64 Chinese or English letters, digits, ``_``,
        ``-`` or ``*``; unique in the bucket (templated).
    :param process_rule: the imageMogr2 rule jobs using the template run, e.g.
        ``imageMogr2/thumbnail/400x400>/format/webp`` (templated).
    :param is_pic_info: whether jobs using it return the output's image info (templated).
    :param bucket: bucket in ``name-APPID`` form; default the connection's ``bucket`` (templated).
    :param region: region; default the connection's ``region`` (templated).
    :param tencent_ci_conn_id: the ``tencent_ci`` connection (templated).
    """

    template_fields: Sequence[str] = ("tencent_ci_conn_id", "bucket", "region", "name", "process_rule", "is_pic_info")
    ui_color = "#dff1ff"

    def __init__(
        self,
        *,
        name: str,
        process_rule: str,
        is_pic_info: bool | str = False,
        bucket: str | None = None,
        region: str | None = None,
        tencent_ci_conn_id: str = CloudInfiniteHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.process_rule = process_rule
        self.is_pic_info = is_pic_info
        self.bucket = bucket
        self.region = region
        self.tencent_ci_conn_id = tencent_ci_conn_id

    def execute(self, context: Context) -> str:
        is_pic_info = check.flag("is_pic_info", self.is_pic_info)
        template_xml(self.name, self.process_rule, is_pic_info)  # every field checked before any request
        hook = CloudInfiniteHook(self.tencent_ci_conn_id)
        existing = find_template(hook, self.name, self.bucket, self.region)
        fields: dict[str, Any] = {"name": self.name, "process_rule": self.process_rule, "is_pic_info": is_pic_info}
        if existing is None:
            template = hook.create_template(**fields, bucket=self.bucket, region=self.region)
            self.log.info("Created CI template %r: %s", self.name, template["TemplateId"])
        elif _rule_of(existing) != (self.process_rule, is_pic_info):
            template = hook.update_template(existing["TemplateId"], **fields, bucket=self.bucket, region=self.region)
            self.log.info(
                "Updated CI template %r (%s): %s, IsPicInfo %s -> %s, IsPicInfo %s",
                self.name,
                template["TemplateId"],
                *_rule_of(existing),
                self.process_rule,
                is_pic_info,
            )
        else:
            template = existing
            self.log.info("CI template %r (%s) is up to date; not rewritten", self.name, template["TemplateId"])
        template_id = str(template["TemplateId"])
        context["ti"].xcom_push(key=XCOM_TEMPLATE_ID, value=template_id)
        return template_id


class CloudInfiniteDeleteTemplateOperator(BaseOperator):
    """Delete a PicProcess template, named by id or by exact name; push and return the deleted id.

    :param template_id: the template's id (give this or ``name``) (templated).
    :param name: the template's exact name (give this or ``template_id``) (templated).
    :param missing_ok: succeed (returning None) when there is no such template; else fail.
    :param bucket: bucket in ``name-APPID`` form; default the connection's ``bucket`` (templated).
    :param region: region; default the connection's ``region`` (templated).
    :param tencent_ci_conn_id: the ``tencent_ci`` connection (templated).
    """

    template_fields: Sequence[str] = ("tencent_ci_conn_id", "bucket", "region", "template_id", "name")
    ui_color = "#dff1ff"

    def __init__(
        self,
        *,
        template_id: str | None = None,
        name: str | None = None,
        missing_ok: bool = True,
        bucket: str | None = None,
        region: str | None = None,
        tencent_ci_conn_id: str = CloudInfiniteHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (template_id is None) == (name is None):
            raise CloudInfiniteValidationError("template_id/name", "give exactly one: template_id or name")
        self.template_id = template_id
        self.name = name
        self.missing_ok = missing_ok
        self.bucket = bucket
        self.region = region
        self.tencent_ci_conn_id = tencent_ci_conn_id

    def execute(self, context: Context) -> str | None:
        if self.template_id is not None:
            template_id: str | None = check.template_id(self.template_id)
        else:
            check.template_name(self.name)
        hook = CloudInfiniteHook(self.tencent_ci_conn_id)
        if self.name is not None:
            found = find_template(hook, self.name, self.bucket, self.region)
            template_id = None if found is None else str(found["TemplateId"])
        deleted = template_id is not None and self._delete(hook, template_id)
        if not deleted:
            what = f"id {self.template_id}" if self.template_id is not None else f"name {self.name!r}"
            if not self.missing_ok:
                raise CloudInfiniteError(f"No CI template with {what} to delete (missing_ok=False)")
            self.log.info("No CI template with %s; nothing to delete", what)
            template_id = None
        context["ti"].xcom_push(key=XCOM_TEMPLATE_ID, value=template_id)
        return template_id

    def _delete(self, hook: CloudInfiniteHook, template_id: str) -> bool:
        """True once deleted; False when the service does not know the id (404)."""
        try:
            hook.delete_template(template_id, bucket=self.bucket, region=self.region)
        except CloudInfiniteServiceError as exc:
            if exc.status == 404:
                return False
            raise
        self.log.info("Deleted CI template %s", template_id)
        return True
