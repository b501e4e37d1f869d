"""Tests for pipeline.schedules.cronexpr: both dialects, with hand-computed fire times."""
import datetime
import zoneinfo

import pytest

from drgrad.pipeline.schedules import cronexpr

D = datetime.datetime


def test_daily_expressions_per_dialect():
    assert cronexpr.daily(2, 0) == "0 2 * * *"
    assert cronexpr.daily(2, 0, cronexpr.SECONDS) == "0 0 2 * * *"
    assert cronexpr.daily(23, 59) == "59 23 * * *"
    assert cronexpr.parse_at("02:00") == (2, 0)
    assert cronexpr.parse_at("7:05") == (7, 5)
    assert cronexpr.parse_at("23:59") == (23, 59)


@pytest.mark.parametrize("at", ["24:00", "2:60", "0200", "02:00:00", "", "2pm", None])
def test_parse_at_rejects(at):
    with pytest.raises(ValueError, match="HH:MM"):
        cronexpr.parse_at(at)


@pytest.mark.parametrize("hour,minute", [(24, 0), (-1, 0), (0, 60), (True, 0), (2.0, 0)])
def test_daily_rejects_out_of_range(hour, minute):
    with pytest.raises(ValueError):
        cronexpr.daily(hour, minute)


def test_unix_daily_fires_once_a_day_at_0200():
    schedule = cronexpr.parse("0 2 * * *")
    assert schedule.matches(D(2024, 3, 10, 2, 0, 0))
    assert not schedule.matches(D(2024, 3, 10, 2, 1, 0))
    assert not schedule.matches(D(2024, 3, 10, 3, 0, 0))
    # From 01:59 the next fire is 02:00 the same day; from 02:00 it is 02:00 the next day.
    assert schedule.next_after(D(2024, 3, 10, 1, 59)) == D(2024, 3, 10, 2, 0)
    assert schedule.next_after(D(2024, 3, 10, 2, 0)) == D(2024, 3, 11, 2, 0)
    assert schedule.next_after(D(2024, 12, 31, 23, 0)) == D(2025, 1, 1, 2, 0)


def test_seconds_dialect_first_field_is_seconds():
    schedule = cronexpr.parse("0 0 2 * * *", cronexpr.SECONDS)
    assert schedule.next_after(D(2024, 3, 10, 0, 0)) == D(2024, 3, 10, 2, 0, 0)
    # The classic KFP mistake: a 5-field daily cron read as 6 fields is rejected, not misread.
    with pytest.raises(ValueError, match="5 fields; this target needs 6"):
        cronexpr.parse("0 2 * * *", cronexpr.SECONDS)
    with pytest.raises(ValueError, match="6 fields; this target needs 5"):
        cronexpr.parse("0 0 2 * * *", cronexpr.UNIX)


def test_ranges_steps_lists_and_names():
    schedule = cronexpr.parse("*/15 9-17/4 * jan,JUL mon-fri")
    assert schedule.minutes == {0, 15, 30, 45}
    assert schedule.hours == {9, 13, 17}
    assert schedule.months == {1, 7}
    assert schedule.weekdays == {1, 2, 3, 4, 5}
    # 2024-01-06 is a Saturday, 2024-01-08 a Monday.
    assert not schedule.matches(D(2024, 1, 6, 9, 0))
    assert schedule.next_after(D(2024, 1, 6, 9, 0)) == D(2024, 1, 8, 9, 0)


def test_unix_sunday_is_0_or_7():
    assert cronexpr.parse("0 2 * * 7").weekdays == {0}
    assert cronexpr.parse("0 2 * * 5-7").weekdays == {5, 6, 0}
    assert cronexpr.parse("0 2 * * 0-7").weekdays == set(range(7))
    with pytest.raises(ValueError, match=r"outside \[0, 6\]"):
        cronexpr.parse("0 0 2 * * 7", cronexpr.SECONDS)


