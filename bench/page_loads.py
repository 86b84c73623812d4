"""Page loads of the web pages on demo data: the corrections check-in board, the
leadership's targets dashboard and the police's arrival form (with its rental picker).

Loads the demo county (``registry init --demo``'s data, at ``--scale``) and times, in the
same run and on the same database, each page against its baseline — the API's JSON answer
of the same service call through the same gate, for the same user:

* ``GET /web/corrections/board`` (HTML, names masked) vs ``GET /corrections/board`` (JSON),
  as the county corrections officer;
* ``GET /web/dashboard`` (HTML, every metric, bars per child) vs ``GET /metrics`` (JSON), as
  the county leadership;
* ``GET /web/residents/new`` (the arrival form; its picker lists the area's let and vacant
  rentals, up to 200 of each) vs ``GET /rentals?status=active&page_size=200`` (JSON), as a
  community police officer;
* for reference, the floor of any signed-in page: ``GET /web/`` (session check, rendering).

Each is the median of ``--repeat`` requests, in process (TestClient). The ratio is what the
pages add — session cookie, templates, the bars — over the API.

    .venv/bin/python bench/page_loads.py [--scale 1] [--repeat 25] [--postgres URL]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from register_rentals import PostgresDatabases, fresh_registry

from registry import demo
from registry.api import create_app

PASSWORDS = {u.username: u.password for u in demo.demo_users()}


def median_ms(action, repeat: int) -> float:
    action()  # warm: templates compiled, caches filled
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def pages_client(app, username: str) -> TestClient:
    client = TestClient(app)
    form = client.get("/web/sign-in").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)[1]
    signed = client.post("/web/sign-in", data={"csrf_token": csrf, "username": username,
                                               "password": PASSWORDS[username]},
                         follow_redirects=False)
    assert signed.status_code == 303, signed.text
    return client


def api_headers(client: TestClient, username: str) -> dict[str, str]:
    token = client.post("/auth/token", json={"username": username,
                                             "password": PASSWORDS[username]})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def get(client: TestClient, path: str, headers: dict | None = None):
    def action() -> None:
        response = client.get(path, headers=headers or {})
        assert response.status_code == 200, response.text[:300]
    return action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--postgres", metavar="URL")
    args = parser.parse_args()
    pg = PostgresDatabases(args.postgres) if args.postgres else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            registry = fresh_registry(Path(tmp), pg.new() if pg else None, plaintext=False)
            started = time.perf_counter()
            demo.build(registry, scale=args.scale)
            print(f"demo county at scale {args.scale} built in "
                  f"{time.perf_counter() - started:.0f} s")
            app = create_app(registry)
            results = {}
            for who, page, api in (("corrections", "/web/corrections/board",
                                    "/corrections/board?limit=100"),
                                   ("leadership", "/web/dashboard", "/metrics"),
                                   ("police_a", "/web/residents/new",
                                    "/rentals?status=active&page_size=200")):
                browser = pages_client(app, who)
                client = TestClient(app)
                results[page] = (median_ms(get(browser, page), args.repeat),
                                 median_ms(get(client, api, api_headers(client, who)),
                                           args.repeat),
                                 median_ms(get(browser, "/web/"), args.repeat), api)
    finally:
        if pg:
            pg.drop_all()
    backend = "postgresql" if pg else "sqlite"
    print(f"\n{backend}: demo county at scale {args.scale}, medians of {args.repeat}")
    for page, (html, json_, floor, api) in results.items():
        print(f"  {page:24} {html:7.1f} ms   baseline {api:38} {json_:7.1f} ms   "
              f"ratio {html / json_:4.2f}x   (floor GET /web/: {floor:.1f} ms)")


if __name__ == "__main__":
    main()
