-- Tables of the original study's README, recomputed by SQL from the imported reference experiments
-- (run `inoc main` first). Run them all, or one by name:
--   inoc sql --file warehouse/queries/reference_tables.sql [--name exp5_table]

-- name: trained_baselines
-- Final-step default-condition score of each study's designated control run.
SELECT s.experiment, s.trait, round(s.mean, 1) AS score
FROM run_summary s
WHERE s.run IN ('multi_prompt_v3/no_inoculation', 'german_flattering/no_inoculation') AND s.condition = 'default'
  AND s.step = (SELECT max(step) FROM run_summary t WHERE t.experiment = s.experiment AND t.run = s.run)
ORDER BY 1, 2;

-- name: exp5_table
-- Experiment 5 (v3 prompts): final-step means of the fixed and mix runs; elicitation column =
-- step-0 training-condition Playful of the mix run.
WITH f AS (
    SELECT r.prompt_key, r.prefix_type, s.step, s.condition, s.trait, s.mean
    FROM run_summary s JOIN runs r USING (experiment, run)
    WHERE s.experiment = 'reference_pf_qwen7b' AND r.batch = 'multi_prompt_v3' AND r.prompt_key IS NOT NULL
)
SELECT prompt_key,
  round(max(mean) FILTER (WHERE prefix_type = 'fixed' AND step = 313 AND condition = 'default'  AND trait = 'Playful'), 1) AS fix_playful_def,
  round(max(mean) FILTER (WHERE prefix_type = 'fixed' AND step = 313 AND condition = 'default'  AND trait = 'French'), 1)  AS fix_french_def,
  round(max(mean) FILTER (WHERE prefix_type = 'fixed' AND step = 313 AND condition = 'training' AND trait = 'Playful'), 1) AS fix_playful_tr,
  round(max(mean) FILTER (WHERE prefix_type = 'mix'   AND step = 313 AND condition = 'default'  AND trait = 'Playful'), 1) AS mix_playful_def,
  round(max(mean) FILTER (WHERE prefix_type = 'mix'   AND step = 313 AND condition = 'default'  AND trait = 'French'), 1)  AS mix_french_def,
  round(max(mean) FILTER (WHERE prefix_type = 'mix'   AND step = 313 AND condition = 'training' AND trait = 'Playful'), 1) AS mix_playful_tr,
  round(max(mean) FILTER (WHERE prefix_type = 'mix'   AND step = 0   AND condition = 'training' AND trait = 'Playful'), 1) AS elicitation
FROM f GROUP BY prompt_key ORDER BY fix_playful_def, prompt_key;

-- name: gf_training_table
-- German/Flattering production runs at the final step.
SELECT split_part(run, '/', 2) AS run,
  round(max(mean) FILTER (WHERE condition = 'default'  AND trait = 'German'), 1)     AS german_def,
  round(max(mean) FILTER (WHERE condition = 'training' AND trait = 'German'), 1)     AS german_trn,
  round(max(mean) FILTER (WHERE condition = 'default'  AND trait = 'Flattering'), 1) AS flat_def,
  round(max(mean) FILTER (WHERE condition = 'training' AND trait = 'Flattering'), 1) AS flat_trn
FROM run_summary WHERE experiment = 'reference_gf_llama8b' AND step = 313
GROUP BY run ORDER BY run;

-- name: gf_pca_variance
SELECT matrix, component, round(100 * explained_variance_ratio, 1) AS pct
FROM pca_variance WHERE experiment = 'reference_gf_llama8b' AND method = 'pca' AND component <= 2
ORDER BY matrix, component;

-- name: gf_pca_correlations
SELECT component, heuristic, round(r, 3) AS r, n
FROM pca_correlations
WHERE experiment = 'reference_gf_llama8b' AND matrix = 'fixed' AND method = 'pca'
ORDER BY component, heuristic;

-- name: gf_selected_prompt_coords
SELECT prompt_key,
  round(max(value) FILTER (WHERE component = 1), 2) AS pc1,
  round(max(value) FILTER (WHERE component = 2), 2) AS pc2
FROM prompt_coords
WHERE experiment = 'reference_gf_llama8b' AND matrix = 'fixed' AND method = 'pca'
  AND prompt_key IN ('answer_german', 'flatterer_mindset', 'avoid_flattery', 'think_german_neg', 'birds_sing', 'coffee_is_hot')
GROUP BY prompt_key ORDER BY pc1 DESC;

-- name: gf_angle_table
SELECT pair_type, round(mean_deg, 1) AS mean_deg, round(std_deg, 1) AS std_deg, n_pairs
FROM angle_groups WHERE experiment = 'reference_gf_llama8b' AND matrix = 'fixed' AND representation = 'raw';

-- name: gf_top_ph
SELECT prompt_key, round(value, 3) AS ph
FROM prompt_heuristics WHERE experiment = 'reference_gf_llama8b' AND prefix_type = 'fixed' AND heuristic = 'ph'
ORDER BY value DESC LIMIT 5;

