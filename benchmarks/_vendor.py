"""The demo simulators in a process of their own (a remote CRM competes for no interpreter
lock with the app being measured), changed on command.

    python benchmarks/_vendor.py --contacts 100000 [--webhook-url URL] [--rate-limit N]

prints one JSON line of settings, then answers each line read on stdin:
    update N   -> N Follow Up Boss people get a last name "Zqbench<serial>"; prints
                  {"at": epoch seconds, "marker": "zqbench", "last": the last name given,
                   "count": N}
    quit
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator

from crm_tui.demo import data
from crm_tui.demo.servers import start_demo_servers


def indexes(count: int, population: int, seed: int) -> Iterator[int]:
    """Distinct people to change, never the record served without an id."""
    r = random.Random(seed)
    for i in r.sample(range(population), min(population, count + 1)):
        if i != data.MISSING_ID_INDEX:
            yield i


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--webhook-url")
    parser.add_argument("--rate-limit", type=int, default=10**9, help="FUB requests per 10 s")
    args = parser.parse_args()
    servers = start_demo_servers(args.contacts, 3, fub_rate_limit=args.rate_limit)
    if args.webhook_url:
        servers.start_churn(0.0, webhook_url=args.webhook_url)  # scripted changes only
    print(json.dumps(servers.env()), flush=True)
    serial = 0
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "quit":
            break
        count = int(argument)
        at = time.time()
        for i in list(indexes(count, args.contacts, serial))[:count]:
            serial += 1
            patch = {"lastName": f"Zqbench{serial}"}
            servers.overlay.apply("followupboss:people", "update", i, patch=patch)
        last = f"Zqbench{serial}"
        print(json.dumps({"at": at, "marker": "zqbench", "last": last, "count": count}), flush=True)
    servers.stop()


if __name__ == "__main__":
    main()
