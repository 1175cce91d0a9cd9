"""Feature flags and A/B experiments over HTTP: admin API, assignment, kill switch,
exposures / outcomes / report, and the OpenFeature provider, on the demo catalog."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openfeature import api as openfeature_api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from openfeature.provider.no_op_provider import NoOpProvider

from metamedia.api.app import create_app
from metamedia.domain.experiments import ExperimentDefinition
from metamedia.services.feature_rules import Subject, assign
from metamedia.services.openfeature_provider import MetaMediaProvider
from metamedia.services.runtime import Runtime
from tests.conftest import ADMIN_HEADERS

# Test definitions: everyone targeted is in the test (100%), split 50 / 50, and the
# treatment is far from the defaults so that orders must differ.
FEATURES_TOML = """
[experiments.ranking]
trafficAllocation = 100
surfaces = ["feed", "search"]

[[experiments.ranking.variants]]
name = "control"
weight = 50

[[experiments.ranking.variants]]
name = "bold"
weight = 50

[experiments.ranking.variants.params.feed]
popularity = 0.0
trending = 0.0
freshness = 1.0
diversity = 0.0
cold_start_diversity = 0.0
sources = ["fresh"]

[experiments.ranking.variants.params.search]
method = "weighted"
keyword_weight = 0.0
semantic_weight = 1.0