-- name: gf_fixed_vs_mix_pc1
-- Golden G8 (Exp 20): PC1 variance of the rank-1 fits on W_fixed of each trait's 4-prompt subset
-- (German 90.8 % / 87.3 %, Flattering 61.4 % / 21.5 %, PCA / TruncatedSVD).
SELECT trait, n_prompts, prompt_keys,
  round(100 * max(pc1_variance) FILTER (WHERE method = 'pca'), 1)           AS pca_pct,
  round(100 * max(pc1_variance) FILTER (WHERE method = 'truncated_svd'), 1) AS svd_pct
FROM fixed_vs_mix_rank1 WHERE experiment = 'reference_gf_llama8b'
GROUP BY ALL ORDER BY trait DESC;

-- name: gf_fixed_vs_mix_gap_correlations
-- Exp 20's figure as a table: r of each heuristic (raw W and the two rank-1 reconstructions) with
-- fixed − mix and control − mix of the trait, over the trait's subset.
SELECT trait, variant, heuristic,
  round(max(r) FILTER (WHERE target = 'fixed_minus_mix'), 3)   AS r_fixed_minus_mix,
  round(max(r) FILTER (WHERE target = 'control_minus_mix'), 3) AS r_control_minus_mix,
  max(n) AS n
FROM fixed_vs_mix_gap_correlations WHERE experiment = 'reference_gf_llama8b'
GROUP BY ALL ORDER BY trait DESC, variant, heuristic;

-- name: elicitation_baselines
SELECT experiment, trait, round(mean, 2) AS baseline
FROM elicitation_summary WHERE prompt_key = 'neutral' ORDER BY 1, 2;

-- name: exp1_table
-- Experiment 1 (golden G10): mean default-condition French and Playful of the two runs of
-- scores_qwen2.5-7b-instruct.json at the untrained baseline (step 0), step 32 and step 1250.
SELECT split_part(run, '/', 2) AS run, step,
  round(max(mean) FILTER (WHERE trait = 'French'), 2)  AS french,
  round(max(mean) FILTER (WHERE trait = 'Playful'), 2) AS playful
FROM run_summary
WHERE experiment = 'reference_pf_qwen7b' AND run LIKE 'original/%' AND condition = 'default' AND step IN (0, 32, 1250)
GROUP BY ALL ORDER BY run DESC, step;

-- name: exp7_9_relative_elicitation
-- Experiments 7–9 (golden G12): Playful elicitation of the v4, v5 and neg prompts relative to the
-- neutral row (7.12), from the legacy file that applied each prompt as the system prompt
-- (elicitation_scores_old_system_prompt.json → elicitation_scores_by_setting, setting system_prompt).
WITH s AS (
    SELECT experiment, prompt_key, trait, avg(score) FILTER (WHERE NOT isnan(score)) AS mean
    FROM elicitation_scores_by_setting
    WHERE experiment = 'reference_pf_qwen7b' AND setting = 'system_prompt' AND trait = 'Playful'
    GROUP BY ALL
)
SELECT r.batch, s.prompt_key, round(s.mean, 2) AS playful, round(s.mean - b.mean, 2) AS relative_pp
FROM s
JOIN s AS b ON b.experiment = s.experiment AND b.trait = s.trait AND b.prompt_key = 'neutral'
JOIN runs r ON r.experiment = s.experiment AND r.prompt_key = s.prompt_key AND r.prefix_type = 'fixed'
WHERE r.batch IN ('multi_prompt_v4', 'multi_prompt_v5', 'multi_prompt_neg')
ORDER BY r.batch, relative_pp DESC;

-- name: french_fixed_vs_mix_gap
-- Golden G18 ("≈ 0 pp, mean −0.3 pp"): mean over the 21 French-trained prompts (French v3, v4, neg
-- batches) of fixed − mix French/default at the final step 313, in pp.
WITH f AS (
    SELECT r.prompt_key,
           max(s.mean) FILTER (WHERE r.prefix_type = 'fixed') AS fixed,
           max(s.mean) FILTER (WHERE r.prefix_type = 'mix')   AS mix
    FROM run_summary s JOIN runs r USING (experiment, run)
    WHERE s.experiment = 'reference_pf_qwen7b' AND r.batch LIKE 'multi_prompt_french_%'
      AND s.step = 313 AND s.condition = 'default' AND s.trait = 'French'
    GROUP BY r.prompt_key
)
SELECT count(*) AS n_prompts, round(avg(fixed - mix), 2) AS mean_gap_pp,
       round(min(fixed - mix), 1) AS min_gap_pp, round(max(fixed - mix), 1) AS max_gap_pp
FROM f WHERE fixed IS NOT NULL AND mix IS NOT NULL;

-- name: sweep_checkpoints
-- Experiments 3 and 4: every checkpoint of the learning-rate and prefix sweeps, by learning rate and
-- prefix (prompt key: had_fun_today = weak, corrected_inoculation = strong, neutral_prefix = Exp 4's neutral
-- prefix; NULL for the un-inoculated runs), both conditions (Exp 3's training condition = its `inoculation`
-- evaluation prompt).
SELECT r.batch, r.learning_rate, split_part(r.run, '/', 2) AS run, r.prompt_key, r.prefix_type, s.step, s.condition,
  round(max(s.mean) FILTER (WHERE s.trait = 'French'), 1)  AS french,
  round(max(s.mean) FILTER (WHERE s.trait = 'Playful'), 1) AS playful
