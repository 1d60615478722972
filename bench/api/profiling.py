"""Bench only: cProfile around every request inside the server process (the outermost middleware, so the
whole sync middleware chain and the view run under it, in the request's worker thread). Stats are
written to TESSERA_BENCH_PROFILE when the process exits."""

import atexit
import cProfile
import os
import threading

_profile = cProfile.Profile()
_lock = threading.Lock()
atexit.register(lambda: _profile.dump_stats(os.environ["TESSERA_BENCH_PROFILE"]))


class ProfileMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with _lock:  # one request at a time under the profiler (cProfile is per-thread)
            _profile.enable()
            try:
                return self.get_response(request)
            finally:
                _profile.disable()
