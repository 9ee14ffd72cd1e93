"""Asset events for the objects an operator produced, through the outlets its user declared.

Two ways, as Airflow offers them:

* an :class:`~airflow.sdk.AssetAlias` in ``outlets``, for keys known only at run time: each
  produced object becomes an event ``cos://<bucket>/<key>`` added to every alias;
* a ``cos://`` :class:`~airflow.sdk.Asset` in ``outlets``, for a key known when the DAG is
  written: Airflow records its event on success; we add the job's details to that event's extra.

Nothing is looked at when ``outlets`` holds neither, so operators without assets pay nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from airflow_provider_ci.assets.cos import SCHEME, cos_uri, split_cos_uri
from airflow_provider_ci.exceptions import CloudInfiniteError
from airflow_provider_ci.model import output_info
from airflow_provider_ci.states import JobState

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Produced:
    """One object a job wrote, and what its asset event's extra says about it."""

    bucket: str
    key: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return cos_uri(self.bucket, self.key)


def produced_by_job(detail: Mapping[str, Any], default_bucket: str | None) -> list[Produced]:
    """The output of a successful job, with its job id, input and (when reported) format and size.

    Empty for a job that has not succeeded (``wait_for_completion=False``). The buckets come
    from the JobsDetail (the service echoes them); ``default_bucket`` only fills in for an
    answer that leaves them out.
    """
    if detail.get("State") != JobState.SUCCESS.value:
        return []
    operation = detail.get("Operation") or {}
    output = operation.get("Output") or {}
    source = detail.get("Input") or {}
    info = output_info(detail)
    output_bucket, input_bucket = output.get("Bucket") or default_bucket, source.get("BucketId") or default_bucket
    if not output_bucket or not output.get("Object"):
        raise CloudInfiniteError(f"CI job {detail.get('JobId')} succeeded but its detail names no output bucket/key")
    extra: dict[str, Any] = {
        "job_id": detail.get("JobId"),
        "input": cos_uri(input_bucket, source["Object"]) if input_bucket and source.get("Object") else None,
    }
    for name in ("Format", "Width", "Height", "Size"):
        if info.get(name) is not None:
            extra[name.lower()] = info[name]
    return [Produced(output_bucket, output["Object"], {k: v for k, v in extra.items() if v is not None})]


def has_asset_outlets(outlets: Iterable[Any]) -> bool:
    """Whether ``outlets`` holds an asset alias or a ``cos://`` asset (else no events are built)."""
    from airflow.sdk import Asset, AssetAlias

    return any(
        isinstance(outlet, AssetAlias) or (isinstance(outlet, Asset) and outlet.uri.startswith(f"{SCHEME}://"))
        for outlet in outlets or ()
    )


def emits_assets(method: F) -> F:
    """Decorate an operator's ``execute``/``execute_complete``: when it returns, emit asset events.

    The operator names what it wrote with ``produced_objects(result)``; a method that raises or
    defers emits nothing (the resumed ``execute_complete`` does, once the jobs are over).
    """

    @functools.wraps(method)
    def wrapper(self: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        result = method(self, context, *args, **kwargs)
        if has_asset_outlets(self.outlets):
            emit_asset_events(self.outlets, context["outlet_events"], self.produced_objects(result), self.log)
        return result

    return cast(F, wrapper)


def emit_asset_events(outlets: Iterable[Any], outlet_events: Any, produced: Iterable[Produced], log: Any) -> int:
    """Record asset events for ``produced`` on the task's alias and ``cos://`` outlets; how many.

    :param outlets: the task's ``outlets``.
    :param outlet_events: ``context["outlet_events"]``.
    :param produced: the objects the task wrote.
    :param log: the task's logger.
    :return: the number of alias events added (declared assets are counted by Airflow).
    """
    from airflow.sdk import Asset, AssetAlias

    outlets = list(outlets or ())
    aliases = [outlet for outlet in outlets if isinstance(outlet, AssetAlias)]
    declared = {
        outlet.uri: outlet for outlet in outlets if isinstance(outlet, Asset) and outlet.uri.startswith(f"{SCHEME}://")
    }
    if not aliases and not declared:
        return 0
    added = 0
    for item in produced:
        uri = item.uri
        extra = dict(item.extra)
        for alias in aliases:
            outlet_events[alias].add(Asset(uri=uri), extra=extra)
            added += 1
        if uri in declared:
            outlet_events[declared.pop(uri)].extra.update(extra)
    for uri in declared:  # Airflow still records these on success: say that they were not written
        bucket, key = split_cos_uri(uri)
        log.warning("Outlet %s was not written by this task (no job produced %s in %s)", uri, key, bucket)
    if aliases:
        log.info(
            "Asset events: %d object(s) through alias(es) %s", added // len(aliases), ", ".join(a.name for a in aliases)
        )
    return added


def arrived_objects(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The ``cos://`` objects named by asset events, each once (its newest event), in arrival order.

    For a DAG scheduled on these assets: pass ``triggering_asset_events[alias_or_asset]``. Events
    of other schemes are left out.

    :param events: asset events (``AssetEventDagRunReferenceResult`` or anything with ``.asset.uri``,
        ``.extra``, ``.source_dag_id``, ``.source_run_id`` and ``.timestamp``).
    :return: dicts with ``uri``, ``bucket``, ``key``, ``extra``, ``source_dag_id`` and ``source_run_id``.
    """
    newest: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: str(getattr(e, "timestamp", ""))):
        uri = event.asset.uri
        if not uri.startswith(f"{SCHEME}://"):
            continue
        bucket, key = split_cos_uri(uri)
        newest.pop(uri, None)
        newest[uri] = {
            "uri": uri,
            "bucket": bucket,
            "key": key,
            "extra": dict(event.extra or {}),
            "source_dag_id": getattr(event, "source_dag_id", None),
            "source_run_id": getattr(event, "source_run_id", None),
        }
    return list(newest.values())
