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
 *
 * Events (POST /api/v1/events by navigator.sendBeacon): an impression when a row is shown, a click when a
 * look-alike is followed, with a random visitor id kept in localStorage (no cookie, no personal data). On the
 * product page a shopper reached that way, the shop's own code may report
 *   Lookalike.track("add_to_cart", "SKU") or Lookalike.track("purchase", "SKU")
 * and the event is credited to the look-alikes row that led there (nothing is sent otherwise).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script && script.src ? new URL(script.src, document.baseURI).origin : "";
  var STYLE_ID = "lookalike-widget-style";
  var VISITOR_KEY = "lookalike-visitor";
  var LED_KEY = "lookalike-led"; // sku -> the click that led to its page, for add_to_cart and purchase
  var pageVisitor = null;

  function randomId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function visitor() {
    try {
      var id = localStorage.getItem(VISITOR_KEY);
      if (!id) {
        id = randomId();
        localStorage.setItem(VISITOR_KEY, id);
      }
      return id;
    } catch (error) { // storage refused (a private window): one id for this page
      pageVisitor = pageVisitor || randomId();
      return pageVisitor;
    }
  }

  function send(events) {
    var body = JSON.stringify({ events: events });
    var url = base + "/api/v1/events";
    // text/plain: a simple request, no preflight; the API reads the body as JSON whatever its type.
    if (navigator.sendBeacon && navigator.sendBeacon(url, new Blob([body], { type: "text/plain" }))) return;
    fetch(url, { method: "POST", body: body, keepalive: true, credentials: "omit",
      headers: { "Content-Type": "text/plain" } }).catch(function () {});
  }

  function led() {
    try { return JSON.parse(localStorage.getItem(LED_KEY) || "{}"); } catch (error) { return {}; }
  }

  function remember(sku, event) {
    try {
      var all = led();
      all[sku] = event;
      var skus = Object.keys(all);
      if (skus.length > 50) delete all[skus[0]];
      localStorage.setItem(LED_KEY, JSON.stringify(all));
    } catch (error) { /* nothing to credit later */ }
  }
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
    params.set("visitor", visitor()); // while a model A/B test runs, the visitor's arm answers
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

  function card(item, currency, position, body) {
    var product = item.product;
    var li = document.createElement("li");
    li.className = "lookalike-card";
    var href = product.url ? webLink(product.url) : null;
    var box = document.createElement(href ? "a" : "div");
    if (href) {
      box.href = href;
      box.addEventListener("click", function () {
        var click = {
          type: "click", query: body.query_product_id, product: product.id, position: position,
          visitor: visitor(), model_version: body.model_version,
        };
        if (body.arm) click.arm = body.arm;
        remember(product.sku, click);
        send([click]);
      });
    }
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
    body.items.forEach(function (item, n) { list.appendChild(card(item, currency, n + 1, body)); });
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
        if (body.items && body.items.length && body.query_product_id) {
          var impression = {
            type: "impression", query: body.query_product_id, visitor: visitor(), model_version: body.model_version,
            shown: body.items.map(function (item) { return item.product.id; }),
          };
          if (body.arm) impression.arm = body.arm;
          send([impression]);
        }
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

  window.Lookalike = {
    /* add_to_cart or purchase of the product with this sku, credited to the look-alikes click that led here. */
    track: function (type, sku) {
      var click = led()[sku];
      if (!click || (type !== "add_to_cart" && type !== "purchase")) return false;
      send([{ type: type, query: click.query, product: click.product, position: click.position,
        visitor: visitor(), model_version: click.model_version, arm: click.arm }]);
      return true;
    },
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
