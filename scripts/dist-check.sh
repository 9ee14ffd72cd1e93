#!/usr/bin/env bash
# make dist-check: what a user installs from the package index works, without this checkout.
#   1. build the sdist, and the wheel from it (uv build, isolated); check their metadata (twine --strict);
#   2. check what each ships: LICENSE in both, no tests in the sdist (they need the repository);
#   3. install the wheel, not editable, into a fresh venv with Airflow (uv, from its cache);
#   4. import every module of the installed package from outside the checkout, and ask Airflow
#      about the provider (`airflow providers get`), its hook and connection type.
# Usage: scripts/dist-check.sh PYTHON UV   (the project venv's python and uv)
set -euo pipefail
PYTHON=${1:?python}
UV=${2:?uv}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(dirname "$PYTHON")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dist-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
DIST="$WORK/dist"

cd "$ROOT"
# Without --sdist/--wheel uv builds the wheel from the sdist, which proves the sdist complete.
"$UV" build -q -o "$DIST" .
# setuptools leaves its egg-info in the source tree; the checkout stays as it was.
rm -rf "$ROOT"/*.egg-info "$ROOT/build"
"$BIN/twine" check --strict "$DIST"/*

SDIST=$(ls "$DIST"/*.tar.gz)
WHEEL=$(ls "$DIST"/*.whl)
# Listings in variables: `producer | grep -q` fails under pipefail when grep stops reading early.
sdist_files=$(tar tzf "$SDIST")
wheel_files=$("$PYTHON" -m zipfile -l "$WHEEL")
grep -q '^[^/]*/LICENSE$' <<<"$sdist_files" || { echo "dist-check: the sdist has no LICENSE" >&2; exit 1; }
if grep '^[^/]*/tests/' <<<"$sdist_files"; then echo "dist-check: the sdist ships tests" >&2; exit 1; fi
grep -q 'dist-info/licenses/LICENSE ' <<<"$wheel_files" || { echo "dist-check: the wheel has no LICENSE" >&2; exit 1; }
grep -q 'airflow_provider_ci/plugins/templates/job.html ' <<<"$wheel_files" \
  || { echo "dist-check: the wheel has no UI plugin templates" >&2; exit 1; }

"$UV" venv -q --python "$PYTHON" "$WORK/venv"
"$UV" pip install -q --python "$WORK/venv/bin/python" "$WHEEL[emulator,openlineage]" pytest

cd "$WORK"  # not the checkout: the imports must come from the installed wheel
export AIRFLOW_HOME="$WORK/airflow-home" AIRFLOW__CORE__LOAD_EXAMPLES=False
"$WORK/venv/bin/python" - "$WORK/venv" <<'EOF'
import importlib
import pkgutil
import sys
from pathlib import Path

import airflow_provider_ci

venv = Path(sys.argv[1]).resolve()
package = Path(airflow_provider_ci.__file__).resolve().parent
assert venv in package.parents, f"{package} is not the installed wheel"
assert (package / "py.typed").is_file(), "py.typed is missing from the wheel"
names = [airflow_provider_ci.__name__] + [
    m.name for m in pkgutil.walk_packages(airflow_provider_ci.__path__, "airflow_provider_ci.")
]
for name in names:
    importlib.import_module(name)
print(f"dist-check: imported {len(names)} modules of airflow-provider-ci {airflow_provider_ci.__version__}")
EOF
out=$("$WORK/venv/bin/airflow" providers get airflow-provider-ci -o json 2>/dev/null)
echo "$out" | "$WORK/venv/bin/python" -c '
import json, re, sys
text = sys.stdin.read()
(info,) = json.loads(text[re.search(r"^\[", text, re.M).start():])
assert info["Provider"] == "airflow-provider-ci", info
print("dist-check: airflow providers get:", info["Provider"], info["Version"])
'
hooks=$("$WORK/venv/bin/airflow" providers hooks -o json 2>/dev/null)
grep -q '"tencent_ci"' <<<"$hooks" || { echo "dist-check: airflow providers hooks does not list tencent_ci" >&2; exit 1; }
plugins=$("$WORK/venv/bin/airflow" plugins -o json 2>/dev/null)
grep -q '"tencent_ci"' <<<"$plugins" || { echo "dist-check: airflow plugins does not list tencent_ci" >&2; exit 1; }
echo "dist-check: ok ($(basename "$SDIST"), $(basename "$WHEEL"))"
