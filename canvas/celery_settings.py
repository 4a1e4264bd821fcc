"""Every Celery setting, and what canvas does with it: honoured, not needed, or refused.

``canvas.config.check`` reads these tables when an app finalizes (a worker or beat starting).
A setting canvas honours is in ``canvas.config.DEFAULTS``; one whose job canvas does another way
is accepted with one warning line saying why it is not needed (``NOT_NEEDED``); one whose silent
absence would change what a project gets is refused with ``ImproperlyConfigured`` naming what to
use instead (``REFUSED``). A lowercase name close to a known one warns with a "did you mean".
Celery's old upper-case names (``BROKER_URL``, ``CELERY_RESULT_BACKEND``) are mapped by
``OLD_NAMES`` with a deprecation warning, as in Celery.
"""

from __future__ import annotations

import warnings

from canvas.exceptions import CDeprecationWarning

#: a Celery setting canvas does not need -> why (one warning line when a project sets it)
NOT_NEEDED: dict[str, str] = {
    "beat_cron_starting_deadline": "beat fires each missed crontab slot once, at start-up",
    "beat_sync_every": "beat writes each run to its schedule store as it fires",
    "broker_channel_error_retry": "the worker reconnects after any broker error, with backoff",
    "broker_connection_max_retries": (
        "the worker retries the broker for ever, with backoff, and says so once per retry"
    ),
    "broker_connection_retry": "the worker always reconnects to the broker, with backoff",
    "broker_connection_timeout": (
        "connections use the transport's own timeouts (broker_transport_options)"
    ),
    "broker_heartbeat": (
        "AMQP heartbeats are negotiated by the transport; set them in broker_transport_options"
    ),
    "broker_heartbeat_checkrate": "AMQP heartbeats are negotiated by the transport",
    "broker_login_method": "the transport logs in with the URL's credentials",
    "broker_native_delayed_delivery_queue_type": "countdown/ETA calls wait in the result store",
    "broker_pool_acquire_timeout": "each process keeps one broker connection, opened lazily",
    "broker_pool_limit": "each process keeps one broker connection, opened lazily",
    "control_queue_durable": "remote control uses canvas's broadcast bus (canvas.bus)",
    "control_queue_exclusive": "remote control uses canvas's broadcast bus (canvas.bus)",
    "control_queue_expires": "remote control uses canvas's broadcast bus (canvas.bus)",
    "control_queue_ttl": "remote control uses canvas's broadcast bus (canvas.bus)",
    "event_queue_durable": "events use canvas's broadcast bus (canvas.bus)",
    "event_queue_exclusive": "events use canvas's broadcast bus (canvas.bus)",
    "event_queue_expires": "events use canvas's broadcast bus (canvas.bus)",
    "event_queue_prefix": "events use canvas's broadcast bus (canvas.bus)",
    "event_queue_ttl": "events use canvas's broadcast bus (canvas.bus)",
    "event_serializer": "events are msgpack on canvas's bus (signed when signing is on)",
    "result_accept_content": "results are canvas's own msgpack records, never pickle",
    # json or msgpack; any other value is refused (config.check)
    "result_serializer": (
        "results are canvas's own msgpack records (dates, Decimals, UUIDs and bytes come back as "
        "returned)"
    ),
    "result_backend_always_retry": (
        "store errors are retried by the worker, which requeues the message"
    ),
    "result_backend_base_sleep_between_retries_ms": (
        "store errors are retried by the worker, which requeues the message"
    ),
    "result_backend_max_retries": (
        "store errors are retried by the worker, which requeues the message"
    ),
    "result_backend_max_sleep_between_retries_ms": (
        "store errors are retried by the worker, which requeues the message"
    ),
    "result_backend_thread_safe": "each thread may share the process's store connection",
    "result_cache_max": "a handle caches its own final state only",
    "result_chord_join_timeout": (
        "chords are joined by an atomic store operation, never by polling"
    ),
    "result_chord_retry_interval": (
        "chords are joined by an atomic store operation, never by polling"
    ),
    "result_compression": "results are stored uncompressed",
    "result_exchange": "rpc:// replies go straight to the client's reply queue",
    "result_exchange_type": "rpc:// replies go straight to the client's reply queue",
    "result_persistent": "rpc:// replies are always persistent messages",
    "task_acks_on_failure": "use task_acks_on_failure_or_timeout",
    "task_acks_on_timeout": "use task_acks_on_failure_or_timeout",
    "task_compression": (
        "message bodies are sent uncompressed (task_max_payload_bytes bounds them)"
    ),
    "task_create_missing_queue_exchange_type": (
        "queues are declared by name, on the default exchange"
    ),
    "task_create_missing_queue_type": "set task_default_queue_type",
    "task_default_delivery_mode": "messages are always persistent",
    "task_default_exchange": (
        "canvas routes every call straight to its queue (task_routes, queue=)"
    ),
    "task_default_exchange_type": (
        "canvas routes every call straight to its queue (task_routes, queue=)"
    ),
    "task_default_routing_key": (
        "canvas routes every call straight to its queue (task_routes, queue=)"
    ),
    "task_publish_retry": (
        "publishing retries once after reconnecting; a failure raises at the caller"
    ),
    "task_publish_retry_policy": (
        "publishing retries once after reconnecting; a failure raises at the caller"
    ),
    "task_queue_max_priority": (
        "priority queues are declared by the transport (broker_transport_options)"
    ),
    "task_reject_on_worker_lost": (
        "with acks_late a call whose worker died is redelivered, up to "
        "worker_max_deliveries, then dead-lettered"
    ),
    "task_remote_tracebacks": (
        "a failed result carries the remote traceback text (result.traceback)"
    ),
    "worker_agent": "not used",
    "worker_cancel_long_running_tasks_on_connection_loss": (
        "a running task finishes; its lease, not the connection, decides redelivery"
    ),
    "worker_consumer": "the consumer is canvas's own",
    "worker_deduplicate_successful_tasks": (
        "a redelivered call that already succeeded is never run again"
    ),
    "worker_disable_prefetch": "set worker_prefetch_multiplier=1",
    "worker_disable_rate_limits": (
        "remove rate_limit from the task (or app.control.rate_limit(name, None))"
    ),
    "worker_enable_prefetch_count_reduction": "set worker_prefetch_multiplier",
    "worker_enable_soft_shutdown_on_idle": "a warm shutdown waits for the tasks in hand",
    "worker_eta_task_limit": "countdown/ETA calls wait in the result store, not in worker memory",
    "worker_log_color": "worker logs are plain text",
    "worker_lost_wait": "the supervisor learns of a dead pool process at once (SIGCHLD)",
    "worker_pool_putlocks": "not used",
    "worker_pool_restarts": "pool processes are replaced by the supervisor as they die",
    "worker_proc_alive_timeout": "the supervisor learns of a dead pool process at once (SIGCHLD)",
    "worker_soft_shutdown_timeout": (
        "a warm shutdown waits for the tasks in hand; a second signal is a cold one"
    ),
    "worker_timer": "the timer is canvas's own",
    "worker_timer_precision": "countdown/ETA calls are released by the supervisor's timer",
    "redis_max_connections": "the Redis store keeps one connection pool per process",
    "redis_retry_on_timeout": "the worker retries a store error by requeueing the message",
    "redis_socket_connect_timeout": "the Redis store uses the client's timeouts",
    "redis_socket_keepalive": "the Redis store uses the client's defaults",
    "redis_socket_timeout": "the Redis store uses the client's timeouts",
    "database_short_lived_sessions": "the SQL store manages its own connections",
    "database_create_tables_at_setup": "the SQL store creates its tables on first use",
    "database_engine_options": "the SQL store builds its own engine from result_backend",
    "task_protocol": "canvas speaks its own message protocol (Celery workers cannot read it)",
}

