"""The AWS accounts `dashgen sync` reads (`[aws] accounts`, `[aws] organization_role`) and their sessions.

- No account configured: the caller's own account (credentials from the environment or the default chain),
  as before accounts existed; its id comes from `sts:GetCallerIdentity` (which needs no permission), unknown
  (NULL in the store) when that fails.
- `accounts`: role ARNs; each is assumed with `sts:AssumeRole` (the caller's credentials, the configured
  `session_name` and `external_id`). The credentials are botocore's `DeferredRefreshableCredentials`: the role is
  assumed at the first call that needs it (inside the (account, region) pair's time budget, so a denied or
  black-holed AssumeRole costs only that pair) and assumed again before they expire, so a sync that outlives
  them (a large first sync) goes on. botocore's refreshable credentials take a lock around a refresh: the pairs
  of one account, read at once, share them safely.
- `organization_role`: the role of that name in every ACTIVE account of the AWS Organization
  (`organizations:ListAccounts`, paginated, with the caller's credentials), beside the listed ARNs.

Each (account, region) pair gets a boto3 Session of its own (`pair_session`): boto3 sessions are not thread-safe,
and the sync reads the pairs concurrently (`dashgen.sync`). The caller's pairs share the caller's session (the one
the sync was given), whose clients are created one at a time under a lock.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dashgen.config import ROLE_ARN_RE
from dashgen.errors import AwsError

SESSION_NAME = "dashgen-sync"  # the default RoleSessionName (CloudTrail shows it)
ROLE_SECONDS = 3600  # DurationSeconds asked for an assumed role (refreshed before it runs out)


@dataclass(frozen=True)
class Account:
    """One account sync reads: its id (None: the caller's, not known) and the role assumed in it (None: the
    caller's own credentials)."""

    account_id: str | None
    role_arn: str | None = None

    def where(self, region: str) -> str:
        """How a line names one of its pairs: `us-east-1` for the caller's account (as before accounts), else
        `us-east-1 of account 111111111111`."""
        return region if self.role_arn is None else f"{region} of account {self.account_id}"


@dataclass
class Accounts:
    """The accounts of one sync and how to make a session for each of their pairs."""

    accounts: list[Account]
    base: Any  # the caller's boto3 Session
    session_name: str = SESSION_NAME
    external_id: str | None = None
    sts_region: str = "us-east-1"
    warnings: list[str] = field(default_factory=list)  # one line each (e.g. the organization not listed)
    on_session: list[Callable[[Any], None]] = field(default_factory=list)  # called with each new pair session
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _credentials: dict[str, Any] = field(default_factory=dict)  # role ARN -> its refreshable credentials

    def pair_session(self, account: Account) -> Any:
        """A boto3 Session for one (account, region) pair: the caller's session for the caller's account, else a
        new Session on the role's (shared, refreshable) credentials."""
        if account.role_arn is None:
            return self.base
        import boto3
        import botocore.session

        with self._lock:  # the STS client and the credentials are made once per role, from the caller's session
            creds = self._credentials.get(account.role_arn)
            if creds is None:
                creds = self._credentials[account.role_arn] = self._assumed(account.role_arn)
        core = botocore.session.Session()
        core.get_component("credential_provider").insert_before("env", _Given(creds))
        made = boto3.session.Session(botocore_session=core)  # (not boto3.Session: a test may stand in for it)
        for hook in self.on_session:
            hook(made)
        return made

    def client_lock(self, account: Account) -> threading.Lock | None:
        """The lock to hold while creating a client from `pair_session(account)`: the caller's session is shared by
        its pairs (boto3 sessions are not thread-safe), an assumed role's pair has a session of its own."""
        return self._lock if account.role_arn is None else None

    def _assumed(self, role_arn: str) -> Any:
        from botocore.credentials import DeferredRefreshableCredentials

        from dashgen.sync.aws import client

        sts = client(self.base, "sts", self.sts_region)  # (a client is thread-safe once made)
        kwargs: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": self.session_name,
                                  "DurationSeconds": ROLE_SECONDS}
        if self.external_id:
            kwargs["ExternalId"] = self.external_id

        def refresh() -> dict[str, str]:
            got = sts.assume_role(**kwargs)["Credentials"]
            return {"access_key": got["AccessKeyId"], "secret_key": got["SecretAccessKey"],
                    "token": got["SessionToken"], "expiry_time": got["Expiration"].isoformat()}

        return DeferredRefreshableCredentials(refresh_using=refresh, method="sts-assume-role")


