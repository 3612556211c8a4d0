"""The alert-quality harness behind bench/alert_quality.py: scenario files, the pipeline, what was
observed, and the grading."""
