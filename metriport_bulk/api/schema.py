"""OpenAPI description of the x-api-key authentication (drf-spectacular extension)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "patients.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "x-api-key"}


ERROR_SCHEMA = {
    "type": "object",
    "description": "The error envelope every error answers (SPEC §1).",
    "required": ["status", "name", "title", "detail"],
    "properties": {
        "status": {"type": "integer"},
        "name": {"type": "string"},
        "title": {"type": "string"},
        "detail": {"type": "string"},
    },
}
ERROR_DESCRIPTIONS = {
    "400": "Bad input: a query parameter, a cursor or the body is not valid.",
    "401": "The x-api-key header is missing or wrong.",
    "403": "The signed URL is not valid or has expired.",
    "404": "No such object for this customer (another customer's id included).",
    "411": "The upload has no Content-Length.",
    "412": "The If-Match eTag is not the current one (a weak tag never matches): read the object again and retry.",
    "413": "The body is too large.",
    "415": "The body is not JSON.",
}


def add_error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: documents the error envelope of every status an operation can answer
    by construction (authentication, ids in the path or query, a body), so clients and schemathesis know them."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            statuses = {"400"}
            if any(requirement for requirement in operation.get("security", [])):
                statuses.add("401")
            else:
                statuses.add("403")  # no key: a signed token in the path is the credential
            names = {p["name"] for p in operation.get("parameters", [])}
            if any(p["in"] == "path" for p in operation.get("parameters", [])) or any(
                name.endswith("Id") for name in names
            ):
                statuses.add("404")
            if any(p["in"] == "header" and p["name"].lower() == "if-match" for p in operation.get("parameters", [])):
                statuses.add("412")
            body = operation.get("requestBody", {}).get("content", {})
            if "application/json" in body:
                statuses.update({"413", "415"})
            elif body:
                statuses.update({"411", "413"})
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                responses.setdefault(
                    status,
                    {
                        "description": ERROR_DESCRIPTIONS[status],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
    return result
