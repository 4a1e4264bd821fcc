import os

SECRET_KEY = "test-only"
INSTALLED_APPS = ["django.contrib.contenttypes", "shop"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB", "/tmp/canvas-django-test.sqlite3"),
    }
}
USE_TZ = True
CANVAS_TASK_ACKS_LATE = True
CANVAS_TASK_DEFAULT_QUEUE = "django-queue"
