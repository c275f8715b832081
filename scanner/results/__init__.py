"""Reading a run's results: questions over its Parquet (:mod:`scanner.results.query`), one HTML page
(:mod:`scanner.results.report`) and exports in the ecosystem's formats (:mod:`scanner.results.export`).
"""
