"""The environment file: what a valid one means, and that every malformed one fails on one located line."""

from __future__ import annotations

import json
import string
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orkes_provision.access.spec import GrantSpec
from orkes_provision.environments.environment import (
    environment_schema,
    load_environment,
    parse_toml,
    validate_environment,
)
from orkes_provision.errors import ConfigError

EXAMPLE = """\
name = "staging"
server = "http://127.0.0.1:8080/api"

[[tasks]]
name = "greetings"
timeoutSeconds = 120
responseTimeoutSeconds = 60

[[workflows]]
file = "workflows/greet.json"

[[applications]]
name = "greetings-worker"
roles = ["WORKER"]
store = "env-file:secrets/greetings.env"

[[applications.grants]]
tasks = ["greetings", "farewell"]

[[applications.grants]]
workflows = ["greet_flow"]
tags = ["team : payments"]
domains = ["eu"]
access = ["READ", "EXECUTE"]

[[applications.grants]]
tasks = ["greetings"]
access = ["UPDATE"]

[[applications]]
name = "starter"
roles = []
"""

WORKFLOW = {"name": "greet_flow", "version": 2, "timeoutSeconds": 60,
            "tasks": [{"name": "greetings", "taskReferenceName": "g", "type": "SIMPLE"}]}


def write_env(directory: Path, text: str, *, workflow: object = WORKFLOW) -> Path:
    (directory / "workflows").mkdir(exist_ok=True)
    (directory / "workflows" / "greet.json").write_text(json.dumps(workflow))
    path = directory / "env.toml"
    path.write_text(text)
    return path


def test_example_file_becomes_app_specs_with_merged_grants_and_resolved_store(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, EXAMPLE))
    worker, starter = env.app_specs()
    assert worker.name == "greetings-worker"
    assert worker.roles == ("WORKER",)
    assert worker.store == f"env-file:{tmp_path / 'secrets' / 'greetings.env'}"
    assert set(worker.grants) == {
        GrantSpec(type="TASK_DEF", id="greetings", access=("EXECUTE", "UPDATE")),
        GrantSpec(type="TASK_DEF", id="farewell", access=("EXECUTE",)),
        GrantSpec(type="WORKFLOW_DEF", id="greet_flow", access=("EXECUTE", "READ")),
        GrantSpec(type="TAG", id="team:payments", access=("EXECUTE", "READ")),
        GrantSpec(type="DOMAIN", id="eu", access=("EXECUTE", "READ")),
    }
    assert (starter.roles, starter.grants, starter.store) == ((), (), None)
    assert env.tasks[0].declared() == {"name": "greetings", "timeoutSeconds": 120, "responseTimeoutSeconds": 60}
    assert env.workflow_defs == [WORKFLOW]


PEOPLE = """\
name = "staging"

[[users]]
id = " ada@example.com "
name = "Ada Lovelace"
roles = ["USER", "USER"]

[[users]]
id = "bob@example.com"

[[groups]]
id = "payments-team"
description = "Payments engineers"
roles = ["USER"]
members = ["ada@example.com", "bob@example.com", "ada@example.com"]

[[groups.grants]]
workflows = ["payments_flow"]
access = ["READ", "EXECUTE"]

[[groups.grants]]
workflows = ["payments_flow"]
tasks = ["charge"]
"""


def test_users_and_groups_become_specs_with_merged_grants_and_defaults(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, PEOPLE))
    ada, bob = env.user_specs()
    assert (ada.id, ada.name, ada.roles) == ("ada@example.com", "Ada Lovelace", ("USER",))
    assert (bob.id, bob.name, bob.roles) == ("bob@example.com", None, ())
    (group,) = env.group_specs()
    assert (group.id, group.description, group.roles) == ("payments-team", "Payments engineers", ("USER",))
    assert group.members == ("ada@example.com", "bob@example.com")
    assert set(group.grants) == {GrantSpec(type="WORKFLOW_DEF", id="payments_flow", access=("EXECUTE", "READ")),
                                 GrantSpec(type="TASK_DEF", id="charge", access=("EXECUTE",))}
    assert env.declares_people and not load_environment(write_env(tmp_path, EXAMPLE)).declares_people
    jsonschema.validate(parse_toml(PEOPLE.encode(), "env.toml"), environment_schema())


def test_defaults_are_the_worker_role_and_execute_access(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, 'name = "x"\n[[applications]]\nname = "a"\n'
                                               '[[applications.grants]]\ntasks = ["t"]\n'))
    (spec,) = env.app_specs()
    assert spec.roles == ("WORKER",)
    assert spec.grants == (GrantSpec(type="TASK_DEF", id="t", access=("EXECUTE",)),)


