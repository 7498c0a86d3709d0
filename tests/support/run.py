"""This run of the suite, and the room it takes on the machine's shared services.

A gate drains every worker of its broker's vhost (or Redis database), and the suite's
databases are dropped at its end: two runs on one machine at once (CI beside a developer, two
CI jobs) would drain each other's workers and drop each other's tables. So every run has an
id, and every process of a run (``pytest -n`` starts several) has room of its own:

- a RabbitMQ vhost named after both (``conftest.py`` creates it and deletes it at the end);
- a Redis database claimed for it: Redis has sixteen, numbered, so they are taken in turn
  (``claim_redis_db``), and given back at the end;
- a PostgreSQL test database named after both (``settings.py``; pytest-django adds ``_gwN``).

The id is made by the first process that imports this module and handed down to the
processes it starts (``pytest -n``'s own, and the benchmark's) through the environment.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import uuid
from urllib.parse import urlsplit, urlunsplit

RUN = os.environ.setdefault("TASKMASTER_TEST_RUN", uuid.uuid4().hex[:8])
PROCESS = os.environ.get("PYTEST_XDIST_WORKER", "") or "main"  # "gw0", "gw1", … under -n

# The Redis databases the suite may take. The low ones are left to a developer's own work
# (a demo worker, a project), and database 0 holds the claims.
REDIS_DATABASES = range(8, 16)
CLAIM = "taskmaster-tests:redis-db:{db}"
CLAIM_SECONDS = 6 * 3600  # a run killed without its cleanup gives its databases back by then


def vhost_url(base: str) -> str:
    """``base`` (an AMQP URL) on this process's own vhost."""
    parts = urlsplit(base)
    name = parts.path.removeprefix("/") or "taskmaster"
    return urlunsplit(parts._replace(path=f"/{name}-{RUN}-{PROCESS}"))


def create_vhost(url: str) -> None:
    """Create the vhost of ``url`` (an AMQP URL) for the guest user; raises ``RuntimeError``."""
    vhost = urlsplit(url).path.removeprefix("/")
    for command in (
        ["rabbitmqctl", "-q", "add_vhost", vhost],
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
    ):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode and "already exists" not in done.stderr:
            raise RuntimeError(f"cannot create the RabbitMQ vhost {vhost!r}: {done.stderr.strip()}")


def delete_vhost(url: str) -> None:
    vhost = urlsplit(url).path.removeprefix("/")
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


def claim_redis_db(base: str, purpose: str) -> str:
    """``base`` (a Redis URL) on a database no other run or process holds, given back when
    this process exits. Raises ``RuntimeError`` when every one is taken."""
    import redis

    claims = redis.Redis.from_url(base, db=0)
    owner = f"{RUN}/{PROCESS}/{purpose}"
    for db in REDIS_DATABASES:
        key = CLAIM.format(db=db)
        if claims.set(key, owner, nx=True, ex=CLAIM_SECONDS):
            _claimed.append((base, key, owner))
            return urlunsplit(urlsplit(base)._replace(path=f"/{db}"))
    held = {db: claims.get(CLAIM.format(db=db)) for db in REDIS_DATABASES}
    raise RuntimeError(
        f"every Redis database the suite may use is held by another run: {held} "
        f"(keys {CLAIM.format(db='N')} in database 0; they expire after {CLAIM_SECONDS} s)"
    )


_claimed: list[tuple[str, str, str]] = []


@atexit.register  # and at the end of a session (conftest.py): pytest -n's processes may not
def give_back() -> None:  # run atexit handlers
    """Give back every Redis database this process claimed."""
    if not _claimed:
        return
    import redis

    while _claimed:
        base, key, owner = _claimed.pop()
        try:
            claims = redis.Redis.from_url(base, db=0)
            if claims.get(key) == owner.encode():  # still ours: not expired and taken since
                claims.delete(key)
        except redis.RedisError:
            pass  # the claim expires by itself
