"""Fixtures: the machine's real brokers, real workers, and the test database."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.lab import BROKERS, REDIS_URL, Lab
from tests.support.run import claim_redis_db, create_vhost, delete_vhost, give_back

# In CI every service-backed test is required: a missing service fails, never skips.
REQUIRE_SERVICES = bool(os.environ.get("CI"))


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "filesystem":
        return True
    try:
        with socket.create_connection((parts.hostname, parts.port or 5672), timeout=2):
            return True
    except OSError:
        return False


def require(kind: str) -> None:
    if not reachable(BROKERS[kind]):
        message = f"{kind} is not reachable at {urlsplit(BROKERS[kind]).netloc}"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message} (CI requires every service)")
        pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def own_brokers() -> Iterator[None]:
    """This process's own RabbitMQ vhost and Redis database (tests/support/run.py), for the
    session, then deleted and given back."""
    rabbitmq = reachable(BROKERS["rabbitmq"])
    if rabbitmq:
        try:
            create_vhost(BROKERS["rabbitmq"])
        except RuntimeError as exc:
            pytest.fail(str(exc))
    if reachable(REDIS_URL):
        try:
            BROKERS["redis"] = claim_redis_db(REDIS_URL, "suite")
        except RuntimeError as exc:
            pytest.fail(str(exc))
    try:
        yield
    finally:
        give_back()
        if rabbitmq:
            delete_vhost(BROKERS["rabbitmq"])


def database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("gate subprocess tests need PostgreSQL (set DATABASE_URL)")
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(params=["rabbitmq"])
def lab(request: pytest.FixtureRequest, transactional_db: None, tmp_path: object) -> Iterator[Lab]:
    """A broker (RabbitMQ unless a test parametrizes ``lab``) with room for workers."""
    kind = request.param
    require(kind)
    the_lab = Lab(BROKERS[kind], database_url(), tmp_path)  # type: ignore[arg-type]
    the_lab.kind = kind  # type: ignore[attr-defined]
    try:
        yield the_lab
    finally:
        the_lab.close()


ALL_BROKERS = pytest.mark.parametrize("lab", list(BROKERS), indirect=True)
