# pinned_venv DIR TAG PIN...: a Python venv in DIR holding exactly the pinned
# packages (`name==version`), installed from PyPI only when one is missing
# or at another version. TAG prefixes the install message. Source it.
pinned_venv() {
  local venv=$1 tag=$2
  shift 2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  if ! "$venv/bin/python" - "$@" <<'PY' 2>/dev/null; then
import importlib.metadata as m, sys
sys.exit(any(m.version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))
PY
    echo "[$tag] installing $* into $venv" >&2
    "$venv/bin/pip" install -q "$@"
  fi
}
