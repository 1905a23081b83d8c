#!/usr/bin/env bash
# Audit the installed dependency set for known vulnerabilities with pip-audit (PyPA).
# It queries PyPI's vulnerability data, so it needs the package index; CI does not run it.
#   bash scripts/audit.sh            # audits the current environment
set -euo pipefail
python -m pip install --quiet "pip-audit>=2.7"
python -m pip_audit --progress-spinner off --desc on "$@"
