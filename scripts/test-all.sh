#!/usr/bin/env bash
# Every test: the workspace's Rust tests, then the official SDKs against the emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
bash interop/run.sh
