"""The local stack (`make run`) and the neighbours it simulates: payments API, mail catcher,
Airflow on this machine, the process supervisor, the payment generator and fault injection."""
