"""Dagster-free analysis math: pure functions over numpy arrays and pandas DataFrames.

Modules:
  stats        run-score means with CIs, paired suppression, gaps (docs/methods.md#run-score, #suppression, #gap)
  matrices     point-wise and token-level weight matrices W, non-finite policies (docs/methods.md#w-matrices)
  heuristics   PH, PPD, LLS metrics, fixed-vs-mix heuristics, effective ranks (docs/methods.md#ph, #ppd, #lls-metrics, #fixed-vs-mix)
  geometry     exact PCA / TruncatedSVD, token-level recipe, pairwise angles and group stats (docs/methods.md#pca-svd, #angles)
  embeddings   rephrasing spread and centroid distances of prompt embeddings (docs/methods.md#embeddings)
  token_heuristics  token-level heuristics H11–H14, HA2–HA5, HB1–HB6 of a token diff matrix (docs/methods.md#token-heuristics)
  trait_svd    oriented trait-resolved TruncatedSVD coordinates: H3 and H4 (docs/methods.md#trait-svd)
  performance  Pearson r / r² / n of heuristics vs outcomes (docs/methods.md#heuristic-performance)
  sigmoid      4-parameter logistic fit with bootstrap band and F-tests; OLS line (docs/methods.md#sigmoid-fits)
"""
