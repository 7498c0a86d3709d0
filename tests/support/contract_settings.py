"""The demo project with ``TASKMASTER`` read from ``TEST_TASKMASTER`` (JSON), so a test can
run the gate as a subprocess on settings that are wrong in one precise way."""

import json
import os

from project.settings import *  # noqa: F403

if "TEST_TASKMASTER" in os.environ:
    TASKMASTER = json.loads(os.environ["TEST_TASKMASTER"])
