"""The HTTP API and page of ``mmrec serve`` (FastAPI; ``pip install mmrec[serve]``).

Routes (OpenAPI schema at ``/openapi.json``, interactive docs at ``/docs``):

- ``GET /recommend/{user}?k=&exclude_seen=&filter=column=v1,v2&explain=&diversify=&rerank=``
- ``POST /events`` — one event or a list, applied through the online updater at once
- ``GET /explain/{user}/{item}``
- ``DELETE /users/{user}`` — forget the user
- ``POST /items`` — new items (catalog fields), encoded from content and indexed at once
- ``POST /items/upload`` — one new item with its image/audio uploaded (multipart), stored by the server
- ``GET /history/{user}``, ``GET /users``, ``GET /health``, ``GET /media/{item}/{image|audio}``
- ``GET /`` — the page: a user's history and recommendations as cards; a click is feedback.

Bad input is a 4xx with a ``detail`` message: 404 for unknown ids, 422 for a body or query that
does not validate, 400 for the rest of what the library rejects.
"""


import json
import logging
import math
import re
from importlib import resources
from typing import Annotated, Any

from mmrec.errors import MissingDependencyError, MmrecError
from mmrec.ranking.options import RankingOptions
from mmrec.serve.access import AccessPolicy, Guard
from mmrec.serve.service import MAX_ID_LENGTH, NotFound, Service

try:
    from fastapi import Body, FastAPI, Path, Query, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, field_validator
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("mmrec serve needs FastAPI and uvicorn: pip install 'mmrec[serve]'") from exc

__all__ = ["create_app", "Event", "Item"]

logger = logging.getLogger(__name__)

Id = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]
MAX_BATCH = 10_000  # events per request
MAX_ITEMS = 1_000  # new items per request (each is encoded from its content)
# An absolute path in a message (``/srv/run/model/x.json``): clients get only its last part.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[^\s'\"/:]+/)+(?=[^\s'\"/:]+)")
MAX_VALUE = 1e12  # |value| of an event: bigger ones would overflow the user's interest vector


class Event(BaseModel):
    """One piece of feedback."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    item: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    event: str = Field("click", min_length=1, max_length=64)
    value: float = 1.0
    timestamp: float | None = None

    @field_validator("value", "timestamp")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("value")
    @classmethod
    def _bounded(cls, value: float) -> float:
        if abs(value) > MAX_VALUE:
            raise ValueError(f"must be between {-MAX_VALUE:g} and {MAX_VALUE:g}")
        return value


class Item(BaseModel):
    """A new catalog row: the catalog's id field plus any of its other fields."""

    model_config = ConfigDict(extra="allow")


def _parse_filters(terms: list[str]) -> dict[str, list[str]] | None:
    where: dict[str, list[str]] = {}
    for term in terms:
        column, sep, values = term.partition("=")
        if not sep or not column or not values:
            raise MmrecError(f"filter expects column=value[,value], got {term!r}.")
        where[column] = values.split(",")
    return where or None


def public_message(exc: Exception) -> str:
    """An error's message for an HTTP client: artifacts and files by name, never where they live."""
    return ABSOLUTE_PATH.sub("", str(exc))


def create_app(service: Service, access: AccessPolicy | None = None) -> FastAPI:
    """The ASGI app over ``service`` (run it with uvicorn, or test it with ``TestClient``).
    ``access``: token, allowed ``Host`` names and body cap (:mod:`mmrec.serve.access`); by default
    only the body cap (``mmrec serve`` always passes the policy of its binding)."""
    app = FastAPI(title="mmrec", summary="Multimodal recommendations with online feedback",
                  version=__import__("mmrec").__version__)
    app.state.service = service
    app.add_middleware(Guard, policy=access or AccessPolicy(allowed_hosts=None))

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": public_message(exc)}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the offending input is left out: it may not even be JSON (NaN, inf)
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(MmrecError)
    async def _rejected(request: Request, exc: MmrecError) -> JSONResponse:
        return JSONResponse({"detail": public_message(exc)}, status_code=400)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return service.health()

    @app.get("/recommend/{user}")
    def recommend(user: Id, k: Annotated[int, Query(ge=1, le=service.config.max_k)] = 10,
                  exclude_seen: bool = True, explain: bool = False,
                  filter: Annotated[list[str], Query(max_length=16)] = [],  # noqa: B006
                  diversify: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
                  rerank: Annotated[str, Query(pattern="^(mmr|dpp|exposure)$")] = "mmr") -> dict[str, Any]:
        options = RankingOptions(k=k, exclude_seen=exclude_seen, where=_parse_filters(filter),
                                 diversify=diversify, rerank=rerank)
        return service.recommend(user, explain=explain, options=options)

    @app.post("/events")
    def events(body: Annotated[Event | Annotated[list[Event], Field(min_length=1, max_length=MAX_BATCH)],
                               Body()]) -> dict[str, Any]:
        batch = body if isinstance(body, list) else [body]
        applied = service.observe([event.model_dump() for event in batch])
        return {"applied": applied}

    @app.get("/explain/{user}/{item}")
    def explain(user: Id, item: Id) -> dict[str, Any]:
        return service.explain(user, item)

    @app.delete("/users/{user}")
    def forget(user: Id) -> dict[str, Any]:
        return {"user": user, "events_removed": service.forget(user)}

    @app.post("/items")
    def add_items(body: Annotated[Item | Annotated[list[Item], Field(min_length=1, max_length=MAX_ITEMS)],
                                  Body()]) -> dict[str, Any]:
        batch = body if isinstance(body, list) else [body]
        return service.add_items([item.model_dump() for item in batch])

    @app.post("/items/upload")
    async def upload_item(request: Request) -> dict[str, Any]:
        """One new item as multipart/form-data: the field ``item`` (its catalog fields as JSON) and
        the files ``image`` and/or ``audio``, stored by the server."""
        form = await request.form(max_files=2, max_fields=1)
        try:
            record = json.loads(str(form.get("item") or ""))
        except json.JSONDecodeError:
            raise MmrecError("the field 'item' must hold the new item's catalog fields as JSON.") from None
        if not isinstance(record, dict):
            raise MmrecError("the field 'item' must be a JSON object of catalog fields.")
        schema = service.catalog.schema
        for role in ("image", "audio"):
            upload = form.get(role)
            if upload is None or isinstance(upload, str):
                continue
            column = getattr(schema, role)
            if column is None:
                raise MmrecError(f"this catalog has no {role} field.")
            data = await upload.read()
            record[column] = await run_in_threadpool(service.store_upload, role, upload.filename or "", data)
        return await run_in_threadpool(service.add_items, [record])

    @app.get("/history/{user}")
    def history(user: Id, n: Annotated[int, Query(ge=1, le=200)] = 10) -> dict[str, Any]:
        return {"user": user, "events": service.history(user, n)}

    @app.get("/users")
    def users(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
        return {"users": service.users(limit)}

    @app.get("/media/{item}/{kind}")
    def media(item: Id, kind: Annotated[str, Path(pattern="^(image|audio)$")]) -> FileResponse:
        return FileResponse(service.media_path(item, kind))

    page = resources.files("mmrec.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    return app
