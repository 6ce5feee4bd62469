"""AWS services beside S3 (S3 is a store: :mod:`airflow_hybrid.stores.s3`): EMR steps."""
