"""The app's models: django-celery-results' and django-celery-beat's names, plus canvas's own.

``from django_celery_results.models import TaskResult`` and ``from django_celery_beat.models
import PeriodicTask, IntervalSchedule`` become ``from canvas.contrib.django.models import ...``.
"""

from canvas.contrib.django.models.beat import (
    DAYS,
    HOURS,
    MICROSECONDS,
    MINUTES,
    PERIOD_CHOICES,
    SECONDS,
    SINGULAR_PERIODS,
    SOLAR_SCHEDULES,
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
    SolarSchedule,
)
from canvas.contrib.django.models.results import (
    ALL_STATES,
    TASK_STATE_CHOICES,
    GroupResult,
    TaskResult,
)
from canvas.contrib.django.models.workflows import (
    Counter,
    Lease,
    NodeInput,
    ScheduledMessage,
    Workflow,
    WorkflowNode,
)

__all__ = [
    # results (django-celery-results)
    "ALL_STATES",
    "TASK_STATE_CHOICES",
    "GroupResult",
    "TaskResult",
    # periodic tasks (django-celery-beat)
    "DAYS",
    "HOURS",
    "MICROSECONDS",
    "MINUTES",
    "PERIOD_CHOICES",
    "SECONDS",
    "SINGULAR_PERIODS",
    "SOLAR_SCHEDULES",
    "ClockedSchedule",
    "CrontabSchedule",
    "IntervalSchedule",
    "PeriodicTask",
    "PeriodicTasks",
    "SolarSchedule",
    # canvas's workflows and engine state
    "Counter",
    "Lease",
    "NodeInput",
    "ScheduledMessage",
    "Workflow",
    "WorkflowNode",
]
