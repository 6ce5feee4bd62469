"""The ``hybrid`` Airflow plugin (:mod:`.plugin`): the "Hybrid lake" UI page (:mod:`.ui`, figures from
:mod:`.figures`, shown as :mod:`.view` describes) and the ``hybrid`` macros."""
