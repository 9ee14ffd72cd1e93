"""A cos-python-sdk-v5 client from the same settings, with its known pitfalls closed.

Pitfalls of cos-python-sdk-v5 (reference ci_api.md §9) and what this module does about them:

* ``CosConfig(CredentialInstance=...)`` signs but silently drops the STS token: pass ``Token=``.
* With ``IP``/``Port`` (how ``endpoint_url`` is honoured) the SDK sends ``Host:
  <bucket>.cos.<region>.myqcloud.com``: that is the virtual host we want it to name for object
  calls, but its ``ci_*`` calls then reach the COS host too. :func:`ci_client` names the CI host
  with ``Domain`` (which only sets ``Host`` when ``IP`` is given), so those calls reach CI.
* The SDK logs the derived signing key, the string to sign, full ``Authorization`` headers and
  security tokens at DEBUG: every ``qcloud_cos`` logger gets a filter that redacts them.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qcloud_cos import CosS3Client

    from airflow_provider_ci.connection import ConnectionSettings

REDACTED = "***"
_PATTERNS = (
    re.compile(r"(q-signature=)[0-9a-fA-F]+"),
    re.compile(r"((?:sign_key|sign)\s*:\s*)\S+"),
    re.compile(r"""((?:Authorization|x-c(?:i|os)-security-token)['"]?\s*[:=]\s*['"]?)[^'",}\s]+""", re.I),
)


class RedactSecrets(logging.Filter):
    """Rewrites records so no signature, signing key, Authorization value or known secret remains."""

    def __init__(self) -> None:
        super().__init__("airflow_provider_ci.redact")
        self.secrets: set[str] = set()

    def redact(self, text: str) -> str:
        for pattern in _PATTERNS:
            text = pattern.sub(rf"\g<1>{REDACTED}", text)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACTOR = RedactSecrets()


def protect_sdk_logs(*secrets: str | None) -> None:
    """Attach the redacting filter to every ``qcloud_cos`` logger and remember ``secrets``."""
    import qcloud_cos  # noqa: F401  (its modules create their loggers on import)

    _REDACTOR.secrets.update(s for s in secrets if s)
    names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] == "qcloud_cos"]
    for name in ["qcloud_cos", *names]:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


def cos_client(settings: ConnectionSettings, region: str | None = None, **config: Any) -> CosS3Client:
    """A ``CosS3Client`` for object calls, pointed at ``endpoint_url`` when the connection has one."""
    from qcloud_cos import CosS3Client

    return CosS3Client(_config(settings, region, config))


def ci_client(
    settings: ConnectionSettings, bucket: str | None = None, region: str | None = None, **config: Any
) -> CosS3Client:
    """A ``CosS3Client`` for the SDK's ``ci_*`` calls on ``bucket``'s CI host.

    Every request names ``<bucket>.ci.<region>.myqcloud.com`` in ``Host`` and the signature,
    also through ``endpoint_url`` (the emulator routes CI and COS calls by ``Host``). Object
    calls belong on :func:`cos_client`.
    """
    from qcloud_cos import CosS3Client

    endpoint = settings.endpoint(bucket, region)
    return CosS3Client(_config(settings, endpoint.region, {"Domain": endpoint.host, **config}))


def _config(settings: ConnectionSettings, region: str | None, config: dict[str, Any]) -> Any:
    from qcloud_cos import CosConfig

    from airflow_provider_ci.transport import split_endpoint_url

    credentials = settings.credentials
    protect_sdk_logs(credentials.secret_key, credentials.token)
    kwargs: dict[str, Any] = {
        "Region": settings.resolve_region(region),
        "SecretId": credentials.secret_id,
        "SecretKey": credentials.secret_key,
        "Token": credentials.token,
        "Scheme": settings.scheme,
        **config,
    }
    if settings.endpoint_url:
        scheme, host, port = split_endpoint_url(settings.endpoint_url)
        kwargs.update(Scheme=scheme, IP=host, Port=port)
    return CosConfig(**kwargs)
