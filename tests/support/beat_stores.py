"""What every schedule store does (``canvas.beat.stores``): a contract its tests subclass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

T0 = datetime(2024, 5, 6, 7, 0, 0, tzinfo=UTC)  # a Monday


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def timedelta_zone(hours: float) -> timezone:
    return timezone(timedelta(hours=hours))


class StoreContract:
    """What every schedule store does; a subclass says how to make one."""

    @pytest.fixture
    def make(self, tmp_path):
        raise NotImplementedError

    def test_a_new_store_is_empty(self, make):
        assert make().load() == {}

    def test_saves_merge_and_survive_a_new_instance(self, make):
        # Given two saves of different entries, the second also moving the first
        make().save({"a": at(10), "b": at(20)})
        make().save({"a": at(30)})
        # When a fresh instance loads
        loaded = make().load()
        # Then it sees the latest slot of every entry, as aware UTC datetimes
        assert loaded == {"a": at(30), "b": at(20)}
        assert all(when.tzinfo is not None for when in loaded.values())

    def test_keeps_sub_second_slots_and_any_zone(self, make):
        slot = datetime(2024, 5, 6, 9, 0, 0, 250000, tzinfo=timedelta_zone(2))
        make().save({"quarter": slot})
        assert make().load() == {"quarter": slot}
