"""OpenLineage for many objects: the first datasets, and counts for the rest.

A batch over 10,000 images would otherwise send one lineage event with 20,000 datasets, which
backends store and draw badly (and some refuse). Up to :data:`MAX_LINEAGE_DATASETS` inputs and
as many outputs are reported as datasets, in item order; the run facet
``cloudInfiniteBatch`` carries the totals and says whether the lists were cut.

Needs ``apache-airflow-providers-openlineage`` (the ``openlineage`` extra); without it,
:func:`batch_lineage` returns None and Airflow reports nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Datasets reported per side (inputs, outputs) by the batch operator; the rest are counted.
MAX_LINEAGE_DATASETS = 100
FACET_NAME = "cloudInfiniteBatch"


def batch_lineage(
    inputs: Sequence[tuple[str, str]], outputs: Sequence[tuple[str, str]], *, limit: int = MAX_LINEAGE_DATASETS
) -> Any:
    """``OperatorLineage`` with the first ``limit`` of each side as datasets and a facet with the totals.

    :param inputs: ``(bucket, key)`` of every object the jobs read.
    :param outputs: ``(bucket, key)`` of every object the jobs wrote.
    :param limit: datasets reported per side.
    :return: the lineage, or None when the OpenLineage provider is not installed.
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None

    def datasets(objects: Sequence[tuple[str, str]]) -> list[Any]:
        return [Dataset(namespace=f"cos://{bucket}", name=key) for bucket, key in objects[:limit]]

    facet = _facet_class()(
        inputsTotal=len(inputs),
        inputsReported=min(len(inputs), limit),
        outputsTotal=len(outputs),
        outputsReported=min(len(outputs), limit),
        truncated=len(inputs) > limit or len(outputs) > limit,
        limit=limit,
    )
    return OperatorLineage(inputs=datasets(inputs), outputs=datasets(outputs), run_facets={FACET_NAME: facet})


_FACET: type | None = None


def _facet_class() -> type:
    """The run facet class, defined on first use (OpenLineage is an optional dependency)."""
    global _FACET
    if _FACET is None:
        import attrs
        from airflow.providers.common.compat.openlineage.facet import RunFacet

        @attrs.define
        class CloudInfiniteBatchRunFacet(RunFacet):
            """How many objects a CI batch read and wrote, and how many of them are listed as datasets."""

            inputsTotal: int  # camelCase: the facet's JSON names
            inputsReported: int
            outputsTotal: int
            outputsReported: int
            truncated: bool
            limit: int

        _FACET = CloudInfiniteBatchRunFacet
    return _FACET
