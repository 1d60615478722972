"""Load generator of bench/api (its own process): `--concurrency` clients over loopback, each sending one
request after another for `--seconds`, after a `--warmup`. Prints one JSON line: latencies (ms), errors.

    python bench/api/load.py --base http://127.0.0.1:PORT --host bench.tessera.localhost \
        --op read|list|create --target tessera|baseline --key tsk_live_... --ids ids.txt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path

import httpx

PATHS = {
    ("tessera", "read"): ("GET", "/api/v1/collections/people/records/{id}"),
    ("tessera", "list"): ("GET", "/api/v1/collections/people/records?limit=100"),
    ("tessera", "create"): ("POST", "/api/v1/collections/people/records"),
    ("baseline", "read"): ("GET", "/bench/baseline/records/{id}"),
    ("baseline", "list"): ("GET", "/bench/baseline/records?limit=100"),
    ("baseline", "create"): ("POST", "/bench/baseline/records"),
}
EXPECTED = {"read": 200, "list": 200, "create": 201}


def body(n: int) -> dict:
    return {"data": {"name": f"Load {n}", "email": f"load{n}-{random.getrandbits(40):x}@example.test", "score": n}}


async def client(http: httpx.AsyncClient, args, ids: list[str], until_warm: float, until: float, out: dict) -> None:
    method, template = PATHS[(args.target, args.op)]
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
            if method == "POST":
                response = await http.post(path, json=body(n))
            else:
                response = await http.get(path)
            status = response.status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        elapsed = time.perf_counter() - started
        out["total"] += 1
        if started >= until_warm and started + elapsed <= until:
            out["latencies"].append(elapsed * 1000)
            if status != EXPECTED[args.op]:
                out["errors"][str(status)] = out["errors"].get(str(status), 0) + 1


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--op", choices=["read", "list", "create"], required=True)
    parser.add_argument("--target", choices=["tessera", "baseline"], required=True)
    parser.add_argument("--key", default="")
    parser.add_argument("--ids", required=True, help="file with one record id a line")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=0.0, help="requests per second per client (paced)")
    args = parser.parse_args()

    ids = Path(args.ids).read_text().split()
    headers = {"Host": args.host, "Accept": "application/json"}
    if args.target == "tessera":
        headers["Authorization"] = f"Bearer {args.key}"
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
