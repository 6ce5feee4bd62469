"""The ``airflow hybrid`` command group (registered through provider info ``cli``)."""
