"""Tollgate settings: everything here, production differs only in environment values.

Django's own variables take the DJANGO_ prefix; Tollgate's take TOLLGATE_. See README "Configuration".
"""

import logging
import os
import sys
from pathlib import Path

from config.env import BASE_DIR, DATA_DIR, env, local_secret, new_fernet_key, new_token
from config.safety import check_production_settings, check_redis_persistence
from wire.proxies import parse_networks

DEBUG = env.bool("DJANGO_DEBUG", default=True)

SECRET_KEY = env("DJANGO_SECRET_KEY", default=None) or (local_secret("secret_key", new_token) if DEBUG else "")
# Keys virtual-key hashes; kept apart from SECRET_KEY so rotating one does not void every issued key.
TOLLGATE_KEY_HASH_SECRET = env("TOLLGATE_KEY_HASH_SECRET", default=None) or (
    local_secret("key_hash_secret", new_token) if DEBUG else ""
)
# Fernet keys for provider credentials, newest first; older ones still decrypt (rotation).
TOLLGATE_ENCRYPTION_KEYS = env.list("TOLLGATE_ENCRYPTION_KEYS", default=[]) or (
    [local_secret("encryption_key", new_fernet_key)] if DEBUG else []
)

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

DATABASE_URL = env("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'tollgate.sqlite3'}")
REDIS_URL = env("REDIS_URL", default=None) or None
_test_worker = env("PYTEST_XDIST_WORKER", default="")
if REDIS_URL and _test_worker.startswith("gw") and "_pytest" in sys.modules:
    # Parallel test workers each take their own Redis database, so streams and counters never mix
    # (servers the tests start inherit the variable but are given the shifted URL outright).
    _base, _, _db = REDIS_URL.rpartition("/")
    REDIS_URL = f"{_base}/{(int(_db or 0) - 1 - int(_test_worker[2:])) % 16}"

check_production_settings(
    debug=DEBUG,
    secret_key=SECRET_KEY,
    key_hash_secret=TOLLGATE_KEY_HASH_SECRET,
    encryption_keys=TOLLGATE_ENCRYPTION_KEYS,
    allowed_hosts=ALLOWED_HOSTS,
    database_url=DATABASE_URL,
    redis_url=REDIS_URL,
)
# Usage waits in a Redis stream for the ledger: a Redis that forgets on restart loses it.
TOLLGATE_ACCEPT_VOLATILE_REDIS = env.bool("TOLLGATE_ACCEPT_VOLATILE_REDIS", default=False)
check_redis_persistence(debug=DEBUG, redis_url=REDIS_URL, accept_volatile=TOLLGATE_ACCEPT_VOLATILE_REDIS)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "keys",
    "billing",
    "response_store",
    "relay",
    "batches",
    # Single sign-on: allauth runs only the social flows; our own pages keep login and sign-up (sso/).
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "sso",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "accounts.middleware.CurrentOrganizationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.organization",
            ],
        },
    },
]

