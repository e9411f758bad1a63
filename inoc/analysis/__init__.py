"""Dagster-free analysis math: pure functions over numpy arrays and pandas DataFrames.

Modules:
  stats        run-score means with CIs, paired suppression, gaps (SPEC §11)
  matrices     point-wise and token-level weight matrices W, non-finite policies (SPEC §9)
  heuristics   PH, PPD, LLS metrics, fixed-vs-mix heuristics, effective ranks (SPEC §9, §12)
  geometry     exact PCA / TruncatedSVD, token-level recipe, pairwise angles and group stats (SPEC §10)
  embeddings   rephrasing spread and centroid distances of prompt embeddings (SPEC §9)
  token_heuristics  token-level heuristics H11–H14, HA2–HA5, HB1–HB6 of a token diff matrix (SPEC-DETAILED §8.9)
  trait_svd    oriented trait-resolved TruncatedSVD coordinates: H3 and H4 (SPEC-DETAILED §8.7, §8.8)
  performance  Pearson r / r² / n of heuristics vs outcomes (SPEC §12)
  sigmoid      4-parameter logistic fit with bootstrap band and F-tests; OLS line (SPEC §12)
"""
