"""The seed's myproject/celery.py, with celery -> canvas and Celery -> Canvas."""

import os

from canvas import Canvas

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

app = Canvas(main="myproject", broker="redis://localhost:6379", backend="django-db")

app.conf.task_track_started = True
app.conf.task_send_sent_event = True

app.config_from_object("django.conf:settings", namespace="CANVAS")
app.autodiscover_tasks()
