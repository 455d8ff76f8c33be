"""Prints a master dataset's lines as kcat producer input: `visitor<0x1f>line` per line, files in
the batch layer's read order (relative path, bytewise), so that `kcat -P -K $'\\x1f'` produces
each beacon keyed by its visitor (lines without a readable visitor get an empty key). Lines that
kcat could not frame (a 0x1f byte in the key, which no valid visitor has) are reported on stderr
and counted, never silently dropped."""
import sys, json, glob, os
root = sys.argv[1]
files = sorted((p for p in glob.glob(root + '/**/*.ndjson', recursive=True)
                if not os.path.basename(p).startswith(('.', '_'))),
               key=lambda p: os.path.relpath(p, root).encode())
out = sys.stdout.buffer
written = skipped = 0
for f in files:
    with open(f, 'rb') as fh:
        for line in fh:
            line = line.rstrip(b'\n')
            key = b''
            try:
                v = json.loads(line).get('visitor')
                if isinstance(v, str): key = v.encode()
            except Exception:
                pass
            if b'\x1f' in key:
                skipped += 1
                continue
            out.write(key + b'\x1f' + line + b'\n')
            written += 1
print(f"kafka_produce: {written} lines written, {skipped} skipped", file=sys.stderr)
