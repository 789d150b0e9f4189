"""Classifier lexicon data files (CSV, one cue a row with its language), shipped with the package."""