#: a Celery setting canvas refuses -> what to use instead
REFUSED: dict[str, str] = {
    "broker_failover_strategy": (
        "give one broker_url; run the broker highly available (a RabbitMQ cluster, Redis "
        "Sentinel) instead"
    ),
    "broker_host": "put the host in broker_url",
    "broker_password": "put the password in broker_url",
    "broker_port": "put the port in broker_url",
    "broker_read_url": "give one broker_url",
    "broker_transport": "name the transport by broker_url's scheme",
    "broker_user": "put the user in broker_url",
    "broker_vhost": "put the virtual host in broker_url",
    "broker_write_url": "give one broker_url",
    "database_engine_callback": "the SQL store builds its own engine from result_backend",
    "database_table_names": "the SQL store's tables have fixed names",
    "database_table_schemas": "the SQL store's tables have fixed names",
    "database_url": "set result_backend='db+postgresql://...' (or sqlite:///...)",
    "redis_backend_use_ssl": "use a rediss:// result_backend URL",
    "redis_db": "put the database number in result_backend",
    "redis_host": "put the host in result_backend",
    "redis_password": "put the password in result_backend",
    "redis_port": "put the port in result_backend",
    "redis_username": "put the user in result_backend",
    "worker_direct": (
        "send to a worker's own queue with queue='<name>' and run that worker with -Q"
    ),
}

