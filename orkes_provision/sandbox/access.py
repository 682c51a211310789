"""Who may do what: the sandbox's role and permission rules, modelled on Orkes RBAC.

Callers are application users ``app:<appId>``, authenticated by a token of one of the
application's ACTIVE keys. Their roles live on that user; grants are ``(subject, target, access)``
rows whose subject is ``USER app:<appId>`` (or ``ROLE <name>``, which every holder of the role gets,
or ``GROUP <id>``, which every member of the group gets). A member of a group also holds the
group's roles (``people``).

Rules (each endpoint module applies them through the helpers below):

- ``ADMIN`` may do everything.
- Applications: creating needs ``APPLICATION_CREATOR`` or ``APPLICATION_MANAGER``. Reading,
  changing or deleting one (its keys, roles and tags included) needs ``APPLICATION_MANAGER``, or
  being its creator (a creator gets access to what it creates). An application may also read
  itself. Listing shows everything to managers, and only their own applications to creators.
- Roles: only known role names (``ROLES``, or a custom role: ``roles``); every role except ``WORKER``,
  ``METADATA_API`` and ``APPLICATION_CREATOR`` is admin-only and needs an ``ADMIN`` caller (403 otherwise); roles of
  people only (``USER_ONLY_ROLES``) are refused on applications (400). Custom roles (``/api/roles``)
  are managed by an ``ADMIN`` only and given to an application by an ``ADMIN`` only; the sandbox
  stores their permissions but enforces none of them (a holder gets no more than without it).
- Task search: ``ADMIN``, ``USER`` or ``USER_READ_ONLY`` (403 to a ``WORKER`` application).
- Users ``app:<appId>``: readable by whoever may read the application; their permissions
  (``/api/users/{id}/permissions``) by an ``ADMIN`` only, as the docs say.
  People (users that are not applications) and groups: only ``ADMIN`` may read or change them,
  their members and their permissions (403 otherwise), as the Orkes docs say.
- Grants: granting or revoking on a target needs ``ADMIN``, being the target's creator, or (for
  task and workflow definitions) ``METADATA_MANAGER``. Reading who has access to a target needs
  the same, or any grant on it. Grants on targets that do not exist are accepted, as on Orkes.
- Task and workflow definitions: registering new ones needs ``METADATA_API`` or
  ``METADATA_MANAGER``; the registrant becomes the creator. Changing or deleting an existing one
  needs ``METADATA_MANAGER``, being its creator, or ``UPDATE``/``DELETE`` on it. Reading needs one
  of those roles, being the creator, or any grant on it (listing filters to what is readable).
- Polling and updating a task: ``UNRESTRICTED_WORKER``, or ``WORKER`` plus ``EXECUTE`` on the
  ``TASK_DEF``, on a ``TAG`` ``key:value`` the task definition carries, or on the ``DOMAIN``
  polled (or ``WORKER`` and having registered the task definition). Otherwise 403 "You don't
  have permissions to execute task: <name>".
- Starting a workflow: ``WORKFLOW_MANAGER``, being the definition's creator, or ``EXECUTE`` on
  the ``WORKFLOW_DEF`` (or a ``TAG`` it carries). Reading a workflow: the same, ``READ`` on the
  definition, or having started it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orkes_provision.sandbox.db import Database

# System roles and their permissions. ADMIN, USER, METADATA_API, METADATA_MANAGER and WORKER carry the
# permission names the Orkes docs show for them (reference-docs/api/users/get-all-users.mdx,
# groups/create-group.mdx, groups/get-all-users-in-group.mdx); the others' names are UNCONFIRMED.
ROLES: dict[str, list[str]] = {
    "ADMIN": ["API_GATEWAY_VIEW", "API_GATEWAY_MANAGEMENT", "WORKFLOW_MANAGEMENT", "PROMPT_MANAGEMENT",
              "EVENT_HANDLER_MANAGEMENT", "USER_MANAGEMENT", "PERMISSION_MANAGEMENT", "METADATA_VIEW",
              "ADMIN_MANAGEMENT", "METADATA_MANAGEMENT", "APPLICATION_MANAGEMENT", "BULK_MANAGEMENT",
              "SCHEDULE_MANAGEMENT", "AUTHORIZATION_MANAGEMENT", "WORKFLOW_SEARCH", "PUBLISHER_MANAGEMENT"],
    "USER": ["CREATE_SECRET", "API_GATEWAY_VIEW", "CREATE_USER_FORM_TEMPLATE", "CREATE_WORKFLOW_DEF",
             "CREATE_TASK_DEF", "WORKFLOW_SEARCH", "CREATE_INTEGRATION", "CREATE_APPLICATION",
             "API_GATEWAY_MANAGEMENT"],
    "USER_READ_ONLY": ["METADATA_VIEW", "WORKFLOW_SEARCH"],
    "WORKER": [],
    "UNRESTRICTED_WORKER": ["EXECUTE_ANY_TASK"],
    "METADATA_API": ["CREATE_TASK_DEF", "CREATE_WORKFLOW_DEF", "CREATE_USER_FORM_TEMPLATE"],
    "METADATA_MANAGER": ["CREATE_SECRET", "CREATE_INTEGRATION", "API_GATEWAY_MANAGEMENT", "API_GATEWAY_VIEW",
                         "METADATA_MANAGEMENT", "METADATA_VIEW"],
    "WORKFLOW_MANAGER": ["WORKFLOW_MANAGEMENT", "WORKFLOW_SEARCH"],
    "APPLICATION_MANAGER": ["APPLICATION_MANAGEMENT"],
    "APPLICATION_CREATOR": ["CREATE_APPLICATION"],
    "PROMPT_MANAGER": ["PROMPT_MANAGEMENT"],
}
# Roles a non-admin may give an application (Java SDK util/RoleValidation.java); the others need an
# ADMIN caller: the docs call UNRESTRICTED_WORKER, METADATA_MANAGER, WORKFLOW_MANAGER,
# APPLICATION_MANAGER and ADMIN admin-only (access-control-and-security/applications.mdx).
SELF_ASSIGNABLE_ROLES = frozenset({"WORKER", "METADATA_API", "APPLICATION_CREATOR"})
ADMIN_ONLY_ROLES = frozenset(ROLES) - SELF_ASSIGNABLE_ROLES
# Roles of people, not applications: the docs list USER_READ_ONLY ("Read Only User") and PROMPT_MANAGER
# among user roles only, and neither is in the application role list (applications.mdx,
# assign-role-to-application.mdx). UNCONFIRMED that a server refuses them: the stricter choice.
USER_ONLY_ROLES = frozenset({"USER_READ_ONLY", "PROMPT_MANAGER"})

ACCESS_TYPES = ("CREATE", "READ", "UPDATE", "DELETE", "EXECUTE")
SUBJECT_TYPES = ("USER", "ROLE", "GROUP")
TARGET_TYPES = (
    "WORKFLOW", "WORKFLOW_DEF", "WORKFLOW_SCHEDULE", "EVENT_HANDLER", "TASK_DEF", "TASK_REF_NAME", "TASK_ID",
    "APPLICATION", "USER", "SECRET_NAME", "ENV_VARIABLE", "TAG", "DOMAIN", "INTEGRATION_PROVIDER", "INTEGRATION",
    "PROMPT", "USER_FORM_TEMPLATE", "SCHEMA", "CLUSTER_CONFIG", "WEBHOOK", "API_GATEWAY_SERVICE",
    "API_GATEWAY_SERVICE_ROUTE", "AUTH_CONFIG", "GROUP", "ROLE", "SERVICE_REGISTRY",
)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str  # app:<appId>
    app_id: str
    key_id: str
    roles: frozenset[str]  # its own and its groups'
    groups: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return "ADMIN" in self.roles

    def has_any(self, *roles: str) -> bool:
        return self.is_admin or any(role in self.roles for role in roles)


def app_user_id(app_id: str) -> str:
    return f"app:{app_id}"


def app_roles(db: Database, app_id: str) -> list[str]:
    return [str(r["role"]) for r in db.all("SELECT role FROM app_roles WHERE app_id = ? ORDER BY role", (app_id,))]


def _subjects(principal: Principal) -> list[tuple[str, str]]:
    return [("USER", principal.user_id), *(("ROLE", role) for role in sorted(principal.roles)),
            *(("GROUP", group) for group in sorted(principal.groups))]


def granted_access(db: Database, principal: Principal, targets: Iterable[tuple[str, str]]) -> set[str]:
    """Every access type the caller holds on any of ``targets`` (type, id)."""
    targets = list(targets)
    if not targets:
        return set()
    subjects = _subjects(principal)
    subject_sql = " OR ".join("(subject_type = ? AND subject_id = ?)" for _ in subjects)
    target_sql = " OR ".join("(target_type = ? AND target_id = ?)" for _ in targets)
    params: list[str] = [v for pair in subjects for v in pair] + [v for pair in targets for v in pair]
    rows = db.all(f"SELECT DISTINCT access FROM grants WHERE ({subject_sql}) AND ({target_sql})",  # noqa: S608
                  params)
    return {str(r["access"]) for r in rows}


def has_grant(db: Database, principal: Principal, targets: Iterable[tuple[str, str]], access: str | None) -> bool:
    held = granted_access(db, principal, targets)
    return bool(held) if access is None else access in held


def tag_targets(tags: object) -> list[tuple[str, str]]:
    """TAG targets (``key:value``) covering a definition that carries ``tags``."""
    out: list[tuple[str, str]] = []
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, dict) and "key" in tag:
                out.append(("TAG", f"{tag.get('key')}:{tag.get('value', '')}"))
    return out


def execute_denied_message(task_name: str) -> str:
    return f"You don't have permissions to execute task: {task_name}"
