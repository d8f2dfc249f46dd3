"""Facility and patient JSON in Metriport's shape (camelCase)."""

from __future__ import annotations

import hashlib

from django.conf import settings
from rest_framework import serializers

from metriport_bulk.api.fields import StrictBooleanField
from patients.models import Facility, Patient
from patients.normalize import normalize_state, normalize_zip
from patients.validators import npi_is_valid


def omit_empty(values: dict, keys: tuple[str, ...]) -> dict:
    """Optional strings Metriport's schemas type `string | undefined` are omitted when empty, never null (a
    null breaks the npm SDK's zod parsing)."""
    return {k: v for k, v in values.items() if k not in keys or (v is not None and v != "")}


def etag_of(obj) -> str:
    """A version tag that changes with every save (Metriport's eTag; PUT checks it against If-Match)."""
    return hashlib.sha1(f"{obj.pk}:{obj.updated_at.isoformat()}".encode()).hexdigest()[:16]


def facility_oid(facility: Facility) -> str:
    """The facility's OID in Metriport's form, `<organization OID>.5.<facility number>`: the organization's
    arc is the customer's UUID as an integer under OID_ROOT (2.25 is X.667's UUID arc), the facility number
    its own UUID's integer. Stable, unique, and needs no counter."""
    return f"{settings.OID_ROOT}.{facility.customer_id.int}.5.{facility.id.int}"


class AddressSerializer(serializers.Serializer):
    addressLine1 = serializers.CharField(max_length=200)
    addressLine2 = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True)
    city = serializers.CharField(max_length=100)
    state = serializers.CharField(max_length=40)
    zip = serializers.CharField(max_length=10)
    # Null as left out ("USA"): the Python SDK sends null for `Address(country=None)`, and a patient's address
    # (patients.demographics) reads it so.
    country = serializers.CharField(max_length=3, required=False, allow_null=True, default="USA")

    def validate_state(self, value: str) -> str:
        state = normalize_state(value)
        if state is None:
            raise serializers.ValidationError("Must be a US state or territory (e.g. CA or California).")
        return state

    def validate_zip(self, value: str) -> str:
        zip_code = normalize_zip(value)
        if zip_code is None:
            raise serializers.ValidationError("Must be a 5-digit US zip code (ZIP+4 accepted).")
        return zip_code

    def validate_country(self, value: str | None) -> str:
        if value is not None and value.upper() != "USA":
            raise serializers.ValidationError('Only "USA" is supported.')
        return "USA"

    def to_representation(self, instance) -> dict:
        return omit_empty(super().to_representation(instance), ("addressLine2",))


class FacilitySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(read_only=True)
    eTag = serializers.SerializerMethodField()
    oid = serializers.SerializerMethodField()
    npi = serializers.CharField(max_length=10)
    # `tin` and `active` may be null: @metriport/api-sdk's facility schema types both optional and nullable
    # (Metriport's route takes a null `active`) and the Python SDK sends null for `tin=None` / `active=None`.
    # Null is read as leaving the field out: no TIN (stored empty), active.
    tin = serializers.CharField(max_length=20, required=False, allow_blank=True, allow_null=True, default="")
    active = StrictBooleanField(required=False, default=True, allow_null=True)
    address = AddressSerializer()

    class Meta:
        model = Facility
        fields = ["id", "eTag", "oid", "name", "npi", "tin", "active", "address"]

    def get_eTag(self, facility: Facility) -> str:
        return etag_of(facility)

    def get_oid(self, facility: Facility) -> str:
        return facility_oid(facility)

    def validate_npi(self, value: str) -> str:
        if not npi_is_valid(value):
            raise serializers.ValidationError("Must be a 10-digit NPI with a valid check digit.")
        return value

    def validate_tin(self, value: str | None) -> str:
        return "" if value is None else value

    def validate_active(self, value: bool | None) -> bool:
        return True if value is None else value


class PatientSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(read_only=True)
    eTag = serializers.SerializerMethodField()
    dateCreated = serializers.DateTimeField(source="created_at", read_only=True)
    facilityIds = serializers.SerializerMethodField()
    externalId = serializers.CharField(source="external_id")
    firstName = serializers.CharField(source="first_name")
    lastName = serializers.CharField(source="last_name")
    dob = serializers.DateField(format="%Y-%m-%d")
    genderAtBirth = serializers.CharField(source="gender_at_birth")
    personalIdentifiers = serializers.SerializerMethodField()
    address = serializers.JSONField(source="addresses")
    contact = serializers.JSONField(source="contacts")
    hieOptOut = serializers.BooleanField(source="hie_opt_out", read_only=True)

    class Meta:
        model = Patient
        fields = [
            "id",
            "eTag",
            "facilityIds",
            "externalId",
            "dateCreated",
            "firstName",
            "lastName",
            "dob",
            "genderAtBirth",
            "personalIdentifiers",
            "address",
            "contact",
            "hieOptOut",
        ]

    def get_eTag(self, patient: Patient) -> str:
        return etag_of(patient)

    def to_representation(self, instance) -> dict:
        data = omit_empty(super().to_representation(instance), ("externalId",))
        data["address"] = [omit_empty(a, ("addressLine2",)) for a in data.get("address") or []]
        data["contact"] = [c for c in (omit_empty(c, ("phone", "email")) for c in data.get("contact") or []) if c]
        return data

    def get_facilityIds(self, patient: Patient) -> list[str]:
        return [str(link.facility_id) for link in patient.patientfacility_set.all()]

    def get_personalIdentifiers(self, patient: Patient) -> list[dict]:
        identifiers = []
        if patient.ssn:
            identifiers.append({"type": "ssn", "value": patient.ssn})
        if patient.drivers_license:
            identifiers.append({"type": "driversLicense", **patient.drivers_license})
        return identifiers


# --- input, for the OpenAPI schema (bodies are read by patients.demographics, as a bulk row is) -------------


class PersonalIdentifierInputSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["ssn", "driversLicense"])
    value = serializers.CharField()
    state = serializers.CharField(required=False, help_text="Required for a driversLicense.")


class ContactInputSerializer(serializers.Serializer):
    phone = serializers.CharField(required=False, allow_null=True)
    email = serializers.CharField(required=False, allow_null=True)


class PatientInputSerializer(serializers.Serializer):
    """Metriport's PatientCreate (and the Demographics of /patient/match). Null is read as left out wherever the
    PyPI SDK sends it for None (patients.demographics), so those fields are nullable here too."""

    firstName = serializers.CharField()
    lastName = serializers.CharField()
    dob = serializers.CharField(help_text="YYYY-MM-DD (the date formats of the CSV are accepted too).")
    genderAtBirth = serializers.CharField(help_text="M, F, O or U (the CSV's spellings are accepted too).")
    externalId = serializers.CharField(required=False, allow_null=True)
    personalIdentifiers = PersonalIdentifierInputSerializer(many=True, required=False, allow_null=True)
    address = AddressSerializer(many=True, help_text="One address object or a list of 1 to 10.")
    contact = ContactInputSerializer(
        many=True, required=False, allow_null=True, help_text="One contact object or a list."
    )
    hieOptOut = StrictBooleanField(required=False, allow_null=True)


class HieOptOutSerializer(serializers.Serializer):
    id = serializers.CharField()
    hieOptOut = serializers.BooleanField()
    message = serializers.CharField()
