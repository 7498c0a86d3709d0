"""The metrics as a page for Prometheus to scrape, mounted by the project::

    path("metrics/taskmaster", taskmaster.metrics.views.metrics)

It reads the database only (``collector.py``), never Celery or the broker: it answers while
the broker is down, and a scrape costs a few queries.
"""

from __future__ import annotations

import hmac

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from taskmaster.conf import app_settings

INSTALL = 'The metrics need prometheus_client: pip install "django-taskmaster[metrics]"'
NO_DATABASE = "The gate runs cannot be read now: the database failed."


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The gate's metrics in Prometheus' text format: for a request with the bearer token
    ``METRICS["TOKEN"]``, or a user who may view gate runs; 403 otherwise."""
    if not allowed(request):
        return HttpResponseForbidden()
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from taskmaster.metrics.collector import registry
    except ImportError:
        return unavailable(INSTALL)
    try:
        body = generate_latest(registry())
    except DatabaseError:
        return unavailable(NO_DATABASE)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def allowed(request: HttpRequest) -> bool:
    token = app_settings.METRICS["TOKEN"]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer":
        # In constant time: a comparison that stops at the first wrong byte tells how many
        # were right.
        return hmac.compare_digest(given.strip().encode(), str(token).encode())
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.has_perm("taskmaster.view_gaterun"))


def unavailable(sentence: str) -> HttpResponse:
    return HttpResponse(sentence + "\n", status=503, content_type="text/plain; charset=utf-8")
