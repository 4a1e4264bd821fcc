#!/usr/bin/env bash
# A local Redis Cluster for tests and benchmarks: six redis-server processes, three primaries
# and three replicas, on ports BASE..BASE+5 (BASE is $REDIS_CLUSTER_PORT, default 7000), data in
# a temporary directory. Failover settings for tests: a node is failed after 2 s
# (cluster-node-timeout), and a replica may always take over (cluster-replica-validity-factor 0).
# `start` is idempotent: a cluster already answering with
# cluster_state:ok is left as it is. `stop` ends the six servers and removes their data.
#
#   scripts/redis-cluster.sh start|stop|status
#
# The URL to give canvas: redis+cluster://127.0.0.1:7000/ (any node; the client finds the rest).
set -uo pipefail

BASE=${REDIS_CLUSTER_PORT:-7000}
DIR=${REDIS_CLUSTER_DIR:-${TMPDIR:-/tmp}/canvas-redis-cluster-$BASE}
PORTS=()
for i in 0 1 2 3 4 5; do PORTS+=($((BASE + i))); done

state() { redis-cli -p "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p'; }

# Every node answers and agrees the cluster is ok, and three replicas are in sync with their
# primaries (a replica that never synced cannot take over).
healthy() {
  local port synced=0
  for port in "${PORTS[@]}"; do
    [[ "$(state "$port")" == ok ]] || return 1
    redis-cli -p "$port" info replication | grep -q '^master_link_status:up' && ((synced++))
  done
  ((synced >= 3))
}

wait_until() {  # seconds command...
  local deadline=$((SECONDS + $1))
  shift
  while ((SECONDS < deadline)); do
    "$@" && return 0
    sleep 0.2
  done
  return 1
}

answers_all() {
  local port
  for port in "${PORTS[@]}"; do
    redis-cli -p "$port" ping >/dev/null 2>&1 || return 1
  done
}

start() {
  if healthy; then
    echo "Redis Cluster already up on ports ${PORTS[0]}-${PORTS[5]}"
    return 0
  fi
  mkdir -p "$DIR"
  local port
  for port in "${PORTS[@]}"; do
    redis-cli -p "$port" ping >/dev/null 2>&1 && continue
    mkdir -p "$DIR/$port"
    # 9>&-: the server must not inherit (and hold) the lock below.
    redis-server --port "$port" --bind 127.0.0.1 --daemonize yes \
      --dir "$DIR/$port" --pidfile "$DIR/$port/redis.pid" --logfile "$DIR/$port/redis.log" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
      --cluster-replica-validity-factor 0 --repl-diskless-sync-delay 0 \
      --save "" --appendonly no >/dev/null 9>&- ||
      { echo "ERROR: redis-server did not start on port $port" >&2; return 1; }
  done
  wait_until 20 answers_all || { echo "ERROR: a cluster node is not answering" >&2; return 1; }
  # Nodes that know no other node yet: form the cluster (a half-formed one is an error to fix).
  local known
  known=$(redis-cli -p "${PORTS[0]}" cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')
  if [[ "$known" == 1 ]]; then
    local nodes=()
    for port in "${PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/create.log" 2>&1 ||
      { echo "ERROR: redis-cli --cluster create failed (see $DIR/create.log)" >&2; return 1; }
  fi
  if ! wait_until 60 healthy; then
    echo "ERROR: Redis Cluster on ${PORTS[0]}-${PORTS[5]} is not cluster_state:ok" >&2
    return 1
  fi
  echo "Redis Cluster up: redis+cluster://127.0.0.1:${PORTS[0]}/"
}

stop() {
  local port pid
  for port in "${PORTS[@]}"; do
    pid=$(cat "$DIR/$port/redis.pid" 2>/dev/null) || continue
    kill "$pid" 2>/dev/null
  done
  for port in "${PORTS[@]}"; do
    pid=$(cat "$DIR/$port/redis.pid" 2>/dev/null) || continue
    wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null
  done
  rm -rf "$DIR"
  echo "Redis Cluster on ${PORTS[0]}-${PORTS[5]} stopped"
}

# One start or stop at a time (parallel test processes may all ask for the cluster).
exec 9>"${DIR}.lock"
flock 9

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) healthy && echo ok || { echo down; exit 1; } ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
