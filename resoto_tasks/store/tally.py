"""Counts and attribute sums per (kind, region): what metrics read instead of scanning resources.

Kept in the ``{p}:res:{a}:counts`` hash as ``n|kind|region`` -> count, ``s|kind|region|attr`` ->
sum and ``malformed`` -> count. A writer tallies in memory (bounded by kinds x regions x attrs, not
by resources) and writes the hash once at commit; a delete applies one resource's deltas in Lua.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from resoto_tasks.store import keys
from resoto_tasks.store.resources import GroupStats, Resource


def numeric_attrs(resource: Resource) -> dict[str, float]:
    """The attributes that are summed: numbers, not strings (bool is not a measure either)."""
    return {
        name: float(value)
        for name, value in resource.attrs.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


_NUMBERS = frozenset((int, float))


@dataclass
class _Group:
    count: int = 0
    sums: dict[str, float] = field(default_factory=dict)


@dataclass
class Tally:
    """Running counts of one snapshot."""

    groups: dict[tuple[str, str], _Group] = field(default_factory=dict)
    malformed: int = 0

    def add(self, resource: Resource, malformed: bool) -> None:
        key = (resource.kind, resource.region)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group()
        group.count += 1
        attrs = resource.attrs
        if attrs:
            sums = group.sums
            for name, value in attrs.items():
                if type(value) in _NUMBERS:  # exact types: bool is not a measure, str is not summed
                    sums[name] = sums.get(name, 0.0) + value  # type: ignore[operator]
        if malformed:
            self.malformed += 1

    def fields(self) -> dict[str, str]:
        """The counts hash as it is stored."""
        out: dict[str, str] = {}
        for (kind, region), group in self.groups.items():
            out[keys.count_field(kind, region)] = str(group.count)
            for name, total in group.sums.items():
                out[keys.sum_field(kind, region, name)] = repr(float(total))
        if self.malformed:
            out[keys.MALFORMED_FIELD] = str(self.malformed)
        return out


def parse_fields(fields: dict[str, str]) -> tuple[list[GroupStats], int]:
    """Groups and the malformed count from a stored counts hash."""
    counts: dict[tuple[str, str], int] = {}
    sums: dict[tuple[str, str], dict[str, float]] = {}
    malformed = 0
    for name, value in fields.items():
        parts = name.split("|")
        if parts[0] == "n" and len(parts) == 3:
            counts[(parts[1], parts[2])] = int(value)
        elif parts[0] == "s" and len(parts) == 4:
            sums.setdefault((parts[1], parts[2]), {})[parts[3]] = float(value)
        elif name == keys.MALFORMED_FIELD:
            malformed = int(value)
    groups = [
        GroupStats(kind=kind, region=region, count=count, sums=sums.get((kind, region), {}))
        for (kind, region), count in sorted(counts.items())
        if count > 0
    ]
    return groups, malformed
