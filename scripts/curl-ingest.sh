#!/usr/bin/env bash
# Durable ingest measured with plain curl, not the project's own bench client: the NDJSON file is
# cut into BATCH-line bodies, and CLIENTS curl processes at a time post them to /api/v1/write.
# Every body is acknowledged only after its events are fsync'd, so events/s counts durable events.
#
# Usage: scripts/curl-ingest.sh FILE.ndjson [CLIENTS] [BATCH]
#   STRATA_URL  server (default http://127.0.0.1:8686)
#   STRATA_KEY  a tenant admin key (required)
#
# Example (see docs/benchmarks.md for the figures):
#   strata bench gen --trucks 1000 --events 4000000 --output /tmp/events.ndjson
#   strata serve --data-dir /tmp/curl-data --compact-interval-secs 0 &
#   OP=$(cat /tmp/curl-data/operator.token)
#   export STRATA_KEY=$(curl -s -X POST localhost:8686/api/v1/tenants \
#     -H "Authorization: Bearer $OP" -d '{"name":"curl"}' | jq -r .admin_key)
#   scripts/curl-ingest.sh /tmp/events.ndjson 4 5000
set -euo pipefail

file=${1:?usage: scripts/curl-ingest.sh FILE.ndjson [CLIENTS] [BATCH]}
clients=${2:-4}
batch=${3:-5000}
url=${STRATA_URL:-http://127.0.0.1:8686}
key=${STRATA_KEY:?set STRATA_KEY to a tenant admin key}

chunks=$(mktemp -d)
trap 'rm -rf "$chunks"' EXIT
split -l "$batch" -a 6 "$file" "$chunks/body."
bodies=$(find "$chunks" -name 'body.*' | wc -l)
lines=$(wc -l < "$file")
echo "posting $lines events in $bodies bodies of $batch lines with $clients curl clients to $url" >&2

start=$(date +%s.%N)
# -f: a non-2xx answer fails the run, so an unacknowledged body cannot pass unnoticed.
find "$chunks" -name 'body.*' | sort | xargs -P "$clients" -I{} \
  curl -sf -o /dev/null -X POST "$url/api/v1/write" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/x-ndjson' \
    --data-binary @{}
end=$(date +%s.%N)

awk -v lines="$lines" -v start="$start" -v end="$end" -v bodies="$bodies" 'BEGIN {
  seconds = end - start
  printf "%d events in %d bodies acknowledged in %.2f s: %.0f events/s\n", lines, bodies, seconds, lines / seconds
}'
