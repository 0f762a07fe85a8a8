"""No password, token or signing secret in a repr, a log line or an error message."""

from __future__ import annotations

import logging

import pytest

from jobmaster import App, JobmasterError
from jobmaster.master.repository import Master

SECRET = "s3cr3t-Pa55"


def _app() -> App:
    return App(
        "billing",
        master=f"postgresql://billing:{SECRET}@127.0.0.1:1/db?sslpassword={SECRET}",
        agents={"main": f"redis://:{SECRET}@127.0.0.1:1/0",
                "events": f"nats://{SECRET}@127.0.0.1:1"},
        secret=SECRET,
        serializer="pickle",
    )


def test_config_and_app_reprs_hide_secrets() -> None:
    app = _app()
    for text in (repr(app.config), str(app.config), repr(app)):
        assert SECRET not in text
    assert "secret='***'" in repr(app.config)
    assert "billing:***@" in repr(app.config)


def test_an_unreachable_master_error_hides_the_password(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    caplog.set_level(logging.DEBUG)
    master = Master(f"postgresql://billing:{SECRET}@127.0.0.1:1/db?password={SECRET}")
    with pytest.raises(JobmasterError) as info:
        master.ensure_ready()
    assert SECRET not in str(info.value)
    assert "127.0.0.1" in str(info.value)
    assert SECRET not in caplog.text


def test_a_master_url_with_a_missing_driver_hides_the_password() -> None:
    with pytest.raises(JobmasterError) as info:
        _ = Master(f"nosuchdb://user:{SECRET}@host/db").engine
    assert SECRET not in str(info.value)
