"""``Canvas``: the application object — configuration, task registry, hooks and connections.

It plays the part of Celery's ``Celery`` class and takes the same arguments and settings. With no
broker configured it uses the embedded transport (a SQLite file in a per-user cache directory,
keyed by the app's name, so a worker started from any directory finds the same queue), and with no
result backend it uses Redis when the broker is Redis, else a SQLite file beside the embedded
queue. Connections are opened lazily and once per process.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import sys
import threading
import types
import weakref
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar, cast, overload

from canvas import _current, dag, signals, signing
from canvas._current import Current, default_app
from canvas.backends import Backend
from canvas.backends import create as create_backend
from canvas.backends.rpc import RpcBackend, is_rpc_url
from canvas.bus import Bus
from canvas.bus import for_transport as bus_for_transport
from canvas.config import Settings, queue_options
from canvas.config import check as check_settings
from canvas.control import Control
from canvas.core import dispatch, eager, joins, metas, protocol
from canvas.core.workflow_view import WorkflowView
from canvas.events import Events
from canvas.exceptions import ImproperlyConfigured, NotRegistered
from canvas.primitives import chord
from canvas.private import private_dir
from canvas.request import Request, current_request
from canvas.result import AsyncResult, EagerResult, GroupResult, from_spec
from canvas.schedules import app_timezone
from canvas.signature import Signature, signature
from canvas.task import HANDLERS, Task
from canvas.transports import Transport
from canvas.transports import create as create_transport

logger = logging.getLogger("canvas")
#: result_backend_transport_options keys already named as unread (inherited by pool processes)
_SAID_UNREAD: set[tuple[str, tuple[str, ...]]] = set()

_Connection = TypeVar("_Connection", Transport, Backend, Bus)
#: a result handle (the class body's ``AsyncResult``/``GroupResult`` are methods)
_Handle = AsyncResult | GroupResult


_apps: weakref.WeakSet[Canvas] = weakref.WeakSet()
#: ``@shared_task`` tasks: every app, made before or after, registers each of them
_shared_tasks: list[Task] = []
#: the ``Task`` class (``app.Task`` and annotations inside ``Canvas``, where the name is taken)
_TaskType = Task


def _fresh_locks() -> None:
    """In a forked child: a thread of the parent (remote control, beat) may have held an app's
    lock at the fork, and would never release the child's copy."""
    for app in list(_apps):
        app._lock = threading.RLock()


os.register_at_fork(after_in_child=_fresh_locks)


class TaskRegistry(dict[str, Task]):
    """Task name -> Task; a missing name raises ``NotRegistered`` naming it."""

    def __missing__(self, name: str) -> Task:
        raise NotRegistered(
            f"Task {name!r} is not registered. Is the module that defines it imported by the "
            "worker (autodiscover_tasks / include / imports)?"
        )


