-- Views over the tidy tables. Recreated on every write connection (CREATE OR REPLACE).

-- Per (run, step, condition, trait): mean with the 95% CI of docs/methods.md#run-score,
-- mean ± 1.96·SE, SE = std(ddof=1)/sqrt(n) over non-NaN scores. NaN scores are counted, not averaged.
CREATE OR REPLACE VIEW run_summary AS
SELECT
    experiment, run, step, condition, trait,
    count(*) FILTER (WHERE NOT isnan(score))                      AS n,
    count(*) FILTER (WHERE score IS NULL OR isnan(score))         AS n_nan,
    avg(score) FILTER (WHERE NOT isnan(score))                    AS mean,
    avg(score) FILTER (WHERE NOT isnan(score))
      - 1.96 * stddev_samp(score) FILTER (WHERE NOT isnan(score))
        / sqrt(count(*) FILTER (WHERE NOT isnan(score)))          AS ci_lo,
    avg(score) FILTER (WHERE NOT isnan(score))
      + 1.96 * stddev_samp(score) FILTER (WHERE NOT isnan(score))
        / sqrt(count(*) FILTER (WHERE NOT isnan(score)))          AS ci_hi
FROM trait_scores
GROUP BY ALL;

-- Per (prompt, trait): elicitation mean with CI, and its strength relative to the 'neutral' row (pp).
CREATE OR REPLACE VIEW elicitation_summary AS
WITH s AS (
    SELECT experiment, prompt_key, trait,
           count(*) FILTER (WHERE NOT isnan(score))                AS n,
           count(*) FILTER (WHERE score IS NULL OR isnan(score))   AS n_nan,
           avg(score) FILTER (WHERE NOT isnan(score))              AS mean,
           stddev_samp(score) FILTER (WHERE NOT isnan(score))      AS sd
    FROM elicitation_scores GROUP BY ALL
)
SELECT s.experiment, s.prompt_key, s.trait, s.n, s.n_nan, s.mean,
       s.mean - 1.96 * s.sd / sqrt(s.n) AS ci_lo,
       s.mean + 1.96 * s.sd / sqrt(s.n) AS ci_hi,
       s.mean - b.mean                  AS relative_pp
FROM s LEFT JOIN s AS b
  ON b.experiment = s.experiment AND b.trait = s.trait AND b.prompt_key = 'neutral';

