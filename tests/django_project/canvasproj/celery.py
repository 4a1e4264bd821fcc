"""The seed's ``myproject/celery.py`` with its imports changed: celery -> canvas."""

import os

from canvas import Canvas

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvasproj.settings")

app = Canvas(main="canvasproj", backend="django-db")

app.conf.task_track_started = True
app.conf.task_send_sent_event = True

app.config_from_object("django.conf:settings", namespace="CANVAS")
app.autodiscover_tasks()
