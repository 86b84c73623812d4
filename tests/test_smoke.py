from tests.conftest import COMMUNITY_A, COMMUNITY_B, make_user, rental_body


def test_police_registers_reads_back_and_neighbours_cannot_see(registry, client):
    police_a = make_user(registry, client, "police", COMMUNITY_A)
    police_b = make_user(registry, client, "police", COMMUNITY_B)
    coordinator = make_user(registry, client, "coordinator", COMMUNITY_A)

    created = client.post("/rentals", json=rental_body(1), headers=police_a.headers)
    assert created.status_code == 201, created.text
    rental_id = created.json()["id"]

    full = client.get(f"/rentals/{rental_id}",
                      headers={**police_a.headers, "X-Purpose": "case 2026-117"})
    assert full.status_code == 200
    assert full.json()["landlord"]["id_number"] == rental_body(1)["landlord"]["id_number"]
    assert full.json()["masked"] == []

    assert client.get(f"/rentals/{rental_id}", headers=police_b.headers).status_code == 404
    masked = client.get(f"/rentals/{rental_id}",
                        headers={**coordinator.headers, "X-Purpose": "visit"}).json()
    assert masked["landlord"]["name"].endswith("*")
    assert "*" in masked["landlord"]["id_number"]
