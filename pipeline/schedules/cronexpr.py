"""Cron expressions in the two dialects the schedulers take, parsed and checked up front.

* ``unix`` (5 fields: minute hour day-of-month month day-of-week): crontab(5), the Vertex AI
  scheduler (Cloud Scheduler's unix-cron, optionally prefixed ``TZ=<IANA zone>`` or
  ``CRON_TZ=<IANA zone>``) and Airflow.
* ``seconds`` (6 fields, seconds first): Kubeflow Pipelines recurring runs, which evaluate the
  expression with robfig/cron in the controller's time zone (``CRON_SCHEDULE_TIMEZONE``, UTC
  unless the cluster sets it). ``0 0 2 * * *`` is 02:00:00 every day; the 5-field ``0 2 * * *``
  given to KFP would silently mean "second 0 of minute 2 of every hour".

Each field is ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of
these; months and week days also take names (``JAN``, ``MON``). The seconds dialect (robfig/cron)
also takes ``?`` for day-of-month / day-of-week and ``a/n``; the unix dialect takes day-of-week 7
for Sunday. As in every cron, when both day-of-month and day-of-week are restricted a day matches
if either does. Macros (``@daily``) are rejected: every target here gets the fields written out.
"""
import dataclasses
import datetime
import re
from typing import FrozenSet, Optional, Tuple

UNIX = "unix"
SECONDS = "seconds"
DIALECTS = (UNIX, SECONDS)

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                "DEC")
_WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

# (name, low, high, names whose index + low is the value)
_SECOND = ("second", 0, 59, ())
_MINUTE = ("minute", 0, 59, ())
_HOUR = ("hour", 0, 23, ())
_DAY = ("day-of-month", 1, 31, ())
_MONTH = ("month", 1, 12, _MONTH_NAMES)
_WEEKDAY = ("day-of-week", 0, 6, _WEEKDAY_NAMES)

_TZ_PREFIX = re.compile(r"^(?:CRON_TZ|TZ)=(\S+)\s+(.*)$")
_AT = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_ELEMENT = re.compile(r"^(?P<range>\*|\?|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>\d+))?$")


@dataclasses.dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression: the set of values each field allows.

    Attributes:
      expression: the fields as given (without a time-zone prefix), single-spaced.
      dialect: `UNIX` or `SECONDS`.
      timezone: the IANA zone of a ``TZ=``/``CRON_TZ=`` prefix, else None.
      seconds, minutes, hours, days, months, weekdays: allowed values (weekday 0 = Sunday);
        `seconds` is ``{0}`` in the unix dialect.
      days_restricted, weekdays_restricted: whether the day fields were anything but ``*``/``?``.
    """
    expression: str
    dialect: str
    timezone: Optional[str]
    seconds: FrozenSet[int]
    minutes: FrozenSet[int]
    hours: FrozenSet[int]
    days: FrozenSet[int]
    months: FrozenSet[int]
    weekdays: FrozenSet[int]
    days_restricted: bool
    weekdays_restricted: bool

    def __str__(self):
        if self.timezone:
            return f"TZ={self.timezone} {self.expression}"
        return self.expression

    def _day_matches(self, day: datetime.date) -> bool:
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def matches(self, when: datetime.datetime) -> bool:
        """Whether the schedule fires at wall-clock time `when` (in the schedule's zone)."""
        return (when.second in self.seconds and when.minute in self.minutes
                and when.hour in self.hours and when.month in self.months
                and self._day_matches(when.date()))

    def next_after(self, when: datetime.datetime, max_days: int = 4 * 366) -> datetime.datetime:
        """The first wall-clock time strictly after `when` at which the schedule fires.

        Raises:
          ValueError: if it never fires within `max_days` days (e.g. ``0 0 30 2 *``).
        """
        start = when.replace(microsecond=0, tzinfo=None)
        for offset in range(max_days + 1):
            day = start.date() + datetime.timedelta(days=offset)
            if day.month not in self.months or not self._day_matches(day):
                continue
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    for second in sorted(self.seconds):
                        candidate = datetime.datetime(day.year, day.month, day.day, hour, minute,
                                                      second)
                        if candidate > start:
                            return candidate
        raise ValueError(f"cron {self} never fires within {max_days} days of {when}")


def check_timezone(name: str) -> str:
    """Returns `name` if it is an IANA time zone known to this machine, else raises ValueError."""
    import zoneinfo  # Python >= 3.9
    if not isinstance(name, str) or not name or name != name.strip() or " " in name:
        raise ValueError(f"time zone must be an IANA name such as 'UTC' or 'Europe/Berlin', "
                         f"got {name!r}")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'UTC' or "
                         f"'Europe/Berlin')") from error
    return name


def parse_at(at: str) -> Tuple[int, int]:
    """Parses a 24-hour ``HH:MM`` time of day into ``(hour, minute)``."""
    match = _AT.match(at.strip()) if isinstance(at, str) else None
    if not match:
        raise ValueError(f"--at must be a 24-hour time HH:MM such as 02:00, got {at!r}")
    return int(match.group(1)), int(match.group(2))


