"""Outputs as assets: the ``cos`` URI scheme as Airflow loads it, and the events the operators record.

The scheme is exercised through Airflow's own ``Asset`` (which calls the provider's
normalizer via the providers manager); the events through ``dag.test()`` of the example
producer against the emulator, read back from the metadata DB.
"""

from __future__ import annotations

import pytest

from airflow_provider_ci.assets.cos import convert_asset_to_openlineage, cos_uri, create_asset, split_cos_uri
from airflow_provider_ci.emulator.pytest_plugin import DEFAULT_BUCKET
from airflow_provider_ci.exceptions import CloudInfiniteValidationError
from tests.support import jpeg, png
from tests.test_example_dags import run

BUCKET = DEFAULT_BUCKET
PREFIX = "e2e-assets/"


def asset(uri: str):
    from airflow.sdk import Asset

    return Asset(uri=uri)


# -- the scheme ---------------------------------------------------------------------------------------


def test_the_provider_registers_the_cos_scheme_with_airflow():
    try:  # where the task SDK looks them up (3.2+)
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as ProvidersManager
    except ImportError:  # Airflow 3.1
        from airflow.providers_manager import ProvidersManager  # type: ignore[no-redef]

    manager = ProvidersManager()
    assert manager.asset_uri_handlers["cos"].__module__ == "airflow_provider_ci.assets.cos"
    assert manager.asset_factories["cos"] is create_asset
    assert manager.asset_to_openlineage_converters["cos"] is convert_asset_to_openlineage


def test_a_well_formed_uri_is_kept_and_its_key_canonically_encoded():
    assert asset(f"cos://{BUCKET}/output/cat.webp").uri == f"cos://{BUCKET}/output/cat.webp"
    # One asset however the key is written; '?' and '#' in a key survive (encoded).
    assert asset(f"cos://{BUCKET}/a b.jpg").uri == asset(f"cos://{BUCKET}/a%20b.jpg").uri == cos_uri(BUCKET, "a b.jpg")
    assert cos_uri(BUCKET, "q?#.jpg") == f"cos://{BUCKET}/q%3F%23.jpg"
    assert split_cos_uri(asset(cos_uri(BUCKET, "目录/q?#.jpg")).uri) == (BUCKET, "目录/q?#.jpg")
    assert asset("COS://" + BUCKET + "/k").uri == f"cos://{BUCKET}/k"  # Airflow lower-cases the scheme


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("cos://examplebucket/cat.jpg", "name-APPID"),
        ("cos://ExampleBucket-1250000000/cat.jpg", "name-APPID"),
        (f"cos://{BUCKET}", "names no object key"),
        (f"cos://{BUCKET}/", "names no object key"),
        (f"cos://{BUCKET}:443/cat.jpg", "no user, password or port"),
        (f"cos://{BUCKET}/cat.jpg?versionId=1", "no query"),
        (f"cos://{BUCKET}/a/../cat.jpg", "'..' path segments"),
        (f"cos://{BUCKET}//cat.jpg", "do not start with '/'"),
        ("cos:///cat.jpg", "names no bucket"),
    ],
)
def test_a_malformed_uri_fails_where_the_asset_is_declared(uri, says):
    with pytest.raises(ValueError, match="uri: ") as caught:
        asset(uri)
    assert says in str(caught.value)


def test_user_info_never_survives_into_an_asset_uri():
    """Airflow 3.1 drops user info itself (with a warning) before the normalizer; 3.3 drops only a password."""
    import warnings

    uri: str | Exception
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            uri = asset(f"cos://someone:secret@{BUCKET}/cat.jpg").uri
        except ValueError as exc:
            uri = exc
    assert uri == f"cos://{BUCKET}/cat.jpg" or "no user, password or port" in str(uri)
    assert "secret" not in str(uri)


def test_factory_and_bad_input_name_the_field():
    assert create_asset(bucket=BUCKET, key="out/x.png", extra={"a": 1}).uri == f"cos://{BUCKET}/out/x.png"
    with pytest.raises(CloudInfiniteValidationError, match=r"^key: "):
        cos_uri(BUCKET, "/abs.png")
    with pytest.raises(CloudInfiniteValidationError, match=r"^bucket: "):
        cos_uri("nobucket", "x.png")
    with pytest.raises(CloudInfiniteValidationError, match="not a cos:// URI"):
        split_cos_uri("s3://bucket/key")


def test_openlineage_names_a_cos_asset_as_the_operators_do():
    dataset = convert_asset_to_openlineage(asset(cos_uri(BUCKET, "out/a b.png")), None)
    assert (dataset.namespace, dataset.name) == (f"cos://{BUCKET}", "out/a b.png")


