"""The ``aws`` provider (entry point ``aws`` in ``resoto_tasks.providers``); see :mod:`.provider`."""

from worker.providers.aws.provider import AwsProvider

__all__ = ["AwsProvider"]
