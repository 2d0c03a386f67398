#!/usr/bin/env bash
# Installs everything this package needs into ./.venv (idempotent; a second run takes seconds).
#   - Debian packages for the R example: r-base-core, r-cran-reticulate (only when missing; needs root)
#   - Python 3.11 venv with the pinned stack (requirements.txt), kipoi-veff 0.3.1 without its
#     unbuildable pyvcf dependency (PyVCF3 stands in), anndata 0.12.19 without its pandas<3 pin,
#     and this package in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! Rscript -e 'library(reticulate)' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[install] Debian packages: r-base-core r-cran-reticulate"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends r-base-core r-cran-reticulate >/dev/null
  else
    echo "[install] warning: R with reticulate is missing and cannot be installed here (not root);" \
         "the R example and its test need it" >&2
  fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
# This machine's pip configuration names local package folders that may not exist; pip then
# warns once per package. Those lines are noise for the user, everything else is kept.
pip_install() {
  .venv/bin/python -m pip install -q "$@" 2>&1 | sed '/is ignored: it is neither a file nor a directory/d'
}

stamp=.venv/.installed-$(cat requirements.txt pyproject.toml | md5sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "[install] Python environment in .venv (pinned: requirements.txt)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  pip_install --upgrade "pip<26"
  # torch first, pinned: `pip install torch==2.13.0` takes the local CPU wheel.
  pip_install "torch==2.13.0"
  pip_install -r requirements.txt
  pip_install --no-deps "kipoi-veff==0.3.1"
  pip_install --no-deps "anndata==0.12.19"  # declares pandas<3; see requirements.txt
  pip_install --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "[install] ready: $(.venv/bin/python -c 'import chromdragonn, torch, kipoi; print("chromdragonn", chromdragonn.__version__, "| torch", torch.__version__, "| kipoi", kipoi.__version__)')"
