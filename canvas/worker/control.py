"""``canvas.worker.control``: Celery's import path for custom remote-control commands.

    from canvas.worker.control import control_command, inspect_command

    @control_command(args=[("n", int)], signature="[N=1]")
    def increase_prefetch_count(state, n=1): ...

The commands themselves live in ``canvas.core.panel``.
"""

from canvas.core.panel import Panel, control_command, inspect_command, nok, ok

__all__ = ["Panel", "control_command", "inspect_command", "nok", "ok"]
