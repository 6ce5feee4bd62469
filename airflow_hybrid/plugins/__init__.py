"""The Airflow UI page "Hybrid lake" (:mod:`.ui`); the plugin class that serves it is in ``plugins/hybrid_plugin.py``."""
