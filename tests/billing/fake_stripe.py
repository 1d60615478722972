"""A FAKE of Stripe's API for tests — not Stripe. Stripe's servers cannot be reached from the machines
the tests run on, so the official `stripe` SDK in Tessera talks to this small threaded HTTP server
instead (settings.STRIPE_API_BASE points the SDK's api_base at it). Everything on Tessera's side is
real: the SDK, its form encoding, its retries and idempotency keys, signature checks, the database.

What it models: only the endpoints Tessera uses (customers, prices by lookup key, products, meters,
Checkout sessions with a page to "pay" on, Billing Portal sessions, subscriptions, invoices, meter
events with identifier uniqueness and idempotency-key replay, meter event summaries). Objects are
Stripe's own published examples (../shared/fixtures/stripe/fixtures3.json) with the fields a test
sets overwritten. Webhook events are signed exactly as Stripe signs them
(`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>`).

What it leaves out: payments themselves (a test decides a subscription's status), proration amounts
(a plan change's `proration_behavior` is only recorded),
invoices' amounts beyond the fixture's, Stripe's asynchronous meter aggregation (summaries are
exact at once), authentication (any key is accepted), rate limits and API versions.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path("/work/shared/fixtures/stripe/fixtures3.json")
if not FIXTURES.exists():  # the repository's sibling folder, wherever it is checked out
    FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "stripe" / "fixtures3.json"
_RESOURCES = json.loads(FIXTURES.read_text())["resources"]


def fixture(resource: str, /, **fields) -> dict:
    """Stripe's example `resource` object with `fields` set."""
    obj = copy.deepcopy(_RESOURCES[resource])
    obj.update(fields)
    return obj


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe sends with `payload`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def form_decode(body: str) -> dict:
    """Stripe's form encoding (`a[b][0][c]=x`) back into objects and lists."""
    root: dict = {}
    for key, value in urllib.parse.parse_qsl(body, keep_blank_values=True):
        parts = [key.split("[", 1)[0]] + [p.rstrip("]") for p in key.split("[")[1:]]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def lists(node):
        if isinstance(node, dict):
            if node and all(k.isdigit() for k in node):
                return [lists(node[k]) for k in sorted(node, key=int)]
            return {k: lists(v) for k, v in node.items()}
        return node

    return lists(root)


class StripeError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