def daily(hour: int, minute: int, dialect: str = UNIX) -> str:
    """The expression that fires once a day at ``hour:minute``: ``'0 2 * * *'`` (unix) or
    ``'0 0 2 * * *'`` (seconds) for 02:00."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {list(DIALECTS)}, got {dialect!r}")
    for name, value, high in (("hour", hour, 23), ("minute", minute, 59)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise ValueError(f"{name} must be an int in [0, {high}], got {value!r}")
    fields = f"{minute} {hour} * * *"
    return f"0 {fields}" if dialect == SECONDS else fields


def parse(expression: str, dialect: str = UNIX, allow_timezone: bool = False) -> CronSchedule:
    """Parses and checks `expression` in `dialect`.

    Args:
      expression: the cron expression.
      dialect: `UNIX` (5 fields) or `SECONDS` (6 fields, seconds first).
      allow_timezone: accept a leading ``TZ=<zone>`` / ``CRON_TZ=<zone>`` (Vertex AI).

    Returns:
      The `CronSchedule`.

    Raises:
      ValueError: naming the field and the problem.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {list(DIALECTS)}, got {dialect!r}")
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError(f"cron expression must be a non-empty string, got {expression!r}")
    text = " ".join(expression.split())
    timezone = None
    prefixed = _TZ_PREFIX.match(text)
    if prefixed:
        if not allow_timezone:
            raise ValueError(f"cron {expression!r}: this target takes no TZ= prefix")
        timezone, text = check_timezone(prefixed.group(1)), prefixed.group(2)
    if text.startswith("@"):
        raise ValueError(f"cron {expression!r}: macros such as @daily are not accepted here; "
                         "write the fields out")
    specs = (_SECOND, _MINUTE, _HOUR, _DAY, _MONTH, _WEEKDAY)
    if dialect == UNIX:
        specs = specs[1:]
    fields = text.split(" ")
    if len(fields) != len(specs):
        example = "0 0 2 * * * (sec min hour day month weekday)" if dialect == SECONDS else (
            "0 2 * * * (min hour day month weekday)")
        raise ValueError(f"cron {expression!r} has {len(fields)} fields; this target needs "
                         f"{len(specs)}, e.g. {example}")
    values = [_parse_field(field, spec, dialect, expression) for field, spec in zip(fields, specs)]
    if dialect == UNIX:
        values.insert(0, frozenset({0}))
        fields.insert(0, "0")
    return CronSchedule(
        expression=" ".join(fields[1:] if dialect == UNIX else fields), dialect=dialect,
        timezone=timezone, seconds=values[0], minutes=values[1], hours=values[2],
        days=values[3], months=values[4], weekdays=values[5],
        days_restricted=fields[3] not in ("*", "?"),
        weekdays_restricted=fields[5] not in ("*", "?"))


def _value(token: str, spec, dialect: str, expression: str) -> int:
    name, low, high, names = spec
    if names and token.upper() in names:
        return names.index(token.upper()) + low
    if not token.isdigit():
        raise ValueError(f"cron {expression!r}: {name} {token!r} is not a number"
                         + (f" or one of {', '.join(names)}" if names else ""))
    value = int(token)
    if spec is _WEEKDAY and dialect == UNIX and value == 7:
        return 0  # crontab(5): 0 and 7 are both Sunday.
    if not low <= value <= high:
        raise ValueError(f"cron {expression!r}: {name} {value} is outside [{low}, {high}]")
    return value


def _parse_field(field: str, spec, dialect: str, expression: str) -> FrozenSet[int]:
    name, low, high, _ = spec
    allowed = set()
    for element in field.split(","):
        match = _ELEMENT.match(element)
        if not match:
            raise ValueError(f"cron {expression!r}: cannot parse {name} field {field!r}")
        part, step = match.group("range"), match.group("step")
        if part == "?":
            if dialect != SECONDS or spec not in (_DAY, _WEEKDAY) or step:
                raise ValueError(f"cron {expression!r}: '?' is only allowed alone in the "
                                 "day-of-month / day-of-week fields of a 6-field cron")
            part = "*"
        if part == "*":
            first, last = low, high
        elif "-" in part:
            first_token, last_token = part.split("-")
            first = _value(first_token, spec, dialect, expression)
            last = _value(last_token, spec, dialect, expression)
            if spec is _WEEKDAY and last_token == "7" and dialect == UNIX:
                last = 6
                allowed.add(0)  # 'a-7' runs through Sunday.
            if first > last:
                raise ValueError(f"cron {expression!r}: {name} range {part!r} is backwards")
        else:
            first = last = _value(part, spec, dialect, expression)
            if step:
                if dialect != SECONDS:
                    raise ValueError(f"cron {expression!r}: {name} {element!r}: write "
                                     f"{part}-{high}/{step} (crontab takes no 'a/n')")
                last = high
        stride = 1
        if step is not None:
            stride = int(step)
            if stride < 1 or stride > high - low + 1:
                raise ValueError(f"cron {expression!r}: {name} step {stride} is outside "
                                 f"[1, {high - low + 1}]")
        allowed.update(range(first, last + 1, stride))
    return frozenset(allowed)
