"""Cron expressions in the two dialects the schedulers take, checked up front.

* ``unix`` (5 fields: minute hour day-of-month month day-of-week): crontab(5), the Vertex AI
  scheduler (Cloud Scheduler's unix-cron, optionally prefixed ``TZ=<IANA zone>`` or
  ``CRON_TZ=<IANA zone>``) and Airflow.
* ``seconds`` (6 fields, seconds first): Kubeflow Pipelines recurring runs, which evaluate the
  expression with robfig/cron in the controller's time zone (``CRON_SCHEDULE_TIMEZONE``, UTC
  unless the cluster sets it). ``0 0 2 * * *`` is 02:00:00 every day; the 5-field ``0 2 * * *``
  given to KFP would silently mean "second 0 of minute 2 of every hour".

croniter expands the fields (``*``, numbers, ranges, steps, lists, ``JAN``/``MON`` names, ``?``,
day-of-week 7 for Sunday) and computes fire times, a day matching either day field when both are
restricted. It takes more than these targets do, so the project checks its own rules first:

* 5 fields (unix) or 6 with seconds first; croniter takes 5-7 and reads a 6th as seconds *last*;
* no macros (``@daily``) or croniter extensions (``L``, ``W``, ``#``, ``H``, a year field), which
  crontab, Cloud Scheduler and robfig/cron reject; ``?`` (alone, in a day field) and ``a/n`` only
  in the seconds dialect, day-of-week 7 only in the unix one, as robfig/cron and crontab have it;
* no backwards ranges (croniter wraps ``22-2``), steps within the field's span, and errors that
  name the field and value (croniter's name neither);
* a day field is restricted when written as anything but ``*``/``?``, ``1-31`` included;
* a ``TZ=``/``CRON_TZ=`` prefix only where the target takes one; fire times are naive wall-clock
  times in the schedule's zone, DST being the scheduler's business.
"""
import dataclasses
import datetime
import re
from typing import FrozenSet, Optional, Tuple

from croniter import croniter, CroniterBadDateError

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
# What the targets share; croniter's L, W, #, H and R fail here (or as "not a number").
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

    def matches(self, when: datetime.datetime) -> bool:
        """Whether the schedule fires at wall-clock time `when` (in the schedule's zone)."""
        moment = when.replace(microsecond=0, tzinfo=None)
        try:
            return self.next_after(moment - datetime.timedelta(seconds=1), max_days=1) == moment
        except ValueError:  # No fire within a day of `when`, so none at it.
            return False

    def next_after(self, when: datetime.datetime, max_days: int = 4 * 366) -> datetime.datetime:
        """The first wall-clock time strictly after `when` at which the schedule fires.

        Raises:
          ValueError: if it never fires within `max_days` days (e.g. ``0 0 30 2 *``).
        """
        # Naive on purpose: an aware start would make croniter shift fire times across DST.
        start = when.replace(microsecond=0, tzinfo=None)
        fields = self.expression.split(" ")
        if self.days_restricted and self.weekdays_restricted and (
                len(self.days) == 31 or len(self.weekdays) == 7):
            # Either day field may match and one matches every day. Left as written, croniter
            # reads the full one as '*' when the other has a '*' (``1-31 * */2``) and then
            # requires the other.
            fields[-3] = fields[-1] = "*"
        schedule = croniter(" ".join(fields), start, ret_type=datetime.datetime,
                            second_at_beginning=self.dialect == SECONDS,
                            max_years_between_matches=max_days // 365 + 1)
        try:
            fire = schedule.get_next()
        except CroniterBadDateError:
            fire = None
        # croniter bounds its search in years; the window here is in days.
        if fire is None or (fire.date() - start.date()).days > max_days:
            raise ValueError(f"cron {self} never fires within {max_days} days of {when}")
        return fire


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
    for field, spec in zip(fields, specs):
        _check_field(field, spec, dialect, expression)
    # croniter orders the fields minute, hour, day, month, weekday[, second], a full one as '*'.
    expanded, _ = croniter.expand(text, second_at_beginning=dialect == SECONDS)
    expanded = expanded if dialect == SECONDS else expanded + [[0]]
    values = {spec: frozenset(range(spec[1], spec[2] + 1) if allowed == ["*"] else allowed)
              for spec, allowed in zip((_MINUTE, _HOUR, _DAY, _MONTH, _WEEKDAY, _SECOND),
                                       expanded)}
    return CronSchedule(
        expression=text, dialect=dialect, timezone=timezone, seconds=values[_SECOND],
        minutes=values[_MINUTE], hours=values[_HOUR], days=values[_DAY],
        months=values[_MONTH], weekdays=values[_WEEKDAY],
        days_restricted=fields[-3] not in ("*", "?"),
        weekdays_restricted=fields[-1] not in ("*", "?"))


def _value(token: str, spec, dialect: str, expression: str) -> int:
    name, low, high, names = spec
    if names and token.upper() in names:
        return names.index(token.upper()) + low
    if not token.isdigit():
        raise ValueError(f"cron {expression!r}: {name} {token!r} is not a number"
                         + (f" or one of {', '.join(names)}" if names else ""))
    if spec is _WEEKDAY and dialect == UNIX:
        high = 7  # crontab(5): 0 and 7 are both Sunday; croniter maps 7 to 0.
    value = int(token)
    if not low <= value <= high:
        raise ValueError(f"cron {expression!r}: {name} {value} is outside [{low}, {high}]")
    return value


def _check_field(field: str, spec, dialect: str, expression: str) -> None:
    name, low, high, _ = spec
    for element in field.split(","):
        match = _ELEMENT.match(element)
        if not match:
            raise ValueError(f"cron {expression!r}: cannot parse {name} field {field!r}")
        part, step = match.group("range"), match.group("step")
        if part == "?" and (dialect != SECONDS or spec not in (_DAY, _WEEKDAY) or step):
            raise ValueError(f"cron {expression!r}: '?' is only allowed alone in the "
                             "day-of-month / day-of-week fields of a 6-field cron")
        if "-" in part:
            first, last = (_value(token, spec, dialect, expression) for token in part.split("-"))
            if first > last:
                raise ValueError(f"cron {expression!r}: {name} range {part!r} is backwards")
        elif part not in ("*", "?"):
            _value(part, spec, dialect, expression)
            if step and dialect != SECONDS:
                raise ValueError(f"cron {expression!r}: {name} {element!r}: write "
                                 f"{part}-{high}/{step} (crontab takes no 'a/n')")
        if step is not None and not 1 <= int(step) <= high - low + 1:
            raise ValueError(f"cron {expression!r}: {name} step {int(step)} is outside "
                             f"[1, {high - low + 1}]")
