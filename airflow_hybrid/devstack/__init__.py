"""Local stand-ins for the demo, the tests and the benchmarks: WebHDFS and S3 servers and link shaping.

- :class:`~airflow_hybrid.devstack.stack.DevStack`: everything in this process, on free loopback ports;
- :mod:`~airflow_hybrid.devstack.control`: the same as a background process (``devstack_up``/``down``/
  ``status``) and :class:`~airflow_hybrid.devstack.control.DevStackClient` to drive it;
- :mod:`~airflow_hybrid.devstack.webhdfs`, :mod:`~airflow_hybrid.devstack.s3`: the servers on their own;
- :mod:`~airflow_hybrid.devstack.shaping`: latency, bandwidth cap and fault injection per link.
"""

from airflow_hybrid.devstack.control import DevStackClient, devstack_down, devstack_status, devstack_up
from airflow_hybrid.devstack.stack import DevStack

__all__ = ["DevStack", "DevStackClient", "devstack_down", "devstack_status", "devstack_up"]
