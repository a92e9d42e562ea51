"""The Redis key schema of the resource store and the example cloud: built here and nowhere else.

All keys start with ``RESOTO_KEY_PREFIX`` (``{p}``, default ``resoto``). ``{a}`` is one account of
one provider, written ``{provider}:{account}``; provider names are lowercase identifiers and
account ids contain no whitespace, ``/`` or ``|`` (see ``resources.py``), so keys never collide.

Live keys of one account (swapped in together by one Lua script at commit; see ``writer.py``):

==========================================  ======  =====  ==========================================
key                                         type    TTL    written by: content
==========================================  ======  =====  ==========================================
``{p}:res:{a}:data``                        hash    -      commit, delete: id -> resource JSON
``{p}:res:{a}:expiry``                      zset    -      commit, delete: id, score = expiry epoch s
``{p}:res:{a}:protected``                   set     -      commit, delete: ids of protected resources
``{p}:res:{a}:counts``                      hash    -      commit, delete: ``n|kind|region`` -> count,
                                                           ``s|kind|region|attr`` -> sum,
                                                           ``malformed`` -> count
``{p}:res:{a}:meta``                        hash    -      commit: the AccountSnapshot fields and
                                                           ``started_at_ms``
==========================================  ======  =====  ==========================================

Staging keys of one collect (``{t}`` = the writer's random token), renamed over the live keys at
commit, unlinked at abort, and expiring by themselves (6 h) if the writer's process dies:

==========================================  ======  =====  ==========================================
``{p}:res:{a}:stage:{t}:data``              hash    6 h    SnapshotWriter, pipelined batches
``{p}:res:{a}:stage:{t}:expiry``            zset    6 h    SnapshotWriter, with each batch
``{p}:res:{a}:stage:{t}:protected``         set     6 h    SnapshotWriter, with each batch
``{p}:res:{a}:stage:{t}:counts``            hash    6 h    SnapshotWriter, once, just before commit
==========================================  ======  =====  ==========================================

Kept across snapshots:

==========================================  ======  =====  ==========================================
``{p}:res:{a}:marks``                       hash    -      mark/unmark (Lua: only ids that are live);
                                                           delete and commit drop marks of ids gone:
                                                           id -> JSON {reason, run_id, marked_at}
``{p}:res:accounts``                        set     -      commit: members ``provider/account``
==========================================  ======  =====  ==========================================

The example provider's synthetic cloud (its whole state; everything else is generated):

==========================================  ======  =====  ==========================================
``{p}:cloud:example:{seed}:{acct}:epoch``   string  -      first use: the cloud's "now" (epoch s)
``{p}:cloud:example:{seed}:{acct}:deleted`` set     -      ExampleProvider.delete: deleted ids
==========================================  ======  =====  ==========================================
"""

from __future__ import annotations

from typing import NamedTuple

from resoto_tasks.settings import get_settings


def _p() -> str:
    return get_settings().key_prefix


def _account(provider: str, account: str) -> str:
    return f"{_p()}:res:{provider}:{account}"


class AccountKeys(NamedTuple):
    """The keys that make up one snapshot of an account, in the order the commit script takes them."""

    data: str
    expiry: str
    protected: str
    counts: str


def live(provider: str, account: str) -> AccountKeys:
    base = _account(provider, account)
    return AccountKeys(f"{base}:data", f"{base}:expiry", f"{base}:protected", f"{base}:counts")


def staging(provider: str, account: str, token: str) -> AccountKeys:
    base = f"{_account(provider, account)}:stage:{token}"
    return AccountKeys(f"{base}:data", f"{base}:expiry", f"{base}:protected", f"{base}:counts")


def staging_pattern(provider: str, account: str) -> str:
    """A SCAN pattern for every staging key of one account (used by ``forget_account``)."""
    return f"{_account(provider, account)}:stage:*"


def meta(provider: str, account: str) -> str:
    return f"{_account(provider, account)}:meta"


def marks(provider: str, account: str) -> str:
    return f"{_account(provider, account)}:marks"


def accounts() -> str:
    return f"{_p()}:res:accounts"


def account_member(provider: str, account: str) -> str:
    """The member of :func:`accounts` naming one account."""
    return f"{provider}/{account}"


def split_account_member(member: str) -> tuple[str, str]:
    provider, _, account = member.partition("/")
    return provider, account


def count_field(kind: str, region: str) -> str:
    return f"n|{kind}|{region}"


def sum_field(kind: str, region: str, attr: str) -> str:
    return f"s|{kind}|{region}|{attr}"


MALFORMED_FIELD = "malformed"


def example_epoch(seed: int, account: str) -> str:
    return f"{_p()}:cloud:example:{seed}:{account}:epoch"


def example_deleted(seed: int, account: str) -> str:
    return f"{_p()}:cloud:example:{seed}:{account}:deleted"
