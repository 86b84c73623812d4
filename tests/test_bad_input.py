import json
from tests.conftest import COMMUNITY_A, GRID_A1, GRID_B1, make_user, rental_body


def test_explore(registry, client):
    p = make_user(registry, client, "police", COMMUNITY_A)
    h = p.headers
    def show(label, r):
        print("\n##", label, r.status_code, r.text[:400])
    show("malformed", client.post("/rentals", content=b'{"a": ', headers={**h, "content-type": "application/json"}))
    show("array", client.post("/rentals", json=[1, 2], headers=h))
    show("string", client.post("/rentals", json="hello", headers=h))
    show("nested deep", client.post("/rentals", content=b"[" * 100000 + b"]" * 100000, headers={**h, "content-type": "application/json"}))
    show("bigint", client.post("/rentals", content=b'{"units": ' + b"1" * 5000 + b"}", headers={**h, "content-type": "application/json"}))
    show("nan", client.post("/rentals", content=json.dumps(rental_body(1, units=float("nan"))).encode(), headers={**h, "content-type": "application/json"}))
    show("landlord str", client.post("/rentals", json=rental_body(1, landlord="x"), headers=h))
    show("textplain", client.post("/rentals", content=json.dumps(rental_body(1)).encode(), headers={**h, "content-type": "text/plain"}))
    show("nobody", client.post("/rentals", headers=h))
    def gen():
        for _ in range(40):
            yield b" " * 50000
    show("chunked", client.post("/rentals", content=gen(), headers={**h, "content-type": "application/json"}))
    show("big", client.post("/rentals", content=b" " * (2 << 20), headers={**h, "content-type": "application/json"}))
    b = rental_body(1); b["landlord"]["id_number"] = "٣٣٠١٩٩٨٥٠٣١٢٠٠١"
    show("arabic15", client.post("/rentals", json=b, headers=h))
    b = rental_body(2); b["landlord"]["phone"] = "13٨٠٠١٣٠٠٠١"
    show("arabicphone", client.post("/rentals", json=b, headers=h))
    show("login nul", client.post("/auth/token", json={"username": "a\x00b", "password": "x"}))
    show("login surrogate", client.post("/auth/token", content=b'{"username": "\\ud800", "password": "x"}', headers={"content-type": "application/json"}))
    show("bad uuid", client.get("/rentals/not-a-uuid", headers=h))
    show("purpose", client.get("/rentals/not-a-uuid", headers={**h, "X-Purpose": "%01"}))
    show("date int", client.post("/rentals", json=rental_body(3, registered_on=1700000000), headers=h))
    show("units bool", client.post("/rentals", json=rental_body(4, units=True), headers=h))
