"""Prints a master dataset's lines as kcat producer input: `visitor<0x1f>line` per line, files in
the batch layer's read order (relative path, bytewise), so that `kcat -P -K $'\\x1f'` produces
each beacon keyed by its visitor (lines without a readable visitor get an empty key). Lines that
kcat could not frame (a 0x1f byte in the key, which no valid visitor has) are reported on stderr
and counted, never silently dropped."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dataset import lines  # noqa: E402

out = sys.stdout.buffer
written = skipped = 0
for line in lines(sys.argv[1]):
    key = b''
    try:
        v = json.loads(line).get('visitor')
        if isinstance(v, str):
            key = v.encode()
    except Exception:
        pass
    if b'\x1f' in key:
        skipped += 1
        continue
    out.write(key + b'\x1f' + line + b'\n')
    written += 1
print(f"kafka_produce: {written} lines written, {skipped} skipped", file=sys.stderr)
