"""Log lines a storm could repeat are throttled; Kopf's routine retries are not errors."""

from __future__ import annotations

import logging

import pytest

from incidentops.logs import RetriesAreNotErrors, Throttle


def test_a_storm_of_the_same_line_is_throttled_then_summarized(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = Throttle(burst=3, period=60, clock=lambda: now[0])
    log = logging.getLogger("test.throttle")
    with caplog.at_level(logging.INFO):
        written = [throttle.log(log, logging.WARNING, "401", "refused %s", i) for i in range(10)]
        assert written == [True] * 3 + [False] * 7
        assert throttle.log(log, logging.WARNING, "400", "other reason")  # keys are throttled apart
        now[0] = 61
        assert throttle.log(log, logging.WARNING, "401", "refused %s", 10)
    assert caplog.messages[-1] == "refused 10 (7 similar lines left out)"


@pytest.mark.parametrize(
    ("message", "level"),
    [
        (
            "Request attempt #1 failed; will retry: GET /x -> APITooManyRequestsError('storage is (re)initializing')",
            "INFO",
        ),
        ("Request attempt #1 failed; will retry: GET /x -> APIServerError(500)", "WARNING"),
        ("Request attempt #9 failed; escalating: GET /x -> APIServerError(500)", "ERROR"),
    ],
)
def test_retries_are_not_errors(message: str, level: str) -> None:
    record = logging.LogRecord("kopf._cogs.clients.api", logging.ERROR, __file__, 1, message, None, None)
    assert RetriesAreNotErrors().filter(record)
    assert record.levelname == level


def test_an_apiserver_still_starting_is_info_anything_else_waiting_a_warning() -> None:
    import logging  # noqa: PLC0415

    from incidentops.kube import Unavailable  # noqa: PLC0415
    from incidentops.logs import waiting_level  # noqa: PLC0415

    starting = Unavailable("apiserver answered 429: storage is (re)initializing")
    assert waiting_level(starting) == logging.INFO
    assert waiting_level(Unavailable("apiserver unreachable: connection refused")) == logging.WARNING
