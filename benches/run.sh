#!/usr/bin/env bash
# obgate against its peers in one run (issue "Benchmarks against the peers"): builds the release
# binary, then `cargo bench --bench peers` starts the peers from ../shared/bench/peers.sh,
# starts and seeds obgate, measures every row and writes the table to BENCHMARKS.md.
# Needs root or sudo the first time (peers.sh installs nginx, haproxy and wrk with apt) and a
# local PostgreSQL for the two-node revocation row (BENCH_POSTGRES_URL).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked --bin obgate
exec cargo bench --locked --bench peers
