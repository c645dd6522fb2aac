"""The admin's pages, behind a login with the admin token: products (new, edit, delete), status, models."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from flask import current_app, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError

from backend.config import current_settings
from backend.core.extensions import db
from backend.core.security import is_admin_token, wait_after_failures
from backend.core.uploads import checked_uploads
from backend.db.photos import failed_photos
from backend.db.products import ProductFilter, ProductIn, get_product, list_products
from backend.domain.experiments import check_arms, parse_arm
from backend.domain.products import ProductChanges
from backend.errors import LookalikeError, NotFound
from backend.index import IndexUnavailable
from backend.services import catalog, events, experiments
from backend.services.models import (
    RegistryError,
    ReindexRunning,
    builds,
    check_activatable,
    list_models,
    refuse_a_second_reindex,
)
from backend.services.status import Stats, collect_stats
from backend.serving.active import active_collection
from backend.web.charts import line_chart
from backend.web.forms import ActionForm, AnalyticsQuery, LoginForm, PhotosForm, ProductForm, load_args
from backend.web.pages import admin_required, close_admin_session, open_admin_session, pages_blueprint, safe_next
from backend.worker.enqueue import enqueue_embedding, enqueue_experiment, enqueue_reindex
from ml.versions import builtin_names

log = logging.getLogger(__name__)


def photos_body_bytes() -> int:
    """The pages that take photos take as many as the API does (MAX_UPLOAD_MB each, MAX_IMAGES_PER_REQUEST)."""
    return int(current_app.config["MAX_CONTENT_LENGTH"])


bp = pages_blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    body_limits={"admin.new_product": photos_body_bytes, "admin.add_photos": photos_body_bytes},
    open_posts={"admin.login", "admin.logout"},
)
PER_PAGE = 50
# A build that has not moved for this long is taken as dead (its process stopped): it no longer blocks another.


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The admin token, once, for a signed session cookie; a wrong token gets one message, whatever it was."""
    form = LoginForm()
    if request.method == "GET":
        return render_template("admin/login.html", form=form)
    wait = wait_after_failures()
    if wait is not None:
        form.token.errors = [f"Too many failed logins from this address: try again in {wait} s."]
        return render_template("admin/login.html", form=form), 429, {"Retry-After": str(wait)}
    if not is_admin_token(form.token.data):
        form.token.errors = ["That is not the admin token."]
        return render_template("admin/login.html", form=form), 401
    open_admin_session(timedelta(hours=current_settings().admin_session_hours))
    log.info("admin logged in from %s", request.remote_addr)
    return redirect(safe_next(request.args.get("next")))


@bp.post("/logout")
def logout() -> Any:
    close_admin_session()
    flash("Logged out.")
    return redirect(url_for("shop.catalog"))


@bp.get("/")
@admin_required
def home() -> Any:
    return redirect(url_for("admin.status"))


