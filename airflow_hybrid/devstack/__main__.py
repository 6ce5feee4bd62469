"""``python -m airflow_hybrid.devstack``: run the devstack in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import json
import logging

from airflow_hybrid.devstack.stack import DEFAULT_BUCKET, DEFAULT_USER, DevStack
from airflow_hybrid.devstack.webhdfs import DEFAULT_PAGE_SIZE
from airflow_hybrid.stores.hdfs.checksum import DEFAULT_BLOCK_SIZE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m airflow_hybrid.devstack", description=__doc__)
    parser.add_argument("--state-dir", help="write devstack.json (pid, ports, URLs) here while running")
    parser.add_argument("--data-dir", help="directory for HDFS data (default: a temporary directory)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--user", default=DEFAULT_USER, help="HDFS user of the connections and file owner")
    parser.add_argument(
        "--bucket", action="append", help=f"bucket to create at start (default {DEFAULT_BUCKET})"
    )
    parser.add_argument("--list-page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE)
    parser.add_argument("--seed", type=int, help="seed of the fault-injection RNG")
    parser.add_argument("--webhdfs-port", type=int, default=0)
    parser.add_argument("--datanode-port", type=int, default=0)
    parser.add_argument("--s3-port", type=int, default=0)
    parser.add_argument(
        "--hdfs", choices=DevStack.HDFS_KINDS, default="devstack",
        help="our WebHDFS server (default, no Java) or Apache Hadoop's NameNode + DataNode",
    )
    parser.add_argument("--shaping", type=json.loads, help='JSON per link, e.g. {"s3": {"latency_ms": 40}}')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stack = DevStack(
        args.data_dir,
        host=args.host,
        user=args.user,
        buckets=tuple(args.bucket or (DEFAULT_BUCKET,)),
        list_page_size=args.list_page_size,
        block_size=args.block_size,
        seed=args.seed,
        shaping=args.shaping,
        webhdfs_port=args.webhdfs_port,
        datanode_port=args.datanode_port,
        s3_port=args.s3_port,
        hdfs=args.hdfs,
    )
    stack.run_forever(args.state_dir)


if __name__ == "__main__":
    main()
