"""The Redis keys of the metrics generator: built here and nowhere else.

All keys start with ``RESOTO_KEY_PREFIX`` (``{p}``, default ``resoto``).

==============================  ======  ========  ===============================================
key                             type    TTL       written by: content
==============================  ======  ========  ===============================================
``{p}:metrics:live``            hash    -         the swap (``live.publish``): metric name ->
                                                  family JSON, ``_meta`` -> generation JSON;
                                                  read by every metrics worker on every scrape
``{p}:metrics:stage:{token}``   hash    10 min    ``live.publish``: the next live set, renamed
                                                  over ``live`` in the swap's MULTI; expires by
                                                  itself if the generator dies before the swap
``{p}:metrics:totals``          hash    -         the swap: running totals of counter
                                                  definitions, ``{metric}|{labels JSON}`` ->
                                                  value, ``_run`` -> the run last added
==============================  ======  ========  ===============================================
"""

from __future__ import annotations

from typing import Final

from resoto_tasks.settings import get_settings

META_FIELD: Final = "_meta"
"""The field of the live set holding the generation's metadata (metric names never start with ``_``)."""
TOTALS_RUN_FIELD: Final = "_run"
"""The field of the totals hash naming the run whose values were added last."""
STAGE_TTL_S: Final = 600


def _p() -> str:
    return get_settings().key_prefix


def live() -> str:
    return f"{_p()}:metrics:live"


def stage(token: str) -> str:
    return f"{_p()}:metrics:stage:{token}"


def totals() -> str:
    return f"{_p()}:metrics:totals"
