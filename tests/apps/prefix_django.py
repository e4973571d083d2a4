"""Django app (one file) for the mount tests: the URLs reverse() builds and the path it was given."""
from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="wsgi-fcgi-tests",
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    STATIC_URL="static/",  # relative: Django puts SCRIPT_NAME in front of it
    USE_TZ=True,
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponseRedirect, JsonResponse  # noqa: E402
from django.templatetags.static import static  # noqa: E402
from django.urls import path, re_path, reverse  # noqa: E402


def links(request):
    return JsonResponse({
        "external": request.build_absolute_uri(reverse("links")),
        "static": static("site.css"),
        "script_name": request.META["SCRIPT_NAME"],
        "path_info": request.META["PATH_INFO"],
        "authorization": request.META.get("HTTP_AUTHORIZATION"),
    })


def go(request):
    return HttpResponseRedirect(request.build_absolute_uri(reverse("links")))


def path_echo(request, rest):
    return JsonResponse({"path_info": request.META["PATH_INFO"], "rest": rest})


def echo(request):
    # A form posted to the app: the body reaches the framework's parser whole.
    return JsonResponse({"a_length": len(request.POST.get("a", "")), "content_length": int(request.META["CONTENT_LENGTH"])})


urlpatterns = [
    path("links", links, name="links"),
    path("go", go),
    path("echo", echo),
    re_path(r"^p/(?P<rest>.*)$", path_echo),
]

application = get_wsgi_application()
