"""The provider plugin interface and its discovery through the ``resoto_tasks.providers`` entry points.

A provider is one cloud (or one kind of cloud) the worker collects: it lists its accounts, streams an
account's resources, and deletes one resource. Plugins register a class (instantiated with no
arguments; configuration comes from the environment) under the entry-point group, e.g.::

    [project.entry-points."resoto_tasks.providers"]
    example = "worker.providers.example:ExampleProvider"
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import ClassVar

from resoto_tasks.errors import ResotoError
from resoto_tasks.store.resources import Resource

ENTRY_POINT_GROUP = "resoto_tasks.providers"


class ProviderError(ResotoError):
    """A provider failed to collect an account or delete a resource; ``reason`` is its own words."""

    def __init__(self, provider: str, account: str, reason: str, resource_id: str | None = None) -> None:
        what = f"{provider}/{account}" + (f"/{resource_id}" if resource_id else "")
        super().__init__(f"{what}: {reason}")
        self.provider = provider
        self.account = account
        self.reason = reason
        self.resource_id = resource_id


class UnknownProvider(ResotoError):
    """A provider name that no installed entry point provides."""

    def __init__(self, names: list[str], known: list[str]) -> None:
        listed = ", ".join(sorted(known)) or "none installed"
        super().__init__(
            f"unknown provider{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}; "
            f"known providers: {listed} (entry-point group {ENTRY_POINT_GROUP!r}, "
            f"set by RESOTO_COLLECT_PROVIDERS)"
        )
        self.names = names
        self.known = known


class ProviderLoadError(ResotoError):
    """An entry point was found but could not be imported or instantiated."""

    def __init__(self, name: str, target: str, reason: str) -> None:
        super().__init__(f"provider {name!r} ({target}) could not be loaded: {reason}")
        self.name = name
        self.target = target
        self.reason = reason


class Provider(ABC):
    """One cloud provider plugin.

    Implementations must be safe to call from several threads (cleanup deletes a wave in parallel)
    and must not hold an account's resources in memory: ``collect`` yields them as it finds them.
    """

    name: ClassVar[str]
    """The provider's name: a lowercase identifier, the same as its entry point's name."""

    @abstractmethod
    def accounts(self) -> list[str]:
        """The accounts this provider collects (one collect subscription each)."""

    @abstractmethod
    def collect(self, account: str) -> Iterator[Resource]:
        """Every resource of one account, streamed; ``provider``/``account`` set on each.

        Raises:
            ProviderError: the account cannot be collected (the caller aborts its snapshot, so the
                previous one is kept).
        """

    @abstractmethod
    def delete(self, resource: Resource) -> None:
        """Delete one resource in the cloud. Deleting one that is already gone is not an error
        (cleanup tasks may run twice).

        Raises:
            ProviderError: the cloud refused or failed; the message says why.
        """


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_providers() -> list[str]:
    """Names of every installed provider, sorted."""
    return sorted(_entry_points())


def load_provider(name: str) -> Provider:
    """Instantiate the provider registered under ``name``.

    Raises:
        UnknownProvider: no entry point has that name (the message lists the known ones).
        ProviderLoadError: the entry point's module or class is broken.
    """
    return load_providers([name])[0]


def load_providers(names: Iterable[str]) -> list[Provider]:
    """Instantiate several providers, in order; every unknown name is reported at once.

    Raises:
        UnknownProvider: one or more names have no entry point.
        ProviderLoadError: an entry point's module or class is broken.
    """
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    found = _entry_points()
    unknown = [n for n in wanted if n not in found]
    if unknown:
        raise UnknownProvider(unknown, list(found))
    providers: list[Provider] = []
    for name in wanted:
        target = found[name].value
        try:
            cls = found[name].load()
            provider = cls()
        except Exception as exc:  # any import or constructor failure of a plugin
            raise ProviderLoadError(name, target, f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(provider, Provider):
            raise ProviderLoadError(name, target, "it is not a worker.providers.base.Provider")
        providers.append(provider)
    return providers
