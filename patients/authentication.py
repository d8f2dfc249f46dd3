"""x-api-key authentication: the key identifies a customer (tenant); every API view scopes by it."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import authentication, exceptions, permissions

from patients.models import Customer
from patients.services import api_key_authenticate


@dataclass(frozen=True)
class CustomerPrincipal:
    """What `request.user` is on the API: the customer the key belongs to."""

    customer: Customer
    api_key_id: int

    is_authenticated = True
    is_anonymous = False
    is_staff = False


class ApiKeyAuthentication(authentication.BaseAuthentication):
    header = "HTTP_X_API_KEY"

    def authenticate(self, request):
        raw = request.META.get(self.header)
        if raw is None:
            return None
        api_key = api_key_authenticate(raw_key=raw)
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key in x-api-key is not valid.")
        return CustomerPrincipal(customer=api_key.customer, api_key_id=api_key.id), api_key

    def authenticate_header(self, request) -> str:
        # A WWW-Authenticate value makes DRF answer 401 (not 403) when the key is missing.
        return "x-api-key"


class IsCustomer(permissions.BasePermission):
    message = "Missing x-api-key header."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, CustomerPrincipal)


def customer_of(request) -> Customer:
    return request.user.customer
