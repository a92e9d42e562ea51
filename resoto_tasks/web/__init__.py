"""``resoto-tasks web``: the console (server-rendered pages) and the HTTP API under ``/api/v1``.

A front end like the CLI: it shows what :mod:`resoto_tasks.views` builds, and changes things only
through the engine, the workflow catalogue and the schedule control, as the CLI does. The core
never imports it. Modules: :mod:`.settings` (``RESOTO_WEB_*``), :mod:`.auth` (token, basic auth,
CSRF), :mod:`.errors` (JSON and HTML errors), :mod:`.api` (``/api/v1``), :mod:`.pages` (the
console), :mod:`.timeline` (bar geometry), :mod:`.app` (composes them), :mod:`.server` (uvicorn).
"""
