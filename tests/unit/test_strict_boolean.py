"""metriport_bulk.api.fields.StrictBooleanField: JSON true and false only, one value-free message for anything
else (DRF's BooleanField reads "yes", "on", "1", 1 and 0 as booleans), and still a boolean in the OpenAPI schema."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from metriport_bulk.api.fields import JSON_BOOLEAN_MESSAGE, StrictBooleanField


class Body(serializers.Serializer):
    flag = StrictBooleanField()
    optional = StrictBooleanField(required=False)
    nullable = StrictBooleanField(required=False, allow_null=True)


NOT_BOOLEANS = ["yes", "no", "1", "0", 1, 0, 1.0, 0.0, "true", "false", "True", "on", "off", "t", "", "null", [], {}]


@pytest.mark.parametrize("value", [True, False])
def test_json_booleans_are_read_as_they_are(value):
    body = Body(data={"flag": value})
    assert body.is_valid(), body.errors
    assert body.validated_data == {"flag": value}


@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_anything_else_is_refused_without_echoing_it(value):
    body = Body(data={"flag": True, "optional": value, "nullable": value})
    assert not body.is_valid()
    assert body.errors == {"optional": [JSON_BOOLEAN_MESSAGE], "nullable": [JSON_BOOLEAN_MESSAGE]}


def test_null_is_refused_unless_the_field_allows_it():
    body = Body(data={"flag": None, "optional": None, "nullable": None})
    assert not body.is_valid()
    assert body.errors == {"flag": [JSON_BOOLEAN_MESSAGE], "optional": [JSON_BOOLEAN_MESSAGE]}
    nullable = Body(data={"flag": True, "nullable": None})
    assert nullable.is_valid() and nullable.validated_data == {"flag": True, "nullable": None}


def test_required_and_absent_as_any_field():
    body = Body(data={})
    assert not body.is_valid() and body.errors == {"flag": ["This field is required."]}
    assert Body(data={"flag": False}).is_valid()  # absent optional fields stay absent


def test_answers_are_written_as_booleans():
    assert Body({"flag": True, "optional": False, "nullable": None}).data == {
        "flag": True,
        "optional": False,
        "nullable": None,
    }


def test_the_request_bodies_booleans_stay_booleans_in_the_openapi_schema():
    components = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    booleans = {
        ("FacilityRequest", "active"),
        ("PatientInputRequest", "hieOptOut"),
        ("PatientIdsRequest", "allPatients"),
        ("AdtRequest", "enabled"),
        ("HieScheduleRequest", "enabled"),
        ("ScheduleRequest", "enabled"),
        ("PharmacyRequest", "notifications"),
        ("NotificationRequest", "notifications"),
    }
    assert {(name, field): components[name]["properties"][field]["type"] for name, field in booleans} == {
        key: "boolean" for key in booleans
    }
