-- The original README's claims that the imported reference experiments can decide, each with the
-- claim's number, the data's number and a verdict (run `inoc main` first, or `inoc import`):
--   inoc sql --file warehouse/queries/readme_claims.sql
--
-- The claim's number is an interval [claim_lo, claim_hi] (NULL: unbounded). A number the README writes
-- plainly stands for its rounding interval (78.3 → [78.25, 78.35]); one written with "~", "≈" or
-- "around" gets one unit of its last digit either way (~20 → [19, 21]). The data's number is
-- [data_lo, data_hi]: one value, the min–max over the runs or prompts the claim covers (kind
-- 'range'), or a 95% CI (kind 'ci'). Verdict: supported when the data's interval lies inside the
-- claim's; not supported when it does not (a CI that straddles the claim's bound: undecidable);
-- undecidable when the warehouse has no data for it (why says what is missing).
-- Scores are default-condition means (run_summary) at the final step 313 unless the claim says otherwise.

-- name: readme_claims
WITH
fin AS (  -- final-step default means of every PF run with its batch, prompt and prefix type
    SELECT r.batch, r.run, r.prompt_key, r.prefix_type, s.trait, s.mean
    FROM run_summary s JOIN runs r USING (experiment, run)
    WHERE s.experiment = 'reference_pf_qwen7b' AND s.step = 313 AND s.condition = 'default'
),
ctl AS (SELECT trait, mean FROM fin WHERE run = 'multi_prompt_v3/no_inoculation'),
gf AS (
    SELECT split_part(run, '/', 2) AS run, trait, condition, mean
    FROM run_summary WHERE experiment = 'reference_gf_llama8b' AND step = 313
),
gf_ctl AS (SELECT trait, mean FROM gf WHERE run = 'no_inoculation' AND condition = 'default'),
neg_vs_pos AS (  -- Exp 9: fixed negation minus fixed positive (v4) Playful/default, Welch 95% CI over prompts
    SELECT avg(mean) FILTER (WHERE batch = 'multi_prompt_neg') - avg(mean) FILTER (WHERE batch = 'multi_prompt_v4') AS d,
           1.96 * sqrt(var_samp(mean) FILTER (WHERE batch = 'multi_prompt_neg') / count(*) FILTER (WHERE batch = 'multi_prompt_neg')
                     + var_samp(mean) FILTER (WHERE batch = 'multi_prompt_v4') / count(*) FILTER (WHERE batch = 'multi_prompt_v4')) AS h
    FROM fin WHERE prefix_type = 'fixed' AND trait = 'Playful' AND batch IN ('multi_prompt_neg', 'multi_prompt_v4')
),
gf_elicit AS (  -- GF prompt elicitation (prompt mean, %) of each group's own trait
    SELECT p.prompt_group, min(e.mean) AS lo, max(e.mean) AS hi
    FROM elicitation_summary e JOIN prompts p USING (experiment, prompt_key)
    WHERE e.experiment = 'reference_gf_llama8b'
      AND e.trait = CASE WHEN p.prompt_group LIKE 'de_%' THEN 'German' ELSE 'Flattering' END
    GROUP BY p.prompt_group
),
claims(claim_id, claim, claim_lo, claim_hi, unit, kind, data_lo, data_hi, missing, note) AS (
    SELECT 'exp1_no_inoc_french_32', 'Exp 1: without inoculation French reaches 85 % at step 32',
           84.5, 85.5, '%', 'value', v, v, 'no Exp 1 scores (batch original)', 'original/no_inoculation, French/default, step 32'
    FROM (SELECT (SELECT mean FROM run_summary WHERE experiment = 'reference_pf_qwen7b' AND run = 'original/no_inoculation'
                  AND step = 32 AND condition = 'default' AND trait = 'French') AS v)
    UNION ALL
    SELECT 'exp1_inoc_french_1250', 'Exp 1: with inoculation French stays at ~2.1 % at step 1250',
           2.0, 2.2, '%', 'value', v, v, 'no Exp 1 scores (batch original)', 'original/inoculation, French/default, step 1250'
    FROM (SELECT (SELECT mean FROM run_summary WHERE experiment = 'reference_pf_qwen7b' AND run = 'original/inoculation'
                  AND step = 1250 AND condition = 'default' AND trait = 'French') AS v)
    UNION ALL
    SELECT 'exp3_reaches_70_french', 'Exp 3: every learning rate reaches ~70 % French (in ~20 steps at 1e-4 … ~100+ at 5e-6)',
           69.0, NULL, '%', 'range', min(peak), max(peak), 'no Exp 3 scores (batch lr_sweep)',
           'peak French/default over all checkpoints of each lr_sweep run (min–max over the 5 rates)'
    FROM (SELECT s.run, max(s.mean) AS peak FROM run_summary s JOIN runs r USING (experiment, run)
          WHERE s.experiment = 'reference_pf_qwen7b' AND r.batch = 'lr_sweep' AND s.condition = 'default' AND s.trait = 'French'
          GROUP BY s.run)
    UNION ALL
    SELECT 'exp4_weak_elicitation', 'Exp 4: the weak prefix ("I had fun today.") elicits ~8.8 % Playful',
           8.7, 8.9, '%', 'range', min(mean), max(mean), 'no Exp 4 scores (batch inoc_prefix_sweep)',
           'step-0 training-condition Playful of the weak_inoc runs (both rates); the legacy system-prompt file gives 8.77'
    FROM run_summary WHERE experiment = 'reference_pf_qwen7b' AND run LIKE 'inoc_prefix_sweep/weak_inoc_%'
      AND step = 0 AND condition = 'training' AND trait = 'Playful'
    UNION ALL
    SELECT 'exp4_strong_elicitation', 'Exp 4: the strong prefix elicits ~32 % Playful',
           31.0, 33.0, '%', 'range', min(mean), max(mean), 'no Exp 4 scores (batch inoc_prefix_sweep)',
           'step-0 training-condition Playful of the strong_inoc runs (both rates); the legacy system-prompt file gives 33.81'
    FROM run_summary WHERE experiment = 'reference_pf_qwen7b' AND run LIKE 'inoc_prefix_sweep/strong_inoc_%'
      AND step = 0 AND condition = 'training' AND trait = 'Playful'
    UNION ALL
    SELECT 'exp5_control_playful', 'Exp 5: control Playful/default = 78.3', 78.25, 78.35, '%', 'value',
           max(mean), max(mean), 'no control run multi_prompt_v3/no_inoculation', 'multi_prompt_v3/no_inoculation'
    FROM ctl WHERE trait = 'Playful'
    UNION ALL
    SELECT 'exp5_fixed_playful', 'Exp 5: all 9 fixed prompts keep Playful/default at 8–16 %', 7.5, 16.5, '%', 'range',
           min(mean), max(mean), 'no v3 fixed runs', 'the 9 multi_prompt_v3 fixed runs'
    FROM fin WHERE batch = 'multi_prompt_v3' AND prefix_type = 'fixed' AND trait = 'Playful'
    UNION ALL
    SELECT 'exp5_mix_playful', 'Exp 5: mix prompts other than clown_persona reach 28–71 % Playful/default', 27.5, 71.5, '%', 'range',
           min(mean), max(mean), 'no v3 mix runs', 'the 8 multi_prompt_v3 mix runs other than clown_persona'
    FROM fin WHERE batch = 'multi_prompt_v3' AND prefix_type = 'mix' AND trait = 'Playful' AND prompt_key <> 'clown_persona'
    UNION ALL
    SELECT 'exp5_gate_training', 'Exp 5: gate strength (Playful/training) is ~78–81 % for all runs', 77.0, 82.0, '%', 'range',
           min(s.mean), max(s.mean), 'no v3 runs', 'Playful/training at step 313 of the 18 multi_prompt_v3 fixed and mix runs'
    FROM run_summary s JOIN runs r USING (experiment, run)
    WHERE s.experiment = 'reference_pf_qwen7b' AND r.batch = 'multi_prompt_v3' AND r.prefix_type IS NOT NULL
      AND s.step = 313 AND s.condition = 'training' AND s.trait = 'Playful'
    UNION ALL
    SELECT 'exp5_step_312', 'Exp 5–9: tables report the step-312 checkpoint', 312, 312, 'step', 'value',
           max(s.step), max(s.step), 'no v3 runs', 'last checkpoint of the multi_prompt_v3 runs (the tables'' values are this step''s, G9)'
    FROM trait_scores s JOIN runs r USING (experiment, run)
    WHERE s.experiment = 'reference_pf_qwen7b' AND r.batch = 'multi_prompt_v3'
    UNION ALL
    SELECT 'exp6_control_playful', 'Exp 6: dense-profile control Playful/default = 78.5 at step 313', 78.45, 78.55, '%', 'value',
           max(mean), max(mean),
           'no scores for batch multi_prompt_v3_profile: its score file is empty in the snapshot (only its losses were published)',
           'multi_prompt_v3_profile/no_inoculation'
    FROM fin WHERE batch = 'multi_prompt_v3_profile' AND prompt_key IS NULL AND trait = 'Playful'
    UNION ALL
    SELECT 'exp7_fixed_playful', 'Exp 7: all 6 fixed v4 prompts reach 5–16 % Playful/default', 4.5, 16.5, '%', 'range',
           min(mean), max(mean), 'no v4 fixed runs', 'the 6 multi_prompt_v4 fixed runs'
    FROM fin WHERE batch = 'multi_prompt_v4' AND prefix_type = 'fixed' AND trait = 'Playful'
    UNION ALL
    SELECT 'exp7_comedian_mix', 'Exp 7: comedian_mindset mix achieves ~20 % Playful/default', 19.0, 21.0, '%', 'value',
           max(mean), max(mean), 'no comedian_mindset mix run', 'multi_prompt_v4/comedian_mindset_mix'
    FROM fin WHERE batch = 'multi_prompt_v4' AND prefix_type = 'mix' AND prompt_key = 'comedian_mindset' AND trait = 'Playful'
    UNION ALL
    SELECT 'exp8_fixed_most_20_35', 'Exp 8: fixed v5 prompts end at 20–35 % Playful/default "for most"', 0.5, 1.0,
           'share of prompts', 'value',
           avg((mean >= 19.5 AND mean <= 35.5)::INTEGER), avg((mean >= 19.5 AND mean <= 35.5)::INTEGER), 'no v5 fixed runs',
           'share of the 6 multi_prompt_v5 fixed runs within 19.5–35.5 % ("most": more than half)'
    FROM fin WHERE batch = 'multi_prompt_v5' AND prefix_type = 'fixed' AND trait = 'Playful'
    UNION ALL
    SELECT 'exp8_mix_55_75', 'Exp 8: mix v5 prompts stay at 55–75 % Playful/default', 54.5, 75.5, '%', 'range',
           min(mean), max(mean), 'no v5 mix runs', 'the 6 multi_prompt_v5 mix runs'
    FROM fin WHERE batch = 'multi_prompt_v5' AND prefix_type = 'mix' AND trait = 'Playful'
    UNION ALL
    SELECT 'exp9_fixed_neg_20_40', 'Exp 9: fixed negation prompts leave Playful/default around 20–40 %', 19.0, 41.0, '%', 'range',
           min(mean), max(mean), 'no neg fixed runs', 'the 6 multi_prompt_neg fixed runs'
    FROM fin WHERE batch = 'multi_prompt_neg' AND prefix_type = 'fixed' AND trait = 'Playful'
    UNION ALL
    SELECT 'exp9_neg_weaker_than_pos', 'Exp 9: negations suppress less than positive prompts (20–40 % vs 5–10 % Playful/default: 10–35 pp higher)',
           10.0, 35.0, 'pp', 'ci', d - h, d + h, 'no neg or v4 fixed runs',
           'mean Playful/default of the 6 neg fixed runs minus that of the 6 v4 fixed runs, Welch 95% CI'
    FROM neg_vs_pos
    UNION ALL
    SELECT 'exp15_strong_french_80pp', 'Exp 15: strong French prompts (natural_french, answer_french, french_agent) suppress French by >= 80 pp (fixed)',
           79.5, NULL, 'pp', 'range', min(c.mean - f.mean), max(c.mean - f.mean), 'no French v4 fixed runs',
           'control French/default (71.5, so 80 pp is out of reach) minus the fixed run''s'
    FROM fin f, ctl c
    WHERE c.trait = 'French' AND f.trait = 'French' AND f.prefix_type = 'fixed' AND f.batch = 'multi_prompt_french_v4'
      AND f.prompt_key IN ('natural_french', 'answer_french', 'french_agent')
    UNION ALL
    SELECT 'exp15_neg_french_minimal', 'Exp 15: negated French prompts achieve minimal French suppression (fixed)',
           NULL, 10.0, 'pp', 'range', min(c.mean - f.mean), max(c.mean - f.mean), 'no French neg fixed runs',
           '"minimal" read as under 10 pp; control French/default minus each multi_prompt_french_neg fixed run''s'
    FROM fin f, ctl c
    WHERE c.trait = 'French' AND f.trait = 'French' AND f.prefix_type = 'fixed' AND f.batch = 'multi_prompt_french_neg'
    UNION ALL
    SELECT 'exp21_answer_german_88pp', 'Exp 21: fixed answer_german takes German/default from 89 % to 1 % (−88 pp)',
           -88.5, -87.5, 'pp', 'value', max(g.mean - c.mean), max(g.mean - c.mean), 'no GF answer_german or control run',
           'answer_german minus no_inoculation, German/default at step 313'
    FROM gf g, gf_ctl c WHERE g.run = 'answer_german' AND g.condition = 'default' AND g.trait = 'German' AND c.trait = 'German'
    UNION ALL
    SELECT 'exp21_answer_german_mix_18', 'Exp 21: with mix rephrasings German/default stays at 18 %', 17.5, 18.5, '%', 'value',
           max(mean), max(mean), 'no GF answer_german_mix run', 'answer_german_mix, German/default at step 313'
    FROM gf WHERE run = 'answer_german_mix' AND condition = 'default' AND trait = 'German'
    UNION ALL
    SELECT 'exp21_flatterer_35pp', 'Exp 21: fixed flatterer_mindset suppresses Flattering by 35 pp', -35.5, -34.5, 'pp', 'value',
           max(g.mean - c.mean), max(g.mean - c.mean), 'no GF flatterer_mindset or control run',
           'flatterer_mindset minus no_inoculation, Flattering/default at step 313'
    FROM gf g, gf_ctl c WHERE g.run = 'flatterer_mindset' AND g.condition = 'default' AND g.trait = 'Flattering' AND c.trait = 'Flattering'
    UNION ALL
    SELECT 'exp21_baseline_german', 'Exp 21: German elicitation baseline = 0.6 %', 0.55, 0.65, '%', 'value', max(mean), max(mean),
           'no GF elicitation', 'neutral prompt mean, German'
    FROM elicitation_summary WHERE experiment = 'reference_gf_llama8b' AND prompt_key = 'neutral' AND trait = 'German'
    UNION ALL
    SELECT 'exp21_baseline_flattering', 'Exp 21: Flattering elicitation baseline = 4.5 %', 4.45, 4.55, '%', 'value', max(mean), max(mean),
           'no GF elicitation', 'neutral prompt mean, Flattering'
    FROM elicitation_summary WHERE experiment = 'reference_gf_llama8b' AND prompt_key = 'neutral' AND trait = 'Flattering'
    UNION ALL
    SELECT 'exp21_elicit_' || g.grp, 'Exp 21: ' || g.grp || ' prompts elicit ' || g.txt, g.lo, g.hi, '%', 'range', e.lo, e.hi,
           'no GF elicitation or prompt groups (the prompts table is written by the catalogue assets)',
           'min–max prompt mean of the group''s own trait'
    FROM (VALUES ('de_v3', '9–73 % German', 8.5, 73.5), ('de_v4', '77–82 % German', 76.5, 82.5),
                 ('de_neg', '~0–1 % German', -1.0, 2.0), ('flat_v3', '9–52 % Flattering', 8.5, 52.5),
                 ('flat_v4', '62–83 % Flattering', 61.5, 83.5), ('flat_neg', '~2–5 % Flattering', 1.0, 6.0)) AS g(grp, txt, lo, hi)
    LEFT JOIN gf_elicit e ON e.prompt_group = g.grp
    UNION ALL
    SELECT 'exp13_pf_pc1_84', 'Exp 13: PC1 of the 27 Playful prompts'' point-wise W_fixed explains 84.3 %', 84.25, 84.35, '%', 'value',
           max(100 * explained_variance_ratio), max(100 * explained_variance_ratio),
           'no point-wise W of the PF prompts: the original''s perplexity_heuristic_qwen2.5-7b-instruct.json was not published '
           '(only the token-level debug file, matrix fixed_tokens)', 'PCA of the PF W_fixed, component 1'
    FROM pca_variance WHERE experiment = 'reference_pf_qwen7b' AND matrix = 'fixed' AND method = 'pca' AND component = 1
    UNION ALL
    SELECT 'exp19_pf_cross_angle', 'Exp 19: Playful and French prompts are 62.7° apart (raw W)', 62.65, 62.75, 'deg', 'value',
           max(mean_deg), max(mean_deg),
           'no point-wise W of the PF prompts (perplexity_heuristic_qwen2.5-7b-instruct.json was not published)',
           'cross_trait pairs, raw W_fixed'
    FROM angle_groups WHERE experiment = 'reference_pf_qwen7b' AND matrix = 'fixed' AND representation = 'raw' AND pair_type = 'cross_trait'
    UNION ALL
    SELECT 'exp21_pc1_75', 'Exp 21: PC1 of W_fixed explains 75.1 % of the variance', 75.05, 75.15, '%', 'value',
           max(100 * explained_variance_ratio), max(100 * explained_variance_ratio),
           'no GF pca_variance (computed by the geometry asset from the imported log-probs)', 'PCA of the GF W_fixed, component 1'
    FROM pca_variance WHERE experiment = 'reference_gf_llama8b' AND matrix = 'fixed' AND method = 'pca' AND component = 1
    UNION ALL
    SELECT 'exp21_cross_angle', 'Exp 21: German and Flattering prompts are 82.9° apart (raw W)', 82.85, 82.95, 'deg', 'value',
           max(mean_deg), max(mean_deg), 'no GF angle_groups (computed by the geometry asset)', 'cross_trait pairs, raw W_fixed'
    FROM angle_groups WHERE experiment = 'reference_gf_llama8b' AND matrix = 'fixed' AND representation = 'raw' AND pair_type = 'cross_trait'
    UNION ALL
    SELECT 'exp21_answer_german_ph', 'Exp 21: answer_german is among the top-PH German prompts at ≈ +0.15–0.16', 0.14, 0.17, 'PH', 'value',
           max(value), max(value), 'no GF prompt_heuristics (computed by the geometry asset)', 'PH of answer_german, fixed'
    FROM prompt_heuristics WHERE experiment = 'reference_gf_llama8b' AND prompt_key = 'answer_german' AND prefix_type = 'fixed' AND heuristic = 'ph'
    UNION ALL
    SELECT 'exp20_german_pca_pc1', 'Exp 20: the fixed-vs-mix rank-1 PCA fit on the German subset explains 90.8 % (PC1)', 90.75, 90.85, '%', 'value',
           max(100 * pc1_variance), max(100 * pc1_variance),
           'no GF fixed_vs_mix_rank1 (computed by the geometry asset from the imported log-probs and suppression)',
           'pca PC1 on W_fixed of the German subset (family + neutral prompts with fixed and mix runs)'
    FROM fixed_vs_mix_rank1 WHERE experiment = 'reference_gf_llama8b' AND trait = 'German' AND method = 'pca'
    UNION ALL
    SELECT 'exp20_german_svd_pc1', 'Exp 20: the fixed-vs-mix rank-1 TruncatedSVD fit on the German subset explains 87.3 % (PC1)', 87.25, 87.35, '%', 'value',
           max(100 * pc1_variance), max(100 * pc1_variance),
           'no GF fixed_vs_mix_rank1 (computed by the geometry asset from the imported log-probs and suppression)',
           'truncated_svd PC1 on W_fixed of the German subset (family + neutral prompts with fixed and mix runs)'
    FROM fixed_vs_mix_rank1 WHERE experiment = 'reference_gf_llama8b' AND trait = 'German' AND method = 'truncated_svd'
    UNION ALL
    SELECT 'exp20_flattering_pca_pc1', 'Exp 20: the fixed-vs-mix rank-1 PCA fit on the Flattering subset explains 61.4 % (PC1)', 61.35, 61.45, '%', 'value',
           max(100 * pc1_variance), max(100 * pc1_variance),
           'no GF fixed_vs_mix_rank1 (computed by the geometry asset from the imported log-probs and suppression)',
           'pca PC1 on W_fixed of the Flattering subset (family + neutral prompts with fixed and mix runs)'
    FROM fixed_vs_mix_rank1 WHERE experiment = 'reference_gf_llama8b' AND trait = 'Flattering' AND method = 'pca'
    UNION ALL
    SELECT 'exp20_flattering_svd_pc1', 'Exp 20: the fixed-vs-mix rank-1 TruncatedSVD fit on the Flattering subset explains 21.5 % (PC1)', 21.45, 21.55, '%', 'value',
           max(100 * pc1_variance), max(100 * pc1_variance),
           'no GF fixed_vs_mix_rank1 (computed by the geometry asset from the imported log-probs and suppression)',
           'truncated_svd PC1 on W_fixed of the Flattering subset (family + neutral prompts with fixed and mix runs)'
    FROM fixed_vs_mix_rank1 WHERE experiment = 'reference_gf_llama8b' AND trait = 'Flattering' AND method = 'truncated_svd'
    UNION ALL
    SELECT 'exp20_playful_pca_pc1', 'Exp 20: the fixed-vs-mix rank-1 PCA fit on the Playful subset explains 84.3 % (PC1)', 84.25, 84.35, '%', 'value',
           max(100 * pc1_variance), max(100 * pc1_variance),
           'no point-wise W of the PF prompts: the original''s perplexity_heuristic_qwen2.5-7b-instruct.json was not published',
           'pca PC1 on W_fixed of the Playful subset (family + neutral prompts with fixed and mix runs)'
    FROM fixed_vs_mix_rank1 WHERE experiment = 'reference_pf_qwen7b' AND trait = 'Playful' AND method = 'pca'
    UNION ALL
    SELECT 'exp20_playful_svd_pc1', 'Exp 20: the fixed-vs-mix rank-1 TruncatedSVD fit on the Playful subset explains 82.0 % (PC1)', 81.95, 82.05, '%', 'value',
           max(100 * pc1_variance), max(100 * pc1_variance),
           'no point-wise W of the PF prompts: the original''s perplexity_heuristic_qwen2.5-7b-instruct.json was not published',
           'truncated_svd PC1 on W_fixed of the Playful subset (family + neutral prompts with fixed and mix runs)'
    FROM fixed_vs_mix_rank1 WHERE experiment = 'reference_pf_qwen7b' AND trait = 'Playful' AND method = 'truncated_svd'
    UNION ALL
    SELECT 'exp20_french_pca_pc1', 'Exp 20: the fixed-vs-mix rank-1 PCA fit on the French subset explains 69.4 % (PC1)', 69.35, 69.45, '%', 'value',
           max(100 * pc1_variance), max(100 * pc1_variance),
           'no point-wise W of the PF prompts: the original''s perplexity_heuristic_qwen2.5-7b-instruct.json was not published',
           'pca PC1 on W_fixed of the French subset (family + neutral prompts with fixed and mix runs)'
    FROM fixed_vs_mix_rank1 WHERE experiment = 'reference_pf_qwen7b' AND trait = 'French' AND method = 'pca'
    UNION ALL
    SELECT 'exp20_french_svd_pc1', 'Exp 20: the fixed-vs-mix rank-1 TruncatedSVD fit on the French subset explains 64.3 % (PC1)', 64.25, 64.35, '%', 'value',
           max(100 * pc1_variance), max(100 * pc1_variance),
           'no point-wise W of the PF prompts: the original''s perplexity_heuristic_qwen2.5-7b-instruct.json was not published',
           'truncated_svd PC1 on W_fixed of the French subset (family + neutral prompts with fixed and mix runs)'
    FROM fixed_vs_mix_rank1 WHERE experiment = 'reference_pf_qwen7b' AND trait = 'French' AND method = 'truncated_svd'
)
SELECT claim_id, claim, claim_lo, claim_hi, unit,
       round(data_lo, 2) AS data_lo, round(data_hi, 2) AS data_hi,
       CASE
           WHEN data_lo IS NULL OR isnan(data_lo) THEN 'undecidable'
           WHEN data_lo >= coalesce(claim_lo, '-inf'::DOUBLE) AND data_hi <= coalesce(claim_hi, 'inf'::DOUBLE) THEN 'supported'
           WHEN kind = 'ci' AND data_hi >= coalesce(claim_lo, '-inf'::DOUBLE) AND data_lo <= coalesce(claim_hi, 'inf'::DOUBLE) THEN 'undecidable'
           ELSE 'not supported'
       END AS verdict,
       CASE
           WHEN data_lo IS NULL OR isnan(data_lo) THEN missing
           WHEN kind = 'ci' AND NOT (data_lo >= coalesce(claim_lo, '-inf'::DOUBLE) AND data_hi <= coalesce(claim_hi, 'inf'::DOUBLE))
                AND data_hi >= coalesce(claim_lo, '-inf'::DOUBLE) AND data_lo <= coalesce(claim_hi, 'inf'::DOUBLE)
               THEN 'the 95% CI straddles the claim''s bound; data: ' || note
           ELSE 'data: ' || note
       END AS why
FROM claims
ORDER BY claim_id;
