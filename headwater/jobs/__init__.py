"""Genie-style submission and tracking of Spark, Flink and shell jobs (issue 5; not built yet)."""
