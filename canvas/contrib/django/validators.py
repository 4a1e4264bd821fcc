"""Field validators and defaults of the schedule models: what beat will be able to read.

They live apart from the models so that migrations refer to them by a stable path.
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

from canvas.schedules import crontab

__all__ = [
    "CronFieldValidator",
    "default_timezone",
    "validate_json_list",
    "validate_json_object",
    "validate_timezone",
]


def default_timezone() -> str:
    """A crontab's zone unless given: ``CANVAS_TIMEZONE`` or ``CELERY_TIMEZONE``, else UTC."""
    for name in ("CANVAS_TIMEZONE", "CELERY_TIMEZONE"):
        zone = getattr(settings, name, None)
        if zone in available_timezones():
            return str(zone)
    return "UTC"


def validate_timezone(value: str) -> None:
    if value not in available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name such as 'Europe/Paris'.")


@deconstructible
class CronFieldValidator:
    """Checks one crontab field the way ``canvas.schedules.crontab`` will read it."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __call__(self, value: str) -> None:
        try:
            fields: dict[str, Any] = {self.field: value}
            crontab(**fields)
        except ValueError as exc:  # ParseException is a ValueError
            raise ValidationError(f"{self.field} {value!r}: {exc}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronFieldValidator) and other.field == self.field

    def __hash__(self) -> int:
        return hash(self.field)


def validate_json_list(value: str) -> None:
    _check_json(value, list, 'a JSON list, such as [1, "two"]')


def validate_json_object(value: str) -> None:
    _check_json(value, dict, 'a JSON object, such as {"key": "value"}')


def _check_json(value: str, kind: type, shape: str) -> None:
    try:
        loaded = json.loads(value or ("[]" if kind is list else "{}"))
    except ValueError as exc:
        raise ValidationError(f"Not valid JSON ({exc}); expected {shape}.") from None
    if not isinstance(loaded, kind):
        raise ValidationError(f"Expected {shape}, got {type(loaded).__name__}.")
