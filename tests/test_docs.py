"""Every public parameter is documented where the API reference reads it (Sphinx ``:param:``).

The classes come from the provider info Airflow reads (hooks, operators, sensors, triggers,
extra links, the connection's hook class), so a class added there is checked too: its
``__init__`` parameters must each have a ``:param name:`` line in the class docstring, and each
public method of a hook (and extra link) a docstring with ``:param name:`` per parameter and ``:return:`` when it
returns something.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from airflow.sdk import BaseHook, BaseOperatorLink

from airflow_provider_ci import get_provider_info

PARAM = re.compile(r"^\s*:param\s+(?:[^:\s]+\s+)?(\w+)\s*:", re.M)


def _classes() -> Iterator[type]:
    info = get_provider_info()
    for key in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(key, []):
            for module_name in entry["python-modules"]:
                module = importlib.import_module(module_name)
                for _, cls in inspect.getmembers(module, inspect.isclass):
                    if cls.__module__ == module_name and not issubclass(cls, Exception):
                        yield cls
    paths = list(info.get("extra-links", [])) + [ct["hook-class-name"] for ct in info["connection-types"]]
    for path in paths:
        module_name, _, name = path.rpartition(".")
        yield getattr(importlib.import_module(module_name), name)


CLASSES = sorted(set(_classes()), key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
#: Classes whose public methods users call: every one documents its parameters and return.
WITH_METHODS = [cls for cls in CLASSES if issubclass(cls, BaseHook | BaseOperatorLink)]


def _public_params(function: object) -> list[str]:
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [
        name
        for name, param in inspect.signature(function).parameters.items()  # type: ignore[arg-type]
        if name not in ("self", "cls") and param.kind not in skip
    ]


def _documented(docstring: str | None) -> set[str]:
    return set(PARAM.findall(inspect.cleandoc(docstring or "")))


def _public_methods(cls: type) -> Iterator[tuple[str, object]]:
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, classmethod | staticmethod):
            member = member.__func__
        if inspect.isfunction(member):
            yield name, member


def test_the_provider_lists_classes_to_check():
    kinds = {cls.__name__ for cls in CLASSES}
    assert {"CloudInfiniteHook", "CloudInfinitePicProcessOperator", "CloudInfiniteJobSensor"} <= kinds
    assert {"CloudInfiniteJobTrigger", "CloudInfiniteBatchPicProcessOperator", "CloudInfiniteJobLink"} <= kinds


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_init_parameter_is_documented(cls):
    if cls.__init__ is object.__init__:
        return
    documented = _documented(cls.__doc__) | _documented(cls.__init__.__doc__)
    missing = [name for name in _public_params(cls.__init__) if name not in documented]
    assert not missing, f"{cls.__qualname__} docstring lacks ':param name:' for {missing}"


@pytest.mark.parametrize("cls", WITH_METHODS, ids=lambda cls: cls.__name__)
def test_every_public_hook_method_documents_its_parameters_and_return(cls):
    problems = []
    for name, method in _public_methods(cls):
        doc = inspect.getdoc(method)
        if not doc:
            problems.append(f"{name}: no docstring")
            continue
        missing = [p for p in _public_params(method) if p not in _documented(doc)]
        if missing:
            problems.append(f"{name}: no ':param:' for {missing}")
        returns = inspect.signature(method).return_annotation  # type: ignore[arg-type]
        if returns not in ("None", None, inspect.Signature.empty) and not re.search(r"^:returns?:", doc, re.M):
            problems.append(f"{name}: no ':return:'")
    assert not problems, f"{cls.__qualname__}:\n  " + "\n  ".join(problems)


def test_the_checks_catch_an_undocumented_parameter():
    class Undocumented:
        """A class.

        :param documented: is.
        """

        def __init__(self, documented: int, forgotten: int) -> None: ...

        def method(self, value: int) -> int:
            """Returns the value, but documents neither."""
            return value

    assert _documented(Undocumented.__doc__) == {"documented"}
    assert [p for p in _public_params(Undocumented.__init__) if p not in _documented(Undocumented.__doc__)] == [
        "forgotten"
    ]
    assert [name for name, _ in _public_methods(Undocumented)] == ["method"]
    assert _documented(Undocumented.method.__doc__) == set()


# -- the README, as the package index shows it ---------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<(https?://[^>]+)>")


def _site_url() -> str:
    match = re.search(r"^site_url:\s*(\S+)", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert match
    return match.group(1)


def test_readme_links_and_images_are_absolute():
    """The package index renders README.md away from the repository: relative links break there."""
    targets = [a or b for a, b in LINK.findall((ROOT / "README.md").read_text())]
    assert targets
    relative = [target for target in targets if not target.startswith(("https://", "http://"))]
    assert not relative, f"relative links in README.md: {relative}"


def test_readme_links_into_the_docs_name_existing_pages():
    site = _site_url()
    targets = [a or b for a, b in LINK.findall((ROOT / "README.md").read_text())]
    pages = [t.removeprefix(site).removeprefix("en/latest/").strip("/") for t in targets if t.startswith(site)]
    assert "connection" in pages
    for page in filter(None, pages):
        assert (ROOT / "docs" / f"{page}.md").is_file(), f"README links to {page!r}, which docs/ does not have"


def test_project_urls_point_at_the_docs_and_the_changelog():
    urls = dict(line.split(", ", 1) for line in metadata.metadata("airflow-provider-ci").get_all("Project-URL") or [])
    assert urls["Documentation"] == _site_url()
    assert urls["Changelog"].endswith("/CHANGELOG.md")


def test_airflows_providers_view_links_the_docs():
    """Airflow 3.3+ reads the Documentation project URL for its Providers view (3.1 and 3.2 show none)."""
    from airflow.providers_manager import ProvidersManager

    data = ProvidersManager().providers["airflow-provider-ci"].data
    if "documentation-url" not in data:
        pytest.skip("this Airflow's provider discovery has no documentation-url (before 3.3)")
    assert data["documentation-url"] == _site_url()
