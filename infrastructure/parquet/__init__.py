"""The warehouse export as Parquet files (pyarrow), on a local directory or S3."""
