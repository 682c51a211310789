"""The TOML writer reads back equal for any value an export can hold; lines are found where TOML puts them."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orkes_provision.toml.write import FileLines, NotRepresentable, dumps, line_index

_scalars = st.one_of(st.text(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans(),
                     st.floats(allow_nan=False))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(), inner, max_size=4)),
                       max_leaves=12)
_table = st.dictionaries(st.text(), _values, max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), st.one_of(_values, st.lists(_table, min_size=1, max_size=3)), max_size=6))
def test_any_document_of_strings_numbers_lists_and_tables_reads_back_equal(document: dict[str, Any]) -> None:
    assert tomllib.loads(dumps(document)) == document


@pytest.mark.parametrize("value", [None, [1, None], {"a": {"b": None}}, float("nan")])
def test_values_toml_cannot_hold_are_refused_naming_where(value: Any) -> None:
    with pytest.raises(NotRepresentable) as caught:
        dumps({"tasks": [{"name": "t", "inputTemplate": value}]})
    assert caught.value.args[0].startswith("tasks.inputTemplate")


def test_arrays_of_tables_come_after_the_keys_of_their_table_and_nest() -> None:
    text = dumps({"applications": [{"grants": [{"tasks": ["a"]}], "name": "w"}], "name": "x"})
    assert text == ('name = "x"\n\n[[applications]]\nname = "w"\n\n[[applications.grants]]\ntasks = ["a"]\n')


def test_line_index_counts_arrays_of_tables_and_skips_multi_line_values() -> None:
    text = """\
# comment
name = "staging"   # trailing comment

[[tasks]]
name = "a"
inputKeys = [
  "x", # ]
  "y",
]
description = '''
[[applications]]
'''

[[applications]]
"name" = "w"
roles.extra = 1

[[applications.grants]]
tasks = ["a"]

  [[ applications.grants ]]
domains = ["eu"]

[[applications]]
name = "v"
grants = [{ tasks = ["b"] }]
"""
    assert line_index(text) == {
        "name": 2,
        "tasks[0]": 4, "tasks[0].name": 5, "tasks[0].inputKeys": 6, "tasks[0].description": 10,
        "applications[0]": 14, "applications[0].name": 15, "applications[0].roles.extra": 16,
        "applications[0].grants[0]": 18, "applications[0].grants[0].tasks": 19,
        "applications[0].grants[1]": 21, "applications[0].grants[1].domains": 22,
        "applications[1]": 24, "applications[1].name": 25, "applications[1].grants": 26,
    }
    assert tomllib.loads(text)["applications"][0]["grants"][1]["domains"] == ["eu"]  # the sample is real TOML


@pytest.mark.parametrize("key", ["0\n", "a b", "", "é", "x.y", "[t]"])
def test_keys_that_are_not_bare_are_quoted(key: str) -> None:
    # Found by the property above: "0\n" passed a bare-key check anchored with "$", which matches before a newline.
    assert tomllib.loads(dumps({key: 1, "t": [{key: [key]}]})) == {key: 1, "t": [{key: [key]}]}


def test_a_problem_is_located_at_its_key_its_list_element_or_the_table_it_belongs_in() -> None:
    lines = FileLines('name = "x"\n\n[[applications]]\nname = "a"\nroles = [\n  "WORKER",\n  "worker",\n]\n'
                      'env = { LEVEL = 3 }\n\n[[applications]]\nroles = ["worker"]\n')

    assert lines.line(("applications", 0, "roles")) == 5
    assert lines.line(("applications", 0, "roles", 1), "worker") == 7  # on its own line of the list
    assert lines.line(("applications", 1, "roles", 0), "worker") == 12  # not in the list before it
    assert lines.line(("applications", 1, "name")) == 11  # missing: where its table starts
    assert lines.line(("applications", 0, "env", "LEVEL")) == 9  # inside an inline table: the key holding it
    assert lines.line(("server",)) == 1  # a missing top-level key: the top of the file
    assert FileLines("").line(("applications", 0)) is None  # no text: no line to name
