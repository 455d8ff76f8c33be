"""A master dataset's lines in the batch layer's read order: files ending in .ndjson whose names do
not start with '.' or '_', sorted bytewise by their path relative to the root."""
import glob
import os


def lines(root):
    """Yields every line (bytes, without its '\\n') of every input file under `root`."""
    files = sorted((p for p in glob.glob(root + '/**/*.ndjson', recursive=True)
                    if not os.path.basename(p).startswith(('.', '_'))),
                   key=lambda p: os.path.relpath(p, root).encode())
    for f in files:
        with open(f, 'rb') as fh:
            for line in fh:
                yield line.rstrip(b'\n')
