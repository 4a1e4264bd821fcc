#!/usr/bin/env bash
# Start Redis, RabbitMQ and PostgreSQL when they are not answering; fail when one stays down.
# The test suite talks to all three for real; a missing service is an error, never a skip.
set -uo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # name port seconds
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    answers "$2" && return 0
    sleep 0.5
  done
  echo "ERROR: $1 is not answering on 127.0.0.1:$2" >&2
  return 1
}

status=0
if ! answers 6379; then
  echo "Starting Redis..."
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi
wait_for Redis 6379 20 || status=1

if ! answers 5672; then
  echo "Starting RabbitMQ..."
  rabbitmq-server -detached >/dev/null 2>&1
fi
wait_for RabbitMQ 5672 90 || status=1

if ! answers 5432; then
  echo "Starting PostgreSQL..."
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
fi
wait_for PostgreSQL 5432 30 || status=1

exit $status
