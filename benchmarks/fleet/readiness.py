"""The readiness page against the fleet, through Django's test client, in a process of its own.

    python -m benchmarks.fleet.readiness --runs 3   # the environment names the broker and database

Each GET of the page (``admin:taskmaster_deployreadiness_changelist``) is given a new look at
the workers (``looks.forget()`` first): a dry run of the gate, one discovery broadcast and a
look at every worker, as a page opened after the last look went stale gets. One GET first
(not counted) imports what a first look imports. Prints one JSON object: the page's times,
and the times of the looks they started (a page waits for its look at most its budget,
``looks.budget()``: past it, the page says the look is overdue) and how many workers each
heard.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    from taskmaster.readiness.looks import looks

    settings.ALLOWED_HOSTS.append("testserver")  # the test client's host
    user, _ = User.objects.get_or_create(
        username="fleet-bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    page = reverse("admin:taskmaster_deployreadiness_changelist")
    client.get(page)
    took, looked, heard = [], [], []
    for _ in range(args.runs):
        looks.forget()
        started = time.perf_counter()
        response = client.get(page)
        took.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        # The look this GET started: past the page's budget, the page did not wait for it.
        look = looks.latest(budget=120).look
        assert look is not None
        looked.append(look.answered_at - look.asked_at)
        heard.append(len(look.outcome.workers))
    print(json.dumps({"page_s": took, "look_s": looked, "heard": heard}))


if __name__ == "__main__":
    main()
