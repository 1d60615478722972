"""Settings entry point: the one place that reads TESSERA_MODE (saas | desktop)."""

import os

TESSERA_MODE = os.environ.get("TESSERA_MODE", "desktop").strip().lower()

if TESSERA_MODE == "saas":
    from config.settings.saas import *  # noqa: F403
elif TESSERA_MODE == "desktop":
    from config.settings.desktop import *  # noqa: F403
else:  # pragma: no cover - guarded at start-up
    raise RuntimeError(f"TESSERA_MODE must be 'saas' or 'desktop', not {TESSERA_MODE!r}")
