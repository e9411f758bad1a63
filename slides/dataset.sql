-- The slides dataset (docs/methods.md#slides-dataset): one row per (experiment, prompt_key, trait_role, prefix_type),
-- for every registered prompt of every experiment with two traits, whether or not it has a run.
-- Built from the tidy tables only, so it is the same for imported and computed experiments.
-- slides/dataset.py then adds one column per heuristic of the registry (inoc/heuristics/registry.py).
CREATE OR REPLACE TABLE slides_dataset AS
WITH traits AS (
    SELECT experiment, 'positive' AS trait_role, positive_trait AS trait_name FROM experiments WHERE positive_trait IS NOT NULL
    UNION ALL
    SELECT experiment, 'negative', negative_trait FROM experiments WHERE negative_trait IS NOT NULL
),
grid AS (
    SELECT p.experiment, p.prompt_key, p.prompt_text, p.prompt_group, p.prompt_family,
           t.trait_role, t.trait_name, x.prefix_type
    FROM prompts p
    JOIN traits t USING (experiment)
    CROSS JOIN (VALUES ('fixed'), ('mix')) AS x(prefix_type)
),
h AS (
    SELECT experiment, prompt_key, prefix_type, heuristic, value FROM prompt_heuristics
),
coords AS (
    SELECT experiment, prompt_key, replace(matrix, '_tokens', '') AS prefix_type,
           max(value) FILTER (WHERE method = 'pca' AND component = 1) AS pc1,
           max(value) FILTER (WHERE method = 'pca' AND component = 2) AS pc2,
           max(value) FILTER (WHERE method = 'pca' AND component = 3) AS pc3,
           max(value) FILTER (WHERE method = 'truncated_svd' AND component = 1) AS sv1,
           max(value) FILTER (WHERE method = 'truncated_svd' AND component = 2) AS sv2,
           max(value) FILTER (WHERE method = 'truncated_svd' AND component = 3) AS sv3
    FROM prompt_coords WHERE matrix IN ('fixed_tokens', 'mix_tokens')
    GROUP BY ALL
)
SELECT
    g.experiment, g.prompt_key, g.prompt_text, g.prompt_group, g.prompt_family,
    g.trait_role, g.trait_name, g.prefix_type,
    (SELECT value FROM h WHERE h.experiment = g.experiment AND h.prompt_key = g.prompt_key
        AND h.prefix_type IS NULL AND h.heuristic = 'elicitation_' || g.trait_name)           AS elicitation,
    (SELECT value FROM h WHERE h.experiment = g.experiment AND h.prompt_key = g.prompt_key
        AND h.prefix_type = 'fixed' AND h.heuristic = 'ph_' || lower(g.trait_name))          AS ph,
    (SELECT value FROM h WHERE h.experiment = g.experiment AND h.prompt_key = g.prompt_key
        AND h.prefix_type = 'fixed' AND h.heuristic = 'ph')                                   AS ph_combined,
    (SELECT value FROM h WHERE h.experiment = g.experiment AND h.prompt_key = g.prompt_key
        AND h.prefix_type = g.prefix_type AND h.heuristic = 'ph')                             AS ph_prefix,
    c.pc1, c.pc2, c.pc3, c.sv1, c.sv2, c.sv3, cf.sv2 AS sv2_fixed,
    s.suppression, s.ci_lo AS suppression_ci_lo, s.ci_hi AS suppression_ci_hi,
    s.control_score AS no_inoc_score, s.run_score AS inoc_score, s.n AS n_eval,
    s.target,
    o.suppression AS cross_trait_suppression,
    CASE WHEN g.prefix_type = 'mix' THEN f.suppression - s.suppression END AS gap
FROM grid g
LEFT JOIN coords c ON c.experiment = g.experiment AND c.prompt_key = g.prompt_key AND c.prefix_type = g.prefix_type
LEFT JOIN coords cf ON cf.experiment = g.experiment AND cf.prompt_key = g.prompt_key AND cf.prefix_type = 'fixed'
LEFT JOIN suppression s ON s.experiment = g.experiment AND s.prompt_key = g.prompt_key
    AND s.prefix_type = g.prefix_type AND s.trait = g.trait_name
LEFT JOIN suppression o ON o.experiment = g.experiment AND o.prompt_key = g.prompt_key
    AND o.prefix_type = g.prefix_type AND o.trait <> g.trait_name
LEFT JOIN suppression f ON f.experiment = g.experiment AND f.prompt_key = g.prompt_key
    AND f.prefix_type = 'fixed' AND f.trait = g.trait_name
ORDER BY g.experiment, g.prompt_key, g.trait_role, g.prefix_type;
