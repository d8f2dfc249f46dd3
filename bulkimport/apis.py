"""Bulk Patient Create endpoints (SPEC §1), the local upload URL and the local file download."""

from __future__ import annotations

from django.core import signing
from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from bulkimport import selectors, services
from bulkimport.csv_format import TEMPLATE_FILENAME, template_csv
from bulkimport.models import BulkStatus, OnDrift
from bulkimport.serializers import AbsentSerializer, BulkCreateResponseSerializer, BulkRequestSerializer
from idempotency.http import IDEMPOTENCY_KEY, idempotent_answer
from metriport_bulk.api.errors import Conflict, envelope
from metriport_bulk.api.pagination import paginator_for
from metriport_bulk.lib import storage
from patients.authentication import customer_of

# The largest size a bulk request can record (a signed 64-bit column); anything above is a malformed header.
MAX_CONTENT_LENGTH = 2**63 - 1


def _parse_dry_run(value: str | None) -> bool:
    if value is None or value == "":
        return False
    if value in ("true", "false"):
        return value == "true"
    raise exceptions.ValidationError({"dryRun": 'Must be "true" or "false".'})


def _created_answer(bulk, *, upload_url: str | None = None) -> dict:
    """Metriport's bulk create DTO; a confirmed dry run is processing already and has no upload URL."""
    answer = {"requestId": str(bulk.id), "facilityId": str(bulk.facility_id), "status": bulk.status}
    if upload_url is not None:
        answer["uploadUrl"] = upload_url
    answer["params"] = {"dryRun": bulk.dry_run}
    answer["createdAt"] = serializers.DateTimeField().to_representation(bulk.created_at)
    return answer


class BulkCreateListApi(APIView):
    pagination_class = paginator_for("requests")

    @extend_schema(
        operation_id="bulk_patient_create",
        request=None,
        parameters=[
            OpenApiParameter("facilityId", str, description="Optional when the account has exactly one facility."),
            OpenApiParameter("dryRun", bool, description="true validates only; nothing is created."),
            IDEMPOTENCY_KEY,
        ],
        responses=BulkCreateResponseSerializer,
    )
    def post(self, request):
        dry_run = _parse_dry_run(request.query_params.get("dryRun"))
        customer = customer_of(request)
        facility_id = request.query_params.get("facilityId")

        def create() -> tuple[str, int]:
            try:
                bulk = services.bulk_request_create(customer=customer, facility_id=facility_id, dry_run=dry_run)
            except services.BulkRequestError as exc:
                raise (exceptions.NotFound if exc.status == 404 else exceptions.ValidationError)(str(exc)) from None
            return str(bulk.id), 200

        def render(request_id: str, status_code: int) -> Response:
            bulk = selectors.bulk_request_get(customer=customer, request_id=request_id)
            # A replay while the request waits gets a fresh upload URL of the same request; once the file is
            # in, there is nothing left to upload.
            upload_url = services.bulk_upload_url(bulk) if bulk.status == BulkStatus.WAITING else None
            return Response(_created_answer(bulk, upload_url=upload_url), status=status_code)

        return idempotent_answer(
            request,
            customer=customer,
            operation="bulk_create",
            parameters={"facilityId": facility_id or "", "dryRun": dry_run},
            run=create,
            render=render,
        )

    @extend_schema(
        operation_id="bulk_patient_create_list",
        parameters=[OpenApiParameter("facilityId", str), OpenApiParameter("status", str)],
        responses=BulkRequestSerializer(many=True),
    )
    def get(self, request):
        try:
            requests = selectors.bulk_request_list(
                customer=customer_of(request),
                facility_id=request.query_params.get("facilityId"),
                status=request.query_params.get("status"),
            )
        except selectors.InvalidFilter as exc:
            raise exceptions.ValidationError(str(exc)) from None
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(requests, request, view=self)
        return paginator.get_paginated_response(BulkRequestSerializer(page, many=True).data)


