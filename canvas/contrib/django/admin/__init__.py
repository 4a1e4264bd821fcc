"""The app's admin: results and workflows (``results``), periodic tasks (``beat``)."""

from canvas.contrib.django.admin import beat, results

__all__ = ["beat", "results"]
