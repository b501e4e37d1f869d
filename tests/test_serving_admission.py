"""Admission control (`serving.server.admission`): the predicted-wait rule, on a fake clock.

Expected values are worked by hand: a rate sample is completions / busy seconds of a window.
"""
import grpc
import pytest

from drgrad.serving.server.admission import Admission
from drgrad.serving.server.errors import ServingError


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def serve(admission, clock, count, seconds_each):
    """`count` requests one after another, each taking `seconds_each`."""
    for _ in range(count):
        admission.admit()
        clock.now += seconds_each
        admission.release()


def measure(admission):
    """The rate as the next arrival sees it (windows close at arrivals)."""
    admission.admit()
    admission.release()
    return admission.rate


def test_no_estimate_admits_up_to_the_inflight_bound_only():
    admission = Admission(max_inflight=3, max_wait_seconds=0.01, retry_after_seconds=2,
                          clock=FakeClock())
    for _ in range(3):
        admission.admit()
    with pytest.raises(ServingError) as error:
        admission.admit()
    assert error.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit of 3 requests in flight; retry after 2 s" in error.value.message
    assert admission.inflight == 3 and admission.rate is None
    assert admission.predicted_wait() == 0.0
    for _ in range(3):
        admission.release()
    admission.admit()


def test_rate_is_completions_per_busy_second_and_idle_time_does_not_count():
    clock = FakeClock()
    admission = Admission(max_inflight=100, max_wait_seconds=1.0, retry_after_seconds=1,
                          window_seconds=0.25, min_inflight=1, clock=clock)
    serve(admission, clock, 3, 0.0625)        # 0.1875 s busy: no window closed yet
    assert measure(admission) is None         # (+1 done in 0 s)
    clock.now += 10.0                         # idle: not busy time
    serve(admission, clock, 1, 0.0625)        # 5 done in 0.25 s busy -> 20 / s
    assert measure(admission) == 20.0
    serve(admission, clock, 7, 0.03125)       # 8 done in 0.21875 s: window still open
    assert admission.rate == 20.0
    serve(admission, clock, 1, 0.03125)       # 9 done in 0.25 s -> 36 / s, smoothed 0.3
    assert measure(admission) == pytest.approx(0.3 * 36.0 + 0.7 * 20.0)


def test_concurrent_requests_share_busy_time():
    """Four in flight at once, all done 0.25 s later: 4 completions in 0.25 busy s = 16 / s
    (not 4 / 0.25 s each = 64 / s)."""
    clock = FakeClock()
    admission = Admission(max_inflight=100, max_wait_seconds=1.0, retry_after_seconds=1,
                          window_seconds=0.25, min_inflight=1, clock=clock)
    for _ in range(4):
        admission.admit()
    clock.now += 0.25
    for _ in range(4):
        admission.release()
    assert admission.inflight == 0
    assert measure(admission) == 16.0


def test_a_request_that_would_wait_too_long_is_refused_at_arrival():
    """At 128 / s, with a 50 ms bound: behind 6 in flight a request waits 46.9 ms (admitted),
    behind 7 54.7 ms (refused, without waiting); once two leave, the next is admitted."""
    clock = FakeClock()
    admission = Admission(max_inflight=100, max_wait_seconds=0.05, retry_after_seconds=1,
                          window_seconds=0.25, min_inflight=1, clock=clock)
    serve(admission, clock, 32, 0.0078125)
    assert measure(admission) == 128.0
    for _ in range(7):
        admission.admit()
    assert admission.predicted_wait() == 7 / 128
    with pytest.raises(ServingError) as error:
        admission.admit()
    assert error.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "would wait 55 ms, more than 50 ms; retry after 1 s" in error.value.message
    assert admission.inflight == 7
    admission.release()
    admission.release()
    admission.admit()
    assert admission.inflight == 6


@pytest.mark.parametrize("kwargs", [dict(max_inflight=0), dict(max_wait_seconds=0),
                                    dict(window_seconds=-1)])
def test_bad_settings_are_refused(kwargs):
    settings = dict(max_inflight=1, max_wait_seconds=0.1, retry_after_seconds=1)
    with pytest.raises(ValueError):
        Admission(**{**settings, **kwargs})


def test_a_stuck_model_refuses_arrivals_until_what_is_in_flight_leaves():
    """A window of busy time with no completion measures 0 / s: any wait is unbounded."""
    clock = FakeClock()
    admission = Admission(max_inflight=100, max_wait_seconds=1.0, retry_after_seconds=1,
                          window_seconds=0.25, min_inflight=1, clock=clock)
    admission.admit()
    clock.now += 0.25
    with pytest.raises(ServingError) as error:
        admission.admit()
    assert admission.rate == 0.0 and "would wait inf ms" in error.value.message
    admission.release()
    admission.admit()          # nothing in flight: nothing to wait behind
    assert admission.inflight == 1


def test_below_min_inflight_no_prediction_refuses():
    """A cold start measured 4 / s: with 3 in flight the predicted wait is 750 ms, far past
    the bound, yet a 4th is admitted while fewer than `min_inflight` (4) are in flight."""
    clock = FakeClock()
    admission = Admission(max_inflight=100, max_wait_seconds=0.1, retry_after_seconds=1,
                          window_seconds=0.25, min_inflight=4, clock=clock)
    serve(admission, clock, 1, 0.25)
    assert measure(admission) == 4.0
    for _ in range(4):
        admission.admit()
    with pytest.raises(ServingError):
        admission.admit()
