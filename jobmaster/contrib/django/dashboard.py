"""The dashboard inside a Django project, as a URL pattern::

    from django.urls import path
    from jobmaster.contrib.django.dashboard import dashboard_urls

    urlpatterns = [..., path("ops/jobs/", dashboard_urls())]

Only staff users see it by default (``allow=`` decides otherwise); everything under that
path is the dashboard, its URLs relative to it. The dashboard checks its own CSRF token on
its actions, so Django's CSRF middleware is not asked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobmaster.dashboard.security import Authorize


def _staff(request: Any) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def dashboard_urls(*, read_only: bool = False, authorize: Authorize | None = None,
                   allow: Callable[[Any], bool] = _staff, **options: Any) -> Any:
    """URL patterns serving the dashboard of the project's ``App`` (for ``path(prefix,
    dashboard_urls())``). ``allow(django_request) -> bool`` guards every page and action
    (default: an active staff user); ``read_only``, ``authorize`` and ``options`` are
    ``jobmaster.dashboard.asgi_app``'s."""
    from django.urls import re_path

    view = dashboard_view(read_only=read_only, authorize=authorize, allow=allow, **options)
    return ([re_path(r"^(?P<rest>.*)$", view, name="jobmaster-dashboard")],
            "jobmaster_dashboard", "jobmaster_dashboard")


def dashboard_view(*, read_only: bool = False, authorize: Authorize | None = None,
                   allow: Callable[[Any], bool] = _staff, **options: Any
                   ) -> Callable[..., Any]:
    """The Django view behind ``dashboard_urls``: it hands the request to the dashboard's
    WSGI application, mounted at the path the URL pattern matched."""
    from django.http import HttpResponse, HttpResponseForbidden

    from jobmaster.contrib.django.config import get_app
    from jobmaster.dashboard import wsgi_app

    made: list[Any] = []

    def view(request: Any, rest: str = "") -> Any:
        if not allow(request):
            return HttpResponseForbidden("the jobs dashboard is for staff users")
        if not made:
            made.append(wsgi_app(get_app(), read_only, authorize, **options))
        full = request.path_info
        mount = full[: len(full) - len(rest)].rstrip("/")
        environ = dict(request.META)
        environ["SCRIPT_NAME"] = request.META.get("SCRIPT_NAME", "").rstrip("/") + mount
        environ["PATH_INFO"] = "/" + rest
        environ["wsgi.input"] = request  # Django's request reads its body as a stream
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            answer["status"], answer["headers"] = status, headers
            return lambda _data: None

        body = b"".join(made[0](environ, start_response))
        response = HttpResponse(body, status=int(answer["status"].split()[0]))
        for name, value in answer["headers"]:
            if name.lower() == "set-cookie":
                response.cookies.load(value)
            elif name.lower() != "content-length":
                response[name] = value
        return response

    view.csrf_exempt = True  # type: ignore[attr-defined] # what Django's csrf_exempt sets
    return view


__all__ = ["dashboard_urls", "dashboard_view"]
