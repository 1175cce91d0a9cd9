"""The built-in flags and experiments, used when `METAMEDIA_EXPERIMENTS_FILE` is not set.

Kept as TOML text, the same format an operator writes, so that it doubles as the
example of that format. A file named by
`METAMEDIA_EXPERIMENTS_FILE` replaces this whole set.

`feed_ranking_v2` is the seeds' A/B test (30% of users; control 50 /
conservative 25 / aggressive 25) mapped onto our feed ranking. `fresh_feed` is
a limited rollout (the seeds' `experimental_features`, 10%).
`search_fusion_v2` ships switched off: enable it through the admin API to test
fusion settings on hybrid search.
"""

from __future__ import annotations

DEFAULT_EXPERIMENTS_TOML = """
[flags.fresh_feed]
description = "Limited rollout: the feed leans a little more to new and trending items."
enabled = true
rolloutPercentage = 10

[flags.fresh_feed.params.feed]
freshness = 0.08
trending = 0.08

[experiments.feed_ranking_v2]
description = "Feed ranking v2: a safer, broader blend against a content-led, sharper one."
enabled = true
trafficAllocation = 30
surfaces = ["feed"]
control = "control"

[[experiments.feed_ranking_v2.variants]]
name = "control"
weight = 50

[[experiments.feed_ranking_v2.variants]]
name = "conservative"
weight = 25

[experiments.feed_ranking_v2.variants.params.feed]
popularity = 0.14
collaborative = 0.40
diversity = 0.25
sources = ["content", "popular", "fresh", "collaborative", "preference"]

[[experiments.feed_ranking_v2.variants]]
name = "aggressive"
weight = 25

[experiments.feed_ranking_v2.variants.params.feed]
content = 0.50
collaborative = 0.35
popularity = 0.02
diversity = 0.0
theme_cap = 6

[experiments.search_fusion_v2]
description = "Hybrid search fusion: reciprocal rank (control) against semantic-led blends."
enabled = false
trafficAllocation = 50
surfaces = ["search"]

[[experiments.search_fusion_v2.variants]]
name = "control"
weight = 34

[[experiments.search_fusion_v2.variants]]
name = "semantic_weighted"
weight = 33

[experiments.search_fusion_v2.variants.params.search]
method = "weighted"
keyword_weight = 0.3
semantic_weight = 1.7

[[experiments.search_fusion_v2.variants]]
name = "sharp_rrf"
weight = 33

[experiments.search_fusion_v2.variants.params.search]
method = "rrf"
rrf_k = 5
semantic_weight = 2.0
"""
