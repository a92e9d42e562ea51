"""resoto-tasks: Resoto's workflows (collect, cleanup_plan, cleanup, generate_metrics) on Celery.

``celery -A resoto_tasks worker -Q collect`` finds the app here. Hooks subscribe with::

    from resoto_tasks import subscriber

    @subscriber("post_collect")
    def tag_owners(ctx):
        ...
"""

from resoto_tasks.celery_app import app
from resoto_tasks.subscribers import Aborted, ActionContext, action_task, subscriber, subscription_source

__all__ = ["Aborted", "ActionContext", "action_task", "app", "subscriber", "subscription_source"]
