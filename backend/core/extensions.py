"""Extension objects, bound to an app in the factory."""

from typing import Any

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session

# Named constraints so that Alembic can drop them again on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)

# What data-access functions take: a plain session, or Flask-SQLAlchemy's scoped `db.session`.
DbSession = Session | scoped_session[Any]
migrate = Migrate()
# Per client address; storage (memory in the embedded default, Redis with a broker) is chosen in the factory.
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
