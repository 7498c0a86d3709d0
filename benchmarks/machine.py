"""What every benchmark writes beside its figures: the machine and the versions it ran on."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def machine(**more: Any) -> dict[str, Any]:
    """The CPU, cores, memory and load, Python, Django, Celery, kombu, RabbitMQ and Redis;
    ``more``: what a benchmark adds (its own tools' versions)."""
    import celery
    import django
    import kombu

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    rabbit = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True).stdout
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "django": django.get_version(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "rabbitmq": rabbit.strip(),
        "redis": redis.split()[2].removeprefix("v=") if redis else "?",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        **more,
    }
