"""CVITX_* variables set while the override switch is off are named, so a worker or a command
can warn instead of running silently on the defaults."""
import pytest

from video_analysis.worker_config import ENV_SWITCH, ignored_env_overrides, ignored_env_overrides_message


@pytest.mark.parametrize("environ,ignored", [
    ({}, []),
    ({"HOME": "/root", "PATH": "/bin"}, []),
    ({"CVITX_DB_URL": "postgresql://db/x"}, ["CVITX_DB_URL"]),
    ({"CVITX_S3_ENDPOINT_URL": "http://x", "CVITX_DB_URL": "y", ENV_SWITCH: "0"}, ["CVITX_DB_URL", "CVITX_S3_ENDPOINT_URL"]),
    ({"CVITX_DB_URL": "y", ENV_SWITCH: "1"}, []),
    ({"CVITX_DB_URL": "y", ENV_SWITCH: "true"}, []),
    ({ENV_SWITCH: "0"}, []),  # the switch alone is no override
    ({"CVITX_NOT_A_SETTING": "1"}, ["CVITX_NOT_A_SETTING"]),  # ignored too (with the switch on it is an error)
])
def test_ignored_env_overrides(environ, ignored):
    assert ignored_env_overrides(environ) == ignored


def test_the_message_names_them_and_the_switch():
    text = ignored_env_overrides_message(["CVITX_BUCKET", "CVITX_DB_URL"])
    assert "CVITX_BUCKET, CVITX_DB_URL" in text and f"{ENV_SWITCH}=1" in text
