"""The hot path's driver values converted as the column types and the schemas would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from marshmallow import fields

from backend.db.driver import iso_utc


def test_iso_utc_reads_sqlite_text_and_postgresql_datetimes_as_the_schemas_write_them() -> None:
    written = fields.DateTime()
    for stored, meant in (
        ("2026-12-04 19:53:30.123456", datetime(2026, 12, 4, 19, 53, 30, 123456, UTC)),
        ("2026-12-04 19:53:30.000000", datetime(2026, 12, 4, 19, 53, 30, tzinfo=UTC)),  # no fraction shown
        ("2026-12-04 19:53:30", datetime(2026, 12, 4, 19, 53, 30, tzinfo=UTC)),
    ):
        assert iso_utc(stored) == written.serialize("at", {"at": meant})
    berlin = datetime(2026, 12, 4, 20, 53, 30, 5, timezone(timedelta(hours=1)))  # a session time zone
    assert iso_utc(berlin) == "2026-12-04T19:53:30.000005+00:00"
    assert iso_utc(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05+00:00"  # naive: UTC
    assert iso_utc(None) is None