@bp.get("/products")
@admin_required
def products() -> Any:
    """Products, newest first, with their photos' status; find one by sku."""
    page = max(1, request.args.get("page", 1, type=int) or 1)
    sku = request.args.get("sku", "").strip() or None
    items, total = list_products(
        session=db.session, page=page, per_page=PER_PAGE, where=ProductFilter(sku=sku), newest_first=True
    )
    pages = max(1, -(-total // PER_PAGE))
    return render_template(
        "admin/products.html", items=items, total=total, page=page, pages=pages, sku=sku or "", action=ActionForm()
    )


@bp.route("/products/new", methods=["GET", "POST"])
@admin_required
def new_product() -> Any:
    """The API's fields and several photos; an error is shown beside its field and nothing is stored."""
    form = ProductForm()
    if request.method == "GET":
        return render_template("admin/product_form.html", form=form, product=None)
    fields = form.checked(patch=False)
    if fields is None:
        try:  # the photos' own errors too, all at once
            checked_uploads(request.files.getlist("images"))
        except LookalikeError as exc:
            form.refused(exc)
        return render_template("admin/product_form.html", form=form, product=None), 400
    try:
        created = catalog.create_with_photos(
            session=db.session, product_in=ProductIn(**fields), uploads=request.files.getlist("images")
        )
    except LookalikeError as exc:
        form.refused(exc)
        return render_template("admin/product_form.html", form=form, product=None), exc.status
    flash(f"Created {created.sku} with {len(created.images)} photo(s).")
    return redirect(url_for("shop.product", product_id=created.id))


@bp.route("/products/<int:product_id>/edit", methods=["GET", "POST"])
@admin_required
def edit_product(product_id: int) -> Any:
    """Change the fields; add or remove photos; delete the product."""
    item = get_product(session=db.session, product_id=product_id)
    form = ProductForm()
    context = {"product": item, "photos_form": PhotosForm(), "action": ActionForm()}
    if request.method == "GET":
        form.fill(item)
        return render_template("admin/product_form.html", form=form, **context)
    changes = form.checked(patch=True)
    if changes is None:
        return render_template("admin/product_form.html", form=form, **context), 400
    try:
        catalog.change_product(session=db.session, product_id=product_id, changes=cast(ProductChanges, changes))
    except LookalikeError as exc:
        db.session.rollback()
        form.refused(exc)
        return render_template("admin/product_form.html", form=form, **context), exc.status
    flash("Saved.")
    return redirect(url_for("admin.edit_product", product_id=product_id))


@bp.post("/products/<int:product_id>/photos")
@admin_required
def add_photos(product_id: int) -> Any:
    try:
        added = catalog.add_photos(session=db.session, product_id=product_id, uploads=request.files.getlist("images"))
    except NotFound:
        raise  # the 404 page
    except LookalikeError as exc:
        flash(f"No photo added: {exc.message}", "error")
    else:
        flash(f"Added {len(added)} photo(s).")
    return redirect(url_for("admin.edit_product", product_id=product_id))


@bp.post("/photos/<int:image_id>/delete")
@admin_required
def delete_photo(image_id: int) -> Any:
    product_id = catalog.remove_photo(session=db.session, image_id=image_id)
    flash("Photo deleted.")
    return redirect(url_for("admin.edit_product", product_id=product_id))


@bp.post("/products/<int:product_id>/delete")
@admin_required
def delete_product(product_id: int) -> Any:
    item = get_product(session=db.session, product_id=product_id)
    sku = item.sku
    catalog.remove_product(session=db.session, product_id=product_id)
    flash(f"Deleted {sku}.")
    return redirect(url_for("admin.products"))


@bp.get("/status")
@admin_required
def status() -> Any:
    """Photos by status, failed photos with their reasons, the model and the index, Flower."""
    settings = current_settings()
    try:
        stats: Stats | None = collect_stats(session=db.session, settings=settings)
    except IndexUnavailable as exc:
        log.warning("status page: vector index unavailable: %s", exc)
        stats = None
    flower = None
    if not settings.tasks_in_process:
        flower = settings.flower_url or f"http://{settings.flower_address}:{settings.flower_port}/"
    return render_template(
        "admin/status.html",
        stats=stats,
        failed=failed_photos(session=db.session),
        flower=flower,
        action=ActionForm(),
    )


@bp.post("/photos/retry")
@admin_required
def retry() -> Any:
    """Embed failed photos again: one (`image_id`) or all of them."""
    one = request.form.get("image_id", type=int)
    ids = catalog.retry_failed(session=db.session, image_ids=[one] if one else None)
    flash(f"Queued {len(ids)} photo(s) for embedding again." if ids else "No failed photo to retry.")
    return redirect(url_for("admin.status"))


@bp.get("/models")
@admin_required
def models() -> Any:
    """The built-in and registered models, the active one, and a reindex's progress while one runs."""
    active = active_collection(session=db.session, settings=current_settings()).model_version
    registered = list_models(session=db.session)
    building = builds(session=db.session)
    return render_template(
        "admin/models.html",
        active=active,
        builtins=builtin_names(),
        registered=registered,
        builds=building,
        running=any(not b.stalled for b in building),
        experiment=experiments.current_experiment(session=db.session),
        action=ActionForm(),
    )


@bp.post("/models/experiment/start")
@admin_required
def start_experiment() -> Any:
    """Start a model A/B test from the arms in the form (`NAME=VERSION[:WEIGHT]` each); its builds run in the
    background, their progress on this page."""
    texts = [text.strip() for text in request.form.getlist("arm") if text.strip()]
    try:
        arms = check_arms([parse_arm(text) for text in texts])
        refuse_a_second_reindex(session=db.session)
        active = active_collection(session=db.session, settings=current_settings())
        experiments.check_versions(db.session, arms, active.model_version)
    except LookalikeError as exc:
        flash(f"Cannot start the experiment: {exc.message}", "error")
        return redirect(url_for("admin.models"))
    enqueue_experiment(texts)
    flash(f"Starting the experiment {', '.join(texts)}: arms on another model are built first.")
    return redirect(url_for("admin.models"))


@bp.post("/models/experiment/stop")
@admin_required
def stop_experiment() -> Any:
    """Stop the running experiment keeping one arm: its model becomes (or stays) the active one."""
    keep = request.form.get("keep", "").strip()
    try:
        report = experiments.stop_experiment(
            session=db.session, settings=current_settings(), keep=keep, enqueue=enqueue_embedding
        )
    except LookalikeError as exc:
        flash(f"Cannot stop the experiment: {exc.message}", "error")
        return redirect(url_for("admin.models"))
    flash(f"Experiment stopped: arm {report.kept} kept, {report.model_version} answers every visitor.")
    return redirect(url_for("admin.models"))


@bp.post("/models/activate")
@admin_required
def activate() -> Any:
    """Reindex every photo with a model and switch to it; the models page shows the progress."""
    version = request.form.get("version", "").strip()
    try:
        refuse_a_second_reindex(session=db.session)
    except ReindexRunning as exc:
        flash(f"Cannot activate: {exc.message}", "error")
        return redirect(url_for("admin.models"))
    try:
        check_activatable(session=db.session, version=version)
    except RegistryError as exc:
        flash(f"Cannot activate: {exc}", "error")
        return redirect(url_for("admin.models"))
    enqueue_reindex(version)
    flash(f"Reindexing every photo with {version}; it becomes active when all are done.")
    return redirect(url_for("admin.models"))


@bp.get("/analytics")
@admin_required
def analytics() -> Any:
    """What shoppers did with the look-alikes: by model and arm, per day as a chart, and an experiment's result."""
    try:
        query = load_args(AnalyticsQuery(), request.args)
    except ValidationError as exc:
        flash(f"Bad dates: {exc.messages}", "error")
        query = {"start": None, "end": None}
    end = query["end"] or datetime.now(UTC).date()
    start = query["start"] or end - timedelta(days=29)
    try:
        report = events.analytics(session=db.session, start=start, end=end)
    except LookalikeError as exc:
        flash(exc.message, "error")
        report = events.analytics(session=db.session, start=end - timedelta(days=29), end=end)
    series: dict[str, list[tuple[str, float]]] = {}
    for day in report["by_day"]:
        if day["ctr"] is not None:
            name = day["model_version"] + (f" ({day['arm']})" if day["arm"] else "")
            series.setdefault(name, []).append((day["day"], day["ctr"]))
    chart = line_chart(series, title="Click-through rate of the look-alikes, per day")
    return render_template("admin/analytics.html", report=report, chart=chart, start=start, end=end)
