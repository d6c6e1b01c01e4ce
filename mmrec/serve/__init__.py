"""``mmrec serve``: the recommendation loop over HTTP (recommend, feedback, explain, forget, new
items) and a page to look at recommendations. :class:`Service` holds the state; the FastAPI app
(:func:`mmrec.serve.app.create_app`, extra ``mmrec[serve]``) only validates and serialises."""

from mmrec.serve.service import NotFound, ServeConfig, Service

__all__ = ["NotFound", "ServeConfig", "Service"]
