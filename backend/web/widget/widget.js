/* Lookalike widget: look-alikes on a shop's own product pages. No build step, no other host.
 *
 *   <script src="https://lookalike.example/widget.js" async></script>
 *   <div data-lookalike-sku="SKU" data-limit="8"></div>
 *   optional: data-category="dress" (repeat with commas), data-look="0.5", data-title="You may also like"
 *
 * Each look-alike is a thumbnail with its title and price, a link to the product's `url`. The row is styled by
 * CSS custom properties the shop may override on the element or above it:
 *   --lookalike-gap, --lookalike-card-width, --lookalike-radius, --lookalike-font, --lookalike-color,
 *   --lookalike-muted, --lookalike-accent, --lookalike-background
 * An unknown sku, a product not indexed yet or an unreachable server leaves the element empty, with one console
 * warning: the page's layout never breaks. The API must list the page's origin in ALLOWED_ORIGINS.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script && script.src ? new URL(script.src, document.baseURI).origin : "";
  var STYLE_ID = "lookalike-widget-style";
  var CSS = [
    ".lookalike{font-family:var(--lookalike-font,inherit);color:var(--lookalike-color,inherit)}",
    ".lookalike-heading{font-size:1.1em;margin:0 0 .5em}",
    ".lookalike-row{display:grid;gap:var(--lookalike-gap,12px);list-style:none;margin:0;padding:0;",
    "grid-template-columns:repeat(auto-fill,minmax(var(--lookalike-card-width,140px),1fr))}",
    ".lookalike-card a,.lookalike-card>div{display:block;color:inherit;text-decoration:none;",
    "border-radius:var(--lookalike-radius,6px);background:var(--lookalike-background,transparent)}",
    ".lookalike-card a:focus-visible{outline:2px solid var(--lookalike-accent,#2563eb);outline-offset:2px}",
    ".lookalike-card img{display:block;width:100%;aspect-ratio:1/1;object-fit:cover;",
    "border-radius:var(--lookalike-radius,6px)}",
    ".lookalike-title{display:block;margin-top:.35em;font-size:.9em;line-height:1.3;overflow:hidden;",
    "text-overflow:ellipsis;white-space:nowrap}",
    ".lookalike-price{display:block;font-size:.85em;color:var(--lookalike-muted,#6b7280)}",
  ].join("");

  function addStyle() {
    if (document.getElementById(STYLE_ID)) return;
    var style = document.createElement("style");
    style.id = STYLE_ID;
    style.textContent = CSS;
    (document.head || document.documentElement).appendChild(style);
  }

  function query(element) {
    var params = new URLSearchParams();
    var limit = parseInt(element.getAttribute("data-limit") || "8", 10);
    params.set("limit", String(limit >= 1 && limit <= 100 ? limit : 8));
    (element.getAttribute("data-category") || "").split(",").forEach(function (category) {
      if (category.trim()) params.append("category", category.trim());
    });
    var look = element.getAttribute("data-look");
    if (look !== null && look !== "") params.set("look", look);
    return params.toString();
  }

  function webLink(url) {
    try {
      var parsed = new URL(url);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (error) {
      return null;
    }
  }

  function thumbnail(item) {
    var images = item.product.images || [];
    var shown = images.filter(function (image) { return image.id === item.image_id; })[0] || images[0];
    if (!shown) return null;
    return base + shown.url.replace(/^\/media\//, "/media/thumbs/");
  }

  function card(item, currency) {
    var product = item.product;
    var li = document.createElement("li");
    li.className = "lookalike-card";
    var href = product.url ? webLink(product.url) : null;
    var box = document.createElement(href ? "a" : "div");
    if (href) box.href = href;
    var src = thumbnail(item);
    if (src) {
      var img = document.createElement("img");
      img.src = src;
      img.alt = product.title;
      img.loading = "lazy";
      img.decoding = "async";
      box.appendChild(img);
    }
    var title = document.createElement("span");
    title.className = "lookalike-title";
    title.textContent = product.title;
    box.appendChild(title);
    if (product.price !== null && product.price !== undefined) {
      var price = document.createElement("span");
      price.className = "lookalike-price";
      price.textContent = currency.format(product.price);
      box.appendChild(price);
    }
    li.appendChild(box);
    return li;
  }

  function render(element, body) {
    if (!body.items || body.items.length === 0) return;
    var currency = new Intl.NumberFormat(document.documentElement.lang || undefined, {
      minimumFractionDigits: 2, maximumFractionDigits: 2,
    });
    var section = document.createElement("section");
    section.className = "lookalike";
    var heading = element.getAttribute("data-title");
    var list = document.createElement("ul");
    list.className = "lookalike-row";
    if (heading) {
      var h = document.createElement("h2");
      h.className = "lookalike-heading";
      h.textContent = heading;
      h.id = "lookalike-heading-" + Math.random().toString(36).slice(2);
      section.appendChild(h);
      list.setAttribute("aria-labelledby", h.id);
    } else {
      list.setAttribute("aria-label", "Similar products");
    }
    body.items.forEach(function (item) { list.appendChild(card(item, currency)); });
    section.appendChild(list);
    element.replaceChildren(section);
    element.setAttribute("data-lookalike-model", body.model_version);
  }

  function load(element) {
    if (element.getAttribute("data-lookalike-state")) return;
    element.setAttribute("data-lookalike-state", "loading");
    var sku = element.getAttribute("data-lookalike-sku");
    var url = base + "/api/v1/products/sku/" + sku.split("/").map(encodeURIComponent).join("/") +
      "/similar?" + query(element);
    fetch(url, { credentials: "omit", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (!response.ok) throw new Error(response.status + " " + (body.message || response.statusText));
          return body;
        });
      })
      .then(function (body) {
        render(element, body);
        element.setAttribute("data-lookalike-state", "shown");
      })
      .catch(function (error) {
        element.setAttribute("data-lookalike-state", "failed");
        console.warn("Lookalike: no look-alikes for sku " + JSON.stringify(sku) + ": " + error.message);
      });
  }

  function start() {
    addStyle();
    document.querySelectorAll("[data-lookalike-sku]").forEach(load);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