def test_day_of_month_or_day_of_week_when_both_restricted():
    # "the 1st, or any Monday": 2024-04-01 is a Monday, 2024-04-08 the next Monday.
    schedule = cronexpr.parse("0 2 1 * mon")
    assert schedule.next_after(D(2024, 3, 30)) == D(2024, 4, 1, 2, 0)
    assert schedule.next_after(D(2024, 4, 1, 3)) == D(2024, 4, 8, 2, 0)
    # Only the day of month restricted: Mondays alone do not match.
    assert cronexpr.parse("0 2 1 * *").next_after(D(2024, 4, 1, 3)) == D(2024, 5, 1, 2, 0)


def test_question_mark_and_a_slash_n_only_in_seconds_dialect():
    schedule = cronexpr.parse("0 5/20 2 ? * *", cronexpr.SECONDS)
    assert schedule.minutes == {5, 25, 45}
    assert not schedule.days_restricted
    with pytest.raises(ValueError, match="'\\?'"):
        cronexpr.parse("0 2 ? * *")
    with pytest.raises(ValueError, match="a/n"):
        cronexpr.parse("5/20 2 * * *")


def test_timezone_prefix():
    schedule = cronexpr.parse("TZ=Europe/Berlin 0 2 * * *", allow_timezone=True)
    assert schedule.timezone == "Europe/Berlin"
    assert schedule.expression == "0 2 * * *"
    assert str(schedule) == "TZ=Europe/Berlin 0 2 * * *"
    assert cronexpr.parse("CRON_TZ=UTC  0  2 * * *", allow_timezone=True).timezone == "UTC"
    with pytest.raises(ValueError, match="no TZ= prefix"):
        cronexpr.parse("TZ=UTC 0 2 * * *")
    with pytest.raises(ValueError, match="unknown time zone"):
        cronexpr.parse("TZ=Mars/Olympus 0 2 * * *", allow_timezone=True)


@pytest.mark.parametrize("expression,message", [
    ("", "non-empty"),
    ("@daily", "macros"),
    ("60 2 * * *", r"minute 60 is outside \[0, 59\]"),
    ("0 24 * * *", r"hour 24 is outside \[0, 23\]"),
    ("0 2 0 * *", r"day-of-month 0 is outside \[1, 31\]"),
    ("0 2 * 13 *", r"month 13 is outside"),
    ("0 2 * * 8", r"day-of-week 8 is outside"),
    ("0 5-2 * * *", "backwards"),
    ("*/0 2 * * *", "step 0"),
    ("0 2 * foo *", "not a number or one of JAN"),
    ("0 2,,3 * * *", "cannot parse hour"),
    ("0 2 * * * *", "6 fields"),
])
def test_rejects_bad_expressions(expression, message):
    with pytest.raises(ValueError, match=message):
        cronexpr.parse(expression)


def test_never_firing_schedule_is_reported():
    with pytest.raises(ValueError, match="never fires"):
        cronexpr.parse("0 2 30 2 *").next_after(D(2024, 1, 1), max_days=800)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_check_timezone_accepts_iana_names(zone):
    assert cronexpr.check_timezone(zone) == zone


@pytest.mark.parametrize("zone", ["", "Mars/Olympus", "Europe/Berlin ", "../etc/passwd", None])
def test_check_timezone_rejects(zone):
    with pytest.raises(ValueError):
        cronexpr.check_timezone(zone)


# The dialect rules the project keeps on top of croniter (see the module docstring).

@pytest.mark.parametrize("expression,dialect,message", [
    ("0 2 L * *", cronexpr.UNIX, "day-of-month 'L' is not a number"),
    ("0 2 15W * *", cronexpr.UNIX, "day-of-month '15W' is not a number"),
    ("0 2 * * mon#1", cronexpr.UNIX, "cannot parse day-of-week"),
    ("H 2 * * *", cronexpr.UNIX, "minute 'H' is not a number"),
    ("@hourly", cronexpr.UNIX, "macros"),
    ("0 0 2 * * * 2025", cronexpr.SECONDS, "7 fields; this target needs 6"),
])
def test_croniter_extensions_are_rejected(expression, dialect, message):
    with pytest.raises(ValueError, match=message):
        cronexpr.parse(expression, dialect)


