"""The OpenAPI description of the routes whose bodies sleuth parses itself, one module per family.

Plain data built with the helpers of :mod:`sleuth.api.openapi`: the route modules pass these to
``openapi_extra=request_body(...)`` and ``responses=responses(...)``. Kept apart from the handlers so that the
handler modules stay about HTTP, and so that what a field accepts is written once, next to its limits.
"""
