"""The API docs UI's own files, served by the adapter: ``/docs`` works on a machine
without internet (Swagger UI from the ``swagger-ui-bundle`` package, Apache-2.0; its
licence, as the package ships it, is served at ``/docs/assets/LICENSE``)."""

from __future__ import annotations

from importlib import metadata

from flask import Blueprint, Flask, Response
from swagger_ui_bundle import swagger_ui_path

#: Where the files are, relative to the ``/docs`` page (so a ``SCRIPT_NAME`` prefix holds).
ASSETS = "docs/assets/"
PACKAGE = "swagger-ui-bundle"


def init_docs_assets(app: Flask) -> None:
    assets = Blueprint("docs_assets", __name__, static_folder=swagger_ui_path,
                       static_url_path="/docs/assets")

    @assets.get("/docs/assets/LICENSE")
    def licence() -> Response:
        text = metadata.distribution(PACKAGE).read_text("LICENSE") or "Apache-2.0"
        return Response(text, mimetype="text/plain")

    app.register_blueprint(assets)
