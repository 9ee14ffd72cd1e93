#!/usr/bin/env bash
# Install a Chromium for the UI browser test (tests/deployment/test_ui.py), unless one is there.
# Debian/Ubuntu: the distribution's package (Playwright drives it; no browser download needed).
set -euo pipefail
for candidate in "${CI_CHROMIUM:-}" chromium chromium-browser google-chrome; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
        echo "browser: $("$candidate" --version 2>/dev/null | head -1)"
        exit 0
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser: no Chromium and no apt-get; install Chromium yourself (the UI tests skip without it)" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
echo "browser: $(chromium --version 2>/dev/null | head -1)"
