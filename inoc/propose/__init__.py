"""Predict before training: propose candidate prompts, rank them, promote the ones to train (`inoc propose`)."""
