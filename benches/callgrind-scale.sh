#!/usr/bin/env bash
# Instructions per gateway read on the scale row's data, counted by callgrind: a repeatable
# figure for comparing two builds where this shared machine's throughput moves by 2× between
# runs (callgrind counts instructions, not seconds).
#
#   BENCH_SCALE_KEEP=1 BENCH_ROWS=scale cargo bench --locked --bench peers   # prints "data kept in DIR"
#   benches/callgrind-scale.sh DIR [BINARY] [TOKENS]
#
# A copy of DIR is served by BINARY (default target/release/obgate) under callgrind with the
# scale row's settings, in front of peers.sh's upstream (`peers.sh up` must have run; the
# bench leaves it down, so start it again). The first TOKENS tokens of DIR/scale.tokens
# (default all) are read once each to warm the caches, uncounted, then once each again,
# counted; the figure is the counted instructions over the counted reads. The copy is
# removed afterwards, and the callgrind file is kept for callgrind_annotate.
# The tokens were issued with a one-hour lifetime: use the data within the hour.
set -euo pipefail
data=${1:?usage: $0 DATA_DIR [BINARY] [TOKENS]}
bin=$(realpath "${2:-target/release/obgate}")
work=$(mktemp -d)
pid=""
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$data"/obgate.db* "$work"/
if [ -n "${3:-}" ]; then head -n "$3" "$data/scale.tokens" >"$work/tokens"; else cp "$data/scale.tokens" "$work/tokens"; fi
n=$(wc -l <"$work/tokens")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=${CALLGRIND_OUT:-/tmp/callgrind.scale.$(basename "$bin").$$}
(
  cd "$work"
  OBGATE_LISTEN=127.0.0.1:$port OBGATE_LOG_LEVEL=warn OBGATE_LOG_FORMAT=json \
    OBGATE_UPSTREAM_URL=http://127.0.0.1:18081 OBGATE_PUBLIC_URL=http://127.0.0.1:18095 \
    OBGATE_OAUTH_ACCESS_TOKEN_TTL=1h OBGATE_GATEWAY_CACHE_TTL=5m \
    OBGATE_RATE_LIMIT_TOKEN=off OBGATE_RATE_LIMIT_OAUTH=off OBGATE_RATE_LIMIT_GATEWAY=off \
    OBGATE_OAUTH_LOCKOUT_AFTER=0 \
    exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
    "$bin" serve 2>"$work/obgate.log"
) &
pid=$!
until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do
  kill -0 "$pid" || { cat "$work/obgate.log"; exit 1; }
  sleep 1
done
# One pass over the tokens: each request with the next token; wrk exits after $n answers
# (16 connections, so at most 15 more are in flight, under 0.1 % of a pass).
cat >"$work/pass.lua" <<EOF
local tokens = {}
for line in io.lines("$work/tokens") do tokens[#tokens + 1] = "Bearer " .. line end
local i, answered, bad = 0, 0, 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { ["Authorization"] = tokens[i] })
end
response = function(status)
  answered = answered + 1
  if status ~= 200 then bad = bad + 1 end
  if answered >= #tokens then
    io.write(string.format("answered %d, non-200 %d\n", answered, bad))
    io.flush()
    -- wrk would wait out -d before exiting even with the thread stopped.
    os.exit(0)
  end
end
EOF
url=http://127.0.0.1:$port/open-banking/v3.1/aisp/accounts
echo "warming: $n reads (uncounted)"
wrk -t1 -c16 -d3600s -s "$work/pass.lua" "$url" | grep answered || true
callgrind_control -i on "$pid" >/dev/null
echo "counting: $n reads"
wrk -t1 -c16 -d3600s -s "$work/pass.lua" "$url" | grep answered || true
callgrind_control -i off "$pid" >/dev/null
callgrind_control -d "$pid" >/dev/null
kill "$pid"
wait "$pid" 2>/dev/null || true
total=$(cat "$out"* | awk '/^totals:/ {s += $2} END {print s}')
echo "$(basename "$bin"): $total instructions over $n reads: $((total / n)) per read ($out)"
