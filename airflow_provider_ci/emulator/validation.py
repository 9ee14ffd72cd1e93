"""Field checks shared by the CI routes; every error names the element or parameter at fault."""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from . import imaging
from .errors import ApiError, invalid_argument
from .xmlio import text

MAX_PAGE_SIZE = 100


def required(parent: etree._Element, path: str) -> str:
    value = text(parent, path)
    if value is None:
        raise invalid_argument(f"{path} is required")
    return value


def one_of(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise invalid_argument(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def boolean(value: str | None, name: str) -> bool:
    """``true``/``false`` (default false), the only spellings the service documents."""
    return one_of(value or "false", ("true", "false"), name) == "true"


def process_rule(rule: str, name: str) -> str:
    """Validate a rule with the imaging engine; its code (e.g. ``InvalidArgument``) is kept."""
    try:
        imaging.validate_rule(rule)
    except imaging.ProcessingError as exc:
        raise ApiError(400, exc.code, f"{name}: {exc.message}") from None
    return rule


def integer(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise invalid_argument(f"{name} must be an integer from {low} to {high}, got {raw!r}")
    return value


def page(query: Mapping[str, str]) -> tuple[int, int]:
    """``(pageNumber, pageSize)`` of the list routes that page by number."""
    return integer(query, "pageNumber", 1, 1, 1_000_000), integer(query, "pageSize", 10, 1, MAX_PAGE_SIZE)


def comma_list(value: str | None) -> list[str]:
    """Items of a comma-separated parameter, empty items dropped, duplicates removed, order kept."""
    return list(dict.fromkeys(item for item in (value or "").split(",") if item))
