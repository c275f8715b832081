"""Running the whole chain: the TOML config (:mod:`scanner.run.config`), the stage registry and driver
(:mod:`scanner.run.pipeline`), the run manifest (:mod:`scanner.run.manifest`) and Ray Jobs
(:mod:`scanner.run.jobs_api`). Nothing is imported here, so stages can use these modules freely.
"""
