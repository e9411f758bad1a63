"""The slides: the `slides_dataset` table and the section-1 figures, built from warehouse SQL only."""