@pytest.mark.parametrize("expression,message", [
    ("0 22-2 * * *", "hour range '22-2' is backwards"),  # croniter would wrap past midnight
    ("0 2 * dec-jan *", "month range 'dec-jan' is backwards"),
    ("0 2 * * 7-1", "day-of-week range '7-1' is backwards"),  # 7 is the top of the week
    ("*/61 * * * *", r"minute step 61 is outside \[1, 60\]"),
    ("0 2 * * */8", r"day-of-week step 8 is outside \[1, 7\]"),
    ("0 2 * * 8", r"day-of-week 8 is outside \[0, 7\]"),
])
def test_ranges_run_forwards_and_steps_stay_within_the_field(expression, message):
    with pytest.raises(ValueError, match=message):
        cronexpr.parse(expression)


def test_sunday_7_and_a_slash_n_expand_per_dialect():
    assert cronexpr.parse("0 2 * * 1-7/2").weekdays == {1, 3, 5, 0}
    # robfig/cron: 'a/n' runs to the field's top, 6 for the day of week.
    assert cronexpr.parse("0 0 2 * * 1/2", cronexpr.SECONDS).weekdays == {1, 3, 5}
    assert cronexpr.parse("0 0 2 5/10 * *", cronexpr.SECONDS).days == {5, 15, 25}


def test_a_day_field_written_out_in_full_is_still_restricted():
    # 2024-04-02 is a Tuesday. "Any day of the month, or an even week day" is every day;
    # croniter alone reads 1-31 as '*' next to '*/2' and waits for Thursday 2024-04-04.
    schedule = cronexpr.parse("0 2 1-31 * */2")
    assert schedule.days_restricted and schedule.weekdays_restricted
    assert schedule.next_after(D(2024, 4, 2, 3)) == D(2024, 4, 3, 2, 0)
    # Only the 1st or an even week day: Wednesday the 3rd is neither, Thursday the 4th is even.
    assert cronexpr.parse("0 2 1 * */2").next_after(D(2024, 4, 2, 3)) == D(2024, 4, 4, 2, 0)
    # '?' leaves the day of week unrestricted: the 15th alone.
    assert cronexpr.parse("0 0 2 15 * ?", cronexpr.SECONDS).next_after(
        D(2024, 4, 2, 3)) == D(2024, 4, 15, 2, 0, 0)


def test_matches_to_the_second():
    schedule = cronexpr.parse("0 2 * * *")
    assert schedule.matches(D(2024, 3, 10, 2, 0, 0, 500000))  # microseconds are ignored
    assert not schedule.matches(D(2024, 3, 10, 2, 0, 30))  # a unix cron fires at second 0
    assert not schedule.matches(D(2024, 3, 10, 0, 0))
    assert cronexpr.parse("0 0 * * *").matches(D(2024, 3, 10, 0, 0))
    kfp = cronexpr.parse("30 0 2 * * *", cronexpr.SECONDS)
    assert kfp.matches(D(2024, 3, 10, 2, 0, 30))
    assert not kfp.matches(D(2024, 3, 10, 2, 0, 31))
    assert not cronexpr.parse("0 2 30 2 *").matches(D(2024, 3, 1, 2, 0))


def test_fire_times_are_naive_wall_clock_times():
    # 2024-03-31 02:30 does not exist in Berlin (clocks jump 02:00 -> 03:00); the schedule
    # still names that wall-clock time and leaves the zone's DST to the scheduler.
    schedule = cronexpr.parse("TZ=Europe/Berlin 30 2 * * *", allow_timezone=True)
    fire = schedule.next_after(D(2024, 3, 31, 1, 0, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin")))
    assert fire == D(2024, 3, 31, 2, 30) and fire.tzinfo is None
