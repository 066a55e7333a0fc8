"""Build: dbt in stages, a batch model's rounds, plan, the workspace of a target."""
