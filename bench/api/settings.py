"""Settings of the API benchmark's server: Tessera's own (config.settings) plus the bench-only baseline URLs."""

import os

from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE

ROOT_URLCONF = "bench.api.urls"

if os.environ.get("TESSERA_BENCH_PROFILE"):
    MIDDLEWARE = ["bench.api.profiling.ProfileMiddleware", *MIDDLEWARE]
