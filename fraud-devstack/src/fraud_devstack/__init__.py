"""Everything that exists only to run the system on one machine: the local stack and its
simulated neighbours (`stack`) and the benchmarks (`bench`).

A second distribution (`fraud-devstack`) beside the production package, so the Airflow and model
server images, which install only `fraud-pipeline`, never ship it; `lint-imports` checks that
`fraud_pipeline` never imports it (the contract in the root pyproject.toml).
"""
