"""Turning pydantic errors into lines a person can act on: file, field, problem.

Shared by every file format users write (workflows, metric definitions).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

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


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (YAML keeps the last silently)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (given twice in one mapping)", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_yaml(text: str) -> Any:
    """YAML as users' files must be: safe tags only, no duplicate keys.

    Raises:
        yaml.YAMLError: with a ``problem`` and a ``problem_mark`` where known.
    """
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: safe tags only
