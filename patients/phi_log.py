"""The PHI access log's one writer: admin pages showing PHI call `phi_access_record` for every page view
(PhiAccessLogMixin does it for an admin class)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.http import HttpRequest

from metriport_bulk.admin_toolkit import AdminBase, can_view_phi
from patients.models import PhiAccessLog

PHI_LOG_MAX_IDS = 200  # a changelist shows at most list_max_show_all (200) objects


def phi_access_record(*, request: HttpRequest, action: str, model: str, object_ids: Iterable[object]) -> PhiAccessLog:
    ids = [str(object_id) for object_id in object_ids]
    user = request.user
    assert user.is_authenticated  # admin pages: a signed-in staff member
    return PhiAccessLog.objects.create(
        user=user,
        username=user.get_username(),
        action=action,
        model=model,
        object_ids=ids[:PHI_LOG_MAX_IDS],
        object_count=len(ids),
        path=request.path[:2000],
        query=request.META.get("QUERY_STRING", "")[:2000],
    )


class PhiAccessLogMixin(AdminBase):
    """Writes a PHI access log row each time a PHI viewer is shown one of `phi_log_pages` ("change": the object's
    page, "changelist": a list with PHI columns, logging the ids on the page)."""

    phi_log_pages: Sequence[str] = ("change",)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if "change" in self.phi_log_pages and self._shows_phi(request, response):
            original = getattr(response, "context_data", {}).get("original")
            if original is not None:
                self._log(request, PhiAccessLog.Action.VIEW, [original.pk])
        return response

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if "changelist" in self.phi_log_pages and self._shows_phi(request, response):
            changelist = getattr(response, "context_data", {}).get("cl")
            if changelist is not None:
                self._log(request, PhiAccessLog.Action.LIST, [obj.pk for obj in changelist.result_list])
        return response

    @staticmethod
    def _shows_phi(request, response) -> bool:
        return response.status_code == 200 and hasattr(response, "context_data") and can_view_phi(request)

    def _log(self, request, action: str, ids: list) -> None:
        phi_access_record(request=request, action=action, model=self.model._meta.label_lower, object_ids=ids)