#: result stores canvas does not have, by setting prefix
REFUSED_STORES: dict[str, str] = {
    "arangodb_": "ArangoDB",
    "azureblockblob_": "Azure Block Blob",
    "cache_backend": "Memcached",
    "cassandra_": "Cassandra",
    "cosmosdbsql_": "Cosmos DB",
    "couchbase_": "Couchbase",
    "elasticsearch_": "Elasticsearch",
    "gcs_": "Google Cloud Storage",
    "mongodb_": "MongoDB",
    "s3_": "S3",
}

#: Celery's old upper-case names -> the lowercase ones (Celery 4 renamed them)
OLD_NAMES: dict[str, str] = {
    "AZUREBLOCKBLOB_BASE_PATH": "azureblockblob_base_path",
    "AZUREBLOCKBLOB_CONNECTION_TIMEOUT": "azureblockblob_connection_timeout",
    "AZUREBLOCKBLOB_CONTAINER_NAME": "azureblockblob_container_name",
    "AZUREBLOCKBLOB_READ_TIMEOUT": "azureblockblob_read_timeout",
    "AZUREBLOCKBLOB_RETRY_INCREMENT_BASE": "azureblockblob_retry_increment_base",
    "AZUREBLOCKBLOB_RETRY_INITIAL_BACKOFF_SEC": "azureblockblob_retry_initial_backoff_sec",
    "AZUREBLOCKBLOB_RETRY_MAX_ATTEMPTS": "azureblockblob_retry_max_attempts",
    "BROKER_CHANNEL_ERROR_RETRY": "broker_channel_error_retry",
    "BROKER_CONNECTION_MAX_RETRIES": "broker_connection_max_retries",
    "BROKER_CONNECTION_RETRY": "broker_connection_retry",
    "BROKER_CONNECTION_RETRY_ON_STARTUP": "broker_connection_retry_on_startup",
    "BROKER_CONNECTION_TIMEOUT": "broker_connection_timeout",
    "BROKER_FAILOVER_STRATEGY": "broker_failover_strategy",
    "BROKER_HEARTBEAT": "broker_heartbeat",
    "BROKER_HEARTBEAT_CHECKRATE": "broker_heartbeat_checkrate",
    "BROKER_HOST": "broker_host",
    "BROKER_LOGIN_METHOD": "broker_login_method",
    "BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE": "broker_native_delayed_delivery_queue_type",
    "BROKER_PASSWORD": "broker_password",
    "BROKER_POOL_ACQUIRE_TIMEOUT": "broker_pool_acquire_timeout",
    "BROKER_POOL_LIMIT": "broker_pool_limit",
    "BROKER_PORT": "broker_port",
    "BROKER_READ_URL": "broker_read_url",
    "BROKER_TRANSPORT": "broker_transport",
    "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
    "BROKER_URL": "broker_url",
    "BROKER_USER": "broker_user",
    "BROKER_USE_SSL": "broker_use_ssl",
    "BROKER_VHOST": "broker_vhost",
    "BROKER_WRITE_URL": "broker_write_url",
    "CASSANDRA_AUTH_KWARGS": "cassandra_auth_kwargs",
    "CASSANDRA_AUTH_PROVIDER": "cassandra_auth_provider",
    "CASSANDRA_BUNDLE_PATH": "cassandra_bundle_path",
    "CASSANDRA_ENTRY_TTL": "cassandra_entry_ttl",
    "CASSANDRA_KEYSPACE": "cassandra_keyspace",
    "CASSANDRA_OPTIONS": "cassandra_options",
    "CASSANDRA_PORT": "cassandra_port",
    "CASSANDRA_READ_CONSISTENCY": "cassandra_read_consistency",
    "CASSANDRA_SERVERS": "cassandra_servers",
    "CASSANDRA_TABLE": "cassandra_table",
    "CASSANDRA_WRITE_CONSISTENCY": "cassandra_write_consistency",
    "CELERYBEAT_CRON_STARTING_DEADLINE": "beat_cron_starting_deadline",
    "CELERYBEAT_MAX_LOOP_INTERVAL": "beat_max_loop_interval",
    "CELERYBEAT_SCHEDULE": "beat_schedule",
    "CELERYBEAT_SCHEDULER": "beat_scheduler",
    "CELERYBEAT_SCHEDULE_FILENAME": "beat_schedule_filename",
    "CELERYBEAT_SYNC_EVERY": "beat_sync_every",
    "CELERYD_AGENT": "worker_agent",
    "CELERYD_AUTOSCALER": "worker_autoscaler",
    "CELERYD_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS": (
        "worker_cancel_long_running_tasks_on_connection_loss"
    ),
    "CELERYD_CONCURRENCY": "worker_concurrency",
    "CELERYD_CONSUMER": "worker_consumer",
    "CELERYD_DEDUPLICATE_SUCCESSFUL_TASKS": "worker_deduplicate_successful_tasks",
    "CELERYD_DETECT_QUORUM_QUEUES": "worker_detect_quorum_queues",
    "CELERYD_DISABLE_PREFETCH": "worker_disable_prefetch",
    "CELERYD_ENABLE_PREFETCH_COUNT_REDUCTION": "worker_enable_prefetch_count_reduction",
    "CELERYD_ENABLE_SOFT_SHUTDOWN_ON_IDLE": "worker_enable_soft_shutdown_on_idle",
    "CELERYD_ETA_TASK_LIMIT": "worker_eta_task_limit",
    "CELERYD_HIJACK_ROOT_LOGGER": "worker_hijack_root_logger",
    "CELERYD_LOG_COLOR": "worker_log_color",
    "CELERYD_LOG_FORMAT": "worker_log_format",
    "CELERYD_MAX_MEMORY_PER_CHILD": "worker_max_memory_per_child",
    "CELERYD_MAX_TASKS_PER_CHILD": "worker_max_tasks_per_child",
    "CELERYD_POOL": "worker_pool",
    "CELERYD_POOL_PUTLOCKS": "worker_pool_putlocks",
    "CELERYD_POOL_RESTARTS": "worker_pool_restarts",
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
    "CELERYD_PROC_ALIVE_TIMEOUT": "worker_proc_alive_timeout",
    "CELERYD_SOFT_SHUTDOWN_TIMEOUT": "worker_soft_shutdown_timeout",
    "CELERYD_STATE_DB": "worker_state_db",
    "CELERYD_TASK_LOG_FORMAT": "worker_task_log_format",
    "CELERYD_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
    "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
    "CELERYD_TIMER": "worker_timer",
    "CELERYD_TIMER_PRECISION": "worker_timer_precision",
    "CELERYD_WORKER_LOST_WAIT": "worker_lost_wait",
    "CELERY_ACCEPT_CONTENT": "accept_content",
    "CELERY_ACKS_LATE": "task_acks_late",
    "CELERY_ACKS_ON_FAILURE": "task_acks_on_failure",
    "CELERY_ACKS_ON_FAILURE_OR_TIMEOUT": "task_acks_on_failure_or_timeout",
    "CELERY_ACKS_ON_TIMEOUT": "task_acks_on_timeout",
    "CELERY_ALLOW_ERROR_CB_ON_CHORD_HEADER": "task_allow_error_cb_on_chord_header",
    "CELERY_ALWAYS_EAGER": "task_always_eager",
    "CELERY_ANNOTATIONS": "task_annotations",
    "CELERY_ARANGODB_BACKEND_SETTINGS": "arangodb_backend_settings",
    "CELERY_CACHE_BACKEND": "cache_backend",
    "CELERY_CACHE_BACKEND_OPTIONS": "cache_backend_options",
    "CELERY_COUCHBASE_BACKEND_SETTINGS": "couchbase_backend_settings",
    "CELERY_CREATE_MISSING_QUEUES": "task_create_missing_queues",
    "CELERY_CREATE_MISSING_QUEUE_EXCHANGE_TYPE": "task_create_missing_queue_exchange_type",
    "CELERY_CREATE_MISSING_QUEUE_TYPE": "task_create_missing_queue_type",
    "CELERY_DEFAULT_DELIVERY_MODE": "task_default_delivery_mode",
    "CELERY_DEFAULT_EXCHANGE": "task_default_exchange",
    "CELERY_DEFAULT_EXCHANGE_TYPE": "task_default_exchange_type",
    "CELERY_DEFAULT_PRIORITY": "task_default_priority",
    "CELERY_DEFAULT_QUEUE": "task_default_queue",
    "CELERY_DEFAULT_QUEUE_TYPE": "task_default_queue_type",
    "CELERY_DEFAULT_RATE_LIMIT": "task_default_rate_limit",
    "CELERY_DEFAULT_ROUTING_KEY": "task_default_routing_key",
    "CELERY_DISABLE_RATE_LIMITS": "worker_disable_rate_limits",
    "CELERY_EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
    "CELERY_ELASTICSEARCH_MAX_RETRIES": "elasticsearch_max_retries",
    "CELERY_ELASTICSEARCH_RETRY_ON_TIMEOUT": "elasticsearch_retry_on_timeout",
    "CELERY_ELASTICSEARCH_SAVE_META_AS_TEXT": "elasticsearch_save_meta_as_text",
    "CELERY_ELASTICSEARCH_TIMEOUT": "elasticsearch_timeout",
    "CELERY_ENABLE_REMOTE_CONTROL": "worker_enable_remote_control",
    "CELERY_EVENT_EXCHANGE": "event_exchange",
    "CELERY_EVENT_QUEUE_DURABLE": "event_queue_durable",
    "CELERY_EVENT_QUEUE_EXCLUSIVE": "event_queue_exclusive",
    "CELERY_EVENT_QUEUE_EXPIRES": "event_queue_expires",
    "CELERY_EVENT_QUEUE_PREFIX": "event_queue_prefix",
    "CELERY_EVENT_QUEUE_TTL": "event_queue_ttl",
    "CELERY_EVENT_SERIALIZER": "event_serializer",
    "CELERY_IGNORE_RESULT": "task_ignore_result",
    "CELERY_IMPORTS": "imports",
    "CELERY_INCLUDE": "include",
    "CELERY_INHERIT_PARENT_PRIORITY": "task_inherit_parent_priority",
    "CELERY_MAX_CACHED_RESULTS": "result_cache_max",
    "CELERY_MESSAGE_COMPRESSION": "task_compression",
    "CELERY_MONGODB_BACKEND_SETTINGS": "mongodb_backend_settings",
    "CELERY_QUEUES": "task_queues",
    "CELERY_QUEUE_MAX_PRIORITY": "task_queue_max_priority",
    "CELERY_REDIRECT_STDOUTS": "worker_redirect_stdouts",
    "CELERY_REDIRECT_STDOUTS_LEVEL": "worker_redirect_stdouts_level",
    "CELERY_REDIS_BACKEND_USE_SSL": "redis_backend_use_ssl",
    "CELERY_REDIS_DB": "redis_db",
    "CELERY_REDIS_HOST": "redis_host",
    "CELERY_REDIS_MAX_CONNECTIONS": "redis_max_connections",
    "CELERY_REDIS_PASSWORD": "redis_password",
    "CELERY_REDIS_PORT": "redis_port",
    "CELERY_REDIS_RETRY_ON_TIMEOUT": "redis_retry_on_timeout",
    "CELERY_REDIS_SOCKET_CONNECT_TIMEOUT": "redis_socket_connect_timeout",
    "CELERY_REDIS_SOCKET_KEEPALIVE": "redis_socket_keepalive",
    "CELERY_REDIS_SOCKET_TIMEOUT": "redis_socket_timeout",
    "CELERY_REDIS_USERNAME": "redis_username",
    "CELERY_REJECT_ON_WORKER_LOST": "task_reject_on_worker_lost",
    "CELERY_REMOTE_TRACEBACKS": "task_remote_tracebacks",
    "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_RESULT_BACKEND_ALWAYS_RETRY": "result_backend_always_retry",
    "CELERY_RESULT_BACKEND_BASE_SLEEP_BETWEEN_RETRIES_MS": (
        "result_backend_base_sleep_between_retries_ms"
    ),
    "CELERY_RESULT_BACKEND_MAX_RETRIES": "result_backend_max_retries",
    "CELERY_RESULT_BACKEND_MAX_SLEEP_BETWEEN_RETRIES_MS": (
        "result_backend_max_sleep_between_retries_ms"
    ),
    "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS": "result_backend_transport_options",
    "CELERY_RESULT_CHORD_JOIN_TIMEOUT": "result_chord_join_timeout",
    "CELERY_RESULT_CHORD_RETRY_INTERVAL": "result_chord_retry_interval",
    "CELERY_RESULT_COMPRESSION": "result_compression",
    "CELERY_RESULT_DBURI": "database_url",
    "CELERY_RESULT_DB_SHORT_LIVED_SESSIONS": "database_short_lived_sessions",
    "CELERY_RESULT_DB_TABLENAMES": "database_table_names",
    "CELERY_RESULT_ENGINE_OPTIONS": "database_engine_options",
    "CELERY_RESULT_EXCHANGE": "result_exchange",
    "CELERY_RESULT_EXCHANGE_TYPE": "result_exchange_type",
    "CELERY_RESULT_EXTENDED": "result_extended",
    "CELERY_RESULT_PERSISTENT": "result_persistent",
    "CELERY_RESULT_SERIALIZER": "result_serializer",
    "CELERY_ROUTES": "task_routes",
    "CELERY_SECURITY_CERTIFICATE": "security_certificate",
    "CELERY_SECURITY_CERT_STORE": "security_cert_store",
    "CELERY_SECURITY_DIGEST": "security_digest",
    "CELERY_SECURITY_KEY": "security_key",
    "CELERY_SECURITY_KEY_PASSWORD": "security_key_password",
    "CELERY_SEND_EVENTS": "worker_send_task_events",
    "CELERY_SEND_TASK_SENT_EVENT": "task_send_sent_event",
    "CELERY_STORE_EAGER_RESULT": "task_store_eager_result",
    "CELERY_STORE_ERRORS_EVEN_IF_IGNORED": "task_store_errors_even_if_ignored",
    "CELERY_TASK_PROTOCOL": "task_protocol",
    "CELERY_TASK_PUBLISH_RETRY": "task_publish_retry",
    "CELERY_TASK_PUBLISH_RETRY_POLICY": "task_publish_retry_policy",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
    "CELERY_TASK_SERIALIZER": "task_serializer",
    "CELERY_TIMEZONE": "timezone",
    "CELERY_TRACK_STARTED": "task_track_started",
    "CELERY_WORKER_DIRECT": "worker_direct",
    "CONTROL_EXCHANGE": "control_exchange",
    "CONTROL_QUEUE_DURABLE": "control_queue_durable",
    "CONTROL_QUEUE_EXCLUSIVE": "control_queue_exclusive",
    "CONTROL_QUEUE_EXPIRES": "control_queue_expires",
    "CONTROL_QUEUE_TTL": "control_queue_ttl",
    "COSMOSDBSQL_COLLECTION_NAME": "cosmosdbsql_collection_name",
    "COSMOSDBSQL_CONSISTENCY_LEVEL": "cosmosdbsql_consistency_level",
    "COSMOSDBSQL_DATABASE_NAME": "cosmosdbsql_database_name",
    "COSMOSDBSQL_MAX_RETRY_ATTEMPTS": "cosmosdbsql_max_retry_attempts",
    "COSMOSDBSQL_MAX_RETRY_WAIT_TIME": "cosmosdbsql_max_retry_wait_time",
    "DATABASE_CREATE_TABLES_AT_SETUP": "database_create_tables_at_setup",
    "DATABASE_ENGINE_CALLBACK": "database_engine_callback",
    "DATABASE_TABLE_SCHEMAS": "database_table_schemas",
    "ENABLE_UTC": "enable_utc",
    "GCS_BASE_PATH": "gcs_base_path",
    "GCS_BUCKET": "gcs_bucket",
    "GCS_PROJECT": "gcs_project",
    "GCS_TTL": "gcs_ttl",
    "RESULT_ACCEPT_CONTENT": "result_accept_content",
    "S3_ACCESS_KEY_ID": "s3_access_key_id",
    "S3_BASE_PATH": "s3_base_path",
    "S3_BUCKET": "s3_bucket",
    "S3_ENDPOINT_URL": "s3_endpoint_url",
    "S3_REGION": "s3_region",
    "S3_SECRET_ACCESS_KEY": "s3_secret_access_key",
}


def new_name(key: str) -> str | None:
    """The lowercase name of a Celery upper-case setting (``BROKER_URL``), else ``None``;
    warns, as Celery does, that the old name is deprecated."""
    name = OLD_NAMES.get(key)
    if name is not None:
        warnings.warn(
            f"Setting {key} is Celery's old name; use {name!r} (it is read as that).",
            CDeprecationWarning,
            stacklevel=4,
        )
    return name


#: Celery's lowercase names (those the tables above do not list, canvas honours)
CELERY_NAMES = frozenset(OLD_NAMES.values())
