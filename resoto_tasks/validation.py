"""Turning pydantic errors into lines a person can act on: file, field, problem.

Shared by every file format users write (workflows, metric definitions).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Tagged unions repeat their tag in the location (``triggers.0.cron.cron``): shown once.
_TAGS = frozenset({"cron", "interval", "event"})


def field_path(loc: Iterable[int | str], doc: Any) -> str:
    """``steps[1:backup].timeout`` from a pydantic location in ``doc`` (list items named where
    they have a ``name``), or ``(document)`` for the whole file."""
    parts: list[str] = []
    node = doc
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and 0 <= item < len(node):
                node = node[item]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    label = f"[{item}:{node['name']}]"
            parts.append(label)
        else:
            if item in _TAGS and parts and parts[-1] == f".{item}":
                continue
            node = node.get(item) if isinstance(node, dict) else None
            parts.append(f".{item}")
    return "".join(parts).lstrip(".") or "(document)"