[flags.beta]
rolloutPercentage = 100
"""


@pytest.fixture()
def features_file(tmp_path: Path) -> Path:
    path = tmp_path / "features.toml"
    path.write_text(FEATURES_TOML, encoding="utf-8")
    return path


@pytest.fixture()
def exp_dir(demo_data_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "exp-demo"
    shutil.copytree(demo_data_dir, copy)
    return copy


@pytest.fixture()
def exp_runtime(make_runtime: Any, exp_dir: Path, features_file: Path) -> Runtime:
    runtime: Runtime = make_runtime(
        exp_dir, experiments_file=features_file, experiments_refresh_s=0
    )
    return runtime


@pytest.fixture()
def exp_client(exp_runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=exp_runtime), headers=dict(ADMIN_HEADERS)) as client:
        yield client


def _ranking(client: TestClient) -> ExperimentDefinition:
    body = client.get("/v1/admin/experiments/ranking").json()
    return ExperimentDefinition.model_validate(body)


def _users_in(definition: ExperimentDefinition, variant: str, count: int) -> list[str]:
    found = []
    for i in range(10_000):
        user = f"member-{i}"
        if assign(definition, Subject("default", user)).variant == variant:
            found.append(user)
            if len(found) == count:
                return found
    raise AssertionError(f"no {count} users in {variant}")


def _feed(client: TestClient, user: str, limit: int = 20) -> dict[str, Any]:
    response = client.get(f"/v1/users/{user}/feed", params={"limit": limit})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page.get("items", page.get("results", []))]


def _events(client: TestClient, user: str, events: list[dict[str, Any]]) -> None:
    response = client.post(f"/v1/users/{user}/interactions", json={"events": events})
    assert response.status_code == 200, response.text
    assert all(r["status"] == "recorded" for r in response.json()["results"]), response.text


# -- configuration and determinism -------------------------------------------------------


def test_default_configuration_ships_the_seed_example(client: TestClient) -> None:
    experiment = client.get("/v1/admin/experiments/feed_ranking_v2").json()
    assert experiment["enabled"] and experiment["traffic_allocation"] == 30
    assert [(v["name"], v["weight"]) for v in experiment["variants"]] == [
        ("control", 50),
        ("conservative", 25),
        ("aggressive", 25),
    ]
    assert experiment["variants"][1]["params"]["feed"] and experiment["variants"][2]["params"]
    flag = client.get("/v1/admin/flags/fresh_feed").json()
    assert flag["rollout_percentage"] == 10 and flag["params"]["feed"]
    keys = {e["key"] for e in client.get("/v1/admin/experiments").json()}
    assert {"feed_ranking_v2", "search_fusion_v2"} <= keys


def test_assignment_is_deterministic_across_runtimes_and_follows_the_allocation(
    make_runtime: Any, tmp_path: Path
) -> None:
    users = [f"synthetic-{i}" for i in range(2000)]
    first = make_runtime(tmp_path / "shared")

    def variants(runtime: Runtime) -> list[str]:
        client = runtime.experiments.client
        return [
            client.get_string_value(
                "feed_ranking_v2", "", EvaluationContext(user, {"tenant": "default"})
            )
            for user in users
        ]

    seen = variants(first)
    second = make_runtime(tmp_path / "shared")  # another runtime on the same data
    assert variants(second) == seen
    enrolled = [v for v in seen if v]
    assert abs(len(enrolled) / len(users) - 0.30) <= 0.03
    for name, share in (("control", 0.5), ("conservative", 0.25), ("aggressive", 0.25)):
        assert abs(enrolled.count(name) / len(enrolled) - share) <= 0.06, name


def test_admin_edits_win_until_the_configured_text_changes(
    make_runtime: Any, tmp_path: Path, features_file: Path
) -> None:
    data = tmp_path / "cfg"
    runtime = make_runtime(data, experiments_file=features_file)
    runtime.experiments.patch("experiment", "ranking", {"trafficAllocation": 40}, "ops")
    reopened = make_runtime(data, experiments_file=features_file)
    assert reopened.experiments.experiment("ranking").traffic_allocation == 40  # API kept
    features_file.write_text(
        FEATURES_TOML.replace("trafficAllocation = 100", "trafficAllocation = 60").replace(
            "[flags.beta]\nrolloutPercentage = 100\n", ""
        ),
        encoding="utf-8",
    )
    changed = make_runtime(data, experiments_file=features_file)
    assert changed.experiments.experiment("ranking").traffic_allocation == 60  # config wins
    assert [f.key for f in changed.experiments.flags()] == []  # no longer configured
    sync = changed.keys.history(5, "config.sync")[0]
    assert sync.detail["overridden"] == ["ranking"] and sync.detail["removed"] == ["beta"]


# -- targeting -----------------------------------------------------------------------------


def test_targeting_by_tenant_region_allow_list_and_new_or_returning(
    exp_client: TestClient,
) -> None:
    def evaluate(key: str, user: str, **params: str) -> dict[str, Any]:
        response = exp_client.get(f"/v1/admin/evaluate/{key}", params={"user": user, **params})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    made = exp_client.put(
        "/v1/admin/flags/uk_returning",
        json={
            "rolloutPercentage": 100,
            "targeting": {"tenants": ["default"], "regions": ["GB"], "users": "returning"},
        },
    )
    assert made.status_code == 201, made.text
    assert exp_client.put("/v1/users/olive").status_code == 200
    # New user, region from the query: the region matches, "returning" does not.
    assert evaluate("uk_returning", "olive", region="GB")["value"] is False
    _events(exp_client, "olive", [{"item": "mm-0001", "type": "view"}])
    assert evaluate("uk_returning", "olive", region="GB")["value"] is True
    assert evaluate("uk_returning", "olive", region="US")["value"] is False
    assert evaluate("uk_returning", "olive", region="GB", tenant="acme")["value"] is False
    # Without a region from the caller, the one saved in the preferences is used.
    assert evaluate("uk_returning", "olive")["value"] is False
    prefs = exp_client.put("/v1/users/olive/preferences", json={"region": "GB"})
    assert prefs.status_code == 200, prefs.text
    assert evaluate("uk_returning", "olive")["value"] is True

    # New-user experiment with an allow list that skips the allocation (0%).
    exp_client.put(
        "/v1/admin/experiments/onboarding",
        json={
            "trafficAllocation": 0,
            "targeting": {"users": "new", "allow": ["qa-tester"]},
            "variants": [{"name": "control", "weight": 0}, {"name": "guided", "weight": 100}],
        },
    )
    assert evaluate("onboarding", "qa-tester")["variant"] == "guided"
    assert evaluate("onboarding", "qa-tester")["reason"] == Reason.TARGETING_MATCH
    assert evaluate("onboarding", "somebody-else")["variant"] is None
    exp_client.put("/v1/users/qa-tester")
    assert _feed(exp_client, "qa-tester")["experiments"]["onboarding"] == "guided"


# -- variants change ranking; kill switch ----------------------------------------------


def test_a_variant_changes_the_feed_and_the_kill_switch_rolls_back_next_request(
    exp_client: TestClient, make_runtime: Any, exp_dir: Path, features_file: Path
) -> None:
    ranking = _ranking(exp_client)
    bold_user = _users_in(ranking, "bold", 1)[0]
    control_user = _users_in(ranking, "control", 1)[0]
    for user in (bold_user, control_user):
        assert exp_client.put(f"/v1/users/{user}").status_code == 200

    bold = _feed(exp_client, bold_user)
    control = _feed(exp_client, control_user)
    assert bold["experiments"] == {"ranking": "bold"}
    assert control["experiments"] == {"ranking": "control"}

    # Another process on the same database (refresh on every request).
    other = make_runtime(exp_dir, experiments_file=features_file, experiments_refresh_s=0)
    assert other.discovery.feed("default", bold_user).experiments == {"ranking": "bold"}

    killed = exp_client.post("/v1/admin/experiments/ranking/disable")
    assert killed.status_code == 200 and killed.json()["enabled"] is False
    after = _feed(exp_client, bold_user)
    assert after["experiments"] == {}
    assert _ids(after) != _ids(bold), "the bold variant ranked the feed differently"
    # Control ranks exactly like no experiment at all.
    assert _ids(_feed(exp_client, control_user)) == _ids(control)
    assert other.discovery.feed("default", bold_user).experiments == {}

    audit = exp_client.get("/v1/admin/audit", params={"action": "experiment."}).json()
    assert audit[0]["action"] == "experiment.kill"
    assert audit[0]["actor"] == "bootstrap-admin" and audit[0]["target"] == "experiment:ranking"
    assert audit[0]["detail"]["changes"]["enabled"] == [True, False]

    exp_client.post("/v1/admin/experiments/ranking/enable")
    back = _feed(exp_client, bold_user)
    assert back["experiments"] == {"ranking": "bold"} and _ids(back) == _ids(bold)


def test_a_search_variant_changes_fusion_for_the_same_user(exp_client: TestClient) -> None:
    ranking = _ranking(exp_client)
    user = _users_in(ranking, "bold", 1)[0]
    queries = ["heist with a twist", "space station", "haunted house", "jazz in new york"]

    def search(query: str) -> dict[str, Any]:
        response = exp_client.get(
            "/v1/search", params={"q": query, "limit": 10}, headers={"X-User": user}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    treated = {q: search(q) for q in queries}
    assert all(r["experiments"] == {"ranking": "bold"} for r in treated.values())
    assert {r["results"][0]["explanation"]["method"] for r in treated.values()} == {"weighted"}
    exp_client.post("/v1/admin/experiments/ranking/disable")
    plain = {q: search(q) for q in queries}
    assert all(r["experiments"] == {} for r in plain.values())
    # Without the variant, the default fusion: the learned ranker.
    assert {r["results"][0]["explanation"]["method"] for r in plain.values()} == {"learned"}
    assert any(_ids(treated[q]) != _ids(plain[q]) for q in queries)
    # Anonymous searches are never assigned.
    exp_client.post("/v1/admin/experiments/ranking/enable")
    anonymous = exp_client.get("/v1/search", params={"q": "space station"}).json()
    assert anonymous["experiments"] == {}


# -- exposures, outcomes, report ----------------------------------------------------------


def test_report_counts_exposures_and_outcomes_with_intervals(exp_client: TestClient) -> None:
    ranking = _ranking(exp_client)
    control = _users_in(ranking, "control", 3)
    bold = _users_in(ranking, "bold", 4)
    for user in control + bold:
        exp_client.put(f"/v1/users/{user}")
    # A click before any exposure is not an outcome.
    _events(exp_client, control[0], [{"item": "mm-0002", "type": "click", "ts": 1_000_000_000}])
    for user in control + bold:
        _feed(exp_client, user)
    for user in bold:
        _feed(exp_client, user)  # a second exposure of the same users
    _events(exp_client, control[0], [{"item": "mm-0003", "type": "click"}])
    _events(
        exp_client,
        bold[0],
        [{"item": "mm-0003", "type": "click"}, {"item": "mm-0004", "type": "click"}],
    )
    _events(exp_client, bold[1], [{"item": "mm-0005", "type": "click"}])
    _events(exp_client, bold[2], [{"item": "mm-0006", "type": "like"}])
    _events(exp_client, bold[3], [{"item": "mm-0007", "type": "view"}])  # not an outcome

    response = exp_client.get("/v1/admin/experiments/ranking/report")
    assert response.status_code == 200, response.text
    report = response.json()
    assert "wilson" in report["interval"]
    by_name = {v["name"]: v for v in report["variants"]}
    assert (by_name["control"]["users"], by_name["control"]["exposures"]) == (3, 3)
    assert (by_name["bold"]["users"], by_name["bold"]["exposures"]) == (4, 8)

    control_click = by_name["control"]["outcomes"]["click"]
    assert (control_click["users"], control_click["events"]) == (1, 1)
    assert control_click["rate"] == pytest.approx(1 / 3)
    bold_click = by_name["bold"]["outcomes"]["click"]
    assert (bold_click["users"], bold_click["events"]) == (2, 3)
    assert bold_click["rate"] == pytest.approx(0.5)
    assert bold_click["lift"] == pytest.approx(0.5 / (1 / 3) - 1)
    assert bold_click["difference"] == pytest.approx(0.5 - 1 / 3)
    assert by_name["bold"]["outcomes"]["like"]["users"] == 1
    assert by_name["bold"]["outcomes"]["any"]["users"] == 3
    assert by_name["bold"]["outcomes"]["any"]["rate"] == pytest.approx(0.75)
    for variant in report["variants"]:
        for outcome in variant["outcomes"].values():
            assert outcome["ci_low"] <= outcome["rate"] <= outcome["ci_high"]
            assert outcome["ci_low"] >= 0.0 and outcome["ci_high"] <= 1.0

    # Erasure removes the user's exposures too.
    exp_client.delete(f"/v1/users/{bold[3]}")
    again = {
        v["name"]: v
        for v in exp_client.get("/v1/admin/experiments/ranking/report").json()["variants"]
    }
    assert again["bold"]["users"] == 3


# -- admin API: auth and validation --------------------------------------------------------


def test_admin_endpoints_need_an_admin_key(client: TestClient, anon_client: TestClient) -> None:
    writer = client.post("/v1/admin/keys", json={"name": "bot", "scopes": ["write"]}).json()
    write_key = {"X-API-Key": writer["key"]}
    calls = [
        ("GET", "/v1/admin/flags", None),
        ("GET", "/v1/admin/experiments/feed_ranking_v2", None),
        ("PUT", "/v1/admin/flags/x", {"rolloutPercentage": 5}),
        ("PATCH", "/v1/admin/experiments/feed_ranking_v2", {"trafficAllocation": 5}),
        ("POST", "/v1/admin/experiments/feed_ranking_v2/disable", None),
        ("GET", "/v1/admin/experiments/feed_ranking_v2/report", None),
        ("GET", "/v1/admin/evaluate/fresh_feed?user=u", None),
    ]
    for method, path, body in calls:
        assert anon_client.request(method, path, json=body).status_code == 401, path
        refused = anon_client.request(method, path, json=body, headers=write_key)
        assert refused.status_code == 403, path
    assert client.get("/v1/admin/experiments/feed_ranking_v2").json()["enabled"] is True
    assert client.get("/v1/admin/flags/x").status_code == 404


def test_bad_definitions_get_a_clear_422_and_leave_the_old_one(exp_client: TestClient) -> None:
    before = exp_client.get("/v1/admin/experiments/ranking").json()
    good_variants = before["variants"]
    bad = [
        (
            {**before, "variants": [{**good_variants[0], "weight": 60}, good_variants[1]]},
            "must add up to 100",
        ),
        (
            {
                **before,
                "variants": [
                    good_variants[0],
                    {"name": "bold", "weight": 50, "params": {"feed": {"serendipity": 1}}},
                ],
            },
            "variants[1].params.feed.serendipity",
        ),
        ({**before, "traffic_allocation": 150}, "traffic_allocation"),
    ]
    for body, needle in bad:
        response = exp_client.put("/v1/admin/experiments/ranking", json=body)
        assert response.status_code == 422, response.text
        assert needle in response.json()["error"]["message"]
    patched = exp_client.patch("/v1/admin/experiments/ranking", json={"trafficAllocation": 101})
    assert patched.status_code == 422 and "100" in patched.json()["error"]["message"]
    assert exp_client.get("/v1/admin/experiments/ranking").json() == before
    clash = exp_client.post("/v1/admin/flags", json={"key": "ranking"})
    assert clash.status_code == 409
    taken = exp_client.put("/v1/admin/flags/ranking", json={})
    assert taken.status_code == 422 and "already an experiment" in taken.json()["error"]["message"]


def test_crud_round_trip_is_audited(exp_client: TestClient) -> None:
    created = exp_client.post("/v1/admin/flags", json={"key": "dark_mode", "rolloutPercentage": 20})
    assert created.status_code == 201 and created.json()["rollout_percentage"] == 20
    assert (
        exp_client.patch("/v1/admin/flags/dark_mode", json={"rollout_percentage": 40}).json()[
            "rollout_percentage"
        ]
        == 40
    )
    assert exp_client.post("/v1/admin/flags/dark_mode/disable").json()["enabled"] is False
    assert exp_client.delete("/v1/admin/flags/dark_mode").status_code == 204
    assert exp_client.get("/v1/admin/flags/dark_mode").status_code == 404
    actions = [e["action"] for e in exp_client.get("/v1/admin/audit?action=flag.").json()]
    assert actions == ["flag.delete", "flag.kill", "flag.update", "flag.create"]


# -- OpenFeature ------------------------------------------------------------------------


def test_openfeature_client_evaluates_flags_and_experiments(exp_runtime: Runtime) -> None:
    openfeature_api.set_provider_and_wait(MetaMediaProvider(exp_runtime.experiments))
    try:
        client = openfeature_api.get_client()
        ctx = EvaluationContext("member-1", {"tenant": "default", "region": "GB"})
        assert client.get_boolean_value("beta", False, ctx) is True
        details = client.get_boolean_details("beta", False, ctx)
        assert details.variant == "on" and details.flag_metadata["kind"] == "flag"

        variant = client.get_string_value("ranking", "none", ctx)
        expected = assign(
            exp_runtime.experiments.experiment("ranking"), Subject("default", "member-1")
        ).variant
        assert variant == expected and variant in {"control", "bold"}
        params = client.get_object_value("ranking", {}, ctx)
        assert isinstance(params, dict) and params["variant"] == variant

        missing = client.get_boolean_details("no_such_flag", True, ctx)
        assert missing.value is True and missing.error_code == ErrorCode.FLAG_NOT_FOUND
        mismatch = client.get_string_details("beta", "x", ctx)
        assert mismatch.error_code == ErrorCode.TYPE_MISMATCH
        anonymous = client.get_string_details("ranking", "none", EvaluationContext())
        assert anonymous.value == "none"
        assert anonymous.error_code == ErrorCode.TARGETING_KEY_MISSING

        # A partial rollout splits users; the kill switch turns it off for all at once.
        exp_runtime.experiments.patch("flag", "beta", {"rolloutPercentage": 10}, "test")
        users = [EvaluationContext(f"person-{i}") for i in range(1000)]
        share = sum(client.get_boolean_value("beta", False, c) for c in users) / len(users)
        assert abs(share - 0.10) <= 0.03
        exp_runtime.experiments.set_enabled("flag", "beta", False, "test")
        off = client.get_boolean_details("beta", True, ctx)
        assert off.value is False and off.reason == Reason.DISABLED
        assert not any(client.get_boolean_value("beta", False, c) for c in users)
    finally:
        openfeature_api.set_provider(NoOpProvider())