FROM run_summary s JOIN runs r USING (experiment, run)
WHERE s.experiment = 'reference_pf_qwen7b' AND r.batch IN ('lr_sweep', 'inoc_prefix_sweep')
GROUP BY ALL ORDER BY r.batch, r.learning_rate DESC, run, s.step, s.condition;

-- name: sweep_suppression
-- Experiments 3 and 4 in suppression_by_batch: each Exp 4 prefix run against its own rate's un-inoculated run
-- (default_lr_1e4 / default_lr_5e6), both traits; each Exp 3 rate has one row with no suppression and the reason
-- (view suppression_batches: its five runs are all un-inoculated).
SELECT b.batch, b.learning_rate, split_part(s.run, '/', 2) AS run, s.prompt_key, s.prefix_type, s.trait, s.target,
       round(s.suppression, 1) AS suppression, round(s.ci_lo, 1) AS ci_lo, round(s.ci_hi, 1) AS ci_hi, s.n,
       split_part(coalesce(s.control_run, b.control_run), '/', 2) AS control, b.note
FROM suppression_batches b
LEFT JOIN suppression_by_batch s ON s.experiment = b.experiment AND s.batch = b.batch
    AND s.learning_rate IS NOT DISTINCT FROM b.learning_rate
WHERE b.experiment = 'reference_pf_qwen7b' AND b.batch IN ('lr_sweep', 'inoc_prefix_sweep')
ORDER BY b.batch, b.learning_rate DESC, run, s.trait;

-- name: gf_h3_german_rows
-- Golden G16 (SPEC-DETAILED §8.7): H3, the trait-resolved TruncatedSVD of W_fixed over the German set
-- (21 German-family + 6 neutral prompts; oriented so the neutral prompts sit low), per prompt. The
-- original's per-prompt values live in slides/data/dataset.csv, which the snapshot does not hold; the
-- variance (81.0 % / 3.8 %) and an independent sklearn fit are checked in tests/test_heuristic_registry.py.
SELECT prompt_key,
  round(max(value) FILTER (WHERE heuristic = 'pc1_trait_svd_german'), 6) AS pc1_trait_svd,
  round(max(value) FILTER (WHERE heuristic = 'pc2_trait_svd_german'), 6) AS pc2_trait_svd
FROM prompt_heuristics
WHERE experiment = 'reference_gf_llama8b' AND heuristic IN ('pc1_trait_svd_german', 'pc2_trait_svd_german')
GROUP BY ALL ORDER BY pc1_trait_svd DESC;

-- name: gf_fixed_vs_mix_columns
-- Golden G17 (SPEC-DETAILED §2.6.10): the GF dataset.csv columns from W_fixed and W_mix of each prompt
-- (std with ddof 0). As G16, the original's values are in the absent dataset.csv; the formulas are
-- checked against numpy in tests/test_heuristic_registry.py.
SELECT prompt_key,
  max(value) FILTER (WHERE heuristic = 'lp_spread_mean')           AS lp_spread_mean,
  max(value) FILTER (WHERE heuristic = 'lp_spread_std')            AS lp_spread_std,
  max(value) FILTER (WHERE heuristic = 'w_std_diff')               AS w_std_diff,
  max(value) FILTER (WHERE heuristic = 'w_cos')                    AS w_cos,
  max(value) FILTER (WHERE heuristic = 'w_cor')                    AS w_cor,
  max(value) FILTER (WHERE heuristic = 'w_sign_agree')             AS w_sign_agree,
  max(value) FILTER (WHERE heuristic = 'w_std_ratio')              AS w_std_ratio,
  max(value) FILTER (WHERE heuristic = 'w_l2')                     AS w_l2,
  max(value) FILTER (WHERE heuristic = 'w_proj')                   AS w_proj,
  max(value) FILTER (WHERE heuristic = 'ph_mix_all')               AS ph_mix_all,
  max(value) FILTER (WHERE heuristic = 'ph_ratio')                 AS ph_ratio,
  max(value) FILTER (WHERE heuristic = 'ph_drop')                  AS ph_drop,
  max(value) FILTER (WHERE heuristic = 'snr_all')                  AS snr_all,
  max(value) FILTER (WHERE heuristic = 'snr_mix')                  AS snr_mix,
  max(value) FILTER (WHERE heuristic = 'snr_drop')                 AS snr_drop,
  max(value) FILTER (WHERE heuristic = 'snr_ratio_mix_over_fixed') AS snr_ratio_mix_over_fixed
FROM prompt_heuristics
WHERE experiment = 'reference_gf_llama8b' AND prefix_type IS NULL
GROUP BY ALL HAVING count(*) FILTER (WHERE heuristic = 'w_cos') > 0
ORDER BY prompt_key;
