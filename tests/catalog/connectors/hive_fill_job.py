"""A Spark job that fills the test Hive Metastore: run with spark-submit, not collected by pytest.

Usage: spark-submit hive_fill_job.py METASTORE_URI WAREHOUSE_URI EXTERNAL_DIR
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

WIDE_COLUMNS = 150  # enough for Spark to split the schema JSON into spark.sql.sources.schema.part.N


def main() -> None:
    """Create databases, plain, partitioned, external, CTAS and datasource tables, and a view."""
    uri, warehouse, external = sys.argv[1:4]
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("headwater-hive-fill")
        .config("spark.ui.enabled", "false")
        .config("spark.hadoop.hive.metastore.uris", uri)
        .config("spark.sql.warehouse.dir", warehouse)
        .config("spark.sql.shuffle.partitions", "1")
        .enableHiveSupport()
        .getOrCreate()
    )
    sql = spark.sql
    sql(
        f"CREATE DATABASE sales COMMENT 'orders and customers' LOCATION '{warehouse}/sales.db' "
        "WITH DBPROPERTIES ('owner_team' = 'commerce', 'tier' = 'gold')"
    )
    sql("CREATE DATABASE web")
    sql(
        "CREATE TABLE sales.customers (id BIGINT COMMENT 'customer id', email STRING COMMENT 'contact address', "
        "tags ARRAY<STRING>, address STRUCT<city: STRING, zip: STRING>, prefs MAP<STRING, INT>) "
        "STORED AS PARQUET COMMENT 'people who buy'"
    )
    sql(
        "CREATE TABLE sales.orders (id BIGINT, customer_id BIGINT, total DECIMAL(10,2)) "
        "PARTITIONED BY (dt STRING) STORED AS ORC"
    )
    sql("SET hive.exec.dynamic.partition.mode = nonstrict")
    sql(  # one job writing three partitions
        "INSERT INTO sales.orders PARTITION (dt) VALUES "
        "(1, 1, 10.50, '2024-01-01'), (2, 1, 20.00, '2024-01-02'), (3, 2, 31.00, '2024-01-03')"
    )
    sql(
        "CREATE EXTERNAL TABLE sales.raw_events (line STRING, source STRING) ROW FORMAT DELIMITED "
        f"FIELDS TERMINATED BY ',' STORED AS TEXTFILE LOCATION '{external}'"
    )
    sql("CREATE VIEW sales.big_orders AS SELECT id, total FROM sales.orders WHERE total > 15")
    sql(
        "CREATE TABLE sales.order_totals STORED AS PARQUET AS "
        "SELECT customer_id, SUM(total) AS total FROM sales.orders GROUP BY customer_id"
    )
    sql(
        "CREATE TABLE sales.events_ds (payload STRUCT<kind: STRING, n: INT>, weights MAP<STRING, DOUBLE>, "
        "day DATE) USING parquet PARTITIONED BY (day)"
    )
    columns = ", ".join(f"attribute_with_a_rather_long_name_{i:03d} STRING" for i in range(WIDE_COLUMNS))
    sql(f"CREATE TABLE web.wide_ds ({columns}) USING parquet")
    sql("CREATE TABLE web.clicks_json (user STRING, at TIMESTAMP, ids ARRAY<BIGINT>) USING json")
    spark.stop()


if __name__ == "__main__":
    main()
