"""The contact directory: people's addresses, kept in a Secret, never in the CRDs (personal data).

The Secret key holds YAML:

    users:
      alice: {email: alice@example.com, phone: "+15550001", slack: U012AB3CD}
    teams:
      payments: {members: [alice, bob], email: payments@example.com, slack: "#payments"}

A team target reaches the team's own address for a channel when it has one, else its members'.
"""

from __future__ import annotations

from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ADDRESS_FIELDS = {"email": "email", "sms": "phone", "phone": "phone", "slack": "slack"}


class Contact(BaseModel):
    model_config = ConfigDict(extra="ignore")

    email: str | None = None
    phone: str | None = None
    slack: str | None = None


class Team(Contact):
    members: Annotated[list[str], Field(max_length=500)] = []


class Directory(BaseModel):
    model_config = ConfigDict(extra="ignore")

    users: dict[str, Contact] = {}
    teams: dict[str, Team] = {}

    def address(self, user: str, channel: str) -> str | None:
        """The user's (or team's) address for a channel type, if the directory has one."""
        field = ADDRESS_FIELDS.get(channel)
        if field is None:
            return None
        entry: Contact | None = self.users.get(user) or self.teams.get(user)
        return getattr(entry, field) if entry is not None else None

    def expand(self, team: str, channel: str) -> list[str]:
        """Who a team target reaches over a per-person channel: the team itself, or its members."""
        entry = self.teams.get(team)
        if entry is None:
            return [team]
        if self.address(team, channel):
            return [team]
        return list(entry.members) or [team]


class DirectoryError(ValueError):
    """The contact directory cannot be read; the message says where."""


def parse_directory(text: str | None) -> Directory:
    if not text:
        return Directory()
    try:
        data = yaml.safe_load(text)
        return Directory.model_validate(data or {})
    except yaml.YAMLError as error:
        raise DirectoryError(f"the contact directory is not YAML: {error}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DirectoryError(f"the contact directory is invalid at {where}: {first['msg']}") from None
