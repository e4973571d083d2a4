"""A one-file Django app rendering a small template, with Django's usual middleware."""
from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="wsgi-fcgi-bench",
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    INSTALLED_APPS=[],
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "APP_DIRS": False,
                "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader", {
                    "page.html": "<html><body><h1>Hello, {{ name }}!</h1><ul>{% for i in items %}"
                                 "<li>{{ i }}</li>{% endfor %}</ul><p>{{ q }}</p></body></html>"})]}}],
    USE_TZ=True,
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.urls import path  # noqa: E402


def hello(request, name):
    return render(request, "page.html", {"name": name, "items": range(5), "q": request.GET.get("q", "")})


urlpatterns = [path("hello/<name>", hello)]
application = get_wsgi_application()
