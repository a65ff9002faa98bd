"""Follow Up Boss's answers for two-way sync tests: a person and the stages."""

from __future__ import annotations

FUB = "https://fub.example/v1"


def person(i: int, **fields: object) -> dict:
    base = {
        "id": i,
        "firstName": f"P{i}",
        "lastName": "Lee",
        "stage": "Lead",
        "emails": [{"value": f"p{i}@x.example", "type": "home", "isPrimary": 1}],
        "phones": [
            {"value": "(555) 201-0000", "type": "work", "isPrimary": 0},
            {"value": "(555) 201-0001", "type": "mobile", "isPrimary": 1},
        ],
        "tags": ["buyer"],
        "updated": "2026-01-01T00:00:00Z",
    }
    return {**base, **fields}


STAGES = {
    "_metadata": {"collection": "stages"},
    "stages": [{"id": 1, "name": "Lead"}, {"id": 2, "name": "Active Client"}],
}
