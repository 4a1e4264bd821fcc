"""The Django app: ``INSTALLED_APPS = [..., "canvas.contrib.django"]``."""

from __future__ import annotations

from django.apps import AppConfig


class CanvasConfig(AppConfig):
    """Results, workflows and periodic tasks; its tables are ``canvas_django_*``."""

    name = "canvas.contrib.django"
    label = "canvas_django"
    verbose_name = "Canvas"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connecting needs the models, which exist only once the registry is ready.
        from canvas.contrib.django.models.beat import track_changes

        track_changes()
