"""Griffe extension for the API reference: Sphinx cross-reference roles as inline code.

The docstrings use Sphinx markup, as Airflow's own do (``:class:`CloudInfiniteJobError```);
mkdocstrings parses ``:param:`` and ``:return:`` but would print the roles literally. A role
becomes its target in code font (``~`` shortened to the last component).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|exc|data|obj|const):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrites each object's docstring before mkdocstrings parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
