-- Airflow's metadata lives in the same PostgreSQL server as fraud_db, in its own database
-- (as `make run` does). Runs once, when the postgres volume is first created.
CREATE DATABASE airflow_db;
