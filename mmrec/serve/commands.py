"""The serving commands of the ``mmrec`` CLI: ``mmrec serve`` (the HTTP API over a trained run) and
``mmrec forget`` (a user removed from a served deployment's state); :mod:`mmrec.cli` adds them."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path
from typing import Any

from mmrec.errors import ConfigError

__all__ = ["add_serve_parser", "add_forget_parser", "cmd_serve", "cmd_forget"]

logger = logging.getLogger("mmrec")


def cmd_serve(args: argparse.Namespace) -> int:
    from mmrec.serve import ServeConfig, Service

    try:
        import uvicorn

        from mmrec.serve.app import create_app
    except ImportError as exc:
        raise ConfigError("mmrec serve needs FastAPI and uvicorn: pip install 'mmrec[serve]'") from exc
    from mmrec.serve.access import AccessPolicy, check_binding, read_token

    token = read_token(args.token_file)
    check_binding(args.host, token, insecure=args.insecure)  # before minutes of loading
    access = AccessPolicy.for_binding(args.host, token=token, max_body=args.max_body,
                                      allowed_hosts=[h for h in (args.allowed_hosts or "").split(",") if h])
    config = ServeConfig(alpha=args.alpha, half_life=args.half_life, diversify_by=args.diversify_by,
                         media_root=args.media_root, upload_dir=args.upload_dir)
    state = None if args.db else (args.state or Path(args.model) / "serve-state")
    service = Service.from_paths(args.model, args.catalog, index=args.index, items=args.items,
                                 events=args.events, config=config, state=state, db=args.db,
                                 users=args.user_attributes)
    logger.info("serving %s on http://%s:%d (token: %s)", service.index, args.host, args.port,
                "required" if token else "none")
    gc.collect()
    gc.freeze()  # the loaded state is long-lived: later collections do not walk it (shorter pauses)
    sys.setswitchinterval(0.001)  # a read waiting on a write's Python work gets the GIL sooner
    uvicorn.run(create_app(service, access), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from mmrec.serve.store import forget_user, open_store

    store = open_store(args.state, db=args.db)
    try:
        in_store, in_file = forget_user(store, args.user, events_file=args.events)
    finally:
        store.close()
    print(f"forgot {args.user!r}: {in_store} stored events" + (f", {in_file} rows of {Path(args.events).name}"
                                                               if args.events else ""))
    return 0


def add_forget_parser(sub: Any) -> None:
    """``mmrec forget``."""
    p = sub.add_parser("forget", help="forget a user for good in a served deployment's state",
                       description="Delete a user's events from the state of `mmrec serve` (--state or "
                       "--db; a salted hash stays so re-imports skip them) and from its events file; "
                       "works while no server runs, and a running one applies it at its next request.")
    p.add_argument("user", help="the user id")
    p.add_argument("--state", default=None, help="the server's --state folder")
    p.add_argument("--db", default=None, help="the server's --db postgresql:// URL")
    p.add_argument("--events", default=None, help="the events file the server was started with")
    p.set_defaults(func=cmd_forget)


def add_serve_parser(sub: Any) -> None:
    """``mmrec serve``."""
    p = sub.add_parser("serve", help="HTTP API and page: recommend, feedback, explain, forget, add items",
                       description="Serve a trained run over HTTP (FastAPI + uvicorn, extra "
                       "mmrec[serve]): recommendations that follow feedback at once, explanations, "
                       "forgetting users, new items encoded from content; a page at / to look at "
                       "them. See docs/serving.md.")
    p.add_argument("--model", required=True, help="`mmrec train` output folder (or its model/ folder)")
    p.add_argument("--catalog", required=True, help="catalog file (titles, categories, media)")
    p.add_argument("--index", default=None, help="index folder (default: built from the run's vectors)")
    p.add_argument("--items", default=None, help="item vectors (default: the run's item_vectors)")
    p.add_argument("--events", default=None, help="behaviour log so far")
    p.add_argument("--user-attributes", default=None,
                   help="user attributes (CSV/Parquet with a user column): new users are served from them")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the short-term vector")
    p.add_argument("--half-life", type=float, default=3600.0, help="seconds for feedback to halve")
    p.add_argument("--diversify-by", default=None, help="item attribute the popularity fallback mixes")
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default: warning)")
    p.add_argument("--token-file", default=None,
                   help="file whose first line is the API token (default: $MMREC_API_TOKEN); with a "
                   "token every route but /health and the page needs 'Authorization: Bearer <token>'")
    p.add_argument("--allowed-hosts", default=None,
                   help="comma-separated Host names to answer besides localhost, 127.0.0.1, ::1 and the "
                   "bound address (others get 400: DNS rebinding)")
    p.add_argument("--max-body", type=int, default=8 * 2**20,
                   help="largest request body in bytes (default: 8 MiB; larger ones get 413)")
    p.add_argument("--state", default=None,
                   help="folder of the durable served state (SQLite): events, added items, forgotten "
                   "users (default: serve-state/ inside --model)")
    p.add_argument("--db", default=None,
                   help="postgresql://… URL of a shared store instead of --state (several replicas)")
    p.add_argument("--media-root", default=None,
                   help="folder that media of items added over HTTP must lie in (default: the catalog's)")
    p.add_argument("--upload-dir", default=None,
                   help="folder for media uploaded with POST /items/upload (default: media/ in --state; "
                   "with --db give a folder every replica reads)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host without a token (only behind another guard)")
    p.set_defaults(func=cmd_serve)
