from django.contrib import admin
from django.urls import path

from taskmaster.metrics.views import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    # The gate's Prometheus metrics (docs/observability.md): a scraper with the bearer token
    # TASKMASTER_METRICS_TOKEN, or a user who may view gate runs.
    path("metrics/taskmaster", metrics),
]