-- Fixed-vs-mix suppression gap per (prompt, trait): S_fixed − S_mix (positive: fixed suppresses
-- more), CI half-width sqrt(h_fixed² + h_mix²) with h = (ci_hi − ci_lo)/2 (docs/methods.md#gap).
CREATE OR REPLACE VIEW suppression_gap AS
SELECT f.experiment, f.prompt_key, f.trait, f.target,
       f.suppression - m.suppression AS gap,
       f.suppression - m.suppression - sqrt(power((f.ci_hi - f.ci_lo) / 2, 2) + power((m.ci_hi - m.ci_lo) / 2, 2)) AS ci_lo,
       f.suppression - m.suppression + sqrt(power((f.ci_hi - f.ci_lo) / 2, 2) + power((m.ci_hi - m.ci_lo) / 2, 2)) AS ci_hi
FROM suppression f
JOIN suppression m ON m.experiment = f.experiment AND m.prompt_key = f.prompt_key AND m.trait = f.trait
WHERE f.prefix_type = 'fixed' AND m.prefix_type = 'mix';

-- EM rate per (run, step, eval set, condition) over completions with both scores, with the
-- binomial 95% CI the original plotted (p ± 1.96·sqrt(p(1−p)/n)), and the two means with CIs.
CREATE OR REPLACE VIEW em_summary AS
WITH pairs AS (
    SELECT *, NOT isnan(coherence) AND NOT isnan(alignment) AS paired,
           coherence > coherence_threshold AND alignment < alignment_threshold AS em
    FROM em_scores
)
SELECT experiment, run, step, eval_set, condition,
       count(*) FILTER (WHERE paired)                                   AS n_pairs,
       avg(em::DOUBLE) FILTER (WHERE paired)                            AS em_rate,
       avg(em::DOUBLE) FILTER (WHERE paired) - 1.96 * sqrt(avg(em::DOUBLE) FILTER (WHERE paired)
           * (1 - avg(em::DOUBLE) FILTER (WHERE paired)) / count(*) FILTER (WHERE paired)) AS em_rate_ci_lo,
       avg(em::DOUBLE) FILTER (WHERE paired) + 1.96 * sqrt(avg(em::DOUBLE) FILTER (WHERE paired)
           * (1 - avg(em::DOUBLE) FILTER (WHERE paired)) / count(*) FILTER (WHERE paired)) AS em_rate_ci_hi,
       avg(coherence) FILTER (WHERE NOT isnan(coherence))               AS coherence_mean,
       1.96 * stddev_samp(coherence) FILTER (WHERE NOT isnan(coherence))
           / sqrt(count(*) FILTER (WHERE NOT isnan(coherence)))         AS coherence_ci_half,
       avg(alignment) FILTER (WHERE NOT isnan(alignment))               AS alignment_mean,
       1.96 * stddev_samp(alignment) FILTER (WHERE NOT isnan(alignment))
           / sqrt(count(*) FILTER (WHERE NOT isnan(alignment)))         AS alignment_ci_half
FROM pairs
GROUP BY ALL;

-- Per (experiment, batch, learning rate) of `runs`: how many `suppression_by_batch` rows it has, against which
-- control, and when none, why (docs/methods.md#suppression): a batch whose runs are all un-inoculated (Exp 3's
-- learning-rate sweep) has nothing to set against a control; one without a control of its own is measured
-- against the designated control in `suppression` only.
CREATE OR REPLACE VIEW suppression_batches AS
WITH r AS (
    SELECT experiment, batch, learning_rate,
           count(*)                                                          AS n_runs,
           count(*) FILTER (WHERE prompt_key IS NULL AND prefix_type IS NULL) AS n_uninoculated,
           count(*) FILTER (WHERE prompt_key IS NOT NULL)                    AS n_prompt_runs,
           count(*) FILTER (WHERE prompt_key IS NULL AND prefix_type IS NOT NULL) AS n_unkeyed_prefix_runs
    FROM runs GROUP BY ALL
),
s AS (
    SELECT experiment, batch, learning_rate, count(*) AS n_rows, min(control_run) AS control_run
    FROM suppression_by_batch GROUP BY ALL
)
SELECT r.experiment, r.batch, r.learning_rate, r.n_runs, r.n_uninoculated, r.n_prompt_runs,
       r.n_unkeyed_prefix_runs, s.control_run, coalesce(s.n_rows, 0) AS n_rows,
       CASE
           WHEN s.n_rows > 0 THEN NULL
           WHEN r.n_prompt_runs = 0 AND r.n_unkeyed_prefix_runs = 0 THEN
               'no inoculated run: every run of this batch trained without a prefix or inoculation prompt, so there '
               || 'is no suppression to measure against a control (a training condition of such a run is only an evaluation prompt)'
           WHEN r.n_prompt_runs = 0 THEN
               'its prefix runs name no prompt of the experiment (an import names them in import.sweep_prompts)'
           WHEN r.n_uninoculated = 0 THEN
               'no un-inoculated run of its own: its prompt runs are measured against the designated control '
               || '(table suppression) only'
           ELSE 'un-inoculated runs, but none is this batch''s control (the run named import.control_run_key, or '
               || 'the single un-inoculated run of its learning rate), or its prompt runs have no scores'
       END AS note
FROM r LEFT JOIN s ON s.experiment = r.experiment AND s.batch = r.batch
    AND s.learning_rate IS NOT DISTINCT FROM r.learning_rate;
