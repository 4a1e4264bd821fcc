"""Settings of the test project; the database and broker come from the environment.

``CANVAS_DJANGO_DB`` is ``sqlite:///path`` or ``postgresql://user@host:port/db`` (a
``?options=-csearch_path%3D<schema>`` query puts the tables in a schema of their own), and
``CANVAS_DJANGO_BROKER`` and ``CANVAS_DJANGO_QUEUE`` say where tasks go.
"""

import os
from urllib.parse import parse_qs, unquote, urlsplit

SECRET_KEY = "canvas-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "canvasproj.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "canvas.contrib.django",
    "blog.apps.BlogConfig",  # an AppConfig path: autodiscovery must still find blog.tasks
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def database(url):
    """A DATABASES entry from a URL (what dj-database-url does, for the two we test)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path[1:] if parts.path.startswith("//") else parts.path),
            # What docs/django.md recommends: WAL, and writers that wait rather than fail.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
        }
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }


DATABASES = {
    "default": database(os.environ.get("CANVAS_DJANGO_DB", "sqlite:////tmp/canvasproj.sqlite3"))
}

CANVAS_APP = "canvasproj.celery:app"
CANVAS_BROKER_URL = os.environ.get("CANVAS_DJANGO_BROKER", "redis://127.0.0.1:6379/0")
CANVAS_TASK_DEFAULT_QUEUE = os.environ.get("CANVAS_DJANGO_QUEUE", "canvasproj")
CANVAS_RESULT_EXTENDED = True
CANVAS_BEAT_LEASE_TTL = 3.0
