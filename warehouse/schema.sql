-- inoc warehouse: the tidy tables are the public SQL interface (documented in README.md).
-- Applied idempotently on every write connection; never drops data.

CREATE TABLE IF NOT EXISTS experiments (
    experiment      VARCHAR PRIMARY KEY,
    model           VARCHAR NOT NULL,
    positive_trait  VARCHAR,
    negative_trait  VARCHAR,
    source          VARCHAR NOT NULL          -- 'pipeline' (computed by inoc) or 'import' (result files)
);

CREATE TABLE IF NOT EXISTS prompts (
    experiment      VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,
    prompt_text     VARCHAR NOT NULL,
    prompt_group    VARCHAR NOT NULL,
    prompt_family   VARCHAR NOT NULL,
    PRIMARY KEY (experiment, prompt_key)
);

CREATE TABLE IF NOT EXISTS runs (
    experiment      VARCHAR NOT NULL,
    batch           VARCHAR NOT NULL,         -- runs sharing one control (a study's sweep)
    run             VARCHAR NOT NULL,         -- unique within the experiment
    prompt_key      VARCHAR,                  -- NULL for a control run
    prefix_type     VARCHAR CHECK (prefix_type IN ('fixed', 'mix', 'close_mix')),  -- NULL for a control run
    learning_rate   DOUBLE,
    n_steps         INTEGER,
    PRIMARY KEY (experiment, run)
);

CREATE TABLE IF NOT EXISTS trait_scores (
    experiment      VARCHAR NOT NULL,
    run             VARCHAR NOT NULL,
    step            INTEGER NOT NULL,
    condition       VARCHAR NOT NULL CHECK (condition IN ('default', 'training')),
    trait           VARCHAR NOT NULL,         -- display name as in the config (French, Playful)
    instruction_idx INTEGER NOT NULL,
    score           DOUBLE                    -- 0-100; NaN when the judge could not score
);

CREATE TABLE IF NOT EXISTS elicitation_scores (
    experiment      VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,         -- 'neutral' is the no-prefix baseline
    trait           VARCHAR NOT NULL,
    instruction_idx INTEGER NOT NULL,
    score           DOUBLE
);

CREATE TABLE IF NOT EXISTS training_losses (
    experiment      VARCHAR NOT NULL,
    run             VARCHAR NOT NULL,
    step            INTEGER NOT NULL,
    loss            DOUBLE,
    learning_rate   DOUBLE,
    grad_norm       DOUBLE,
    epoch           DOUBLE
);

-- Bulk tables (grow with examples × tokens) live in Parquet, one file per (experiment, prompt_key,
-- vector) partition under <artifacts>/_warehouse/ (warehouse/bulk.py). `logprob_vectors` and
-- `logprob_tokens` are views over exactly the files listed here; these two tables are the manifest.
--   logprob_vectors(experiment, prompt_key, vector, example_idx, lp): base-model log-probabilities,
--     mean per-token lp of each sampled completion (docs/methods.md#lp). vector: train_default / ctrl_default
--     (prompt_key NULL), train_inoc, ctrl_inoc, train_mix, ...
--   logprob_tokens(experiment, prompt_key, vector, example_idx, token_idx, lp): token-level (W_tokens).
CREATE TABLE IF NOT EXISTS _bulk_files (
    table_name      VARCHAR NOT NULL,         -- logprob_vectors | logprob_tokens
    experiment      VARCHAR NOT NULL,
    prompt_key      VARCHAR,                  -- NULL: the no-prefix baseline
    vector          VARCHAR NOT NULL,
    path            VARCHAR NOT NULL,         -- absolute path of the partition's Parquet file
    n_rows          BIGINT NOT NULL,
    written_at      DOUBLE NOT NULL           -- unix seconds
);

-- Files of replaced partitions, deleted by a later writer once no snapshot reader can still need them.
CREATE TABLE IF NOT EXISTS _bulk_retired (
    path            VARCHAR NOT NULL,
    retired_at      DOUBLE NOT NULL
);

-- Suppression of each prompt's runs against the experiment's designated control (docs/methods.md#suppression):
-- paired per-instruction differences at the final step, default condition, t-based 95% CI.
-- target: 'trait' (the trait the prompt's group elicits), 'cross_trait' (the other), NULL (neutral).
CREATE TABLE IF NOT EXISTS suppression (
    experiment      VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,
    prompt_group    VARCHAR NOT NULL,
    prefix_type     VARCHAR NOT NULL,
    trait           VARCHAR NOT NULL,
    trait_role      VARCHAR NOT NULL,
    target          VARCHAR,
    control_run     VARCHAR NOT NULL,
    run             VARCHAR NOT NULL,
    step            INTEGER NOT NULL,
    n               INTEGER NOT NULL,
    control_score   DOUBLE,
    run_score       DOUBLE,
    suppression     DOUBLE,
    ci_lo           DOUBLE,
    ci_hi           DOUBLE
);

-- Per-prompt heuristics (tidy): prefix_type 'fixed'/'mix' for W-based ones, NULL for elicitation.
CREATE TABLE IF NOT EXISTS prompt_heuristics (
    experiment      VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,
    prefix_type     VARCHAR,
    heuristic       VARCHAR NOT NULL,
    value           DOUBLE
);

-- Every registry heuristic (inoc/heuristics/registry.py) a configured prompt has no finite value for in
-- prompt_heuristics, with the reason (an input absent in the experiment or for the prompt, a prompt
-- outside a trait's prompt set, or undefined (NaN) for the prompt). heuristic_id: the paper's id (H1 … HB6).
CREATE TABLE IF NOT EXISTS heuristic_availability (
    experiment      VARCHAR NOT NULL,
    heuristic       VARCHAR NOT NULL,
    heuristic_id    VARCHAR,
    prompt_key      VARCHAR NOT NULL,
    prefix_type     VARCHAR,
    reason          VARCHAR NOT NULL
);

-- Explained variance of the W decompositions. matrix: fixed, mix, fixed_tokens, mix_tokens;
-- method: pca (centred; token level StandardScaler first), truncated_svd (uncentred).
CREATE TABLE IF NOT EXISTS pca_variance (
    experiment      VARCHAR NOT NULL,
    matrix          VARCHAR NOT NULL,
    method          VARCHAR NOT NULL,
    component       INTEGER NOT NULL,       -- from 1
    explained_variance_ratio DOUBLE        -- a fraction (sklearn's definition)
);

CREATE TABLE IF NOT EXISTS prompt_coords (
    experiment      VARCHAR NOT NULL,
    matrix          VARCHAR NOT NULL,
    method          VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,
    component       INTEGER NOT NULL,
    value           DOUBLE
);

-- Pairwise angles (degrees) between prompts in three representations: raw W rows, PCA top-2
-- coordinates (pca2), TruncatedSVD top-2 coordinates (svd2). Both orders of each pair are stored.
CREATE TABLE IF NOT EXISTS prompt_angles (
    experiment      VARCHAR NOT NULL,
    matrix          VARCHAR NOT NULL,
    representation  VARCHAR NOT NULL,
    prompt_a        VARCHAR NOT NULL,
    prompt_b        VARCHAR NOT NULL,
    angle_deg       DOUBLE
);

-- Angle statistics by pair type (within_negative, within_positive, cross_trait,
-- negative_x_neutral, positive_x_neutral): mean, population std (ddof 0), unordered pair count.
CREATE TABLE IF NOT EXISTS angle_groups (
    experiment      VARCHAR NOT NULL,
    matrix          VARCHAR NOT NULL,
    representation  VARCHAR NOT NULL,
    pair_type       VARCHAR NOT NULL,
    mean_deg        DOUBLE,
    std_deg         DOUBLE,
    n_pairs         INTEGER
);

-- Fixed-vs-mix heuristics (docs/methods.md#fixed-vs-mix, Exp 20): the ten heuristics per prompt, on raw W and on the
-- rank-1 PCA (centred) and TruncatedSVD (uncentred) reconstructions (variant: raw, pca_rank1, svd_rank1).
CREATE TABLE IF NOT EXISTS fixed_vs_mix_heuristics (
    experiment      VARCHAR NOT NULL,
    variant         VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,
    heuristic       VARCHAR NOT NULL,
    value           DOUBLE
);

-- Pearson correlation of decomposition coordinates with per-prompt heuristics (e.g. PC1 vs PH).
CREATE TABLE IF NOT EXISTS pca_correlations (
    experiment      VARCHAR NOT NULL,
    matrix          VARCHAR NOT NULL,
    method          VARCHAR NOT NULL,
    component       INTEGER NOT NULL,
    heuristic       VARCHAR NOT NULL,
    r               DOUBLE,
    n               INTEGER
);

-- How well each heuristic predicts each suppression measure (docs/methods.md#heuristic-performance, Exp 22), per experiment
-- and pooled (scope = 'pooled').
CREATE TABLE IF NOT EXISTS heuristic_performance (
    scope           VARCHAR NOT NULL,
    heuristic       VARCHAR NOT NULL,
    outcome         VARCHAR NOT NULL,
    r               DOUBLE,
    r2              DOUBLE,
    p               DOUBLE,
    n               INTEGER
);

-- The heuristic registry (inoc/heuristics/registry.py), rewritten with every slides build: one row per
-- heuristic key (`{trait}` = the lower-case trait name in prompt_heuristics), its paper id, definition, inputs.
CREATE TABLE IF NOT EXISTS heuristic_registry (
    heuristic         VARCHAR NOT NULL,
    heuristic_id      VARCHAR,
    name              VARCHAR NOT NULL,
    definition        VARCHAR NOT NULL,
    inputs            VARCHAR NOT NULL,
    kind              VARCHAR NOT NULL,
    prefix_types      VARCHAR NOT NULL,
    per_trait         BOOLEAN NOT NULL,
    slide_column      VARCHAR,
    performance_label VARCHAR
);

-- The original's heuristic-performance table (docs/methods.md#heuristic-ranking): each ranked heuristic against five
-- targets over all slides_dataset rows (both trait rows of every prompt), per experiment and pooled;
-- ci_lo/ci_hi: 95 % bootstrap CI of r (1000 resamples of the rows, seed 0); heuristic_group: the
-- original table's Group column (inoc.heuristics.ranking.heuristic_group).
CREATE TABLE IF NOT EXISTS heuristic_ranking (
    scope           VARCHAR NOT NULL,
    heuristic_id    VARCHAR,
    heuristic       VARCHAR NOT NULL,
    x_column        VARCHAR NOT NULL,
    target          VARCHAR NOT NULL,
    r               DOUBLE,
    r2              DOUBLE,
    n               INTEGER,
    ci_lo           DOUBLE,
    ci_hi           DOUBLE,
    heuristic_group VARCHAR                   -- the original's Group: Existing, Cross-trait, A: Step-1, B: Cumulative
);

-- 4-parameter logistic fits of suppression against a heuristic (bootstrap 95% band in the figure).
CREATE TABLE IF NOT EXISTS sigmoid_fits (
    experiment      VARCHAR NOT NULL,
    heuristic       VARCHAR NOT NULL,
    prefix_type     VARCHAR NOT NULL,
    method          VARCHAR NOT NULL,     -- logistic4, or linear when the logistic fit failed
    a DOUBLE, b DOUBLE, c DOUBLE, d DOUBLE,
    r2              DOUBLE,               -- nonlinear R²
    f_vs_linear     DOUBLE,
    p_vs_linear     DOUBLE,
    n               INTEGER,
    n_boot_ok       INTEGER
);

-- The same per batch: each prompt run against its own batch's control (a learning-rate sweep has
-- one batch per rate; an import one per original result file).
CREATE TABLE IF NOT EXISTS suppression_by_batch (
    experiment      VARCHAR NOT NULL,
    batch           VARCHAR NOT NULL,
    learning_rate   DOUBLE,
    prompt_key      VARCHAR NOT NULL,
    prompt_group    VARCHAR NOT NULL,
    prefix_type     VARCHAR NOT NULL,
    trait           VARCHAR NOT NULL,
    trait_role      VARCHAR NOT NULL,
    target          VARCHAR,
    control_run     VARCHAR NOT NULL,
    run             VARCHAR NOT NULL,
    step            INTEGER NOT NULL,
    n               INTEGER NOT NULL,
    control_score   DOUBLE,
    run_score       DOUBLE,
    suppression     DOUBLE,
    ci_lo           DOUBLE,
    ci_hi           DOUBLE
);

-- Emergent-misalignment judgements: both dimensions of one completion in one row, so the EM flag
-- (coherence > coherence_threshold AND alignment < alignment_threshold) pairs them exactly.
-- eval_set: 'em' (general questions) or 'fa' (held-out financial advice).
CREATE TABLE IF NOT EXISTS em_scores (
    experiment          VARCHAR NOT NULL,
    run                 VARCHAR NOT NULL,
    step                INTEGER NOT NULL,
    eval_set            VARCHAR NOT NULL,
    condition           VARCHAR NOT NULL CHECK (condition IN ('default', 'training')),
    instruction_idx     INTEGER NOT NULL,
    coherence           DOUBLE,
    alignment           DOUBLE,
    coherence_threshold DOUBLE NOT NULL,
    alignment_threshold DOUBLE NOT NULL
);

-- Rephrasing pools (the mix prefixes), one row per rephrasing in pool order (the sampling order).
CREATE TABLE IF NOT EXISTS rephrasings (
    experiment      VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,
    idx             INTEGER NOT NULL,
    rephrasing      VARCHAR NOT NULL,
    source          VARCHAR NOT NULL,     -- generate | reference | organism
    pool            VARCHAR DEFAULT 'diverse'  -- diverse (mix runs) | close (close_mix runs)
);

-- Provenance of imported rows (`inoc import`, the imported_* assets): one row per (table, part,
-- file). A part is the unit an import replaces: a batch for run-keyed tables, a prompt key (or
-- '(baseline)') for elicitation and logprobs, a setting for elicitation_scores_by_setting. Rows of
-- a part without an entry here were computed, and an import does not replace them unless asked.
CREATE TABLE IF NOT EXISTS imports (
    experiment      VARCHAR NOT NULL,
    table_name      VARCHAR NOT NULL,
    part            VARCHAR NOT NULL,
    file            VARCHAR NOT NULL,
    sha256          VARCHAR NOT NULL,
    n_rows          BIGINT NOT NULL,
    imported_at     TIMESTAMP NOT NULL
);

-- Jobs of imported runs (the original's job files): job id, status and pushed model repo.
CREATE TABLE IF NOT EXISTS run_jobs (
    experiment      VARCHAR NOT NULL,
    run             VARCHAR NOT NULL,
    job_id          VARCHAR NOT NULL,
    status          VARCHAR,
    model_repo      VARCHAR
);

-- Elicitation measured in another setting than `elicitation_scores` (setting 'system_prompt': the
-- legacy PF file that applied each prompt as the system prompt, baseline 'neutral'; docs/methods.md#elicitation).
CREATE TABLE IF NOT EXISTS elicitation_scores_by_setting (
    experiment      VARCHAR NOT NULL,
    setting         VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,
    trait           VARCHAR NOT NULL,
    instruction_idx INTEGER NOT NULL,
    score           DOUBLE
);

-- Exp 20 per trait (docs/methods.md#exp20-per-trait, golden G8): each trait's prompt subset is its family + the
-- neutral family, restricted to prompts with W_fixed, W_mix and both a fixed and a mix run scored on
-- the trait. The rank-1 fits on W_fixed of that subset: method 'pca' (PCA(1), centred) or
-- 'truncated_svd' (TruncatedSVD(1), uncentred); pc1_variance = sklearn's explained_variance_ratio_[0].
CREATE TABLE IF NOT EXISTS fixed_vs_mix_rank1 (
    experiment      VARCHAR NOT NULL,
    trait           VARCHAR NOT NULL,
    method          VARCHAR NOT NULL,
    n_prompts       INTEGER NOT NULL,         -- prompts fitted (≥ 20 jointly finite examples)
    prompt_keys     VARCHAR NOT NULL,         -- the fitted prompts, comma-separated, config order
    pc1_variance    DOUBLE                    -- a fraction; NaN when the subset is too small to fit
);

-- The ten fixed-vs-mix heuristics on each trait's subset (variant raw, pca_rank1, svd_rank1: the
-- rank-1 axes of fixed_vs_mix_rank1) with the two outcomes of the original's figure rows, the trait's
-- final default-condition scores as paired in `suppression`: fixed − mix and trained control − mix.
CREATE TABLE IF NOT EXISTS fixed_vs_mix_gap (
    experiment        VARCHAR NOT NULL,
    trait             VARCHAR NOT NULL,
    variant           VARCHAR NOT NULL,
    prompt_key        VARCHAR NOT NULL,
    heuristic         VARCHAR NOT NULL,
    value             DOUBLE,
    fixed_minus_mix   DOUBLE,
    control_minus_mix DOUBLE
);

-- Pearson r of each (variant, heuristic) of fixed_vs_mix_gap with each outcome over the trait's subset.
CREATE TABLE IF NOT EXISTS fixed_vs_mix_gap_correlations (
    experiment      VARCHAR NOT NULL,
    trait           VARCHAR NOT NULL,
    variant         VARCHAR NOT NULL,
    heuristic       VARCHAR NOT NULL,
    target          VARCHAR NOT NULL,         -- fixed_minus_mix | control_minus_mix
    r               DOUBLE,                   -- NaN with n < 3 or a constant heuristic
    p               DOUBLE,
    n               INTEGER
);

-- Exp 19's angle questions (docs/methods.md#angle-questions), per W matrix (fixed, mix, fixed_tokens,
-- mix_tokens; non-finite → 0): per-prompt predictors. predictor: pca_dim1, pca_dim2, svd_dim1, svd_dim2
-- (signed top-2 coordinates, Q1); angle_from_pca_axis, angle_from_svd_axis (degrees(arctan2(|dim2|,
-- |dim1|))), angle_to_centroid_<rep> (to the other trait's prompts' centroid; NaN for neutral prompts)
-- (Q2); mean_angle_to_negative_<rep>, mean_angle_to_positive_<rep> (itself excluded); rep = raw, pca2, svd2.
CREATE TABLE IF NOT EXISTS prompt_angle_predictors (
    experiment      VARCHAR NOT NULL,
    matrix          VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,
    role            VARCHAR NOT NULL,         -- negative | positive | neutral (the prompt's group)
    predictor       VARCHAR NOT NULL,
    value           DOUBLE
);

-- Pearson r of the Q1 predictors with each trait's suppression (all prompts) and of the Q2 predictors
-- with cross-trait suppression (negative- and positive-role prompts), the matrix's prefix type's runs.
CREATE TABLE IF NOT EXISTS angle_questions (
    experiment      VARCHAR NOT NULL,
    matrix          VARCHAR NOT NULL,
    question        VARCHAR NOT NULL,         -- q1 | q2
    predictor       VARCHAR NOT NULL,
    outcome         VARCHAR NOT NULL,         -- negative_trait_suppression | positive_trait_suppression | cross_trait_suppression
    r               DOUBLE,                   -- NaN with n < 3 or a constant predictor
    p               DOUBLE,
    n               INTEGER
);

-- The suppression predictor (inoc/prediction; issue 20), rebuilt by the slides/suppression_predictor asset.
-- One row per own-trait prompt row (prompts of a neutral group have none) and model: its predicted
-- suppression (pp) with a jackknife+ interval at `coverage`; `observed` the measured suppression (NaN
-- without a run); `trained` whether the row was in the model's fit. scope: 'experiment' (a model fit on
-- that experiment's runs) or 'pooled' (one fit on every experiment's runs).
CREATE TABLE IF NOT EXISTS suppression_predictions (
    experiment      VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,
    prefix_type     VARCHAR NOT NULL,
    trait           VARCHAR NOT NULL,
    scope           VARCHAR NOT NULL CHECK (scope IN ('experiment', 'pooled')),
    model_version   VARCHAR NOT NULL,
    prediction      DOUBLE,
    lo              DOUBLE,
    hi              DOUBLE,
    coverage        DOUBLE NOT NULL,
    observed        DOUBLE,
    trained         BOOLEAN NOT NULL,
    extrapolated    BOOLEAN NOT NULL DEFAULT false -- a feature the model uses lies outside its training prompts' range
);

-- The exact inputs of each prediction: `value` what the model read (z-scored within experiment),
-- `raw_value` the slides_dataset value it came from.
CREATE TABLE IF NOT EXISTS prediction_inputs (
    experiment      VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,
    prefix_type     VARCHAR NOT NULL,
    scope           VARCHAR NOT NULL,
    model_version   VARCHAR NOT NULL,
    feature         VARCHAR NOT NULL,
    value           DOUBLE,
    raw_value       DOUBLE
);

-- One row per fitted predictor: what it is and exactly what it was fit on (model_version hashes both).
CREATE TABLE IF NOT EXISTS predictor_models (
    model_version    VARCHAR NOT NULL,
    scope            VARCHAR NOT NULL,
    experiment       VARCHAR,                 -- NULL for the pooled model
    prefix_type      VARCHAR NOT NULL,
    kind             VARCHAR NOT NULL,        -- ridge | group_mean
    features         VARCHAR NOT NULL,        -- JSON list
    hyper_parameters VARCHAR NOT NULL,        -- JSON (alphas, chosen alpha, coefficients, interval method, …)
    n_train          INTEGER NOT NULL,
    trained_on       VARCHAR NOT NULL,        -- JSON list of [experiment, prompt_key]
    fitted_at        TIMESTAMP NOT NULL
);

-- Out-of-sample validation of the predictor and of the group-mean baseline on the same held-out rows.
CREATE TABLE IF NOT EXISTS predictor_validation (
    scheme           VARCHAR NOT NULL CHECK (scheme IN ('leave_one_prompt_out', 'leave_one_study_out')),
    train_scope      VARCHAR NOT NULL,        -- an experiment or 'pooled'
    test_scope       VARCHAR NOT NULL,
    prefix_type      VARCHAR NOT NULL,
    model            VARCHAR NOT NULL CHECK (model IN ('predictor', 'group_mean')),
    kind             VARCHAR,                 -- the model's kind: ridge | group_mean
    features         VARCHAR,                 -- comma-separated; empty for group_mean
    n                INTEGER NOT NULL,
    r2               DOUBLE,
    spearman         DOUBLE,
    coverage         DOUBLE,
    nominal_coverage DOUBLE,
    mean_width       DOUBLE
);

-- Every prediction of every predictor version, kept (appended when a new model_version is fit, never
-- replaced): what was predicted for a prompt before it was trained survives its training.
CREATE TABLE IF NOT EXISTS suppression_prediction_history (
    recorded_at     TIMESTAMP NOT NULL,
    experiment      VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,
    prefix_type     VARCHAR NOT NULL,
    trait           VARCHAR NOT NULL,
    scope           VARCHAR NOT NULL,
    model_version   VARCHAR NOT NULL,
    prediction      DOUBLE,
    lo              DOUBLE,
    hi              DOUBLE,
    coverage        DOUBLE NOT NULL,
    observed        DOUBLE,
    trained         BOOLEAN NOT NULL
);

-- The loop, closed (inoc/prediction/rounds.py): per prompt trained after it was predicted, its prior
-- prediction (the latest made while untrained; the study's own model before the pooled one) and the outcome.
CREATE TABLE IF NOT EXISTS prediction_rounds (
    experiment      VARCHAR NOT NULL,
    prefix_type     VARCHAR NOT NULL,
    prompt_key      VARCHAR NOT NULL,
    scope           VARCHAR NOT NULL,
    round           INTEGER NOT NULL,        -- 1 = the first model version of (experiment, prefix type, scope)
    model_version   VARCHAR NOT NULL,
    prediction      DOUBLE,
    lo              DOUBLE,
    hi              DOUBLE,
    observed        DOUBLE,
    abs_error       DOUBLE,
    covered         BOOLEAN
);