class _Given:
    """A botocore credential provider that hands out one credentials object (an assumed role's)."""

    METHOD = "dashgen-assume-role"
    CANONICAL_NAME = None

    def __init__(self, credentials: Any) -> None:
        self.credentials = credentials

    def load(self) -> Any:
        return self.credentials


def account_of(role_arn: str) -> str:
    """The 12-digit account id in a role ARN (validated by the config)."""
    match = ROLE_ARN_RE.match(role_arn)
    if match is None:
        raise ValueError(role_arn)
    return match.group(2)


def caller_account(session: Any, region: str, budget: Any = None) -> str | None:
    """The caller's account id (`sts:GetCallerIdentity`, allowed to every principal); None when it cannot be read
    (the store then keeps the account it knew, else unknown)."""
    from dashgen.sync.aws import client

    try:
        sts = client(session, "sts", region, budget=budget)
        read = lambda: sts.get_caller_identity()["Account"]  # noqa: E731
        account = budget.run(read) if budget is not None else read()
    except Exception:  # noqa: BLE001 - any failure: the account is unknown, the sync goes on as before accounts
        return None
    return str(account) if re.fullmatch(r"\d{12}", str(account)) else None


def organization_accounts(session: Any, region: str, role_name: str, budget: Any = None) -> list[Account]:
    """The role `role_name` in every ACTIVE account of the caller's AWS Organization (`ListAccounts`, paginated);
    an account whose `State` (or, from older APIs, `Status`) is not ACTIVE is left out. Raises `AwsError` (one
    line) when the organization cannot be listed."""
    from dashgen.sync.aws import aws_errors, client, describe

    def listed() -> list[Account]:
        orgs = client(session, "organizations", region, budget=budget)
        out = []
        for page in orgs.get_paginator("list_accounts").paginate():
            for acct in page.get("Accounts") or []:
                if (acct.get("State") or acct.get("Status")) != "ACTIVE":
                    continue
                partition = str(acct.get("Arn") or "arn:aws:").split(":")[1] or "aws"
                account_id = str(acct["Id"])
                out.append(Account(account_id, f"arn:{partition}:iam::{account_id}:role/{role_name}"))
        return out

    try:
        return budget.run(listed) if budget is not None else listed()
    except aws_errors() as exc:
        raise AwsError(f"AWS Organizations: accounts not listed ({describe(exc)})") from None
    except KeyError as exc:
        raise AwsError(f"AWS Organizations: ListAccounts: an account without {exc} in the reply") from None


def resolve(config: Any, session: Any, budget: Any = None) -> Accounts:
    """The accounts of `config` (`[aws] accounts`, `organization_role`; else the caller's own) for one sync.
    An organization that cannot be listed is a warning when role ARNs are listed too (those are still read), else
    an `AwsError`."""
    roles = list(dict.fromkeys(config.accounts))
    found = Accounts([], session, session_name=config.session_name, external_id=config.external_id,
                     sts_region=config.default_region)
    if not roles and not config.organization_role:
        found.accounts = [Account(caller_account(session, config.default_region, budget))]
        return found
    accounts = [Account(account_of(arn), arn) for arn in roles]
    if config.organization_role:
        try:
            listed = organization_accounts(session, config.default_region, config.organization_role, budget)
        except AwsError as exc:
            if not accounts:
                raise
            found.warnings.append(f"WARNING: {exc}; reading the {len(accounts)} accounts of aws.accounts only")
            listed = []
        known = {a.account_id for a in accounts}  # a listed ARN wins over the organization's role
        accounts += [a for a in listed if a.account_id not in known]
        if not accounts:
            raise AwsError("AWS Organizations: ListAccounts gave no ACTIVE account (aws.organization_role): "
                           "nothing to read")
    found.accounts = accounts
    return found
