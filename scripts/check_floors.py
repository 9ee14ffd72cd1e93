"""``make floor``'s proof: every declared lower bound is the version the floor run installed.

The floor environment is resolved with ``uv --resolution lowest-direct``; a transitive
requirement (or a constraint) can still lift a direct dependency above its declared floor, and
then the floor run would test a version users are not promised. This fails that run instead,
naming each dependency whose installed version is not its declared ``>=`` bound.

Usage: ``python scripts/check_floors.py [EXTRA ...]`` with the floor venv's interpreter; the
runtime dependencies are always checked, plus those of the named extras.
"""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def declared_floors(extras: list[str]) -> dict[str, Version]:
    """``name -> floor`` for every ``>=`` bound of the runtime dependencies and the named extras."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    floors: dict[str, Version] = {}
    for line in lines:
        requirement = Requirement(line)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                floors[requirement.name] = Version(spec.version)
    return floors


def main(extras: list[str]) -> int:
    wrong = []
    for name, floor in sorted(declared_floors(extras).items()):
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            wrong.append(f"{name}: declared >={floor}, not installed")
            continue
        status = "ok" if installed == floor else "NOT THE FLOOR"
        print(f"floor: {name} {installed} (declared >={floor}) {status}")
        if installed != floor:
            wrong.append(f"{name}: declared >={floor}, the floor run installed {installed}")
    if wrong:
        print("Declared floors the floor run does not test:\n  " + "\n  ".join(wrong), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
