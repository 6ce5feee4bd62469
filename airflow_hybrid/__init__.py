"""Apache Airflow provider for hybrid data lakes."""
__version__ = "0.1.0"
