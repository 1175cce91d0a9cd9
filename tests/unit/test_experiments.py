"""Assignment math, targeting rules, parameter validation and the Wilson interval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from metamedia.domain.experiments import ExperimentDefinition, FlagDefinition
from metamedia.domain.search import FusionSettings
from metamedia.errors import InvalidRequestError
from metamedia.services.experiments import (
    feed_weights,
    fusion_settings,
    load_config,
    validate_definition,
    wilson_interval,
)
from metamedia.services.feature_rules import Subject, assign, bucket, evaluate_flag
from metamedia.services.recommend import FeedWeights

SEED_EXPERIMENT: dict[str, Any] = {
    "trafficAllocation": 30,
    "variants": [
        {"name": "control", "weight": 50},
        {"name": "conservative", "weight": 25, "params": {"feed": {"diversity": 0.3}}},
        {"name": "aggressive", "weight": 25, "params": {"feed": {"content": 0.6}}},
    ],
}
USERS = [f"user-{i}" for i in range(2000)]


def _experiment(**changes: Any) -> ExperimentDefinition:
    definition = validate_definition("experiment", "exp", {**SEED_EXPERIMENT, **changes})
    assert isinstance(definition, ExperimentDefinition)
    return definition


def test_buckets_are_a_pure_function_of_their_inputs() -> None:
    # Pinned: SHA-256 of the joined parts, never Python's per-process hash(). A change
    # here would silently re-shuffle every running experiment.
    assert bucket("traffic", "", "feed_ranking_v2", "default", "user-1") == pytest.approx(
        48.6131219624508, abs=1e-9
    )
    assert bucket("a", "b") == pytest.approx(93.8672836308991, abs=1e-9)
    assert bucket("a", "b") != bucket("b", "a")


def test_allocation_and_variant_split_follow_the_seed_example() -> None:
    experiment = _experiment()
    decisions = [assign(experiment, Subject("default", user)) for user in USERS]
    enrolled = [d for d in decisions if d.enrolled]
    assert abs(len(enrolled) / len(USERS) - 0.30) <= 0.03
    for name, share in (("control", 0.5), ("conservative", 0.25), ("aggressive", 0.25)):
        got = sum(d.variant == name for d in enrolled) / len(enrolled)
        assert abs(got - share) <= 0.06, (name, got)
    # Same input, same answer: nothing is stored, nothing random.
    again = [assign(experiment, Subject("default", user)) for user in USERS]
    assert again == decisions


def test_raising_the_allocation_only_adds_users() -> None:
    small, large = _experiment(trafficAllocation=10), _experiment(trafficAllocation=50)
    before = {u: assign(small, Subject("default", u)) for u in USERS}
    after = {u: assign(large, Subject("default", u)) for u in USERS}
    assert sum(d.enrolled for d in after.values()) > sum(d.enrolled for d in before.values())
    for user, decision in before.items():
        if decision.enrolled:
            assert after[user].enrolled and after[user].variant == decision.variant


def test_a_different_salt_or_key_reshuffles() -> None:
    one, other = _experiment(), _experiment(salt="round-2")
    same = sum(
        assign(one, Subject("default", u)).enrolled == assign(other, Subject("default", u)).enrolled
        for u in USERS
    )
    assert same < len(USERS) * 0.9


def test_targeting_rules() -> None:
    rules = {
        "tenants": ["acme"],
        "regions": ["gb", "IE"],
        "users": "returning",
        "allow": ["vip"],
        "deny": ["banned"],
    }
    flag = FlagDefinition(key="f", rollout_percentage=100, targeting=rules)  # type: ignore[arg-type]

    def on(**subject: Any) -> bool:
        return evaluate_flag(flag, Subject(**subject)).enrolled

    assert on(tenant="acme", user="u", region="GB", returning=True)
    assert not on(tenant="default", user="u", region="GB", returning=True)
    assert not on(tenant="acme", user="u", region="US", returning=True)
    assert not on(tenant="acme", user="u", region=None, returning=True)
    assert not on(tenant="acme", user="u", region="ie", returning=False)
    assert not on(tenant="acme", user="u", region="IE", returning=None)
    assert on(tenant="acme", user="vip", region=None, returning=False)  # allow list
    assert not on(tenant="default", user="vip")  # ... but only inside the tenant rule
    assert not on(tenant="acme", user="banned", region="GB", returning=True)
    disabled = flag.model_copy(update={"enabled": False})
    assert not evaluate_flag(disabled, Subject("acme", "vip")).enrolled


def test_flag_rollout_percentage_and_anonymous_callers() -> None:
    flag = FlagDefinition(key="f", rollout_percentage=25)
    share = sum(evaluate_flag(flag, Subject("default", u)).enrolled for u in USERS) / len(USERS)
    assert abs(share - 0.25) <= 0.03
    assert evaluate_flag(flag, Subject("default", None)).reason == "no_user"
    full = FlagDefinition(key="g", rollout_percentage=100)
    assert evaluate_flag(full, Subject("default", None)).enrolled


def test_allow_listed_users_enter_an_experiment_outside_the_allocation() -> None:
    experiment = _experiment(trafficAllocation=0, targeting={"allow": ["qa-1"]})
    assert assign(experiment, Subject("default", "qa-1")).enrolled
    assert not any(assign(experiment, Subject("default", u)).enrolled for u in USERS[:200])


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"variants": [{"name": "control", "weight": 50}, {"name": "b", "weight": 40}]}, "100"),
        (
            {"trafficAllocation": 120},
            "'trafficAllocation': Input should be less than or equal to 100",
        ),
        ({"control": "base"}, "control variant 'base'"),
        (
            {
                "variants": [
                    {"name": "control", "weight": 50},
                    {"name": "b", "weight": 50, "params": {"feed": {"novelty": 1}}},
                ]
            },
            "variants[1].params.feed.novelty",
        ),
        (
            {
                "variants": [
                    {"name": "control", "weight": 50},
                    {"name": "b", "weight": 50, "params": {"feed": {"diversity": 3}}},
                ]
            },
            "diversity",
        ),
        (
            {
                "variants": [
                    {"name": "control", "weight": 50},
                    {"name": "b", "weight": 50, "params": {"search": {"method": "rrf"}}},
                ]
            },
            "not in surfaces",
        ),
        ({"variants": [{"name": "control", "weight": 100}] * 2}, "unique"),
    ],
)
def test_bad_definitions_are_refused_with_the_field_named(
    changes: dict[str, Any], needle: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        validate_definition("experiment", "exp", {**SEED_EXPERIMENT, **changes})
    assert needle in caught.value.message


def test_params_map_onto_feed_weights_and_fusion() -> None:
    weights = feed_weights(FeedWeights(), {"diversity": 0.4, "sources": ["popular", "fresh"]})
    assert weights.diversity == 0.4 and weights.sources == frozenset({"popular", "fresh"})
    assert weights.content == FeedWeights().content
    with pytest.raises(InvalidRequestError, match="unknown source"):
        feed_weights(FeedWeights(), {"sources": ["psychic"]})
    with pytest.raises(InvalidRequestError, match="theme_cap"):
        feed_weights(FeedWeights(), {"theme_cap": 0.5})
    fused = fusion_settings(FusionSettings(), {"method": "weighted", "semantic_weight": 2})
    assert fused.method == "weighted" and fused.semantic_weight == 2 and fused.rrf_k == 60
    with pytest.raises(InvalidRequestError, match="method"):
        fusion_settings(FusionSettings(), {"method": "borda"})


def test_wilson_interval_known_values_and_edges() -> None:
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.0 < high < 0.2
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_config_files_in_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "features.toml"
    toml.write_text(
        "[flags.beta]\nrolloutPercentage = 5\n\n[experiments.exp]\ntrafficAllocation = 30\n"
        '[[experiments.exp.variants]]\nname = "control"\nweight = 100\n'
    )
    entries = {e.key: e for e in load_config(toml)}
    assert entries["beta"].body["rollout_percentage"] == 5
    assert entries["exp"].body["traffic_allocation"] == 30
    as_json = tmp_path / "features.json"
    as_json.write_text(json.dumps({"flags": {"beta": {"rollout_percentage": 5}}}))
    assert load_config(as_json)[0].config_hash == entries["beta"].config_hash
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiments.exp]\ntrafficAllocation = 300\n")
    with pytest.raises(InvalidRequestError, match=r"bad\.toml"):
        load_config(bad)
    builtin = {e.key: e.body for e in load_config(None)}
    assert builtin["feed_ranking_v2"]["traffic_allocation"] == 30
    assert [v["weight"] for v in builtin["feed_ranking_v2"]["variants"]] == [50, 25, 25]
    assert builtin["fresh_feed"]["rollout_percentage"] == 10
