"""A local PySpark session for the benchmarks: ``local[N]`` on loopback, S3A jars from the project's classpath.

``pyspark`` is not a dependency of the project (install it next to it: ``uv pip install pyspark``); its
bundled Hadoop client (``hadoop-client-api``/``-runtime`` 3.5) has ``WebHdfsFileSystem`` (``webhdfs://``),
and ``s3a://`` needs ``hadoop-aws`` with the AWS SDK bundle and the analytics accelerator, which come from
``jvm/target/classpath.txt`` (Maven's resolution of ``jvm/pom.xml``), given as ``spark.jars``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
CLASSPATH_FILE = ROOT / "jvm" / "target" / "classpath.txt"
#: Jars ``s3a://`` needs on top of Spark's own Hadoop client, by the start of their file name.
S3A_JARS = ("hadoop-aws-", "bundle-", "analyticsaccelerator-s3-")


class SparkUnavailableError(RuntimeError):
    """PySpark or the S3A jars are missing."""


#: ``hadoop-client-runtime`` relocates JAX-RS (``org.apache.hadoop.shaded.javax.ws.rs``) but ships no JAX-RS
#: implementation, so ``WebHdfsFileSystem`` fails on its first JSON answer (``MediaType.valueOf`` of the
#: Content-Type: ``ClassNotFoundException: org.apache.hadoop.shaded.org.glassfish.jersey.internal.
#: RuntimeDelegateImpl``), against any WebHDFS server. This is the least delegate it needs: media types only.
_MEDIA_TYPE_DELEGATE = """
package airflow_hybrid.bench;

import java.util.HashMap;
import java.util.Map;
import org.apache.hadoop.shaded.javax.ws.rs.core.MediaType;
import org.apache.hadoop.shaded.javax.ws.rs.ext.RuntimeDelegate;

