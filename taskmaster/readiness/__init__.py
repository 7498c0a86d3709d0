"""The admin's readiness page, without HTTP: one shared dry run at a time (``looks.py``) and
what the page says of it (``page.py``)."""
