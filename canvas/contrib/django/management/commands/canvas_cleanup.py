"""``manage.py canvas_cleanup``: delete expired results, workflows and engine rows now.

The store also does this by itself every ``cleanup_every`` writes (and reads never see an
expired row); run this from cron to keep the tables small when a project writes little.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from canvas.contrib.django.store import DjangoStore


class Command(BaseCommand):
    help = "Delete expired task results, group results, workflows and canvas's engine rows."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database", default="default", help="The DATABASES alias (default: default)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        store = DjangoStore(f"django-db://{options['database']}")
        try:
            removed = store.remove_expired()
        finally:
            store.close()
        for table, count in removed.items():
            if count:
                self.stdout.write(f"{table}: {count} expired row(s) deleted")
        self.stdout.write(f"{sum(removed.values())} expired row(s) deleted in all.")