class Canvas:
    """The application: ``Canvas(main, broker=None, backend=None, **settings)``."""

    def __init__(
        self,
        main: str | None = None,
        broker: str | None = None,
        backend: str | None = None,
        *,
        include: Sequence[str] | None = None,
        config_source: Any = None,
        set_as_current: bool = True,
        **settings: Any,
    ) -> None:
        self.main = main
        self.conf = Settings(settings)
        if config_source is not None:
            self.conf.load(config_source)
        if broker is not None:
            self.conf.broker_url = broker
        if backend is not None:
            self.conf.result_backend = backend
        if include:
            self.conf.include = tuple(include)
        self.tasks = TaskRegistry()
        for shared in _shared_tasks:
            self.tasks.setdefault(shared.name, shared)
        self.on_configure = signals.Signal("on_configure")
        self.on_after_configure = signals.Signal("on_after_configure")
        self.on_after_finalize = signals.Signal("on_after_finalize")
        self._finalized = False
        self._autodiscover: list[tuple[Sequence[str] | None, str]] = []
        self._connections: dict[str, tuple[int, Any]] = {}
        self._lock = threading.RLock()
        _apps.add(self)
        self._register_builtins()
        if set_as_current:
            _current.set_current(self)

    # -- configuration -----------------------------------------------------------------------
    def config_from_object(
        self, obj: Any, namespace: str | None = None, silent: bool = False, force: bool = True
    ) -> None:
        """Read settings from a module, object, dict or path; Django: ``namespace='CANVAS'``."""
        try:
            self.conf.load(obj, namespace)
        except ImportError:
            if not silent:
                raise

    def config_from_envvar(
        self, variable_name: str, silent: bool = False, force: bool = True
    ) -> bool:
        """Read settings from the module named by an environment variable (as in Celery)."""
        module = os.environ.get(variable_name)
        if not module:
            if silent:
                return False
            raise ImproperlyConfigured(
                f"The environment variable {variable_name!r} is not set; it should name the "
                "settings module to load (e.g. 'proj.settings')."
            )
        self.config_from_object(module, silent=silent, force=force)
        return True

    def setup_security(
        self,
        allowed_serializers: Iterable[str] | None = None,
        key: str | None = None,
        key_password: str | bytes | None = None,
        cert: str | None = None,
        store: str | None = None,
        digest: str | None = None,
        serializer: str = "json",
    ) -> None:
        """Celery's X.509 message signing (see ``canvas.signing``): the arguments override the
        ``security_*`` settings, and the key, certificate and store are read now, so a wrong
        file fails here and not at the first message.

        ``serializer`` encodes the bodies that are signed. ``allowed_serializers`` is checked
        and kept for Celery's signature: ``accept_content=['auth']`` already refuses every
        message that is not signed.
        """
        given = {
            "security_key": key,
            "security_key_password": key_password,
            "security_certificate": cert,
            "security_cert_store": store,
            "security_digest": digest,
        }
        self.conf.update({name: value for name, value in given.items() if value is not None})
        self.conf.security_serializer = serializer
        protocol.serializer(serializer)
        protocol.accepted_content_types(
            name for name in allowed_serializers or () if name != signing.AUTH
        )
        if signing.scheme(self.conf) != "x509":
            raise ImproperlyConfigured(
                "setup_security() signs with X.509: set security_key, security_certificate, "
                "security_cert_store, task_serializer='auth' and accept_content=['auth']."
            )
        signing.check_certificates(self.conf)

    def set_current(self) -> None:
        """Make this the current app (what ``current_app`` and unbound signatures use)."""
        _current.set_current(self)

    def set_default(self) -> None:
        """Make this the default app (in canvas the same as the current one)."""
        _current.set_current(self)

    @property
    def timezone(self) -> zoneinfo.ZoneInfo:
        """The app's ``timezone`` setting as a ``ZoneInfo``; unset, UTC (the machine's own zone
        with ``enable_utc=False``), as in Celery."""
        return app_timezone(self.conf)

    def on_after_fork(self) -> None:
        """Forget the parent's connections in a forked child (they reopen on first use)."""
        with self._lock:
            self._connections = {}

    def autodiscover_tasks(
        self,
        packages: Sequence[str] | Callable[[], Sequence[str]] | None = None,
        related_name: str = "tasks",
        force: bool = False,
    ) -> None:
        """Import ``<package>.tasks`` for each package (Django's INSTALLED_APPS by default).

        Done when the app is finalized (a worker or beat starting), as in Celery, because Django's
        apps are not ready yet when ``proj/canvas.py`` is imported.
        """
        resolved = packages() if callable(packages) else packages
        self._autodiscover.append((resolved, related_name))
        if force or self._finalized:
            self._run_autodiscover()

    def _run_autodiscover(self) -> None:
        pending, self._autodiscover = self._autodiscover, []
        for packages, related_name in pending:
            for package in packages if packages is not None else _django_apps():
                name = f"{package}.{related_name}"
                try:
                    importlib.import_module(name)
                except ModuleNotFoundError as exc:
                    if exc.name not in (name, package):
                        raise

    def finalize(self) -> None:
        """Import configured task modules and send ``on_after_configure`` (once)."""
        with self._lock:
            if self._finalized:
                return
            self._finalized = True
        if os.environ.get("DJANGO_SETTINGS_MODULE"):
            _setup_django(self)
        self.on_configure.send(sender=self)
        for line in check_settings(self.conf):
            logger.warning(line)
        if (
            is_rpc_url(self.conf.result_backend)
            and _on_this_machine(self.backend_url)
            and not self.broker_url.startswith(("embedded://", "memory://"))
        ):
            logger.warning(
                "result_backend='rpc://': results come back as messages, but workflows (chain, "
                "group, chord), countdowns and revokes keep their state in %s, on this machine: "
                "a workflow runs only on workers of the machine that sent it (elsewhere it "
                "fails, naming this). Workers on other machines need a shared store for "
                "workflows: set result_backend to a redis:// or db+postgresql:// URL.",
                self.backend_url,
            )
        signals.import_modules.send(sender=self)
        for module in (*tuple(self.conf.imports or ()), *tuple(self.conf.include or ())):
            importlib.import_module(module)
        self._run_autodiscover()
        for task in list(self.tasks.values()):
            self._annotate(task)  # settings may have been loaded after the tasks were made
        self.on_after_configure.send(sender=self, source=self.conf)
        self.on_after_finalize.send(sender=self)

    # -- tasks -------------------------------------------------------------------------------
    @overload
    def task(self, fun: Callable[..., Any], /) -> _TaskType: ...

    @overload
    def task(
        self, *, name: str | None = None, **options: Any
    ) -> Callable[[Callable[..., Any]], _TaskType]: ...

    def task(self, *args: Any, **options: Any) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(bind=True, ...)``;
        ``base=`` names a ``Task`` subclass whose attributes and handlers the task takes."""

        def register(fun: Callable[..., Any]) -> _TaskType:
            base = options.get("base") or self.Task
            if not (isinstance(base, type) and issubclass(base, _TaskType)):
                raise TypeError(f"@app.task(base=...) takes a Task subclass, got {base!r}")
            task = base(self, fun, **options)
            self._annotate(task)
            if options.get("shared"):
                _shared_tasks.append(task)
            self.tasks[task.name] = task
            return task

        if len(args) == 1 and callable(args[0]) and not options:
            return register(args[0])
        if args:
            raise TypeError("@app.task takes keyword options only, e.g. @app.task(bind=True)")
        return register

    @cached_property
    def Task(self) -> type[_TaskType]:
        """The base class of this app's tasks: ``class MyTask(app.Task)`` belongs to this app."""
        return type("Task", (_TaskType,), {"_app": self, "__module__": _TaskType.__module__})

    def _annotate(self, task: _TaskType) -> None:
        """Celery's ``task_annotations``: a mapping (or a list of them) of task name, or
        ``'*'``, to attributes to set on the task; a handler (``on_failure``) becomes a method."""
        annotations = self.conf.task_annotations
        if not annotations:
            return
        for table in annotations if isinstance(annotations, list | tuple) else [annotations]:
            for key in ("*", task.name):
                for attr, value in dict(table.get(key) or {}).items():
                    bound = types.MethodType(value, task) if attr in HANDLERS else value
                    setattr(task, attr, bound)

    def register_task(self, task: _TaskType | type[_TaskType], **options: Any) -> _TaskType:
        """Register a class-based task (``app.register_task(MyTask())``), as Celery does."""
        if isinstance(task, type):
            task = task(self, **options)
        elif task._app is None:
            task.app = self
        self._annotate(task)
        self.tasks[task.name] = task
        return task

    def task_modules(self) -> set[str]:
        """Modules that define registered tasks: their exception classes may be rebuilt."""
        return {t.run.__module__ for t in self.tasks.values()}

    def _register_builtins(self) -> None:
        app = self

        @self.task(name="canvas.map")
        def _map(task: str, items: Iterable[Any]) -> list[Any]:
            fun = app.tasks[task]
            return [fun(item) for item in items]

        @self.task(name="canvas.starmap")
        def _starmap(task: str, items: Iterable[Sequence[Any]]) -> list[Any]:
            fun = app.tasks[task]
            return [fun(*item) for item in items]

    # -- sending: the one route every signature, task and canvas takes to the engine ----------
    def signature(
        self,
        name: str | Signature | Mapping[str, Any],
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        return signature(name, args, kwargs, app=self, **options)

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult | GroupResult:
        """Send a task by name: the caller need not import (or have) its code."""
        return self.send_canvas(Signature(name, app=self), args, kwargs, **options)

    def send_canvas(
        self,
        sig: Signature,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult | GroupResult:
        """Send any signature or canvas (``apply_async``); eager when ``task_always_eager``."""
        add_to_parent = options.pop("add_to_parent", True)
        if self.conf.task_always_eager:
            result = self.apply_canvas(sig, args, kwargs, **options)
            self._store_eager(result, sig)
            if self.conf.task_eager_propagates and result.failed():
                result.get()
            return result
        if dispatch.streams(sig):
            sent = from_spec(joins.stream(self, cast(chord, sig), args, kwargs, options), self)
        else:
            sent = from_spec(dispatch.send(self, sig, args, kwargs, options), self)
        parent = current_request()
        if add_to_parent and parent is not None and not parent.called_directly:
            sender = self.tasks.get(parent.task or "")
            if sender is None or sender.trail:
                parent.children.append(sent)  # Celery's trail: result.children of the caller
        return sent

    def _store_eager(self, result: EagerResult | GroupResult, sig: Signature) -> None:
        """``task_store_eager_result`` (or a task's ``store_eager_result``): eager results are
        written to the store, so ``AsyncResult(id)`` elsewhere finds them (as in Celery)."""
        members = result.results if isinstance(result, GroupResult) else [result]
        for member in members:
            if not isinstance(member, EagerResult):
                continue
            name = member.name or (sig.task if member is result else "")
            task = self.tasks.get(str(name or ""))
            wanted = getattr(task, "store_eager_result", None)
            if not (self.conf.task_store_eager_result if wanted is None else wanted):
                continue
            self.backend.store_result(
                member.id, member.result, member.state, traceback=member.traceback
            )

    def add_to_chord(self, request: Request, sig: Signature) -> AsyncResult | GroupResult:
        """``Task.add_to_chord``: one more member for the chord ``request``'s task feeds."""
        return from_spec(joins.add_member(self, request, sig), self)

    def apply_canvas(
        self,
        sig: Signature,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult | GroupResult:
        """Run any signature or canvas here and now (``apply``): an ``EagerResult``, or a
        ``GroupResult`` of them when the canvas ends in a group."""
        run = eager.run(self, sig, args, kwargs, options)
        # Given outcomes, from_spec makes EagerResults where it would make AsyncResults.
        return cast("EagerResult | GroupResult", from_spec(run.result, self, run.outcomes))

    def freeze_canvas(
        self, sig: Signature, result_id: str | None = None
    ) -> AsyncResult | GroupResult:
        """Fix every task id inside ``sig`` now (``freeze``); the handle ``apply_async`` will
        return, before anything is sent."""
        return from_spec(dag.freeze(sig, result_id), self)

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult:
        return AsyncResult(task_id, app=self, **kwargs)

    def GroupResult(
        self,
        id: str | None = None,
        results: Sequence[_Handle] = (),
        **kw: Any,
    ) -> GroupResult:
        return GroupResult(id, results, app=self, **kw)

    def workflow(self, workflow_id: str) -> WorkflowView:
        """Every node of a stored workflow with its state (``canvas status``/``render --id``)."""
        return WorkflowView(self, workflow_id)

    def add_periodic_task(
        self,
        schedule: Any,
        sig: Signature,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        **opts: Any,
    ) -> str:
        """Add a beat entry (as Celery): any signature or canvas, run on ``schedule``."""
        if not isinstance(sig, Signature):
            raise TypeError(f"add_periodic_task() needs a signature, got {type(sig).__name__}")
        key = name or repr(sig)
        self.conf.beat_schedule[key] = {
            "schedule": schedule,
            "task": sig,
            "args": tuple(args),
            "kwargs": dict(kwargs or {}),
            "options": dict(opts),
        }
        return key

    def now(self) -> dt.datetime:
        return dt.datetime.now(self.timezone)

    # -- the command line --------------------------------------------------------------------
    def start(self, argv: Sequence[str] | None = None) -> int:
        """Run the ``canvas`` command for this app: ``app.start(['worker', '-l', 'INFO'])``;
        with no ``argv``, the script's own arguments (``python tasks.py worker``)."""
        # Imported here: the command line (click) is loaded only by apps that run it.
        from canvas.cli.main import run_for_app

        args = list(sys.argv if argv is None else argv)
        if args and args[0].endswith(".py"):
            args = args[1:]  # the script's own path, as sys.argv gives it
        return run_for_app(self, args)

    def worker_main(self, argv: Sequence[str] | None = None) -> int:
        """Run a worker for this app (``app.worker_main(['worker', '--loglevel=INFO'])``)."""
        args = list(sys.argv if argv is None else argv)
        if "worker" not in args:
            raise ValueError(
                "worker_main() needs the worker sub-command in argv, e.g. "
                "app.worker_main(['worker', '--loglevel=INFO']); use app.start() for others."
            )
        return self.start(args)

    # -- connections -------------------------------------------------------------------------
    @property
    def broker_url(self) -> str:
        url = self.conf.broker_url
        if url:
            return str(url)
        return f"embedded://{self.embedded_dir() / 'broker.sqlite'}"

    @property
    def backend_url(self) -> str:
        url = self.conf.result_backend
        if url == "django-db":
            return _django_database_url()
        if url and str(url).startswith("db+"):
            return str(url)[3:]  # Celery's SQLAlchemy URLs: db+sqlite:///..., db+postgresql://
        if url == "cache+memory://":
            return "memory://"
        if url and not is_rpc_url(url):
            return str(url)
        # No store, or the state store of Celery's rpc:// (results come back as messages, see
        # canvas.backends.rpc; workflows, countdowns and revokes still need a store): the Redis
        # broker's database, else a SQLite file on this machine.
        broker = self.broker_url
        if broker.startswith(("redis://", "rediss://", "redis+cluster://", "rediss+cluster://")):
            return broker
        return f"sqlite:///{self.embedded_dir() / 'results.sqlite'}"

    def embedded_dir(self) -> Path:
        """Where the embedded queue and store live: ``embedded_dir`` or a per-user cache dir."""
        configured = self.conf.get("embedded_dir")
        if configured and configured != ".canvas":
            path = Path(configured)
        else:
            cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
            path = cache / "canvas" / (self.main or "default")
        private_dir(path)  # it holds task arguments and results: 0700 where created
        return path.resolve()

    @property
    def transport(self) -> Transport:
        transport: Transport = self._connection(
            "transport",
            lambda: self._secured(
                create_transport(
                    self.broker_url,
                    {
                        "confirm": self.conf.broker_confirm,
                        **dict(self.conf.broker_transport_options or {}),
                        "visibility_timeout": self.conf.worker_lease_seconds,
                        "reply_expires": self.conf.result_expires,
                        **queue_options(self.conf),
                    },
                ),
            ),
        )
        return transport

    @property
    def backend(self) -> Backend:
        backend: Backend = self._connection("backend", self._open_backend)
        return backend

    def _open_backend(self) -> Backend:
        options = dict(self.conf.result_backend_transport_options or {})
        backend = create_backend(self.backend_url, {**options, "expires": self.conf.result_expires})
        unread = sorted(set(options) - type(backend).OPTIONS)
        said = (type(backend).__name__, tuple(unread))
        if unread and said not in _SAID_UNREAD:  # once per process tree, not per connection
            _SAID_UNREAD.add(said)
            logger.warning(
                "result_backend_transport_options: %s not read by the %s store (it reads %s)",
                ", ".join(map(repr, unread)),
                type(backend).__name__,
                ", ".join(sorted(type(backend).OPTIONS - {"expires"})) or "none",
            )
        backend = self._secured(backend)
        if is_rpc_url(self.conf.result_backend):
            backend = RpcBackend(
                backend, lambda: self.transport, local=_on_this_machine(self.backend_url)
            )
        backend.records = metas  # Celery's store_result/mark_as_* write the engine's records
        return backend

    @property
    def bus(self) -> Bus:
        """Broadcast topics on the broker: remote control and events (``canvas.bus``)."""
        bus: Bus = self._connection("bus", lambda: self._secured(bus_for_transport(self.transport)))
        return bus

    @cached_property
    def control(self) -> Control:
        """Remote control of running workers (Celery's ``app.control``)."""
        return Control(self)

    @cached_property
    def events(self) -> Events:
        """Event dispatchers, receivers and states (Celery's ``app.events``)."""
        return Events(self)

    def _secured(self, connection: _Connection) -> _Connection:
        """Wrap a transport or store for signing/encryption when ``security_*`` keys are set."""
        if signing.scheme(self.conf) is None:
            return connection
        # Imported only here: most apps never load the cryptography package (~10 MB).
        security = signing.load_security()
        wrapped: _Connection = security.wrap(self, connection)
        return wrapped

    def _connection(self, key: str, factory: Callable[[], Any]) -> Any:
        pid = os.getpid()
        held = self._connections.get(key)  # every send asks: no lock once it is made
        if held is not None and held[0] == pid:
            return held[1]
        with self._lock:
            held = self._connections.get(key)
            if held is None or held[0] != pid:
                self._connections[key] = (pid, factory())
            return self._connections[key][1]

    def close(self) -> None:
        """Close this process's connections (they reopen on next use)."""
        with self._lock:
            held, self._connections = self._connections, {}
        for pid, connection in held.values():
            if pid == os.getpid():
                connection.close()

    def __repr__(self) -> str:
        return f"<Canvas {self.main or '__main__'}>"


def _on_this_machine(store_url: str) -> bool:
    """Is the store a file that only this machine's processes reach (SQLite)?"""
    return store_url.startswith("sqlite:")


def _django_apps() -> list[str]:
    try:
        from django.apps import apps  # optional: only Django projects have it
        from django.conf import settings  # (the same)
    except ImportError:
        return []
    if apps.ready:  # an INSTALLED_APPS entry may be an AppConfig path; the registry knows
        return [config.name for config in apps.get_app_configs()]
    try:
        return list(settings.INSTALLED_APPS)
    except Exception:
        return []


def _django_database_url() -> str:
    """``backend='django-db'``: the Django app's store, or the SQL store in Django's database."""
    try:
        from canvas.contrib.django.database import backend_url  # optional: loads Django
    except ImportError as exc:
        raise ImproperlyConfigured(
            "result_backend='django-db' needs Django: pip install 'canvas-workflows[django]', "
            "or use 'sqlite:///results.db'."
        ) from exc
    return backend_url()


def _setup_django(app: Canvas) -> None:
    """Celery's Django fixup: ``django.setup()`` before task modules load (see the module)."""
    try:
        from canvas.contrib.django.fixup import install  # optional: only Django projects load it
    except ImportError as exc:
        logger.warning("DJANGO_SETTINGS_MODULE is set but Django is not importable (%s)", exc)
        return
    install(app)


def shared_task(*args: Any, **options: Any) -> Any:
    """Celery's ``@shared_task``: a task every app registers, made before or after it, for
    reusable modules that do not import the project's app; it runs on the current app."""

    def make(fun: Callable[..., Any]) -> Task:
        base = options.pop("base", None) or Task
        task: Task = base(None, fun, **options)
        _shared_tasks.append(task)
        for app in list(_apps):
            app.tasks.setdefault(task.name, task)
        return task

    if len(args) == 1 and callable(args[0]) and not options:
        return make(args[0])
    if args:
        raise TypeError("@shared_task takes keyword options only, e.g. @shared_task(bind=True)")
    return make


def _running_task() -> Task | None:
    request = current_request()
    if request is None or request.task is None:
        return None
    return default_app().tasks.get(request.task)


#: Celery's ``current_app``: the current app, looked up at each use
current_app: Canvas = cast(Canvas, Current(default_app, "current_app"))
#: Celery's ``current_task``: the task running in this context (falsy outside a task)
current_task: Task = cast(Task, Current(_running_task, "current_task"))

#: Celery's class name, for ``from celery import Celery`` with only the module swapped
Celery = Canvas

_current.set_default_factory(lambda: Canvas("default", set_as_current=False))

__all__ = [
    "Canvas",
    "Celery",
    "TaskRegistry",
    "current_app",
    "current_task",
    "default_app",
    "shared_task",
]
