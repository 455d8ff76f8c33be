#!/usr/bin/env bash
# duet batch vs its Spark peer (bench/spark/duet_batch.py, PySpark local[2]), figure by figure:
# totals, hourly, uniques and input accounting must be equal (tests/reference/compare.py, no
# section ignored).
#   - noisy: generated data with 10 % bad rows, 10 % re-sends and late beacons, small part
#     files read by Spark in 256 KiB splits (the read order across splits decides which re-send
#     wins), plus hand-written edge cases: every bad-row reason, JSON corners (trailing content,
#     NaN, BOM, unpaired surrogates, numbers out of range, duplicate keys, deep nesting, the
#     64 KiB limit), session gap boundaries, attribution ties, exact sums, duplicates across
#     files, file names Spark would read as globs, files the contract skips, a .zst file;
#   - zstd: generated .ndjson.zst files (Spark decompresses them itself).
# Needs the Spark virtualenv (bench/spark/setup.sh fetch, cached). Labels: slow, integration.
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/integration/lib.sh"
require_tools python3 java zstd
bash "$src/bench/spark/setup.sh" fetch
py=$(bash "$src/bench/spark/setup.sh" python)

# edge_cases DIR: writes the hand-written edge-case files into DIR.
edge_cases() {
  python3 - "$1" <<'PY'
import json, os, subprocess, sys
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
T0, MIN = 1793491200000, 60_000  # 2026-11-01T00:00Z
n = [0]
def nid():
    n[0] += 1
    return "edge%05d" % n[0]
def obj(**kw):
    d = {"id": nid(), "visitor": "ev-misc", "ts": T0 + 5 * MIN, "type": "pageview"}
    d.update(kw)
    return d
def enc(d):  # `...` leaves the field out
    return json.dumps({k: v for k, v in d.items() if v is not ...}, ensure_ascii=False,
                      separators=(",", ":")).encode()
def raw(fmt, *args):  # a line with the beacon's id and ts filled in
    return fmt.replace(b"ID", nid().encode()).replace(b"TS", b"%d" % T0) % args
L = []
for tail in [b" x", b"{}", b"]", b",{}", b"}", b" //c", b"\x00", b"\r", b"  \t", b" ]"]:
    L.append(enc(obj()) + tail)
L += [b"  \t" + enc(obj()) + b"  ", b"\xef\xbb\xbf" + enc(obj()), b"\x0c" + enc(obj()),
      raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","x":NaN}'),
      raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","x":-Infinity}'),
      raw(b"{'id':'ID','visitor':'ev-misc','ts':TS,'type':'pageview'}"),
      raw(b'{"id":"ID","visitor":"ev-misc","ts":0TS,"type":"pageview"}'),
      raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","x":+1}'),
      raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","x":1,}')]
for page in [rb'"\ud800"', rb'"a\udc00"', rb'"\ude00\ud83d"', rb'"\ud83d\ude00"', rb'"\\ud800"',
             rb'"\u0000x"', '"caf\u00e9 \u2603"'.encode()]:
    L.append(raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","page":%s}', page))
for lit in [b"1e400", b"-1e400", b"1e308", b"1e-400", b"-1e-400", b"1.5E+300", b"18446744073709551615",
            b"18446744073709551616", b"-9223372036854775808", b"-9223372036854775809",
            b"1234567890123456789", b"0.0000000000000000000000000000000000000000001",
            b"123456789012345678901234567890.5", b'[1,[2,{"a":1e999}]]', b'{"a":1,"a":2}',
            b'{"b":{"c":1,"c":2}}']:
    L.append(raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","x":%s}', lit))
    L.append(raw(b'{"x":%s,"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview"}', lit))
L.append(raw(b'{"x":1,"x":2,"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview"}'))
for ts in [b"1.7e12", b"1793491200000.0", b'"1793491200000"', b"true", b"null", b"999",
           b"4102444800001", b"946684799999", b"12345678901234567890", b"-5", b"1.793491200123e12",
           b"946684800000", b"4102444800000"]:
    L.append(raw(b'{"id":"ID","visitor":"ev-edge-ts","ts":%s,"type":"pageview"}', ts))
for k, v in [("id", ...), ("id", 5), ("id", ""), ("id", None), ("id", "x" * 65),
             ("id", "\u00e9" * 33), ("id", "\u00e9" * 32), ("visitor", ...), ("visitor", 5),
             ("visitor", ""), ("visitor", None), ("visitor", "v" * 129), ("visitor", [1]),
             ("visitor", "\u00e9" * 64), ("type", ...), ("type", 5), ("type", ""), ("type", "t" * 33),
             ("type", {"a": 1}), ("type", "t" * 32), ("type", "PageView")]:
    L.append(enc(obj(**{k: v})))
L += [raw(b'{"\\u0069d":"ID","visitor":"ev-misc","\\u0074s":TS,"type":"pageview"}'),
      raw(b'{"id":"ID","id":"dup2","visitor":"ev-misc","ts":TS,"type":"pageview"}'),
      raw(b'{"id":"ID","\\u0069d":"dup2","visitor":"ev-misc","ts":TS,"type":"pageview"}'),
      raw(b'{"id":5,"id":6,"visitor":"ev-misc","ts":TS,"type":"pageview"}'),
      raw(b'{"visitor":5,"visitor":6,"ts":TS,"type":"pageview"}'),
      raw(b'{"id":"ID","visitor":"a","visitor":"b","type":"pageview"}'),
      raw(b'{"id":"ID","visitor":"ev-misc","ts":1,"ts":2,"type":"pageview"}'),
      raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","type":"x"}'),
      b"{}", b'{"visitor":5}']
for e in [None, [], "x", 5, {}, {"e%02d" % i: "A" for i in range(33)},
          {"e%02d" % i: "A" for i in range(32)}, {"": "A"}, {"n" * 65: "A"}, {"n" * 64: "A"},
          {"a": 1}, {"a": ""}, {"a": "v" * 65}, {"a": "v" * 64}, {"a": None}, {"a": 1, "b": 2},
          {"a": {"x": 1}}]:
    L.append(enc(obj(experiments=e)))
# The first broken entry in written order decides (Spark's VARIANT map is sorted by name).
for exps in [b'{"b":1,"":"x"}', b'{"":"x","b":1}', b'{"b":"","a":1}', b'{"a":1,"b":""}',
             b'{"a":"A","a":"B"}', b'{"z":5,"a":"A","a":"B"}']:
    L.append(raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","experiments":%s}', exps))
L.append(raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","experiments":{"a":"A"},'
             b'"experiments":{"a":"A"}}'))
for v in [b'"12"', b"true", b"null", b"-1", b"-0.01", b"[1]"]:
    L.append(raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"conversion","value":%s}', v))
for k in ("page", "device", "referrer"):
    for v in [5, None, "p" * 2049, "p" * 2048, {"a": 1}]:
        L.append(enc(obj(**{k: v})))
L += [enc(obj(page=5, device=5)), enc(obj(value="x", page=5)), enc(obj(experiments=5, value="x")),
      raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","page":"a","page":"b"}'),
      raw(b'{"id":"ID","visitor":"ev-misc","type":"pageview","device":"a","device":"b"}'),
      raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","device":"a","device":"b"}'),
      raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","referrer":5,"referrer":6}'),
      raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"conversion","value":1,"value":2}')]
L += [b"[1]", b"1", b'"s"', b"null", b"true", b"[]", b"", b" ", b"\t\r", b"\r"]
for bad in [b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe9", b"\xff"]:
    L.append(raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","page":"x%sy"}', bad))
def sized(target):
    head = raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","x":"')
    return head + b"a" * (target - len(head) - 2) + b'"}'
L += [sized(65536), sized(65537), sized(100000)]
for depth in (3000, 30000):
    L.append(raw(b'{"id":"ID","visitor":"ev-misc","ts":TS,"type":"pageview","x":%s%s}',
                 b"[" * depth, b"]" * depth))
for dt in [0, 30 * MIN, 60 * MIN + 1, 61 * MIN + 1]:  # exactly 30 min stays; 30 min + 1 ms splits
    L.append(enc(obj(visitor="ev-gap", ts=T0 + dt, experiments={"edge_gap": "A"})))
for i, v in [("zz-attr", "Z"), ("aa-attr", "A")]:  # same ts: the smaller id is earlier
    L.append(enc({"id": i, "visitor": "ev-attr", "ts": T0 + 10 * MIN, "type": "pageview",
                  "experiments": {"edge_attr": v}}))
for i, v in [("\u00e9-attr", "E"), ("z-attr", "Z")]:  # ids compared bytewise
    L.append(enc({"id": i, "visitor": "ev-attr2", "ts": T0 + 10 * MIN, "type": "pageview",
                  "experiments": {"edge_attr": v}}))
for i, v in enumerate(["A", "B", "A"]):
    L.append(enc(obj(visitor="ev-multi", ts=T0 + i * 180 * MIN, experiments={"edge_multi": v})))
for i in range(10):  # fsum: ten times 0.1 is exactly 1.0
    L.append(enc(obj(visitor="ev-money", ts=T0 + i * MIN, type="conversion", value=0.1,
                     experiments={"edge_money": "A"})))
for val in [b"18446744073709551615", b"1e2", b"-0", b"-0.0", b"-1e-400", b"0.30000000000000004",
            b"1e-320", b"2.5e-324"]:
    L.append(raw(b'{"id":"ID","visitor":"ev-money2","ts":%d,"type":"conversion","value":%s,'
                 b'"experiments":{"edge_money":"B"}}', T0 + 20 * MIN, val))
L.append(enc(obj(visitor="ev-money2", ts=T0 + 21 * MIN, type="conversion",
                 experiments={"edge_money": "B"})))
# Duplicates: the first valid line read wins; a bad row never claims an id.
L += [enc({"id": "dup-in-file", "visitor": "ev-dup1", "ts": T0, "type": "pageview"}),
      enc({"id": "dup-in-file", "visitor": "ev-dup2", "ts": T0, "type": "conversion", "value": 5}),
      b'{"id":"dup-bad-first","visitor":"ev-dup3","ts":"x","type":"pageview"}',
      enc({"id": "dup-bad-first", "visitor": "ev-dup3", "ts": T0, "type": "pageview"}),
      enc({"id": "dup-across", "visitor": "ev-dup-a", "ts": T0, "type": "pageview",
           "experiments": {"edge_dup": "A"}})]
def write(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
write("a.ndjson", b"\n".join(L) + b"\n")
write("b.ndjson", enc({"id": "dup-across", "visitor": "ev-dup-b", "ts": T0, "type": "pageview",
                       "experiments": {"edge_dup": "B"}}) + b"\n" +
      enc({"id": "dup-across2", "visitor": "ev-dup-b", "ts": T0, "type": "pageview"}))  # no final \n
write("a b.ndjson", enc({"id": "dup-across2", "visitor": "ev-dup-space", "ts": T0,
                         "type": "pageview"}) + b"\r\n")  # ' ' < '.': read before a.ndjson
write("[c]{d}*.ndjson", enc({"id": "glob-name", "visitor": "ev-glob", "ts": T0, "type": "pageview"}) + b"\n")
for skipped in ("_skipped.ndjson", ".hidden.ndjson", "notes.txt", "x.ndjson.gz"):
    write(skipped, enc({"id": "skip-" + skipped, "visitor": "ev-skip", "ts": T0, "type": "pageview"}) + b"\n")
write("z.ndjson", enc({"id": "zst-1", "visitor": "ev-zst", "ts": T0, "type": "pageview"}) + b'\n{"id":"zst-bad"\n')
subprocess.run(["zstd", "-q", "-f", "--rm", os.path.join(out, "z.ndjson")], check=True)
PY
}

fail=0
# run_case NAME SPARK_ARGS GENERATE_ARGS...: SPARK_ARGS is one word list for duet_batch.py.
run_case() {
  local name=$1 spark_args=$2
  shift 2
  local dir="$work/$name"
  mkdir -p "$dir"
  echo "== case $name: duet generate $*"
  "$duet" generate --out "$dir/master" "$@" 2>"$dir/generate.log" >/dev/null
  if [ "$name" = noisy ]; then edge_cases "$dir/master/edge"; fi
  "$duet" batch --input "$dir/master" --store "sqlite:$dir/store.sqlite" --threads 2 2>"$dir/batch.log" >/dev/null
  "$duet" report --store "sqlite:$dir/store.sqlite" --json --full >"$dir/duet.json"
  local t0=$SECONDS
  # Spark's scratch files stay in the work folder.
  # shellcheck disable=SC2086  # a word list
  if ! "$py" "$src/bench/spark/duet_batch.py" --input "$dir/master" --out "$dir/spark.json" \
    --master 'local[2]' --driver-memory 2g --conf "spark.local.dir=$dir/spark-tmp" \
    --conf spark.python.worker.faulthandler.enabled=true $spark_args 2>"$dir/spark.log"; then
    echo "FAILED: duet_batch.py (log: $dir/spark.log)"
    tail -5 "$dir/spark.log"
    fail=1
    return
  fi
  grep '^spark: [0-9]* lines' "$dir/spark.log" | sed "s/\$/ [$((SECONDS - t0)) s with start-up]/"
  python3 "$src/tests/reference/compare.py" "$dir/duet.json" "$dir/spark.json" || fail=1
}
run_case noisy "--conf spark.sql.files.maxPartitionBytes=262144 --conf spark.sql.files.openCostInBytes=0" \
  --beacons 40000 --seed 21 --bad-fraction 0.1 --duplicate-fraction 0.1 --late-fraction 0.05 \
  --lines-per-file 4000
run_case zstd "" --beacons 20000 --seed 22 --zstd --bad-fraction 0.05 --duplicate-fraction 0.05 \
  --late-fraction 0.02 --hours 30
if [ $fail -ne 0 ]; then
  echo "spark equivalence FAILED (logs in $work)"
  exit 1
fi
echo "spark equivalence passed: duet batch and the Spark peer give the same figures"
