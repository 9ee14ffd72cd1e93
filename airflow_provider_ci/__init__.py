"""Apache Airflow provider for Tencent Cloud Infinite (CI) asynchronous image processing."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

INTEGRATION = "Tencent Cloud Infinite"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

    The connection form is declarative (``conn-fields`` / ``ui-field-behaviour``): Airflow 3.2+
    reads it without importing the hook; for 3.1 the hook builds its method form from it
    (:mod:`airflow_provider_ci.connection_form`).
    """

    def field(label: str, description: str, **schema: Any) -> dict[str, Any]:
        return {"label": label, "description": description, "schema": {"type": ["string", "null"], **schema}}

    return {
        "package-name": "airflow-provider-ci",
        "name": INTEGRATION,
        "description": "Submit and wait for Tencent Cloud Infinite (数据万象) PicProcess image jobs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://www.tencentcloud.com/document/product/1045/73035",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_ci.hooks.ci"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_provider_ci.operators.pic_process",
                    "airflow_provider_ci.operators.batch",
                    "airflow_provider_ci.operators.template",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_provider_ci.sensors.job", "airflow_provider_ci.sensors.cos"],
            }
        ],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_provider_ci.triggers.job",
                    "airflow_provider_ci.triggers.batch",
                    "airflow_provider_ci.triggers.cos",
                ],
            }
        ],
        "extra-links": ["airflow_provider_ci.links.job.CloudInfiniteJobLink"],
        # Objects as assets, cos://<bucket-APPID>/<key>: docs/assets.md.
        "asset-uris": [
            {
                "schemes": ["cos"],
                "handler": "airflow_provider_ci.assets.cos.sanitize_uri",
                "factory": "airflow_provider_ci.assets.cos.create_asset",
                "to_openlineage_converter": "airflow_provider_ci.assets.cos.convert_asset_to_openlineage",
            }
        ],
        "connection-types": [
            {
                "connection-type": "tencent_ci",
                "hook-class-name": "airflow_provider_ci.hooks.ci.CloudInfiniteHook",
                "hook-name": INTEGRATION,
                "conn-fields": {
                    "region": field(
                        "Region", "Bucket region, e.g. ap-chongqing", pattern=r"^(ap|na|sa|eu|me)-[a-z]+(-[a-z0-9]+)?$"
                    ),
                    "bucket": field("Bucket", "Default bucket as name-APPID, e.g. test-1234567890"),
                    "token": field(
                        "Session token", "STS session token (temporary credentials only)", format="password"
                    ),
                    "scheme": field("Scheme", "https (default) or http", enum=["https", "http", None]),
                    "max_qps": {
                        "label": "Max requests/s",
                        "description": "Client-side cap for batch submits (CI allows 100/s per account, 50 overseas)",
                        "schema": {"type": ["number", "null"], "minimum": 0.1, "maximum": 10000},
                    },
                    "poll_batch_size": {
                        "label": "Job ids per poll",
                        "description": "Waiting jobs asked for in one GET /jobs/<ids> (default 50)",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
                    },
                    "endpoint_url": field(
                        "Endpoint URL",
                        "Connect here instead of the bucket's CI host, e.g. http://127.0.0.1:8818 for the "
                        "local emulator; Host and signature still name the bucket's virtual host",
                    ),
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port"],
                    "relabeling": {"login": "SecretId", "password": "SecretKey"},
                    "placeholders": {"login": "AKID...", "password": "SecretKey"},
                },
            }
        ],
    }