def test_json_schema_accepts_the_example_and_rejects_what_the_loader_rejects(tmp_path: Path) -> None:
    schema = environment_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = parse_toml(EXAMPLE.encode(), "env.toml")
    jsonschema.validate(data, schema)
    data["applications"][0]["grants"][0]["access"] = ["EXECUT"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    data["applications"][0]["grants"][0]["access"] = ["EXECUTE"]
    data["applications"][0]["colour"] = "blue"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


# (file text, what the one-line message must say: the file, the line, the key and what is wrong)
MALFORMED = [
    ('name = "x"\n[[applications]]\nname = "a"\n[[applications]]\nname = "b"\n[[applications.grants]]\n'
     'tasks = ["t"]\naccess = ["READ", "EXECUT"]\n',
     "env.toml:8: access: 'EXECUT' is not one of CREATE, READ, UPDATE, DELETE, EXECUTE; did you mean"),
    ('name = "x"\n[[tasks]]\nname = "t"\ntimeout_seconds = 5\n',
     "env.toml:4: timeout_seconds: unknown key; did you mean 'timeoutSeconds'? (allowed: name,"),
    ('name = "x"\n[[applications]]\nname = "a"\ncolour = "blue"\n',
     'env.toml:4: colour: unknown key (allowed: name, roles, store, grants, workflowTasks, owned,'),
    ('[[applications]]\nname = "a"\n',
     "env.toml:1: required key 'name' is missing"),
    ('name = "x"\n[[applications]]\nroles = ["WORKER"]\n',
     "env.toml:2: [[applications]]: required key 'name' is missing"),
    ('name = "x"\n[[applications]]\nname = "a"\nroles = ["BOSS"]\n',
     "env.toml:4: roles: 'BOSS' is not one of ADMIN, USER, USER_READ_ONLY, WORKER, UNRESTRICTED_WORKER,"),
    ('name = "x"\n[[applications]]\nname = "a"\nstore = "json"\n',
     "env.toml:4: store: 'json' is not one of keyring, env-file:PATH"),
    ('name = "x"\n[[applications]]\nname = "a"\n[[applications.grants]]\naccess = ["READ"]\n',
     'env.toml:4: [[applications.grants]]: a grant needs at least one of tasks, workflows, tags, domains'),
    ('name = "x"\n[[applications]]\nname = "a"\n[[applications.grants]]\ntags = ["team:x", "nocolon"]\n',
     "env.toml:5: tags: 'nocolon' is not of the form key:value (e.g. 'team:payments')"),
    ('name = "x"\n[[applications]]\nname = 7\n',
     'env.toml:3: name: must be a string (got 7)'),
    ('name = "x"\n[[applications]]\nname = "a"\n[[applications]]\nname = "a"\n',
     "env.toml:5: two applications are named 'a' (the other at line 3); names must be unique"),
    ('name = "x"\n[[applications]]\nname = "a"\nstore = "env-file:k.env"\n[[applications]]\nname = "b"\n'
     'store = "env-file:k.env"\n',
     "env.toml:7: two applications write their key to 'env-file:k.env' and 'env-file:k.env', which are"),
    ('name = "x"\n[[tasks]]\nname = "t"\ntimeoutSeconds = 10\nresponseTimeoutSeconds = 60\n',
     'env.toml:2: [[tasks]]: responseTimeoutSeconds must not be larger than timeoutSeconds'),
    ('name = "x"\n[[tasks]]\nname = "t"\nretryLogic = "SOMETIMES"\n',
     "env.toml:4: retryLogic: 'SOMETIMES' is not one of FIXED, EXPONENTIAL_BACKOFF, LINEAR_BACKOFF"),
    ('name = "x"\n[[tasks]]\nname = "t"\nretryCount = -1\n',
     'env.toml:4: retryCount: must be at least 0 (got -1)'),
    ('name = "stag ing"\n',
     "env.toml:1: name: must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"),
    ('name = "x"\napplications = "none"\n',
     "env.toml:2: applications: must be a list (got 'none')"),
    ('name = "x"\n[[applications]\nname = "a"\n',
     "env.toml: line 2, column 15: TOML syntax: expected ']]' at the end of an array declaration"),
    ('name = "x"\nname = "y"\n',
     'env.toml: line 2, column 11: TOML syntax: cannot overwrite a value'),
    ('name = \n',
     'env.toml: line 1, column 8: TOML syntax: invalid value'),
    ('name = "x"\n[[workflows]]\nfile = "missing.json"\n',
     'env.toml:3: file: missing.json: no such file'),
    ('name = "x"\n[[users]]\nname = "Ada"\n',
     "env.toml:2: [[users]]: required key 'id' is missing"),
    ('name = "x"\n[[users]]\nid = "ada@x.io"\nemail = "ada@x.io"\n',
     'env.toml:4: email: unknown key (allowed: id, name, roles)'),
    ('name = "x"\n[[users]]\nid = "  "\n',
     'env.toml:3: id: must not be blank'),
    ('name = "x"\n[[users]]\nid = "app:1234"\n',
     "env.toml:3: id: 'app:1234': ids starting with 'app:' are applications' users; declare the"),
    ('name = "x"\n[[users]]\nid = "a"\nroles = ["USER_READ_ONLY", "USER"]\n',
     'env.toml:4: roles: USER_READ_ONLY cannot be combined with other roles'),
    ('name = "x"\n[[users]]\nid = "a"\n[[users]]\nid = "a"\n',
     "env.toml:5: two users are named 'a' (the other at line 3); names must be unique"),
    ('name = "x"\n[[groups]]\nid = "g"\nmembers = ["a", "app:1"]\n',
     "env.toml:4: members: 'app:1': ids starting with 'app:' are applications' users; declare the"),
    ('name = "x"\n[[groups]]\nid = "g"\nroles = ["owner"]\n',
     "env.toml:4: roles: 'owner' is not a system role (ADMIN, USER,"),
    ('name = "x"\n[[roles]]\nname = "Operator"\n', "env.toml:3: name: 'Operator' is not a role name Orkes accepts"),
    ('name = "x"\n[[roles]]\nname = "WORKER"\n', "env.toml:3: name: 'WORKER' is a system role"),
    ('name = "x"\n[[roles]]\nname = "OPS"\npermissions = ["workflow:read"]\n',
     "env.toml:4: permissions: 'workflow:read' is not a permission name"),
    ('name = "x"\n[[roles]]\nname = "OPS"\n[[roles]]\nname = "OPS"\n',
     "env.toml:5: two roles are named 'OPS' (the other at line 3); names must be unique"),
    ('name = "x"\n[[roles]]\nname = "OPS"\npermission = ["READ_TASK_DEF"]\n',
     "env.toml:4: permission: unknown key; did you mean 'permissions'?"),
    ('name = "x"\n[[groups]]\nid = "g"\n[[groups.grants]]\nworkflows = ["f"]\naccess = ["WRITE"]\n',
     "env.toml:6: access: 'WRITE' is not one of CREATE, READ, UPDATE, DELETE, EXECUTE"),
    ('name = "x"\n[[groups]]\nid = "g"\nmember = ["a"]\n',
     "env.toml:4: member: unknown key; did you mean 'members'? (allowed: id, description, roles, members,"),
    ('name = "x"\n[[users]]\nid = "a"\nroles = ["USER_READ_ONLY"]\n[[groups]]\nid = "g"\nmembers = ["a"]\n',
     "env.toml:7: user 'a' has the role USER_READ_ONLY, which Orkes refuses to a member of a group (group"),
]


@pytest.mark.parametrize(("text", "expected"), MALFORMED, ids=[e.split(": ", 1)[1][:40] for _, e in MALFORMED])
def test_malformed_file_fails_with_one_line_naming_file_and_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   text: str, expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    write_env(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_environment("env.toml")
    message = caught.value.message
    assert "\n" not in message and "\n" not in caught.value.hint
    assert message.startswith(expected), message


@pytest.mark.parametrize(("workflow", "expected"), [
    ("{not json", "file: workflows/greet.json: line 1, column 2: JSON syntax:"),
    (["a", "list"], "must hold one JSON object"),
    ({"tasks": []}, "'name' is missing or not a string"),
    ({"name": "w"}, "'tasks' is missing or not a list"),
    ({"name": "w", "tasks": [], "version": "2"}, "'version' must be a whole number"),
])
def test_malformed_workflow_file_is_reported_at_its_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          workflow: object, expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    write_env(tmp_path, 'name = "x"\n[[workflows]]\nfile = "workflows/greet.json"\n')
    raw = workflow if isinstance(workflow, str) else json.dumps(workflow)
    (tmp_path / "workflows" / "greet.json").write_text(raw)
    with pytest.raises(ConfigError) as caught:
        load_environment("env.toml")
    assert "\n" not in caught.value.message
    assert caught.value.message.startswith("env.toml:3: ")
    assert expected in caught.value.message


def test_missing_and_non_utf8_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such environment file"):
        load_environment(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'name = "\xff"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 8\)"):
        load_environment(bad)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_random_bytes_never_escape_as_anything_but_a_config_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_bytes(raw)
    try:
        load_environment(path)
    except ConfigError as err:
        assert "\n" not in err.message


# Garbage TOML that parses: a table of plausible keys with values of every TOML type.
_KEYS = st.sampled_from(["name", "server", "tasks", "workflows", "applications", "grants", "roles", "access",
                         "store", "file", "timeoutSeconds", "tags", "x", "users", "groups", "id", "members"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=True),
                     st.text(string.printable, max_size=12), st.sampled_from(["EXECUTE", "WORKER", "keyring"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=10)


@settings(max_examples=100, deadline=None)
@given(data=st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_garbage_documents_fail_on_one_line_or_validate(data: dict[str, object]) -> None:
    try:
        validate_environment(data, "fuzz.toml")
    except ConfigError as err:
        assert err.message.startswith("fuzz.toml: ")
        assert "\n" not in err.message
