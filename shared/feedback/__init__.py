"""Labelled feedback on finished jobs: corrections that scheduled retraining folds into its data."""
