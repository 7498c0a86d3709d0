"""Posting notifications: every destination at once, each tried twice at most, all of them
within one bound (``TASKMASTER["NOTIFICATION_TIMEOUT"]``).

A notification is news, never a part of the deploy: a dead or hanging endpoint costs the
gate at most the bound, then the gate goes on and a thread still blocked is left behind (a
daemon: it dies with the process). A webhook URL is a credential (Slack's, Discord's and
Teams' URLs are the secret), so every sentence names it masked (``credentials.masked``) and no error
text from urllib, which may quote the URL, is ever repeated.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from taskmaster import __version__, log
from taskmaster.credentials import masked, without_credentials

USER_AGENT = f"taskmaster/{__version__}"
SIGNATURE_HEADER = "X-Taskmaster-Signature"  # sha256=<hex>, as GitHub's X-Hub-Signature-256
TIMESTAMP_HEADER = "X-Taskmaster-Timestamp"  # Unix seconds, the body's sent_at
EVENT_HEADER = "X-Taskmaster-Event"  # clear, blocked, interrupted, error, restored
PAUSE = 0.5  # seconds before the one retry: a restarting endpoint gets a moment
# Each try gets a bit less than half of what is left after the pause, so a second try still
# fits in the bound after a first one that timed out.
TRY_SHARE = 0.45


@dataclass(frozen=True)
class Post:
    """One request to make: the destination's URL, the body, its headers."""

    url: str
    body: bytes
    headers: dict[str, str]

    @property
    def masked_url(self) -> str:
        return masked(self.url, secret_path=True)


@dataclass(frozen=True)
class Delivery:
    """How one post went; ``reason`` is ours (``HTTP 500``, ``timed out``), never urllib's."""

    url: str  # masked
    ok: bool
    reason: str
    tries: int

    @property
    def tries_text(self) -> str:
        return "1 try" if self.tries == 1 else f"{self.tries} tries"


def post(
    url: str, payload: dict[str, Any], *, event: str, sent_at: datetime, secret: str | None = None
) -> Post:
    """The request for ``payload``; with ``secret``, signed with HMAC-SHA256 of the body."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        TIMESTAMP_HEADER: str(int(sent_at.timestamp())),
    }
    if secret:
        headers[SIGNATURE_HEADER] = signature(body, secret)
    return Post(url, body, headers)


def signature(body: bytes, secret: str) -> str:
    """``sha256=<hex>``: what a receiver recomputes over the raw body with the shared secret."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def deliver(posts: Sequence[Post], *, timeout: float) -> list[Delivery]:
    """Send every post in its own thread and wait at most ``timeout`` seconds for all of them;
    one still blocked then is reported as such and left to finish (or not) on its own."""
    deadline = time.monotonic() + timeout
    per_try = max(0.1, (timeout - PAUSE) * TRY_SHARE)
    attempts = [_Attempt(p) for p in posts]
    threads = []
    for attempt in attempts:
        thread = log.thread(attempt.run, per_try, deadline, name="taskmaster-notification")
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [a.result(f"no answer within {timeout:g} s") for a in attempts]


class _Attempt:
    """One destination's tries, run in a thread; the waiting side reads ``result``."""

    def __init__(self, request: Post) -> None:
        self.request = request
        self.tries = 0
        self.done: Delivery | None = None  # set once, by the thread, when it has finished

    def result(self, unfinished: str) -> Delivery:
        done = self.done
        if done is not None:
            return done
        return Delivery(self.request.masked_url, False, unfinished, max(1, self.tries))

    def run(self, per_try: float, deadline: float) -> None:
        ok, reason = False, "not sent: no time left"
        for number in (1, 2):
            left = deadline - time.monotonic()
            if left <= 0.05:
                break
            self.tries = number
            ok, reason, again = _post_once(self.request, min(per_try, left))
            if ok or not again or deadline - time.monotonic() < PAUSE + 0.1:
                break
            time.sleep(PAUSE)
        self.done = Delivery(self.request.masked_url, ok, reason, max(1, self.tries))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would turn the POST into a GET or carry the signed body to another host: a
    # webhook answers where it is, so a redirect is reported as the failure it is.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post_once(request: Post, timeout: float) -> tuple[bool, str, bool]:
    """(sent, reason, worth another try)."""
    if urlsplit(request.url).scheme not in ("http", "https"):
        # urllib would also read file:// and ftp:// URLs: a notification only posts.
        return False, "not an http(s) URL", False
    try:
        with _opener.open(_request(request), timeout=timeout) as response:
            return True, f"HTTP {response.status}", False
    except urllib.error.HTTPError as exc:
        exc.close()
        if 300 <= exc.code < 400:
            return False, f"HTTP {exc.code}: redirects are not followed", False
        return False, f"HTTP {exc.code}", exc.code >= 500 or exc.code == 429
    except urllib.error.URLError as exc:
        return (False, *_why(exc.reason))
    except Exception as exc:  # a socket error while reading the answer, a bad URL, ...
        return (False, *_why(exc))


def _request(request: Post) -> urllib.request.Request:
    url, authorization = without_credentials(request.url)
    headers = dict(request.headers)
    if authorization:
        headers["Authorization"] = authorization
    return urllib.request.Request(url, data=request.body, headers=headers, method="POST")


def _why(reason: object) -> tuple[str, bool]:
    """A short reason of our own and whether another try may help; urllib's text may quote
    the URL, so it is never used."""
    if isinstance(reason, TimeoutError):
        return "timed out", True
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused", True
    if isinstance(reason, http.client.RemoteDisconnected):
        return "connection closed without an answer", True
    if isinstance(reason, ConnectionResetError):
        return "connection reset", True
    if isinstance(reason, socket.gaierror):
        return "host name not found", True
    if isinstance(reason, ssl.SSLCertVerificationError):
        return "TLS certificate not trusted", False
    if isinstance(reason, ssl.SSLError):
        return "TLS error", False
    if isinstance(reason, http.client.HTTPException):
        return "not an HTTP answer", False
    if isinstance(reason, OSError):
        code = errno.errorcode.get(reason.errno or 0, "")
        return (f"connection failed ({code})" if code else "connection failed"), True
    if isinstance(reason, (ValueError, str)):  # urllib's "unknown url type", "no host given"
        return "not a valid URL", False
    return f"unexpected error ({type(reason).__name__})", False
