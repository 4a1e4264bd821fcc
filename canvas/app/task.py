"""``canvas.app.task``: the import path a Celery project uses for ``Task`` (``celery.app.task``)."""

from canvas.task import Task

__all__ = ["Task"]
