"""Rewrites a `duet report --layer speed --json --full` document in place into the batch form,
after checking the speed-only fields: no late beacons (the tests' data has none), a
final_before_ms that is an event time, and a boolean "final" on every hourly row."""
import json
import sys

path = sys.argv[1]
d = json.load(open(path))
late = d["input"].pop("late_beacons")
assert late == 0, f"no beacon is late in this data, got {late}"
final_before = d["event_time"].pop("final_before_ms")
assert final_before > 946684800000, final_before
finals = [r.pop("final") for r in d.get("hourly", [])]
assert all(isinstance(f, bool) for f in finals) and any(finals), "hourly rows carry final flags"
json.dump(d, open(path, "w"))
print(f"speed report: {sum(finals)} of {len(finals)} hourly rows final")
