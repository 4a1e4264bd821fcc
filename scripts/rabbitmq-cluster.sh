#!/usr/bin/env bash
# A local three-node RabbitMQ cluster for the quorum-queue failover tests: three rabbitmq-server
# nodes with their own names (canvas-rmq<port>@localhost), AMQP ports BASE..BASE+2 (BASE is
# $RABBITMQ_CLUSTER_PORT, default 5701), Erlang distribution ports BASE+20000.., and data dirs in
# a temporary directory; the second and third join the first (`rabbitmqctl join_cluster`).
# `start` is idempotent (a cluster whose three nodes run is left as it is); `stop` ends the
# nodes and removes their data. The system RabbitMQ on 5672 is never touched.
#
#   scripts/rabbitmq-cluster.sh start|stop|status
#
# The URL to give canvas lists the three nodes (kombu fails over between them):
#   amqp://guest:guest@127.0.0.1:5701//;amqp://guest:guest@127.0.0.1:5702//;amqp://...:5703//
set -uo pipefail

BASE=${RABBITMQ_CLUSTER_PORT:-5701}
DIR=${RABBITMQ_CLUSTER_DIR:-${TMPDIR:-/tmp}/canvas-rabbitmq-cluster-$BASE}
BIN=/usr/lib/rabbitmq/bin
PORTS=("$BASE" $((BASE + 1)) $((BASE + 2)))

node() { echo "canvas-rmq$1@localhost"; }

# The environment of one node (and of the CLI tools talking to it: same HOME, same cookie).
with_node() {  # port command...
  local port=$1
  shift
  env HOME="$DIR" \
    RABBITMQ_NODENAME="$(node "$port")" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$port" \
    RABBITMQ_DIST_PORT=$((port + 20000)) \
    RABBITMQ_MNESIA_BASE="$DIR/$port/mnesia" \
    RABBITMQ_LOG_BASE="$DIR/$port/log" \
    RABBITMQ_PID_FILE="$DIR/$port/rabbitmq.pid" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$DIR/$port/rabbitmq" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/$port/advanced.config" \
    RABBITMQ_CONF_ENV_FILE="$DIR/$port/rabbitmq-env.conf" \
    ERL_CRASH_DUMP="${TMPDIR:-/tmp}/canvas-rabbitmq-$port-erl_crash.dump" \
    "$@"
}

ctl() {  # port args...
  local port=$1
  shift
  with_node "$port" "$BIN/rabbitmqctl" -n "$(node "$port")" "$@"
}

running() { ctl "$1" -q await_startup --timeout 1 >/dev/null 2>&1; }

# Three nodes run, and the first sees all three in its cluster.
healthy() {
  local port
  for port in "${PORTS[@]}"; do
    running "$port" || return 1
  done
  [[ $(ctl "${PORTS[0]}" -q cluster_status --formatter json 2>/dev/null |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["running_nodes"]))' 2>/dev/null) == 3 ]]
}

start_node() {
  local port=$1
  running "$port" && return 0
  mkdir -p "$DIR/$port"
  # 9>&-: the node must not inherit (and hold) the lock below. The redirections are the
  # subshell's, which lives as long as the node: on the caller's stdout it would keep a pipe
  # open (a test reading the script's output would wait for ever).
  # setsid: a session of its own, so that the caller's end (a test's process group) spares it.
  # In its data dir, where an Erlang crash dump lands too.
  (cd "$DIR/$port" && with_node "$port" setsid "$BIN/rabbitmq-server") \
    >"$DIR/$port/server.out" 2>&1 </dev/null 9>&- &
  ctl "$port" -q wait "$DIR/$port/rabbitmq.pid" --timeout 120 >/dev/null 2>&1 ||
    { echo "ERROR: RabbitMQ node $(node "$port") did not start (see $DIR/$port)" >&2; return 1; }
}

start() {
  if healthy; then
    echo "RabbitMQ cluster already up on ports ${PORTS[0]}-${PORTS[2]}"
    return 0
  fi
  mkdir -p "$DIR"
  echo "[]." >"$DIR/enabled_plugins"
  local port
  for port in "${PORTS[@]}"; do
    start_node "$port" || return 1
  done
  for port in "${PORTS[@]:1}"; do
    if ! ctl "$port" -q cluster_status 2>/dev/null | grep -q "$(node "${PORTS[0]}")"; then
      ctl "$port" -q stop_app >/dev/null &&
        ctl "$port" -q join_cluster "$(node "${PORTS[0]}")" >/dev/null &&
        ctl "$port" -q start_app >/dev/null ||
        { echo "ERROR: $(node "$port") could not join $(node "${PORTS[0]}")" >&2; return 1; }
    fi
  done
  local deadline=$((SECONDS + 60))
  until healthy; do
    ((SECONDS < deadline)) || { echo "ERROR: the RabbitMQ cluster is not whole" >&2; return 1; }
    sleep 0.5
  done
  echo "RabbitMQ cluster up: $(url)"
}

url() {
  local port out=()
  for port in "${PORTS[@]}"; do out+=("amqp://guest:guest@127.0.0.1:$port//"); done
  (IFS=";"; echo "${out[*]}")
}

stop() {
  local port pid
  for port in "${PORTS[@]}"; do
    running "$port" && ctl "$port" -q shutdown >/dev/null 2>&1
    pid=$(cat "$DIR/$port/rabbitmq.pid" 2>/dev/null) && kill -9 "$pid" 2>/dev/null
  done
  rm -rf "$DIR"
  echo "RabbitMQ cluster on ${PORTS[0]}-${PORTS[2]} stopped"
}

mkdir -p "$(dirname "$DIR")"
exec 9>"${DIR}.lock"
flock 9

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) healthy && echo ok || { echo down; exit 1; } ;;
  url) url ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
