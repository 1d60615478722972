"""Load generator of bench/api (its own process): `--concurrency` clients over loopback, each sending one
request after another for `--seconds`, after a `--warmup`. Prints one JSON line: latencies (ms), errors.

    python bench/api/load.py --base http://127.0.0.1:PORT --host bench.tessera.localhost \
        --op read|list|deep|filter_number|filter_text|create|patch|changes --target tessera|baseline|kinto \
        --key tsk_live_... --ids ids.txt [--context context.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import time
from pathlib import Path

import httpx

# (target, op) -> (method, path); {id} is a random record of --ids, {name} a value of the --context file
# (bench/api/vs_kinto.py writes it: a record id half-way through, a change cursor half-way through, ...).
KINTO_RECORDS = "/v1/buckets/bench/collections/people/records"
PATHS = {
    ("tessera", "read"): ("GET", "/api/v1/collections/people/records/{id}"),
    ("tessera", "list"): ("GET", "/api/v1/collections/people/records?limit=100"),
    ("tessera", "deep"): ("GET", "/api/v1/collections/people/records?limit=100&starting_after={deep_after}"),
    ("tessera", "filter_number"): ("GET", "/api/v1/collections/people/records?limit=100&score__gt=500"),
    ("tessera", "filter_text"): ("GET", "/api/v1/collections/people/records?limit=100&tier=pro"),
    ("tessera", "create"): ("POST", "/api/v1/collections/people/records"),
    ("tessera", "patch"): ("PATCH", "/api/v1/collections/people/records/{id}"),
    ("tessera", "changes"): ("GET", "/api/v1/events?limit=100&starting_after={tessera_since}"),
    ("baseline", "read"): ("GET", "/bench/baseline/records/{id}"),
    ("baseline", "list"): ("GET", "/bench/baseline/records?limit=100"),
    ("baseline", "create"): ("POST", "/bench/baseline/records"),
    # Kinto's equivalents: the same page sizes, id order for lists and filters as Tessera's default.
    ("kinto", "read"): ("GET", KINTO_RECORDS + "/{id}"),
    ("kinto", "list"): ("GET", KINTO_RECORDS + "?_limit=100&_sort=id"),
    ("kinto", "deep"): ("GET", KINTO_RECORDS + "?_limit=100&_sort=id&gt_id={deep_after}"),
    ("kinto", "filter_number"): ("GET", KINTO_RECORDS + "?_limit=100&_sort=id&gt_score=500"),
    ("kinto", "filter_text"): ("GET", KINTO_RECORDS + "?_limit=100&_sort=id&tier=pro"),
    ("kinto", "create"): ("POST", KINTO_RECORDS),
    ("kinto", "patch"): ("PATCH", KINTO_RECORDS + "/{id}"),
    ("kinto", "changes"): ("GET", KINTO_RECORDS + "?_limit=100&_sort=last_modified&_since={kinto_since}"),
}
OPS = sorted({op for _, op in PATHS})
EXPECTED = {"create": 201}  # others 200


def body(op: str, n: int) -> dict:
    if op == "patch":
        return {"data": {"score": n % 1000, "notes": f"patched {n}"}}
    return {"data": {"name": f"Load {n}", "email": f"load{n}-{random.getrandbits(40):x}@example.test", "score": n}}


async def client(http: httpx.AsyncClient, args, ids: list[str], until_warm: float, until: float, out: dict) -> None:
    method, template = PATHS[(args.target, args.op)]
    template = template.format(id="{id}", **args.context)
    rng = random.Random()
    n = 0
    # Paced (--rate): this client sends a request every 1/rate s (randomly phased), late ones at once;
    # otherwise closed loop: the next request as soon as the answer is in.
    interval = 1 / args.rate if args.rate else 0.0
    due = time.perf_counter() + rng.random() * interval
    while True:
        now = time.perf_counter()
        if now >= until:
            return
        if interval:
            if due > now:
                await asyncio.sleep(due - now)
            due += interval
        path = template.format(id=rng.choice(ids)) if "{id}" in template else template
        n += 1
        started = time.perf_counter()
        try:
            if method == "GET":
                response = await http.get(path)
            else:
                response = await http.request(method, path, json=body(args.op, n))
            status = response.status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        elapsed = time.perf_counter() - started
        out["total"] += 1
        if started >= until_warm and started + elapsed <= until:
            out["latencies"].append(elapsed * 1000)
            if status != EXPECTED.get(args.op, 200):
                out["errors"][str(status)] = out["errors"].get(str(status), 0) + 1


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--op", choices=OPS, required=True)
    parser.add_argument("--target", choices=["tessera", "baseline", "kinto"], required=True)
    parser.add_argument("--key", default="", help="Tessera: the API key; Kinto: user:password (Basic)")
    parser.add_argument("--ids", required=True, help="file with one record id a line")
    parser.add_argument("--context", help="JSON file of the values paths name ({deep_after}, ...)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=0.0, help="requests per second per client (paced)")
    args = parser.parse_args()

    ids = Path(args.ids).read_text().split()
    args.context = json.loads(Path(args.context).read_text()) if args.context else {}
    headers = {"Host": args.host, "Accept": "application/json"}
    if args.target == "tessera":
        headers["Authorization"] = f"Bearer {args.key}"
    elif args.target == "kinto":
        headers["Authorization"] = "Basic " + base64.b64encode(args.key.encode()).decode()
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    out: dict = {"latencies": [], "errors": {}, "total": 0}  # total: warm-up included
    async with httpx.AsyncClient(base_url=args.base, headers=headers, limits=limits, timeout=30.0) as http:
        start = time.perf_counter()
        until_warm = start + args.warmup
        until = until_warm + args.seconds
        await asyncio.gather(*(client(http, args, ids, until_warm, until, out) for _ in range(args.concurrency)))
    out["seconds"] = args.seconds
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
