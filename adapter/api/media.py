"""``GET /v1/media/<site>/<token>``: an attachment re-hosted for a site's helpline.

Only for a site with ``[attachments.rehost]`` on (``docs/attachments.md``). No
credential: the unguessable token is the link's secret, and it expires. Served as a
download, never rendered by the browser as a page of ours.
"""

from __future__ import annotations

from flask import send_file
from flask.views import MethodView

from adapter.api.blueprint import Blueprint

from .. import media_store
from ..errors import ApiError, ErrorSchema
from ..state import state_of

blp = Blueprint("media", __name__, url_prefix="/v1/media",
                description="Attachments re-hosted for a helpline (opt-in per site)")


@blp.route("/<site>/<token>")
class RehostedMedia(MethodView):
    @blp.response(200, description="The file, with its content type", content_type="*/*")
    @blp.alt_response(404, schema=ErrorSchema,
                      description="No such file for this site, expired, or the site does "
                                  "not re-host")
    def get(self, site, token):
        """A re-hosted attachment: the link the helpline was given."""
        known = state_of().sites.get(site)
        rehost = known.attachments.rehost if known is not None else None
        found = media_store.stored(rehost.directory, token) \
            if rehost is not None and rehost.enabled and rehost.directory else None
        if found is None:
            raise ApiError(404, "not_found", "no such file")
        path, content_type = found
        response = send_file(path, mimetype=content_type, as_attachment=True,
                             download_name=token, conditional=False, etag=False)
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
