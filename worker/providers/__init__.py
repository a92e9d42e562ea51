"""Provider plugins (entry-point group ``resoto_tasks.providers``); see :mod:`worker.providers.base`."""