def test_openlineage_translates_a_cos_asset_through_the_providers_manager():
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset

    dataset = translate_airflow_asset(asset(cos_uri(BUCKET, "out/x.png")), lineage_context=None)
    assert (dataset.namespace, dataset.name) == (f"cos://{BUCKET}", "out/x.png")


# -- events, through real Airflow ----------------------------------------------------------------------


def _events(run_):
    """(uri, extra, alias names) of every asset event the run's tasks recorded, by task."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .where(AssetEvent.source_dag_id == run_.dag_id, AssetEvent.source_run_id == run_.run_id)
            .options(joinedload(AssetEvent.asset), joinedload(AssetEvent.source_aliases))
        ).unique()
        found: dict[str, list] = {}
        for event in rows:
            aliases = sorted(alias.name for alias in event.source_aliases)
            found.setdefault(event.source_task_id, []).append((event.asset.uri, dict(event.extra), aliases))
    return found


@pytest.mark.parametrize("deferrable", [False, True])
def test_the_producer_records_one_event_per_output_and_one_for_the_static_cover(
    airflow_db, ci_emulator, ci_emulator_conn, deferrable
):
    prefix = f"{PREFIX}{'d' if deferrable else 'w'}/"
    ci_emulator.put_object(BUCKET, f"{prefix}deer.jpg", jpeg(64, 48))
    ci_emulator.put_object(BUCKET, f"{prefix}cat.png", png(30, 20))
    ci_emulator.put_object(BUCKET, f"{prefix}notes.txt", b"not an image")
    ci_emulator.put_object(BUCKET, "input/deer.jpg", jpeg(64, 48))

    run_, states = run("example_ci_assets_producer", deferrable=deferrable, conf={"prefix": prefix})
    assert run_.state == "success", states

    events = _events(run_)
    thumbnails = sorted(events["thumbnails"])
    assert [(uri, aliases) for uri, _, aliases in thumbnails] == [
        (f"cos://{BUCKET}/output/assets/cat.webp", ["ci-example-thumbnails"]),
        (f"cos://{BUCKET}/output/assets/deer.webp", ["ci-example-thumbnails"]),
    ]
    jobs = {job["JobId"]: job for job in ci_emulator.jobs(BUCKET)}
    for uri, extra, _ in thumbnails:
        job = jobs[extra["job_id"]]  # the event names the job that wrote the object
        assert (job["State"], f"cos://{BUCKET}/{job['Operation']['Output']['Object']}") == ("Success", uri)
        assert extra["input"] == f"cos://{BUCKET}/{job['Input']['Object']}"
    ((uri, extra, aliases),) = events["cover"]
    assert (uri, aliases) == (f"cos://{BUCKET}/output/assets/cover.webp", [])
    assert jobs[extra["job_id"]]["Input"]["Object"] == "input/deer.jpg"
    assert (extra["format"], extra["width"], extra["height"]) == ("WEBP", 32, 24)


# -- the pieces, with Airflow's own outlet accessors ---------------------------------------------------


def test_events_go_to_every_alias_and_extras_to_a_declared_asset_that_was_written(caplog):
    import logging

    from airflow.sdk import Asset, AssetAlias
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airflow_provider_ci.assets.events import Produced, emit_asset_events

    alias_a, alias_b = AssetAlias("a"), AssetAlias("b")
    written, missing = asset(cos_uri(BUCKET, "out/1.png")), asset(cos_uri(BUCKET, "out/never.png"))
    outlets = [alias_a, alias_b, written, missing, Asset(uri="s3://other/x")]
    accessors = OutletEventAccessors()
    produced = [Produced(BUCKET, f"out/{n}.png", {"job_id": f"j{n}"}) for n in (1, 2, 3)]

    with caplog.at_level(logging.INFO):
        added = emit_asset_events(outlets, accessors, produced, logging.getLogger("t"))

    assert added == 6  # 3 objects x 2 aliases
    for alias in (alias_a, alias_b):
        events = accessors[alias].asset_alias_events
        assert [(e.dest_asset_key.uri, e.extra) for e in events] == [
            (cos_uri(BUCKET, f"out/{n}.png"), {"job_id": f"j{n}"}) for n in (1, 2, 3)
        ]
    assert accessors[written].extra == {"job_id": "j1"}
    assert accessors[missing].extra == {}
    assert f"Outlet {missing.uri} was not written by this task" in caplog.text


def test_no_events_are_built_without_asset_outlets():
    from airflow.sdk import Asset

    from airflow_provider_ci.assets.events import has_asset_outlets

    assert not has_asset_outlets([])
    assert not has_asset_outlets([Asset(uri="s3://bucket/key")])
    assert has_asset_outlets([asset(cos_uri(BUCKET, "k.png"))])


def test_a_job_that_has_not_succeeded_produced_nothing():
    from airflow_provider_ci.assets.events import produced_by_job

    detail = {
        "JobId": "c1",
        "State": "Submitted",
        "Input": {"BucketId": BUCKET, "Object": "in.jpg"},
        "Operation": {"Output": {"Bucket": BUCKET, "Object": "out.png"}},
    }
    assert produced_by_job(detail, None) == []
    (produced,) = produced_by_job({**detail, "State": "Success"}, None)
    assert (produced.uri, produced.extra) == (
        cos_uri(BUCKET, "out.png"),
        {"job_id": "c1", "input": cos_uri(BUCKET, "in.jpg")},
    )


def test_arrived_objects_lists_each_key_once_newest_event_first_seen_order():
    from types import SimpleNamespace

    from airflow_provider_ci.assets.events import arrived_objects

    def event(key: str, ts: str, job: str):
        return SimpleNamespace(
            asset=SimpleNamespace(uri=cos_uri(BUCKET, key)),
            extra={"job_id": job},
            source_dag_id="up",
            source_run_id="r",
            timestamp=ts,
        )

    other = SimpleNamespace(asset=SimpleNamespace(uri="s3://b/k"), extra={}, timestamp="0")
    found = arrived_objects([event("a.png", "2", "j2"), other, event("b.png", "1", "j1"), event("a.png", "3", "j3")])
    assert [(o["key"], o["extra"]["job_id"]) for o in found] == [("b.png", "j1"), ("a.png", "j3")]


# -- OpenLineage for a batch: capped ------------------------------------------------------------------


def test_batch_lineage_reports_the_first_datasets_and_counts_the_rest():
    from airflow_provider_ci.assets.lineage import FACET_NAME, MAX_LINEAGE_DATASETS, batch_lineage

    inputs = [(BUCKET, f"in/{n}.jpg") for n in range(250)]
    outputs = [(BUCKET, f"out/{n}.webp") for n in range(240)]
    lineage = batch_lineage(inputs, outputs)
    assert len(lineage.inputs) == len(lineage.outputs) == MAX_LINEAGE_DATASETS == 100
    assert (lineage.inputs[0].namespace, lineage.inputs[0].name) == (f"cos://{BUCKET}", "in/0.jpg")
    facet = lineage.run_facets[FACET_NAME]
    assert (facet.inputsTotal, facet.inputsReported, facet.outputsTotal, facet.outputsReported) == (250, 100, 240, 100)
    assert facet.truncated is True
    small = batch_lineage(inputs[:3], outputs[:2])
    assert (len(small.inputs), len(small.outputs), small.run_facets[FACET_NAME].truncated) == (3, 2, False)


def test_the_batch_operator_reports_inputs_of_submitted_jobs_and_outputs_of_successful_ones(ci_emulator_conn):
    from airflow_provider_ci.operators.batch import CloudInfiniteBatchPicProcessOperator

    op = CloudInfiniteBatchPicProcessOperator(
        task_id="b", items=[{"input_object": "x", "output_object": "y"}], process_rule="imageMogr2/rotate/90"
    )
    assert op.get_openlineage_facets_on_complete(None) is None  # nothing ran
    jobs = [
        {"input_object": f"in/{n}.jpg", "output_object": f"out/{n}.webp", "job_id": f"j{n}", "state": "Submitted"}
        for n in range(150)
    ]
    jobs.append({"input_object": "in/never.jpg", "output_object": "out/never.webp", "job_id": None})
    failed = {"j0": {"State": "Failed", "Code": "X", "Message": "m"}}
    op.allow_failures = 2  # j0 failed, the last was never submitted
    op._complete(jobs, {"status": "success", "succeeded": [f"j{n}" for n in range(1, 150)], "failed": failed})

    lineage = op.get_openlineage_facets_on_complete(None)
    facet = lineage.run_facets["cloudInfiniteBatch"]
    assert (facet.inputsTotal, facet.outputsTotal, len(lineage.inputs), len(lineage.outputs)) == (150, 149, 100, 100)
    assert lineage.outputs[0].name == "out/1.webp"  # out/0.webp was never written
    assert len(op.produced_objects({})) == 149


def test_the_consumer_run_by_hand_has_no_keys_and_processes_nothing(airflow_db, ci_emulator, ci_emulator_conn):
    before = len(ci_emulator.jobs(BUCKET))
    run_, states = run("example_ci_assets_consumer", deferrable=False)
    assert run_.state == "success", states
    assert len(ci_emulator.jobs(BUCKET)) == before
