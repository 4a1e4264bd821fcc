# A minimal Django settings module; the Celery part is as the Django guide writes it, with the
# broker read from the environment (the test's own Redis and queue).
import os

SECRET_KEY = "migration-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "demoapp",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(os.path.dirname(os.path.dirname(__file__)), "db.sqlite3"),
    }
}

# Celery Configuration Options
CELERY_TIMEZONE = "UTC"
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_BROKER_URL = os.environ["DEMO_BROKER_URL"]
CELERY_RESULT_BACKEND = os.environ["DEMO_BROKER_URL"]
CELERY_TASK_DEFAULT_QUEUE = os.environ["DEMO_QUEUE"]
