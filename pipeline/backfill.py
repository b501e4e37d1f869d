"""Daily orchestration: the daily pipeline run locally for a list of dates, in order.

`run_days` is what `drgrad pipeline run --date D` (one day) and `drgrad pipeline backfill
--from D1 --to D2` (`date_range`) run: every date must be in the data manifest (checked before
anything runs), each day is one `local_runner.run` with the day's span, the rolling window of
validated spans, the Transform analyzer cache and warm start, and the first failing day stops
the run with a `DayFailedError` naming it.
"""
import datetime
from typing import Callable, List, Optional, Sequence, Tuple

from drgrad.pipeline import local_runner
from drgrad.pipeline.configs import DEFAULT_WINDOW_SPANS


def date_range(first: str, last: str) -> List[str]:
    """Every ISO date from `first` to `last` inclusive; ValueError if `last` < `first`."""
    start, end = (datetime.date.fromisoformat(first), datetime.date.fromisoformat(last))
    if end < start:
        raise ValueError(f"--to {last} is before --from {first}")
    return [(start + datetime.timedelta(days=n)).isoformat()
            for n in range((end - start).days + 1)]


def run_days(data_root: str, root: str, dataset: str, dates: Sequence[str], *,
             window_spans: int = DEFAULT_WINDOW_SPANS, warm_start: bool = True,
             on_day: Optional[Callable[[str, local_runner.RunPaths], None]] = None,
             **options) -> Tuple[Optional[local_runner.RunPaths], List[str]]:
    """Runs the daily pipeline for each date in order; stops at the first failing day.

    Args:
      data_root: a `drgrad data split-days` folder (`span-<N>/` + `manifest.json`).
      root: the run directory (`local_runner.RunPaths`), shared by every day.
      dataset: dataset registry name.
      dates: ISO dates, each in the data manifest.
      window_spans: Transform and Trainer read the newest N validated spans.
      warm_start: start each day's training from the latest blessed model.
      on_day: called as `on_day(date, paths)` after each successful day.
      **options: further flat `PipelineConfig` options (epochs, thresholds, Beam args...).

    Returns:
      `(paths, done_dates)`.

    Raises:
      ValueError: a date is missing from the manifest (nothing ran).
      DayFailedError: naming the failing day (its cause chained).
    """
    from drgrad.pipeline import daily  # imports TFX

    dated = daily.dated_spans(data_root)
    missing = [date for date in dates if date not in dated]
    if missing:
        raise ValueError(f"no span for {', '.join(missing)} in {data_root}; the manifest "
                         f"covers {min(dated)} .. {max(dated)}")
    done, paths = [], None
    for date in dates:
        try:
            paths = local_runner.run(
                data_root, root, dataset, run_date=date, window_spans=window_spans,
                analyzer_cache=True, warm_start=warm_start, enable_cache=True, **options)
        except Exception as error:  # pylint: disable=broad-except
            raise DayFailedError(date, dated[date], done, error) from error
        done.append(date)
        if on_day is not None:
            on_day(date, paths)
    return paths, done


class DayFailedError(RuntimeError):
    """A daily run failed; `date`, `span`, `done` (dates finished before it) and `cause`."""

    def __init__(self, date, span, done, cause):
        from drgrad.pipeline.validation_gate import DataValidationError  # imports TFX

        self.date, self.span, self.done, self.cause = date, span, list(done), cause
        what = ("failed data validation" if isinstance(cause, DataValidationError)
                else f"failed ({type(cause).__name__})")
        super().__init__(f"{date} (span {span}) {what}: {cause}; days done before it: "
                         f"{', '.join(done) or 'none'}; nothing was pushed for {date}")
