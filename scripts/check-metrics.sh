#!/usr/bin/env bash
# Parses the running Worker's /v1/metrics with a real OpenMetrics parser
# (prometheus_client from PyPI) and checks the families it must carry.
# Needs TSP_URL and TSP_TOKEN (tsp_up); uses the test venv in .state/venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.state/venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import prometheus_client' 2>/dev/null \
  || "$VENV/bin/pip" install -q "prometheus-client==0.21.1"
curl -fsS -m 30 -D "$ROOT/.state/metrics.headers" -H "Authorization: Bearer $TSP_TOKEN" \
  "$TSP_URL/v1/metrics" -o "$ROOT/.state/metrics.txt"
grep -qi '^content-type: application/openmetrics-text' "$ROOT/.state/metrics.headers"
code=$(curl -sS -m 30 -o /dev/null -w '%{http_code}' "$TSP_URL/v1/metrics")
[ "$code" = 401 ] || { echo "unauthenticated /v1/metrics answered $code" >&2; exit 1; }
"$VENV/bin/python" - "$ROOT/.state/metrics.txt" <<'PY'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
families = {f.name: f for f in text_string_to_metric_families(text)}
need = ["tsp_jobs", "tsp_queue_depth", "tsp_completed_last_hour", "tsp_failure_rate_last_hour",
        "tsp_dead_letters_last_day", "tsp_upstream_circuit_state", "tsp_invocation_max_d1_statements",
        "tsp_invocation_max_wasm_memory_bytes"]
missing = [n for n in need if n not in families]
assert not missing, f"missing families: {missing}"
states = {s.labels["status"] for s in families["tsp_jobs"].samples}
assert {"queued", "completed", "failed_permanent"} <= states, states
current = [s for s in families["tsp_upstream_circuit_state"].samples if s.value == 1]
assert len(current) == 1, current
print(f"[metrics] {len(families)} OpenMetrics families parsed; circuit {current[0].labels['state']}")
PY
