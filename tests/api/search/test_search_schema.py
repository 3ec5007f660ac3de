"""The served GraphQL schema contains zot's: every type, field, argument, input field and enum value,
with the same names and the same NON_NULL/LIST wrapping.

The expected facts are in ``tests/data/zot-schema/expected_schema.json``, extracted from zot's
``pkg/extensions/search/schema.graphql`` (see its ``source`` key). zotpy may serve more than zot
(extra fields or types are allowed), never less or differently shaped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

EXPECTED = Path(__file__).resolve().parents[2] / "data" / "zot-schema" / "expected_schema.json"

INTROSPECTION = """
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }
}
"""


def type_ref(ref: dict[str, Any]) -> str:
    """An introspected type reference in SDL notation: ``[String!]!``."""
    if ref["kind"] == "NON_NULL":
        return type_ref(ref["ofType"]) + "!"
    if ref["kind"] == "LIST":
        return "[" + type_ref(ref["ofType"]) + "]"
    return ref["name"]


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads(EXPECTED.read_text())


@pytest.fixture(scope="module")
def served(world) -> dict[str, Any]:
    schema = world.gql.data(INTROSPECTION)["__schema"]
    return schema


@pytest.fixture(scope="module")
def served_types(served) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in served["types"]}


def test_the_expected_facts_are_complete(expected) -> None:
    """Guards the data file itself: zot's 15 queries and 28 named types."""
    assert len(expected["types"]["Query"]["fields"]) == 15
    assert len(expected["types"]) == 28


def test_query_root_is_query_and_there_are_no_mutations(served) -> None:
    assert served["queryType"] == {"name": "Query"}
    assert served["mutationType"] is None
    assert served["subscriptionType"] is None


def test_every_type_is_served_with_its_kind(expected, served_types) -> None:
    missing = sorted(set(expected["types"]) - set(served_types))
    assert not missing, f"types of zot's schema not served: {missing}"
    wrong = {name: (served_types[name]["kind"], want["kind"])
             for name, want in expected["types"].items() if served_types[name]["kind"] != want["kind"]}
    assert not wrong, f"kind (served, zot): {wrong}"


def _object_types(expected) -> list[str]:
    return sorted(n for n, t in expected["types"].items() if t["kind"] == "OBJECT")


def test_every_field_has_zots_type(expected, served_types) -> None:
    problems = []
    for name in _object_types(expected):
        fields = {f["name"]: f for f in served_types.get(name, {}).get("fields") or []}
        for field, want in expected["types"][name]["fields"].items():
            if field not in fields:
                problems.append(f"{name}.{field}: missing")
            elif type_ref(fields[field]["type"]) != want["type"]:
                problems.append(f"{name}.{field}: {type_ref(fields[field]['type'])} (zot: {want['type']})")
    assert not problems, "\n".join(problems)


def test_every_argument_has_zots_type(expected, served_types) -> None:
    problems = []
    for name in _object_types(expected):
        fields = {f["name"]: f for f in served_types.get(name, {}).get("fields") or []}
        for field, want in expected["types"][name]["fields"].items():
            if field not in fields:
                continue  # reported by test_every_field_has_zots_type
            args = {a["name"]: type_ref(a["type"]) for a in fields[field]["args"]}
            for arg, arg_type in want["args"].items():
                if arg not in args:
                    problems.append(f"{name}.{field}({arg}): missing")
                elif args[arg] != arg_type:
                    problems.append(f"{name}.{field}({arg}): {args[arg]} (zot: {arg_type})")
            extra_required = [a for a, t in args.items() if a not in want["args"] and t.endswith("!")]
            if extra_required:
                problems.append(f"{name}.{field}: required arguments zot does not have: {extra_required}")
    assert not problems, "\n".join(problems)


def test_every_input_field_has_zots_type(expected, served_types) -> None:
    problems = []
    for name, want in expected["types"].items():
        if want["kind"] != "INPUT_OBJECT":
            continue
        fields = {f["name"]: type_ref(f["type"]) for f in served_types.get(name, {}).get("inputFields") or []}
        for field, field_type in want["inputFields"].items():
            if fields.get(field) != field_type:
                problems.append(f"{name}.{field}: {fields.get(field, 'missing')} (zot: {field_type})")
    assert not problems, "\n".join(problems)


def test_every_enum_value_is_served(expected, served_types) -> None:
    for name, want in expected["types"].items():
        if want["kind"] == "ENUM":
            values = [v["name"] for v in served_types[name]["enumValues"]]
            assert set(want["enumValues"]) <= set(values), (name, values)


def test_time_is_a_custom_scalar(served_types) -> None:
    assert served_types["Time"]["kind"] == "SCALAR"


def test_introspection_over_get(world) -> None:
    data = world.gql.data("{ __schema { queryType { name } } }", method="GET")
    assert data == {"__schema": {"queryType": {"name": "Query"}}}
