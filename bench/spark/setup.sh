#!/usr/bin/env bash
# The Spark peer (issue: side by side with Spark): PySpark in a virtualenv, and the jars of
# Structured Streaming's Kafka source from Maven Central, both cached:
#
#   bench/spark/setup.sh fetch     create/refresh the virtualenv and download the jars (retried)
#   bench/spark/setup.sh python    print the virtualenv's python (fails if not fetched)
#   bench/spark/setup.sh jars      print the Kafka source's jars, comma-separated (--jars)
#
# Pinned: pyspark 4.2.0 (local mode, Java 17) with pandas 2.3.3 and pyarrow 26.0.1, and org.apache.spark:spark-sql-kafka-0-10_2.13
# 4.2.0 with its dependencies (bench/spark/pom.xml). Cache: $DUET_SPARK_HOME (default
# ~/.cache/duet/spark). A failed download is an infrastructure failure and says so.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fetch_name="spark setup"
# shellcheck source=scripts/fetch-lib.sh
source "$here/../../scripts/fetch-lib.sh"
home=${DUET_SPARK_HOME:-$HOME/.cache/duet/spark}
venv="$home/venv"
jars="$home/jars"
pyspark_version=4.2.0

fetch_venv() {
  local stamp="$venv/.duet-pyspark"
  # pandas and pyarrow: PySpark's [sql] extra, for the pandas UDFs of duet_batch.py (pandas
  # held below 3, which PySpark 4.2 does not fully support).
  local want="pyspark[sql]==$pyspark_version pandas==2.3.3 pyarrow==26.0.1"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  command -v java >/dev/null || die "java not found (Spark needs Java 17: scripts/install-deps.sh installs it)"
  # A virtualenv with the right pyspark only gets what is missing (pyspark alone is 400 MB).
  if ! "$venv/bin/python" -c "import pyspark, sys; sys.exit(pyspark.__version__ != '$pyspark_version')" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  # shellcheck disable=SC2086  # $want is a list of requirement specifiers
  retry "$venv/bin/pip" install --quiet --disable-pip-version-check $want
  "$venv/bin/python" -c "import pyspark, pandas, pyarrow; assert pyspark.__version__ == '$pyspark_version', pyspark.__version__"
  echo "$want" >"$stamp"
  echo "spark setup: $want in $venv" >&2
}

fetch_jars() {
  local stamp="$jars/.duet-pom"
  if [ -f "$stamp" ] && cmp -s "$stamp" "$here/pom.xml"; then return 0; fi
  command -v mvn >/dev/null || die "mvn not found: run scripts/install-deps.sh"
  rm -rf "$jars" && mkdir -p "$jars"
  retry mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$jars"
  ls "$jars"/spark-sql-kafka-0-10_2.13-*.jar >/dev/null 2>&1 || die "no spark-sql-kafka jar in $jars"
  cp "$here/pom.xml" "$stamp"
}

case "${1:-}" in
  fetch)
    mkdir -p "$home"
    fetch_venv
    fetch_jars
    ;;
  python)
    { [ -x "$venv/bin/python" ] && [ -f "$venv/.duet-pyspark" ]; } || die "not set up: run bench/spark/setup.sh fetch"
    echo "$venv/bin/python"
    ;;
  jars)
    [ -f "$jars/.duet-pom" ] || die "not set up: run bench/spark/setup.sh fetch"
    # Only the jars Spark does not ship itself (pyspark/jars has its own scala-library, hadoop
    # client, slf4j, snappy, lz4…: a second version of one of those on the class path breaks it).
    shipped=$(find "$venv"/lib/python3*/site-packages/pyspark/jars -name '*.jar' -printf '%f\n' |
      sed 's/-[0-9][^-]*\.jar$//' | sort -u)
    [ -n "$shipped" ] || die "no jars in the virtualenv's pyspark: run bench/spark/setup.sh fetch"
    find "$jars" -name '*.jar' | sort | while read -r j; do
      grep -qxF "$(basename "$j" | sed 's/-[0-9][^-]*\.jar$//')" <<<"$shipped" || echo "$j"
    done | paste -sd, -
    ;;
  *)
    echo "usage: bench/spark/setup.sh fetch|python|jars" >&2
    exit 2
    ;;
esac
