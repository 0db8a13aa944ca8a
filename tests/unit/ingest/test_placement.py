"""Where the coordinator puts the scrapers on a Ray cluster (pure logic: no Ray is started)."""

from shardmon.ingest.placement import place_scrapers, scraper_nodes


def node(node_id: str, ip: str, cpus: float, *, head: bool = False, alive: bool = True) -> dict:
    resources = {"CPU": cpus, f"node:{ip}": 1.0} if cpus else {f"node:{ip}": 1.0}
    if head:
        resources["node:__internal_head__"] = 1.0
    return {"NodeID": node_id, "Alive": alive, "NodeManagerAddress": ip, "NodeManagerPort": 1, "Resources": resources}


def test_scrapers_go_round_robin_over_the_nodes_with_cpus_workers_first():
    nodes = [node("h", "10.0.0.1", 4, head=True), node("b", "10.0.0.3", 2), node("a", "10.0.0.2", 2)]
    order = [n["NodeID"] for n in scraper_nodes(nodes, 0.25)]
    assert order == ["a", "b", "h"]
    placement = place_scrapers([f"scraper-{i}" for i in range(5)], order)
    assert placement == {"scraper-0": "a", "scraper-1": "b", "scraper-2": "h", "scraper-3": "a", "scraper-4": "b"}


def test_a_head_without_cpus_dead_nodes_and_too_small_nodes_get_no_scraper():
    nodes = [node("h", "10.0.0.1", 0, head=True), node("w1", "10.0.0.2", 2), node("dead", "10.0.0.3", 2, alive=False),
             node("tiny", "10.0.0.4", 0.1)]
    order = [n["NodeID"] for n in scraper_nodes(nodes, 0.25)]
    assert order == ["w1"]
    assert set(place_scrapers(["s0", "s1", "s2"], order).values()) == {"w1"}


def test_the_order_does_not_depend_on_how_ray_lists_the_nodes():
    nodes = [node("x", "10.0.0.9", 1), node("y", "10.0.0.1", 1), node("z", "10.0.0.5", 1, head=True)]
    assert [n["NodeID"] for n in scraper_nodes(nodes, 1)] == [n["NodeID"] for n in scraper_nodes(nodes[::-1], 1)]


def test_with_no_eligible_node_ray_chooses():
    assert place_scrapers(["s0", "s1"], []) == {"s0": None, "s1": None}
