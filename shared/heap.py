"""Keep the cyclic garbage collector's full passes off the request path of long-lived services.

A full (generation 2) collection walks every object the collector tracks. Once torch, Celery
and SQLAlchemy are imported a worker holds ~240k of them, and one full pass took 120-165 ms on
the development machine (the API, without torch: ~115k objects, ~35 ms); a worker stalled for
one delays every job waiting for it. What exists once a service is up (modules, classes,
functions, settings) lives as long as the process, so it moves to the permanent generation
(`gc.freeze`) and later passes only walk what was allocated since (6-12 ms for the worker).
Reference counting still frees everything as usual; only cycles among frozen objects are
never collected, and startup leaves none worth collecting (a collection runs first).
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect once, then exempt every surviving object from later passes; returns how many
    objects are now frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
