"""The desired state: what an application, a user or a group should look like on the server.

``provision app`` builds one ``AppSpec`` from its flags; ``provision apply`` reads many from an
environment file, with ``UserSpec`` and ``GroupSpec``. All go through the same plan and executor.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from orkes_provision.errors import UsageError
from orkes_provision.names import describe_character, forbidden_character
from orkes_provision.orkes.models import ACCESS_TYPES, KNOWN_ROLES, PEOPLE_ONLY_ROLES

GRANT_TARGET_TYPES = ("TASK_DEF", "WORKFLOW_DEF", "TAG", "DOMAIN")

TargetType = Literal["TASK_DEF", "WORKFLOW_DEF", "TAG", "DOMAIN"]


def not_blank(value: str) -> str:
    """Strip surrounding white space; refuse a value that is nothing else, or that holds a control
    or line-separator character (the check ``orkes_provision.names`` applies to command-line names)."""
    bad = forbidden_character(value)
    if bad is not None:
        raise ValueError(f"contains {describe_character(bad)}, a control or line-separator character")
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


# A name or id as people type it in flags and files: stripped, never blank, plain text on one line.
Name = Annotated[str, Field(min_length=1), AfterValidator(not_blank)]


class GrantSpec(BaseModel):
    """Access an application should hold on one target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: TargetType = "TASK_DEF"
    id: Name
    access: tuple[str, ...] = ("EXECUTE",)

    @field_validator("access")
    @classmethod
    def _known_access(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        upper = tuple(sorted({a.strip().upper() for a in value}))
        unknown = [a for a in upper if a not in ACCESS_TYPES]
        if unknown:
            raise ValueError(f"unknown access {', '.join(unknown)}; allowed: {', '.join(ACCESS_TYPES)}")
        if not upper:
            raise ValueError("must name at least one access type")
        return upper

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.id)

    def describe(self) -> str:
        return f"{'+'.join(self.access)} on {self.type} {self.id}"


class AppSpec(BaseModel):
    """One application: its roles, grants and where its key goes (None: no key managed)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    roles: tuple[str, ...] = ()
    grants: tuple[GrantSpec, ...] = ()
    store: str | None = None
    app_id: str | None = None
    new_key: bool = False
    # False: never tagged as an environment's own, so --prune leaves it alone (``owned = false`` in a file).
    owned: bool = True
    # The longest an ACTIVE key may live (``keyMaxAge`` in a file): apply rotates an older one.
    key_max_age: timedelta | None = None

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        upper = tuple(dict.fromkeys(r.strip().upper() for r in value))
        unknown = [r for r in upper if r not in KNOWN_ROLES]
        if unknown:
            raise ValueError(f"unknown role {', '.join(unknown)}; allowed: {', '.join(KNOWN_ROLES)}")
        people = [r for r in upper if r in PEOPLE_ONLY_ROLES]
        if people:
            raise ValueError(f"{', '.join(people)} is a role of people, not of applications")
        return upper

    @property
    def task_names(self) -> list[str]:
        return [g.id for g in self.grants if g.type == "TASK_DEF"]


class UserSpec(BaseModel):
    """A person as the server should hold them: id (an e-mail address on Orkes), display name, roles.

    ``name`` None keeps the server's (a new user is named by its id).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Name
    name: Name | None = None
    roles: tuple[str, ...] = ()


class GroupSpec(BaseModel):
    """A group as the server should hold it: description, roles, members (user ids) and grants
    (given to the subject ``GROUP <id>``, which every member holds). ``description`` None keeps the server's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Name
    description: str | None = None
    roles: tuple[str, ...] = ()
    members: tuple[Name, ...] = ()
    grants: tuple[GrantSpec, ...] = ()

    @property
    def task_names(self) -> list[str]:
        return [g.id for g in self.grants if g.type == "TASK_DEF"]


class RoleSpec(BaseModel):
    """A custom role as the server should hold it: its name and permissions (``READ_WORKFLOW_DEF``, ...).
    Orkes adds ``IMPLICIT_ROLE_PERMISSIONS`` to every custom role; a spec need not name them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    permissions: tuple[str, ...] = ()


# "Every custom role automatically includes Event Handlers - Create and User Forms - Create, and these
# permissions cannot be removed" (orkes-io/docs access-control-and-security/custom-roles.mdx): the server
# holds them whatever was sent, so plans and drift never count them as a difference.
IMPLICIT_ROLE_PERMISSIONS = frozenset({"CREATE_EVENT_HANDLER", "CREATE_USER_FORM_TEMPLATE"})


def parse_tag_target(value: str) -> str:
    """A TAG target id is ``key:value``; refuse anything else with a hint."""
    key, sep, val = value.partition(":")
    if not sep or not key.strip() or not val.strip():
        raise UsageError(f"tag '{value}' is not of the form key:value", "for example --tag team:payments")
    return f"{key.strip()}:{val.strip()}"


def app_spec_from_flags(name: str, *, roles: tuple[str, ...] = (), tasks: tuple[str, ...] = (),
                        access: tuple[str, ...] = (), app_id: str | None = None, new_key: bool = False,
                        workflows: tuple[str, ...] = ()) -> AppSpec:
    """Build an AppSpec from command-line values; a bad value is a UsageError naming it.

    ``workflows`` are workflows the application starts: starting one needs EXECUTE on its definition.
    """
    try:
        grants = tuple(GrantSpec(type="TASK_DEF", id=t, access=access or ("EXECUTE",)) for t in tasks) + \
            tuple(GrantSpec(type="WORKFLOW_DEF", id=w, access=("EXECUTE",)) for w in workflows)
        return AppSpec(name=name, roles=roles, grants=grants, app_id=app_id, new_key=new_key)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise UsageError(f"invalid {where}: {message}", "see --help for the accepted values") from None
