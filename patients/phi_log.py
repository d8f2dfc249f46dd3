"""The PHI access log's one writer: admin pages showing PHI call `phi_access_record` for every page view."""

from __future__ import annotations

from collections.abc import Iterable

from django.http import HttpRequest

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