class FakeStripe:
    """The fake's state and its test controls. `start()` serves it on 127.0.0.1."""

    def __init__(self, webhook_secret: str = "whsec_fake_test_secret"):
        self.webhook_secret = webhook_secret
        self.webhook_url: str | None = None  # where deliver() posts events (a live Tessera's receiver)
        self.webhook_host: str | None = None  # its Host header (a workspace domain no resolver knows)
        self.lock = threading.RLock()
        self.customers: dict[str, dict] = {}
        self.products: dict[str, dict] = {}
        self.prices: dict[str, dict] = {}
        self.meters: dict[str, dict] = {}
        self.sessions: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.invoices: dict[str, dict] = {}
        self.meter_events: dict[str, dict] = {}  # identifier -> event
        self.idempotent: dict[str, tuple[int, dict]] = {}
        self.requests: list[tuple[str, str]] = []
        self.delivered: list[dict] = []
        self.updates: list[dict] = []  # subscription updates received (plan changes), as sent
        self.errors: list[str] = []  # the fake's own failures (a test may assert there are none)
        # Called with each meter event just accepted, before the answer is sent (a test may stall it).
        self.on_meter_event = None
        self.server: ThreadingHTTPServer | None = None

    # --- serving ----------------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, body, content_type: str = "application/json", headers=None):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str):
                parsed = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                params = form_decode(raw if method == "POST" else parsed.query)
                fake.requests.append((method, parsed.path))
                try:
                    if parsed.path.startswith(("/pay/", "/portal/")):
                        status, body, headers = fake.page(method, parsed.path, params)
                        return self._answer(status, body.encode(), "text/html; charset=utf-8", headers)
                    key = self.headers.get("Idempotency-Key")
                    if method == "POST" and key and key in fake.idempotent:
                        status, body = fake.idempotent[key]
                        return self._answer(status, body, headers={"Idempotent-Replayed": "true"})
                    status, body = 200, fake.route(method, parsed.path, params)
                except StripeError as exc:
                    status = exc.status
                    body = {"error": {"type": "invalid_request_error", "code": exc.code, "message": exc.message}}
                    if exc.param:
                        body["error"]["param"] = exc.param
                except Exception as exc:  # a bug of the fake's: say so to the SDK instead of hanging up
                    fake.errors.append(repr(exc))
                    status, body = 500, {"error": {"type": "api_error", "message": f"fake: {exc!r}"}}
                if method == "POST" and self.headers.get("Idempotency-Key"):
                    fake.idempotent[self.headers["Idempotency-Key"]] = (status, body)
                self._answer(status, body)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-stripe").start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    # --- the API ----------------------------------------------------------------------------------

    def route(self, method: str, path: str, p: dict):
        parts = path.strip("/").split("/")
        if parts[0] != "v1":
            raise StripeError(404, "resource_missing", f"Unrecognized request URL ({method}: {path}).")
        rest = "/".join(parts[1:])
        with self.lock:
            if method == "POST" and rest == "customers":
                return self._store(
                    self.customers,
                    fixture(
                        "customer",
                        id=new_id("cus"),
                        name=p.get("name"),
                        email=p.get("email"),
                        metadata=p.get("metadata", {}),
                    ),
                )
            if method == "POST" and rest == "products":
                return self._store(
                    self.products,
                    fixture(
                        "product", id=p.get("id") or new_id("prod"), name=p["name"], metadata=p.get("metadata", {})
                    ),
                )
            if method == "GET" and rest == "products":
                return self._list(list(self.products.values()))
            if method == "POST" and rest.startswith("products/"):
                self.products[parts[2]].update({k: v for k, v in p.items() if k in ("name", "metadata")})
                return self.products[parts[2]]
            if method == "POST" and rest == "prices":
                return self._price_create(p)
            if method == "GET" and rest == "prices":
                keys = set(p.get("lookup_keys") or [])
                found = [x for x in self.prices.values() if x["active"] and (not keys or x["lookup_key"] in keys)]
                return self._list(found)
            if method == "POST" and rest == "billing/meters":
                meter = fixture(
                    "billing.meter",
                    id=new_id("mtr"),
                    event_name=p["event_name"],
                    display_name=p["display_name"],
                    livemode=False,
                    default_aggregation={"formula": p["default_aggregation"]["formula"]},
                    customer_mapping={"event_payload_key": "stripe_customer_id", "type": "by_id"},
                )
                return self._store(self.meters, meter)
            if method == "GET" and rest == "billing/meters":
                return self._list(list(self.meters.values()))
            if (
                method == "GET"
                and len(parts) == 5
                and parts[1:3] == ["billing", "meters"]
                and parts[4] == "event_summaries"
            ):
                return self._summaries(parts[3], p)
            if method == "POST" and rest == "billing/meter_events":
                return self._meter_event(p)
            if method == "POST" and rest == "checkout/sessions":
                return self._checkout_create(p)
            if method == "POST" and rest == "billing_portal/sessions":
                sid = new_id("bps")
                return fixture(
                    "billing_portal.session",
                    id=sid,
                    customer=p["customer"],
                    return_url=p["return_url"],
                    url=f"{self.url}/portal/{sid}?return={urllib.parse.quote(p['return_url'])}",
                )
            if method == "POST" and len(parts) == 3 and parts[1] == "subscriptions":
                return self._subscription_update(parts[2], p)
            if method == "GET" and rest == "subscriptions":
                found = [s for s in self.subscriptions.values() if s["customer"] == p.get("customer")]
                if p.get("status") != "all":
                    found = [s for s in found if s["status"] != "canceled"]
                return self._list(sorted(found, key=lambda s: -s["created"]))
            if method == "GET" and rest.startswith("subscriptions/"):
                sub = self.subscriptions.get(parts[2])
                if sub is None:
                    raise StripeError(404, "resource_missing", f"No such subscription: '{parts[2]}'", "id")
                return sub
            if method == "GET" and rest == "invoices":
                found = [i for i in self.invoices.values() if i["customer"] == p.get("customer")]
                return self._list(sorted(found, key=lambda i: -i["created"]))
        raise StripeError(404, "resource_missing", f"Unrecognized request URL ({method}: {path}).")

    def _subscription_update(self, sid: str, p: dict) -> dict:
        """A plan change: items' prices replaced or deleted by item id. The proration asked for is kept
        in `updates` (the fake computes no prorated amounts)."""
        sub = self.subscriptions.get(sid)
        if sub is None:
            raise StripeError(404, "resource_missing", f"No such subscription: '{sid}'", "id")
        by_id = {item["id"]: item for item in sub["items"]["data"]}
        for change in p.get("items") or []:
            item = by_id.get(change.get("id"))
            if item is None:
                raise StripeError(400, "resource_missing", f"No such subscription item: '{change.get('id')}'", "items")
            if change.get("deleted") in ("true", True):
                sub["items"]["data"].remove(item)
            elif change.get("price"):
                if change["price"] not in self.prices:
                    raise StripeError(400, "resource_missing", f"No such price: '{change['price']}'", "items")
                item["price"] = copy.deepcopy(self.prices[change["price"]])
        self.updates.append({"subscription": sid, **p})
        return sub

    def _store(self, table: dict, obj: dict) -> dict:
        table[obj["id"]] = obj
        return obj

    def _list(self, items: list) -> dict:
        return {"object": "list", "data": items, "has_more": False, "url": "/v1/fake"}

    def _price_create(self, p: dict) -> dict:
        for other in self.prices.values():
            if p.get("lookup_key") and other["lookup_key"] == p["lookup_key"]:
                if p.get("transfer_lookup_key") in ("true", True):
                    other["lookup_key"] = None
                else:
                    raise StripeError(400, "lookup_key_exists", "A price with this lookup_key already exists.")
        recurring = p.get("recurring") or {}
        price = fixture(
            "price",
            id=new_id("price"),
            product=p["product"],
            currency=p.get("currency", "usd"),
            lookup_key=p.get("lookup_key"),
            unit_amount=int(p["unit_amount"]) if p.get("unit_amount") else None,
            billing_scheme=p.get("billing_scheme", "per_unit"),
            tiers_mode=p.get("tiers_mode"),
            metadata=p.get("metadata", {}),
            recurring={
                "interval": recurring.get("interval", "month"),
                "interval_count": 1,
                "meter": recurring.get("meter"),
                "usage_type": recurring.get("usage_type", "licensed"),
                "trial_period_days": None,
            },
        )
        return self._store(self.prices, price)

    def _meter_event(self, p: dict) -> dict:
        identifier = p.get("identifier") or new_id("mev")
        if identifier in self.meter_events:
            raise StripeError(
                400, "duplicate_meter_event", f"An event with identifier {identifier} already exists.", "identifier"
            )
        event = fixture(
            "billing.meter_event",
            event_name=p["event_name"],
            identifier=identifier,
            payload=p["payload"],
            timestamp=int(p.get("timestamp") or time.time()),
            created=int(time.time()),
            livemode=False,
        )
        self.meter_events[identifier] = event
        if self.on_meter_event is not None:
            self.on_meter_event(event)
        return event

    def _summaries(self, meter_id: str, p: dict) -> dict:
        meter = self.meters[meter_id]
        start, end = int(p["start_time"]), int(p["end_time"])
        total = sum(
            float(e["payload"]["value"])
            for e in self.meter_events.values()
            if e["event_name"] == meter["event_name"]
            and e["payload"].get("stripe_customer_id") == p["customer"]
            and start <= e["timestamp"] < end
        )
        summary = fixture(
            "billing.meter_event_summary",
            id=new_id("mtrusg"),
            meter=meter_id,
            aggregated_value=total,
            start_time=start,
            end_time=end,
            livemode=False,
        )
        return self._list([summary])

    def meter_total(self, customer: str) -> int:
        return sum(
            int(e["payload"]["value"])
            for e in self.meter_events.values()
            if e["payload"]["stripe_customer_id"] == customer
        )

    # --- Checkout -----------------------------------------------------------------------------------

    def _checkout_create(self, p: dict) -> dict:
        if p.get("mode") != "subscription":
            raise StripeError(400, "parameter_invalid", "Only subscription mode is modelled.", "mode")
        for item in p["line_items"]:
            if item["price"] not in self.prices:
                raise StripeError(400, "resource_missing", f"No such price: '{item['price']}'", "line_items")
        sid = new_id("cs_test")
        session = fixture(
            "checkout.session",
            id=sid,
            mode="subscription",
            status="open",
            customer=p.get("customer"),
            client_reference_id=p.get("client_reference_id"),
            success_url=p["success_url"],
            cancel_url=p.get("cancel_url"),
            subscription=None,
            url=f"{self.url}/pay/{sid}",
            metadata=p.get("metadata", {}),
        )
        session["_line_items"] = p["line_items"]
        session["_subscription_data"] = p.get("subscription_data", {})
        self.sessions[sid] = session
        return {k: v for k, v in session.items() if not k.startswith("_")}

    def checkout_complete(self, session_id: str) -> dict:
        """What paying on Checkout does: the subscription (trialing when the session asked for a
        trial), then `checkout.session.completed` and `customer.subscription.created` delivered."""
        with self.lock:
            session = self.sessions[session_id]
            data = session["_subscription_data"]
            trial_days = int(data.get("trial_period_days") or 0)
            prices = [self.prices[item["price"]] for item in session["_line_items"]]
            sub = self.subscription_create(
                customer=session["customer"], prices=prices, trial_days=trial_days, metadata=data.get("metadata", {})
            )
            session.update(status="complete", subscription=sub["id"], payment_status="paid")
            public = {k: v for k, v in session.items() if not k.startswith("_")}
        self.deliver("checkout.session.completed", public)
        self.deliver("customer.subscription.created", sub)
        return sub

    def page(self, method: str, path: str, params: dict):
        kind, sid = path.strip("/").split("/")[:2]
        if kind == "portal":
            back = params.get("return", "/")
            return 200, f'<html><body><h1>Fake billing portal</h1><a href="{back}">Return</a></body></html>', {}
        session = self.sessions[sid]
        if method == "POST":
            self.checkout_complete(sid)
            return 303, "", {"Location": session["success_url"]}
        return (
            200,
            (
                f'<html><body><h1>Fake Stripe Checkout</h1><form method="post" action="/pay/{sid}">'
                '<button type="submit">Subscribe</button></form></body></html>'
            ),
            {},
        )

    # --- the world changing (tests' controls) -------------------------------------------------------

    def subscription_create(
        self, *, customer: str, prices: list[dict], trial_days: int = 0, metadata=None, status: str | None = None
    ) -> dict:
        now = int(time.time())
        sid = new_id("sub")
        period_end = now + (trial_days * 86400 if trial_days else 30 * 86400)
        template_item = _RESOURCES["subscription"]["items"]["data"][0]
        items = [
            {
                **copy.deepcopy(template_item),
                "id": new_id("si"),
                "price": copy.deepcopy(price),
                "subscription": sid,
                "quantity": 1 if price["recurring"]["usage_type"] == "licensed" else None,
                "current_period_start": now,
                "current_period_end": period_end,
            }
            for price in prices
        ]
        sub = fixture(
            "subscription",
            id=sid,
            customer=customer,
            status=status or ("trialing" if trial_days else "active"),
            metadata=metadata or {},
            trial_start=now if trial_days else None,
            trial_end=now + trial_days * 86400 if trial_days else None,
            cancel_at_period_end=False,
            created=now,
            start_date=now,
            livemode=False,
            items={
                "object": "list",
                "data": items,
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sid}",
            },
        )
        self.subscriptions[sid] = sub
        return sub

    def subscription_set(self, subscription_id: str, **fields) -> dict:
        with self.lock:
            sub = self.subscriptions[subscription_id]
            sub.update(fields)
            return copy.deepcopy(sub)

    def invoice_create(self, *, subscription_id: str, status: str = "paid", amount: int = 2900) -> dict:
        sub = self.subscriptions[subscription_id]
        iid = new_id("in")
        invoice = fixture(
            "invoice",
            id=iid,
            customer=sub["customer"],
            status=status,
            amount_due=amount,
            amount_paid=amount if status == "paid" else 0,
            currency="usd",
            created=int(time.time()),
            number=f"FAKE-{len(self.invoices) + 1:04d}",
            hosted_invoice_url=f"{self.url}/invoice/{iid}",
            parent={
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {"metadata": {}, "subscription": subscription_id},
            },
        )
        self.invoices[iid] = invoice
        return invoice

    def event(self, type: str, obj: dict, *, event_id: str | None = None, created: int | None = None) -> dict:
        return fixture(
            "event",
            id=event_id or new_id("evt"),
            type=type,
            created=created or int(time.time()),
            livemode=False,
            api_version="2026-10-28.endive",
            data={"object": copy.deepcopy(obj)},
        )

    def signed(self, event: dict, *, secret: str | None = None, timestamp: int | None = None) -> tuple[bytes, str]:
        payload = json.dumps(event).encode()
        return payload, signature_header(payload, secret or self.webhook_secret, timestamp)

    def deliver(self, type: str, obj: dict) -> int | None:
        """Send an event, signed, to `webhook_url` (if set) as Stripe would; the HTTP status."""
        event = self.event(type, obj)
        self.delivered.append(event)
        if not self.webhook_url:
            return None
        payload, header = self.signed(event)
        request = urllib.request.Request(
            self.webhook_url,
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": header,
                **({"Host": self.webhook_host} if self.webhook_host else {}),
            },
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            return response.status