class BulkTemplateApi(APIView):
    @extend_schema(
        operation_id="bulk_patient_create_template",
        description=(
            "A CSV template for Bulk Patient Create: a header with every column the service reads and two "
            "example rows. The format is described at /docs/csv-format."
        ),
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request):
        response = HttpResponse(template_csv(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{TEMPLATE_FILENAME}"'
        return response


class BulkDetailApi(APIView):
    @extend_schema(operation_id="bulk_patient_create_get", responses=BulkRequestSerializer)
    def get(self, request, request_id):
        return Response(
            BulkRequestSerializer(selectors.bulk_request_get(customer=customer_of(request), request_id=request_id)).data
        )

    @extend_schema(
        operation_id="bulk_patient_create_cancel",
        description=(
            "Cancels a waiting or processing request: it ends failed with reason `Cancelled by the customer`; "
            "rows already applied stay applied and are reported in `result`. 409 once it has ended."
        ),
        responses={200: BulkRequestSerializer, 409: OpenApiTypes.OBJECT},
    )
    def delete(self, request, request_id):
        bulk = selectors.bulk_request_get(customer=customer_of(request), request_id=request_id)
        try:
            bulk = services.bulk_request_cancel(request=bulk)
        except services.OperationRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(BulkRequestSerializer(bulk).data)


def _parse_on_drift(value: str | None) -> str:
    if value is None or value == "":
        return OnDrift.FAIL
    if value in OnDrift.values:
        return value
    raise exceptions.ValidationError({"onDrift": 'Must be "apply" or "fail".'})


class BulkConfirmApi(APIView):
    @extend_schema(
        operation_id="bulk_patient_create_confirm",
        request=None,
        parameters=[
            OpenApiParameter(
                "onDrift",
                str,
                enum=OnDrift.values,
                description=(
                    "Rows whose decision changed since the dry run (another import or API call created or changed "
                    "a match) are reported `drifted` with both decisions: `fail` (default) fails them and applies "
                    "nothing for them; `apply` applies the new decision."
                ),
            ),
            IDEMPOTENCY_KEY,
        ],
        description=(
            "Imports the stored file of a completed dry run for real, without a new upload: a new request, "
            "already processing, applying the plan the dry run showed. 409 for anything but a completed dry "
            "run, or one confirmed already."
        ),
        responses={200: BulkCreateResponseSerializer, 409: OpenApiTypes.OBJECT},
    )
    def post(self, request, request_id):
        customer = customer_of(request)
        on_drift = _parse_on_drift(request.query_params.get("onDrift"))

        def confirm() -> tuple[str, int]:
            bulk = selectors.bulk_request_get(customer=customer, request_id=request_id)
            try:
                confirmed = services.bulk_request_confirm(customer=customer, request=bulk, on_drift=on_drift)
            except services.OperationRefused as exc:
                raise Conflict(str(exc)) from None
            return str(confirmed.id), 200

        def render(confirmed_id: str, status_code: int) -> Response:
            confirmed = selectors.bulk_request_get(customer=customer, request_id=confirmed_id)
            return Response(_created_answer(confirmed), status=status_code)

        return idempotent_answer(
            request,
            customer=customer,
            operation="bulk_confirm",
            parameters={"requestId": request_id, "onDrift": on_drift},
            run=confirm,
            render=render,
        )


class BulkAbsentApi(APIView):
    @extend_schema(
        operation_id="bulk_patient_create_absent",
        description=(
            "The facility's patients that no row of the file matched (a dry run: would match), once the request "
            "has completed: their count and a fresh pre-signed URL of a CSV listing them. Nothing is deleted. "
            "409 before the request has completed; 404 for a request completed before absent lists existed."
        ),
        responses={200: AbsentSerializer, 404: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
    )
    def get(self, request, request_id):
        bulk = selectors.bulk_request_get(customer=customer_of(request), request_id=request_id)
        if bulk.status != BulkStatus.COMPLETED:
            raise Conflict(f"The request is {bulk.status}: the absent patients are known once it has completed.")
        url = services.bulk_absent_url(bulk)
        if url is None:
            # Completed before absent lists existed: there is no list to give, and none will come.
            raise exceptions.NotFound(
                "This request completed before absent patients were listed: send the file again as a dry run "
                "to list them."
            )
        return Response({"requestId": str(bulk.id), "absentFromFile": bulk.plan.get("absentFromFile", 0), "url": url})


class BulkUploadApi(APIView):
    """PUT target of the local (embedded default) upload URL: the signed token is the credential."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []

    def http_method_not_allowed(self, request, *args, **kwargs):
        # The usual mistake is a POST (a form upload): say what works.
        raise exceptions.MethodNotAllowed(
            request.method,
            detail=f"Upload the file with PUT, not {request.method}: e.g. curl -T patients.csv '<uploadUrl>'.",
        )

    @extend_schema(operation_id="bulk_upload_local", request={"text/csv": OpenApiTypes.BINARY}, responses={200: None})
    def put(self, request, token):
        from django.conf import settings

        try:
            payload = signing.loads(token, salt=services.UPLOAD_SALT, max_age=settings.UPLOAD_URL_EXPIRY_SECONDS)
        except signing.SignatureExpired:
            raise exceptions.PermissionDenied("The upload URL has expired: create a new bulk request.") from None
        except signing.BadSignature:
            raise exceptions.PermissionDenied("The upload URL is not valid.") from None
        length = request.META.get("CONTENT_LENGTH")
        if not length or not length.isdigit():
            return Response(envelope(411, "Send the file with a Content-Length header."), status=411)
        if int(length) > MAX_CONTENT_LENGTH:
            # No file can be that large: a malformed header, not an upload. Nothing is read or stored and
            # the request stays waiting for a real upload.
            return Response(envelope(400, "The Content-Length header is not a possible file size."), status=400)
        try:
            services.bulk_upload_receive(request_id=payload["r"], stream=request._request, content_length=int(length))
        except services.UploadRefused as exc:
            return Response(envelope(exc.status, str(exc)), status=exc.status)
        return Response(status=200)


class FileDownloadApi(APIView):
    """Local storage download of a result file through a signed, expiring token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="file_download_local",
        responses={(200, "text/csv"): OpenApiTypes.BINARY, 404: OpenApiTypes.OBJECT},
    )
    def get(self, request, token):
        try:
            key, filename = storage.read_download_token(token)
        except signing.SignatureExpired:
            raise exceptions.PermissionDenied("The download URL has expired: get a fresh one from the API.") from None
        except signing.BadSignature:
            raise exceptions.PermissionDenied("The download URL is not valid.") from None
        try:
            stored = open(storage.local_path(key), "rb")  # noqa: SIM115 - FileResponse closes it
        except FileNotFoundError:
            # Removed by an operator after the link was made: nothing to serve, and not the server's fault.
            raise exceptions.NotFound("The file is no longer stored.") from None
        return FileResponse(stored, as_attachment=True, filename=filename, content_type="text/csv")