public final class MediaTypeDelegate extends RuntimeDelegate {
    private static final HeaderDelegate<MediaType> MEDIA_TYPES = new HeaderDelegate<MediaType>() {
        public MediaType fromString(String value) {
            String[] parts = value.split(";");
            String[] type = parts[0].trim().split("/", 2);
            Map<String, String> parameters = new HashMap<>();
            for (int i = 1; i < parts.length; i++) {
                String[] pair = parts[i].trim().split("=", 2);
                if (pair.length == 2) parameters.put(pair[0].trim(), pair[1].trim().replace("\\"", ""));
            }
            return new MediaType(type[0], type.length > 1 ? type[1] : "*", parameters);
        }
        public String toString(MediaType type) {
            StringBuilder out = new StringBuilder(type.getType()).append('/').append(type.getSubtype());
            type.getParameters().forEach((k, v) -> out.append("; ").append(k).append('=').append(v));
            return out.toString();
        }
    };

    @SuppressWarnings("unchecked")
    public <T> HeaderDelegate<T> createHeaderDelegate(Class<T> type) {
        if (type == MediaType.class) return (HeaderDelegate<T>) MEDIA_TYPES;
        throw new UnsupportedOperationException("only media types: " + type);
    }
    public org.apache.hadoop.shaded.javax.ws.rs.core.UriBuilder createUriBuilder() { throw unsupported(); }
    public org.apache.hadoop.shaded.javax.ws.rs.core.Response.ResponseBuilder createResponseBuilder() { throw unsupported(); }
    public org.apache.hadoop.shaded.javax.ws.rs.core.Variant.VariantListBuilder createVariantListBuilder() { throw unsupported(); }
    public <T> T createEndpoint(org.apache.hadoop.shaded.javax.ws.rs.core.Application app, Class<T> type) { throw unsupported(); }
    public org.apache.hadoop.shaded.javax.ws.rs.core.Link.Builder createLinkBuilder() { throw unsupported(); }
    private static UnsupportedOperationException unsupported() {
        return new UnsupportedOperationException("MediaTypeDelegate supports media types only");
    }
}
"""
DELEGATE_CLASS = "airflow_hybrid.bench.MediaTypeDelegate"
DELEGATE_PROPERTY = "org.apache.hadoop.shaded.javax.ws.rs.ext.RuntimeDelegate"


def s3a_jars(classpath_file: Path = CLASSPATH_FILE) -> list[str]:
    """Paths of the S3A jars in ``classpath_file``; raises :class:`SparkUnavailableError` if one is missing."""
    try:
        entries = classpath_file.read_text().strip().split(os.pathsep)
    except FileNotFoundError:
        raise SparkUnavailableError(f"{classpath_file} is missing: run the jvm build (see jvm/pom.xml)") from None
    found = {}
    for entry in entries:
        name = Path(entry).name
        for prefix in S3A_JARS:
            if name.startswith(prefix) and name.endswith(".jar") and prefix not in found:
                found[prefix] = entry
    missing = [prefix for prefix in S3A_JARS if prefix not in found]
    if missing:
        raise SparkUnavailableError(f"{classpath_file} has no jar named {', '.join(p + '*' for p in missing)}")
    return [found[prefix] for prefix in S3A_JARS]


def pyspark_jars_dir() -> Path:
    try:
        import pyspark
    except ImportError:
        raise SparkUnavailableError("pyspark is not installed: uv pip install pyspark") from None
    return Path(pyspark.__file__).parent / "jars"


def webhdfs_delegate_jar(work_dir: Path) -> Path:
    """Compile :data:`_MEDIA_TYPE_DELEGATE` against PySpark's Hadoop client into ``work_dir`` (once)."""
    jar = work_dir / "webhdfs-media-type-delegate.jar"
    if jar.is_file():
        return jar
    jars = pyspark_jars_dir()
    classpath = os.pathsep.join(str(p) for p in sorted(jars.glob("hadoop-client-*.jar")))
    source_dir, classes = work_dir / "delegate-src", work_dir / "delegate-classes"
    source = source_dir / "airflow_hybrid" / "bench" / "MediaTypeDelegate.java"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(_MEDIA_TYPE_DELEGATE)
    for command in (
        ["javac", "-nowarn", "-cp", classpath, "-d", str(classes), str(source)],
        ["jar", "cf", str(jar), "-C", str(classes), "."],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SparkUnavailableError(f"{' '.join(command[:1])} failed: {done.stderr.strip()}")
    return jar


def spark_session(
    *,
    cores: int = 2,
    s3_endpoint: str | None = None,
    s3_key: str = "testing",
    s3_secret: str = "testing",
    region: str = "us-east-1",
    memory: str = "3g",
    app_name: str = "airflow-hybrid-bench",
    work_dir: Path | None = None,
    s3a_stream: str = "classic",
):
    """A ``local[cores]`` SparkSession bound to 127.0.0.1, able to read ``s3a://`` at ``s3_endpoint`` (path-style,
    plain HTTP, static keys) and ``webhdfs://`` (with the media-type delegate compiled into ``work_dir``);
    quiet logs, no UI. ``s3a_stream`` is ``fs.s3a.input.stream.type``: ``classic`` keeps nothing between
    streams (as ``webhdfs://``); ``analytics`` (the accelerator) keeps Parquet blocks in memory across queries."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailableError("pyspark is not installed: uv pip install pyspark") from None
    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.driver.memory", memory)
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(max(2, cores * 2)))
        .config("spark.sql.adaptive.enabled", "true")
        # list with listStatus, not block locations (the devstack WebHDFS has no GETFILEBLOCKLOCATIONS)
        .config("spark.sql.sources.ignoreDataLocality", "true")
        .config("spark.jars", ",".join(s3a_jars()))
    )
    if work_dir is not None:
        builder = builder.config("spark.driver.extraClassPath", str(webhdfs_delegate_jar(work_dir))).config(
            "spark.driver.extraJavaOptions", f"-D{DELEGATE_PROPERTY}={DELEGATE_CLASS}"
        )
    if s3_endpoint:
        host = urlsplit(s3_endpoint)
        prefix = "spark.hadoop.fs.s3a."
        for key, value in {
            "endpoint": s3_endpoint,
            "endpoint.region": region,
            "path.style.access": "true",
            "connection.ssl.enabled": "false" if host.scheme == "http" else "true",
            "access.key": s3_key,
            "secret.key": s3_secret,
            "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "change.detection.mode": "none",
            "input.stream.type": s3a_stream,
        }.items():
            builder = builder.config(prefix + key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
