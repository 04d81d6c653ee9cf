#!/usr/bin/env bash
# Runs the official-SDK interop suites against the emulator binary.
#
# The Python SDK's ports are hard-coded (8883 and 443), so the emulator listens there: run as
# root, or grant the binary CAP_NET_BIND_SERVICE.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/interop-venv
if [ ! -x "$venv/bin/python" ] || ! cmp -s interop/requirements.txt "$venv/requirements.txt"; then
  echo "==> creating $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r interop/requirements.txt
  cp interop/requirements.txt "$venv/requirements.txt"
fi

cargo build --quiet --locked -p dps-emulator --bin dps-emulator
emulator="${CARGO_TARGET_DIR:-$(pwd)/target}/debug/dps-emulator"

cd interop
"../$venv/bin/python" dps_suite.py "$emulator"
"../$venv/bin/python" hub_suite.py "$emulator"
