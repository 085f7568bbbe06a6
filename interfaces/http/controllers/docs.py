from typing import Any

import yaml
from litestar import Request, Response, get


@get("/openapi.json", include_in_schema=False, media_type="application/json")
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return request.app.openapi_schema.to_schema()


@get("/openapi.yaml", include_in_schema=False, media_type="application/vnd.oai.openapi")
async def openapi_yaml(request: Request[Any, Any, Any]) -> Response[str]:
    document = yaml.safe_dump(request.app.openapi_schema.to_schema(), sort_keys=False)
    return Response(document, media_type="application/vnd.oai.openapi")
