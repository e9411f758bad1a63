"""inoc: inoculation-prompting research platform (Dagster-free core: config, storage, warehouse access, CLI)."""
