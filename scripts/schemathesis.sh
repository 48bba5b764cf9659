#!/usr/bin/env bash
# Checks the running Worker against its own OpenAPI document with
# schemathesis: no server errors, and every status, content type, header and
# body as documented. The caller starts the stack, e.g.
#
#   source scripts/stack.sh && tsp_build && tsp_up .state/st
#   bash scripts/schemathesis.sh; tsp_down
#
# Needs TSP_URL and TSP_TOKEN. Extra arguments go to `schemathesis run`.
# Exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="4.32.5"
VENV="$ROOT/.state/venv"

: "${TSP_URL:?TSP_URL must point at the running Worker (tsp_up)}"
: "${TSP_TOKEN:?TSP_TOKEN must hold an API token (tsp_up)}"

source "$ROOT/scripts/venv.sh"
pinned_venv "$VENV" schemathesis "schemathesis==$VERSION"

# One dead job (the simulator, like ACE, answers 403 for a site it does not
# know, here any site named unknown*, which is permanent), so the archive,
# retry and dead-letter routes see real data.
# Best effort: the run goes on without it.
seed=$(curl -fsS -m 30 -X POST "$TSP_URL/v1/jobs" -H "Authorization: Bearer $TSP_TOKEN" \
  -H 'content-type: application/json' \
  -d '{"site":"unknown-schemathesis","points":["p"],"days":1,"force":true}' 2>/dev/null \
  | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["job_id"])' 2>/dev/null) || seed=""
for _ in $(seq 100); do
  [ -n "$seed" ] || break
  job=$(curl -fsS -m 30 "$TSP_URL/v1/jobs/$seed" -H "Authorization: Bearer $TSP_TOKEN" 2>/dev/null) || job=""
  [[ "$job" == *'"status":"failed_permanent"'* ]] && break
  sleep 0.2
done

# Every check that compares a response with the document, plus no 5xx.
# Fuzzing submits real jobs, which run against the simulator.
exec "$VENV/bin/schemathesis" run "$TSP_URL/openapi.json" \
  --header "Authorization: Bearer $TSP_TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-30}" \
  --workers 1 \
  --request-timeout 30 \
  --generation-database none \
  --seed "${SCHEMATHESIS_SEED:-20251122}" \
  --no-color \
  "$@"
