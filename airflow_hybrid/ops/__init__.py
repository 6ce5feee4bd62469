"""Operations over any two stores, independent of Airflow: verified copies (copy), the retry classification
(retry), progress (progress), the bounded pool (pool), resumable reads (reader) and CRC32C (checksums)."""
