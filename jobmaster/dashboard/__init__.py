"""The web dashboard: jobs, schedules, workers, lanes, dead letters and definitions, read
from the master, with actions (retry, cancel, delete, pause, trigger, requeue).

Serve it alone with ``jobmaster dashboard -A proj.app``, or mount it in your own
Starlette/FastAPI application::

    from jobmaster.dashboard import asgi_app

    api.mount("/jobs", asgi_app(app, read_only=False, authorize=None))

Every URL it renders is relative to where it is mounted. It needs
``jobmaster[dashboard]`` (Starlette and Jinja2); its scripts and styles ship inside the
package, and it answers with a strict Content-Security-Policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from jobmaster.app import App
    from jobmaster.dashboard.security import Authorize
    from jobmaster.dashboard.views import Redact


def asgi_app(app: App, read_only: bool = False, authorize: Authorize | None = None, *,
             redact: Redact | None = None, poll_seconds: int = 5,
             auth: str | None = None) -> ASGIApp:
    """The dashboard of ``app`` as an ASGI application.

    - ``read_only``: every action is refused (by the server, not only hidden).
    - ``authorize(request, action, target) -> bool`` (or an awaitable of it): asked before
      each page (``action="view"``) and each action; ``False`` answers 403.
    - ``redact(job, kwargs) -> kwargs``: what a job's page shows of its arguments (by
      default, values under keys that look secret are hidden).
    - ``poll_seconds``: how often pages refresh themselves (the viewer can change it;
      refreshing pauses while the tab is hidden).
    - ``auth``: ``"user:password"`` to ask for HTTP basic auth (the standalone server's
      ``--auth``); when mounted in your application, protect it as the rest of it.
    """
    from jobmaster.dashboard.security import BasicAuth
    from jobmaster.dashboard.views import Dashboard, build, redact_secrets

    if isinstance(poll_seconds, bool) or not isinstance(poll_seconds, int) or \
            poll_seconds < 0:
        raise ValueError(f"poll_seconds={poll_seconds!r} must be a whole number of seconds "
                         ">= 0 (0: no refresh)")
    web: Any = build(Dashboard(app, read_only=read_only, authorize=authorize,
                               redact=redact or redact_secrets, poll_seconds=poll_seconds))
    return BasicAuth(web, auth) if auth else web


def wsgi_app(app: App, read_only: bool = False, authorize: Authorize | None = None,
             **options: Any) -> Any:
    """The dashboard as a WSGI application, for Django or Flask projects served by a WSGI
    server (needs ``a2wsgi``, in ``jobmaster[dashboard]``)."""
    from a2wsgi import ASGIMiddleware

    return ASGIMiddleware(asgi_app(app, read_only, authorize, **options))  # type: ignore[arg-type]


__all__ = ["asgi_app", "wsgi_app"]
