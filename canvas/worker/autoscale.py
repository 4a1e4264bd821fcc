"""``canvas.worker.autoscale``: Celery's import path for the autoscaler a project subclasses.

    from canvas.worker.autoscale import Autoscaler

    class Eager(Autoscaler):
        def target(self, now, processes, demand): ...

and ``worker_autoscaler = "proj.scaling:Eager"``. The policy lives in ``canvas.core.autoscale``.
"""

from canvas.core.autoscale import Autoscaler

__all__ = ["Autoscaler"]
