"""The one exception every layer raises to end a request with a CI/COS error body."""

from __future__ import annotations


class ApiError(Exception):
    """An error answer: HTTP ``status``, the service's ``code`` and a human ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def invalid_argument(message: str) -> ApiError:
    """400 ``InvalidArgument``, the service's answer to a bad field or parameter."""
    return ApiError(400, "InvalidArgument", message)
