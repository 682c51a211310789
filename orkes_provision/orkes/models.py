"""Pydantic models of the Orkes API resources.

JSON keys stay camelCase at the edge (aliases); Python code uses snake_case. Unknown fields the
server adds are ignored, so a newer server does not break an older client.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.alias_generators import to_camel

WORKER_ROLES: frozenset[str] = frozenset({"WORKER", "UNRESTRICTED_WORKER"})
KNOWN_ROLES: tuple[str, ...] = (
    "ADMIN", "USER", "USER_READ_ONLY", "WORKER", "UNRESTRICTED_WORKER", "METADATA_API",
    "METADATA_MANAGER", "WORKFLOW_MANAGER", "APPLICATION_MANAGER", "APPLICATION_CREATOR", "PROMPT_MANAGER",
)
# Roles of people that Orkes does not list among application roles (applications.mdx,
# assign-role-to-application.mdx): the sandbox refuses them on an application, and so does the tool.
PEOPLE_ONLY_ROLES: frozenset[str] = frozenset({"USER_READ_ONLY", "PROMPT_MANAGER"})
ACCESS_TYPES: tuple[str, ...] = ("CREATE", "READ", "UPDATE", "DELETE", "EXECUTE")
# SPEC's TargetRef enum; the docs list more (API gateway, groups, roles) that this tool never grants.
TARGET_TYPES: tuple[str, ...] = (
    "WORKFLOW", "WORKFLOW_DEF", "WORKFLOW_SCHEDULE", "EVENT_HANDLER", "TASK_DEF", "TASK_REF_NAME", "TASK_ID",
    "APPLICATION", "USER", "SECRET_NAME", "ENV_VARIABLE", "TAG", "DOMAIN", "INTEGRATION_PROVIDER", "INTEGRATION",
    "PROMPT", "USER_FORM_TEMPLATE", "SCHEMA", "CLUSTER_CONFIG", "WEBHOOK",
)
SUBJECT_TYPES: tuple[str, ...] = ("USER", "ROLE", "GROUP")


class ApiModel(BaseModel):
    """Base of the wire models: camelCase aliases, snake_case attributes, unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, object]:
        """The JSON body the server expects (camelCase, no unset optional fields)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Tag(ApiModel):
    key: str
    value: str


MANAGED_TAG = Tag(key="managed-by", value="orkes-provision")


class Application(ApiModel):
    id: str
    name: str
    created_by: str | None = None
    create_time: int | None = None
    update_time: int | None = None
    tags: list[Tag] = Field(default_factory=list)


class AccessKey(ApiModel):
    id: str
    created_at: int | None = None
    status: Literal["ACTIVE", "INACTIVE"]


class CreatedKey(ApiModel):
    """The create-key answer: the only time the server ever shows the secret."""

    id: str
    secret: SecretStr


class Permission(ApiModel):
    name: str


class Role(ApiModel):
    """A role as the server shows it: on a user or group, and from ``/api/roles`` (with its permissions)."""

    name: str
    permissions: list[Permission] = Field(default_factory=list)

    @property
    def permission_names(self) -> set[str]:
        return {p.name for p in self.permissions}


class Group(ApiModel):
    """A group: its roles, which its members hold, and ``defaultAccess`` (target type -> access) that the
    server grants the group on what a member creates. Grants to the subject ``GROUP <id>`` reach every member."""

    id: str
    description: str | None = None
    roles: list[Role] = Field(default_factory=list)
    default_access: dict[str, list[str]] = Field(default_factory=dict)

    @property
    def role_names(self) -> set[str]:
        return {role.name for role in self.roles}


class User(ApiModel):
    """A user (``ConductorUser``): a person (id: an e-mail address), or an application's user
    ``app:<applicationId>``, which carries the application's roles. ``roles`` are its own;
    ``groups`` are the groups it is a member of, with their roles."""

    id: str
    name: str | None = None
    roles: list[Role] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)
    application_user: bool = False

    @property
    def role_names(self) -> set[str]:
        return {role.name for role in self.roles}

    @property
    def group_ids(self) -> list[str]:
        return [group.id for group in self.groups]


# The user record ``app:<applicationId>`` is a user like any other.
AppUser = User


class Subject(ApiModel):
    type: str
    id: str


class Target(ApiModel):
    type: str
    id: str


class GrantedAccess(ApiModel):
    target: Target
    access: list[str] = Field(default_factory=list)
    tag: str | None = None


class TaskDef(ApiModel):
    """A task definition; fields this model does not name pass through unchanged.

    The defaults are what a minimal, valid definition needs: SPEC requires ``timeoutSeconds`` and
    ``totalTimeoutSeconds``, the docs require ``ownerEmail``, and Conductor wants
    ``responseTimeoutSeconds`` no larger than ``timeoutSeconds``.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str
    description: str | None = None
    retry_count: int = 3
    timeout_seconds: int = 3600
    total_timeout_seconds: int = 0
    response_timeout_seconds: int = 600
    timeout_policy: str = "TIME_OUT_WF"
    retry_logic: str = "FIXED"
    retry_delay_seconds: int = 60
    owner_email: str = "orkes-provision@example.com"

    @model_validator(mode="after")
    def _response_timeout_fits(self) -> TaskDef:
        # The default response timeout must not exceed a shorter timeoutSeconds given without it:
        # the server refuses a definition whose responseTimeoutSeconds is larger than timeoutSeconds.
        if "response_timeout_seconds" not in self.model_fields_set and \
                0 < self.timeout_seconds < self.response_timeout_seconds:
            self.response_timeout_seconds = self.timeout_seconds
        return self


class PollData(ApiModel):
    """The last poll of a task queue by one worker (``GET /api/tasks/queue/polldata``)."""

    queue_name: str
    domain: str | None = None
    worker_id: str | None = None
    last_poll_time: int = 0  # epoch milliseconds, the server's clock


class Credentials(BaseModel):
    """A server and the key that authenticates to it. ``server`` is normalised (ends with ``/api``)."""

    model_config = ConfigDict(frozen=True)

    server: str
    key_id: str
    secret: SecretStr


def app_subject(app_id: str) -> Subject:
    """The subject an application is granted permissions as: the user ``app:<appId>``."""
    return Subject(type="USER", id=f"app:{app_id}")


def group_subject(group_id: str) -> Subject:
    """The subject a group is granted permissions as; every member holds them."""
    return Subject(type="GROUP", id=group_id)


def app_user_id(app_id: str) -> str:
    """The id of an application's user record (where its roles live)."""
    return f"app:{app_id}"
