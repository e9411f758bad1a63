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
    prefix_type     VARCHAR CHECK (prefix_type IN ('fixed', 'mix')),  -- NULL for a control run
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
