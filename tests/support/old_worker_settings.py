"""Worker settings of an older image: the project without taskmaster installed.

``app.autodiscover_tasks()`` then never imports ``taskmaster.tasks``, nor does Celery's CLI
(``old_image.py``): these workers answer the lease commands with an error, and the gate drains
them without a lease. ``Lab.start_worker(old_image=True)`` starts one.
"""

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "taskmaster"]

# Nor did its URLconf mount Taskmaster's metrics view. A worker serves no page, but Celery's
# Django fixup runs the system checks, which import the URLconf: this module is one, empty.
ROOT_URLCONF = __name__
urlpatterns: list[object] = []
