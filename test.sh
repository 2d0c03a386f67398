#!/usr/bin/env bash
# Command 2 of 2: run the test suite (installs first if needed; CI runs this same script).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
exec .venv/bin/python -m pytest -q "$@"
