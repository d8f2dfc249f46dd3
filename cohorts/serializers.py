"""Cohort JSON in Metriport's DTO (`CohortWithSizeResponseWithoutOverrides` of @metriport/shared)."""

from __future__ import annotations

import typing
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cohorts.models import COHORT_COLORS, NAME_KEY_MAX_LENGTH, PURPOSES_OF_USE, Cohort, name_key
from metriport_bulk.api.fields import StrictBooleanField

HIE_FREQUENCIES = ("daily", "weekly", "biweekly", "monthly")
SCHEDULE_FREQUENCIES = ("weekly", "biweekly", "monthly")


class AdtSerializer(serializers.Serializer):
    enabled = StrictBooleanField()


class HieScheduleSerializer(serializers.Serializer):
    enabled = StrictBooleanField()
    frequency = serializers.ChoiceField(choices=HIE_FREQUENCIES)


class ScheduleSerializer(serializers.Serializer):
    enabled = StrictBooleanField()
    frequency = serializers.ChoiceField(choices=SCHEDULE_FREQUENCIES)


class PharmacySerializer(serializers.Serializer):
    notifications = StrictBooleanField()
    schedule = ScheduleSerializer()


class NotificationSerializer(serializers.Serializer):
    notifications = StrictBooleanField()


class MonitoringSerializer(serializers.Serializer):
    adt = AdtSerializer()
    hie = HieScheduleSerializer()
    pharmacy = PharmacySerializer()
    laboratory = NotificationSerializer()


class CohortSettingsSerializer(serializers.Serializer):
    monitoring = MonitoringSerializer()


class CohortSerializer(serializers.ModelSerializer):
    eTag = serializers.SerializerMethodField()
    purposeOfUse = serializers.CharField(source="purpose_of_use")
    settings = CohortSettingsSerializer()
    size = serializers.SerializerMethodField()

    class Meta:
        model = Cohort
        fields = ["id", "eTag", "name", "description", "color", "purposeOfUse", "settings", "size"]

    def get_eTag(self, cohort: Cohort) -> str:
        return str(cohort.version)

    def get_size(self, cohort: Cohort) -> int:
        size = getattr(cohort, "size", None)
        return size if size is not None else cohort.patient_links.count()

    def to_representation(self, instance: Cohort) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["id"] = str(instance.id)
        data["settings"] = {"monitoring": instance.settings.get("monitoring", {})}  # as stored, merged on write
        return data


class CohortListSerializer(serializers.Serializer):
    cohorts = CohortSerializer(many=True)


class CohortWithMessageSerializer(serializers.Serializer):
    message = serializers.CharField()
    cohort = CohortSerializer()


# --- input -------------------------------------------------------------------------------------------------


_MONITORING_SPEC: dict[str, Any] = {
    "adt": {"enabled": bool},
    "hie": {"enabled": bool, "frequency": HIE_FREQUENCIES},
    "pharmacy": {"notifications": bool, "schedule": {"enabled": bool, "frequency": SCHEDULE_FREQUENCIES}},
    "laboratory": {"notifications": bool},
}


def _clean(value: Any, spec: Any) -> Any:
    """Metriport's deep-partial settings: any subset of the known keys, each of its type; unknown keys are
    dropped (zod's strip). Errors nest as the keys do, so the envelope names each one as `settings.monitoring...`
    (errors.flatten_detail), as it names any nested serializer field."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object.")
        cleaned, errors = {}, {}
        for key, item in value.items():
            if key in spec:
                try:
                    cleaned[key] = _clean(item, spec[key])
                except serializers.ValidationError as exc:
                    errors[key] = exc.detail
        if errors:
            raise serializers.ValidationError(errors)
        return cleaned
    if spec is bool:
        return StrictBooleanField().run_validation(value)
    if value not in spec:
        raise serializers.ValidationError(f"Must be one of {', '.join(spec)}.")
    return value


@extend_schema_field(CohortSettingsSerializer)
class _PartialSettingsField(serializers.Field):
    def to_internal_value(self, data: Any) -> dict[str, Any]:
        cleaned = _clean(data, {"monitoring": _MONITORING_SPEC})
        return typing.cast(dict[str, Any], cleaned)

    def to_representation(self, value: Any) -> Any:
        return value


class _ColorField(serializers.ChoiceField):
    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str):
            data = data.strip().lower()  # Metriport's cohortColorsSchema
        return str(super().to_internal_value(data))


class CohortCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, trim_whitespace=True)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    color = _ColorField(choices=COHORT_COLORS, required=False, default="white")
    purposeOfUse = serializers.ChoiceField(choices=PURPOSES_OF_USE, required=False, default="treatment")
    settings = _PartialSettingsField(required=False)

    def validate_name(self, value: str) -> str:
        # Names compare upper-cased (cohorts.models.name_key), and upper-casing can lengthen a name ("ß" -> "SS"):
        # the compared form must fit too, as a bulk file's cohort cell must (patients.validation).
        if len(name_key(value)) > NAME_KEY_MAX_LENGTH:
            raise serializers.ValidationError(
                f"Ensure this field has no more than {NAME_KEY_MAX_LENGTH} characters once upper-cased."
            )
        return value

    def changes(self) -> dict[str, Any]:
        data = dict(self.validated_data)
        if "purposeOfUse" in data:
            data["purpose_of_use"] = data.pop("purposeOfUse")
        return data


class CohortUpdateSerializer(CohortCreateSerializer):
    """Every field optional; only those sent change (`eTag` in the body is Metriport's If-Match alternative)."""

    name = serializers.CharField(max_length=200, trim_whitespace=True, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    color = _ColorField(choices=COHORT_COLORS, required=False)
    purposeOfUse = serializers.ChoiceField(choices=PURPOSES_OF_USE, required=False)
    eTag = serializers.CharField(required=False)


class PatientIdsSerializer(serializers.Serializer):
    """Metriport's allOrSubsetPatientIdsSchema: `{"patientIds": [...]}` or `{"allPatients": true}`."""

    patientIds = serializers.ListField(child=serializers.CharField(), required=False, min_length=1, max_length=10000)
    allPatients = StrictBooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        all_patients = attrs.get("allPatients") is True
        if all_patients == ("patientIds" in attrs):
            raise serializers.ValidationError('Send either "patientIds" (a non-empty list) or "allPatients": true.')
        return attrs


class CohortIdsSerializer(serializers.Serializer):
    # No minimum, as Metriport's schema (`z.array(z.string())`): the npm SDK's addPatientToCohorts may send
    # an empty list, which joins nothing and answers the patient's cohorts.
    cohortIds = serializers.ListField(child=serializers.CharField(), max_length=1000)
