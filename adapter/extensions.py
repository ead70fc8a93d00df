"""Flask extensions, created unbound and initialised by the app factory."""

from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

# Named constraints, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}



class AdapterApi(Api):
    """flask-smorest's Api, answering errors in our one JSON shape."""

    def handle_http_exception(self, error):
        from .errors import render_http_exception

        return render_http_exception(error)


db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
api = AdapterApi()