_database = env.db_url_config(DATABASE_URL)
if _database["ENGINE"].endswith("postgresql"):
    # Every query has a bound: a stuck PostgreSQL must not hang a request forever.
    _database.setdefault("OPTIONS", {}).update({"connect_timeout": 5, "options": "-c statement_timeout=30000"})
    _database["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=0)
else:
    # WAL lets readers run beside the one writer; IMMEDIATE transactions wait for the write lock up
    # front instead of failing with "database is locked" when a read would upgrade to a write.
    _database.setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    # A file, not memory, so that test servers in other threads and processes share it.
    _database["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
    DATA_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tollgate",
            "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
if (BASE_DIR / "node_modules" / "chart.js" / "dist").exists():
    # Front-end libraries come from npm (package.json), served from node_modules, never committed.
    STATICFILES_DIRS.append(("vendor/chart.js", BASE_DIR / "node_modules" / "chart.js" / "dist"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Tollgate <tollgate@localhost>")

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("TOLLGATE_BEHIND_PROXY", False) else None

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "accounts.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "accounts.api.exceptions.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "accounts.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tollgate API",
    "DESCRIPTION": "Manage organizations, members, virtual keys, providers, models, budgets and usage.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ loads Swagger UI from our static files (no CDN): it works offline and under the CSP.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The /v1 gateway is no DRF view: config/openapi_v1.py adds it after the enum hook (drf-spectacular's default).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "config.openapi_v1.add_v1_paths"],
}

# Celery: Redis when configured, otherwise a filesystem broker that needs no server.
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5}
else:
    _celery_dir = DATA_DIR / "celery"
    # Every folder kombu writes is under the data directory (its control folder defaults to ./control).
    for _sub in ("queue", "processed", "control"):
        (_celery_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost/"  # with a host name, kombu warns of none at every start
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# Tollgate
# Where the web process listens (Procfile, Procfile.dev): not PORT, which honcho sets to 5000 for every
# process it starts. The default public URL follows it, so printed URLs, snippets and emails match.
TOLLGATE_HOST = env("TOLLGATE_HOST", default="127.0.0.1")
TOLLGATE_PORT = env.int("TOLLGATE_PORT", default=8000)
_public_host = "127.0.0.1" if TOLLGATE_HOST in ("0.0.0.0", "::", "") else TOLLGATE_HOST
_public_host = f"[{_public_host}]" if ":" in _public_host and not _public_host.startswith("[") else _public_host
TOLLGATE_PUBLIC_URL = env("TOLLGATE_PUBLIC_URL", default=f"http://{_public_host}:{TOLLGATE_PORT}")
TOLLGATE_METRICS = env.bool("TOLLGATE_METRICS", default=True)
# One `tollgate.access` log line per /v1 request, written off the request path (relay/observers.py).
TOLLGATE_ACCESS_LOG = env.bool("TOLLGATE_ACCESS_LOG", default=False)
# /metrics (Prometheus): a bearer token; without one it answers only loopback clients, and only with DEBUG on.
TOLLGATE_METRICS_TOKEN = env("TOLLGATE_METRICS_TOKEN", default="")
# OpenTelemetry traces of /v1 requests (relay/tracing.py), off by default: an OTLP/HTTP collector's base URL
# (http://collector:4318). The standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT variables turn them on too.
TOLLGATE_OTLP_ENDPOINT = env("TOLLGATE_OTLP_ENDPOINT", default="")
# prometheus-client picks multiprocess mode from this variable when it is first imported, so it is set here,
# before anything imports it; every web and worker process writes its own files there (README "Metrics").
METRICS_DIR = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(DATA_DIR / "metrics")))
METRICS_DIR.mkdir(parents=True, exist_ok=True)
TOLLGATE_MAX_BODY_BYTES = env.int("TOLLGATE_MAX_BODY_BYTES", default=8 * 1024 * 1024)
TOLLGATE_OUTPUT_RESERVE_TOKENS = env.int("TOLLGATE_OUTPUT_RESERVE_TOKENS", default=4096)
# Batch runs (batches/): lines in flight per batch, and how long a run's lease outlives its last heartbeat
# before the sweep (every TOLLGATE_BATCH_SWEEP_SECONDS) resumes the batch on another worker.
TOLLGATE_BATCH_CONCURRENCY = env.int("TOLLGATE_BATCH_CONCURRENCY", default=8)
TOLLGATE_BATCH_STALE_SECONDS = env.float("TOLLGATE_BATCH_STALE_SECONDS", default=30.0)
TOLLGATE_BATCH_SWEEP_SECONDS = env.float("TOLLGATE_BATCH_SWEEP_SECONDS", default=10.0)
# How often a native batch (the provider's own batch API, batches.native) asks the provider how it is doing.
TOLLGATE_BATCH_NATIVE_POLL_SECONDS = env.float("TOLLGATE_BATCH_NATIVE_POLL_SECONDS", default=60.0)
# README "Response cache": how long an answer is kept, the largest answer kept, and (without Redis) the
# bytes the in-process cache may hold.
TOLLGATE_RESPONSE_CACHE_SECONDS = env.int("TOLLGATE_RESPONSE_CACHE_SECONDS", default=3600)
TOLLGATE_RESPONSE_CACHE_MAX_ENTRY_BYTES = env.int("TOLLGATE_RESPONSE_CACHE_MAX_ENTRY_BYTES", default=1024 * 1024)
TOLLGATE_RESPONSE_CACHE_LOCAL_BYTES = env.int("TOLLGATE_RESPONSE_CACHE_LOCAL_BYTES", default=64 * 1024 * 1024)
TOLLGATE_USAGE_RETENTION_DAYS = env.int("TOLLGATE_USAGE_RETENTION_DAYS", default=400)
# How long a response kept with `store: true` on /v1/responses can be continued, fetched or deleted.
TOLLGATE_RESPONSES_RETENTION_DAYS = env.int("TOLLGATE_RESPONSES_RETENTION_DAYS", default=30)
TOLLGATE_USAGE_CLAIM_IDLE_MS = env.int("TOLLGATE_USAGE_CLAIM_IDLE_MS", default=60_000)
TOLLGATE_INVITATION_DAYS = env.int("TOLLGATE_INVITATION_DAYS", default=7)
# Who may create an account (accounts/signup.py): "open" (anyone, after verifying their email), "invite" (only
# through an invitation link) or "closed" (no sign-up at all; accounts come from an operator).
TOLLGATE_SIGNUP = env("TOLLGATE_SIGNUP", default="open" if DEBUG else "invite").strip().lower()
if TOLLGATE_SIGNUP not in ("open", "invite", "closed"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"TOLLGATE_SIGNUP: use open, invite or closed (not {TOLLGATE_SIGNUP!r}).")
TOLLGATE_EMAIL_VERIFICATION_HOURS = env.int("TOLLGATE_EMAIL_VERIFICATION_HOURS", default=72)
# The demo model's pace (wire/adapters/mock.py): wait before the first byte, then per streamed word.
TOLLGATE_DEMO_FIRST_BYTE_MS = env.int("TOLLGATE_DEMO_FIRST_BYTE_MS", default=300)
TOLLGATE_DEMO_CHUNK_MS = env.int("TOLLGATE_DEMO_CHUNK_MS", default=30)
# Dashboard and admin logins: this many failures per client address or per email within the window
# (seconds) and the login form refuses every attempt until the window has passed (accounts/throttle.py).
TOLLGATE_LOGIN_FAILURE_LIMIT = env.int("TOLLGATE_LOGIN_FAILURE_LIMIT", default=10)
TOLLGATE_LOGIN_FAILURE_WINDOW = env.int("TOLLGATE_LOGIN_FAILURE_WINDOW", default=15 * 60)
# Hosts that server-side fetches may reach although they resolve to private addresses (tests, intranets).
TOLLGATE_EGRESS_ALLOW_HOSTS = env.list("TOLLGATE_EGRESS_ALLOW_HOSTS", default=[])
TOLLGATE_EGRESS_ALLOW_HTTP = env.bool("TOLLGATE_EGRESS_ALLOW_HTTP", default=DEBUG)

# Single sign-on (sso/): each organization's provider comes from the database through sso.adapter, never from
# settings; allauth's own account pages are not mounted (accounts/ keeps login, sign-up and password reset).
SOCIALACCOUNT_ADAPTER = "sso.adapter.SsoSocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # linking by email is decided per organization in sso.services
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_LOGIN_ON_GET = False  # a sign-in starts with a POST (CSRF-checked) from our own button
SOCIALACCOUNT_REQUESTS_TIMEOUT = 15
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*"]
ACCOUNT_EMAIL_VERIFICATION = "none"  # the identity provider vouches for the address
# The providers' endpoints (sso/kinds.py); tests point them at loopback mocks.
TOLLGATE_SSO_FEISHU_URL = env.str("TOLLGATE_SSO_FEISHU_URL", default="https://open.feishu.cn")
TOLLGATE_SSO_LARK_URL = env.str("TOLLGATE_SSO_LARK_URL", default="https://open.larksuite.com")
TOLLGATE_SSO_DINGTALK_API_URL = env.str("TOLLGATE_SSO_DINGTALK_API_URL", default="https://api.dingtalk.com")
TOLLGATE_SSO_DINGTALK_LOGIN_URL = env.str("TOLLGATE_SSO_DINGTALK_LOGIN_URL", default="https://login.dingtalk.com")
TOLLGATE_SSO_WECOM_API_URL = env.str("TOLLGATE_SSO_WECOM_API_URL", default="https://qyapi.weixin.qq.com")
TOLLGATE_SSO_WECOM_LOGIN_URL = env.str("TOLLGATE_SSO_WECOM_LOGIN_URL", default="https://login.work.weixin.qq.com")
# The relay's own upstream connections: how long a checked DNS answer is reused (relay/egress.py).
TOLLGATE_EGRESS_DNS_TTL = env.int("TOLLGATE_EGRESS_DNS_TTL", default=60)
# Reverse proxies whose X-Forwarded-For is believed (CIDRs), for the relay's bad-key throttle and the
# login throttle (wire/proxies.py). Empty: the connection's own address is the client's.
TOLLGATE_TRUSTED_PROXIES = [str(n) for n in parse_networks(tuple(env.list("TOLLGATE_TRUSTED_PROXIES", default=[])))]
# Request bodies outside /v1 (dashboard, REST API): refused with 413 past this size before they are
# read (config/body_limit.py); a view may declare a larger limit (the cost estimator's upload).
TOLLGATE_MAX_REQUEST_BYTES = env.int("TOLLGATE_MAX_REQUEST_BYTES", default=1024 * 1024)
# Django's own caps once a body is read: form fields in memory, and uploads kept in memory (above it
# they spool to a temporary file, which TOLLGATE_MAX_REQUEST_BYTES and the view's limit bound).
DATA_UPLOAD_MAX_MEMORY_SIZE = 6 * 1024 * 1024  # the estimator's 5 MB text field and the form around it
FILE_UPLOAD_MAX_MEMORY_SIZE = 6 * 1024 * 1024

# Every process logs alike (config/logs.py): Celery's worker and beat take this too (config/celery.py).
TOLLGATE_LOG_FORMAT = env("TOLLGATE_LOG_FORMAT", default="text").strip().lower()
if TOLLGATE_LOG_FORMAT not in ("text", "json"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"TOLLGATE_LOG_FORMAT must be text or json, not {TOLLGATE_LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"text": {"()": "config.logs.TextFormatter"}, "json": {"()": "config.logs.JsonFormatter"}},
    "filters": {"routine_tasks": {"()": "config.logs.RoutineTasksAtDebug"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": TOLLGATE_LOG_FORMAT, "filters": ["routine_tasks"]},
    },
    "root": {"handlers": ["console"], "level": env("TOLLGATE_LOG_LEVEL", default="INFO")},
    "loggers": {
        # uvicorn's own lines ("Started server process", errors) through the same handler, not its own format
        # (its access log is left to uvicorn's --no-access-log).
        "uvicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        # The HTTP clients log request URLs (httpx at INFO: "HTTP Request: POST <url>"), and bot and
        # webhook URLs carry their token; their traces print whole upstream response headers, which a
        # provider may fill with the credential it was sent. Warnings only, even when TOLLGATE_LOG_LEVEL=DEBUG.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "hpack": {"level": "INFO"},
    },
}
# Python warnings (a library's UserWarning) become `py.warnings` log lines in the configured format, as
# Celery does for the worker: in JSON mode a bare warning line would be the one line a collector cannot read.
logging.captureWarnings(True)
