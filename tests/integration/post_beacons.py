"""POSTs a master dataset's lines to `duet collect` as NDJSON requests (keep-alive), in the batch
layer's file order, and retries a request answered 503 after its Retry-After — what a well-behaved
client does. Every request must end 202; the script fails otherwise.

usage: post_beacons.py URL DATASET_DIR [--chunk N] [--pause-after K --pause-file F]

--pause-after K: after K requests, create F+'.paused', wait for F+'.down' (the harness stopped the
broker), send one request that must get 503 with Retry-After, then wait for F (the broker is
back) and go on.
Prints one summary line: requests, lines acknowledged, 503 answers.
"""
import argparse
import http.client
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dataset import lines  # noqa: E402


def chunks(root, size):
    batch = []
    for line in lines(root):
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('url')
    ap.add_argument('root')
    ap.add_argument('--chunk', type=int, default=500)
    ap.add_argument('--pause-after', type=int, default=-1)
    ap.add_argument('--pause-file', default='')
    ap.add_argument('--deadline', type=float, default=300.0)
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    start = time.time()
    requests = acked = unavailable = 0
    for n, batch in enumerate(chunks(a.root, a.chunk)):
        if n == a.pause_after:
            open(a.pause_file + '.paused', 'w').close()
            while not os.path.exists(a.pause_file + '.down'):
                if time.time() - start > a.deadline:
                    print('post_beacons: FAILED: the broker was never stopped', file=sys.stderr)
                    return 1
                time.sleep(0.05)
            # One request while the broker is down: it must be answered 503, not 202.
            body = b'\n'.join(batch) + b'\n'
            conn.request('POST', u.path, body, {'Content-Type': 'application/x-ndjson'})
            r = conn.getresponse()
            r.read()
            requests += 1
            if r.status != 503 or not r.getheader('Retry-After'):
                print(f'post_beacons: FAILED: with the broker down a request got {r.status}, '
                      f'expected 503 with Retry-After', file=sys.stderr)
                return 1
            unavailable += 1
            while not os.path.exists(a.pause_file):
                if time.time() - start > a.deadline:
                    print('post_beacons: FAILED: the broker did not come back', file=sys.stderr)
                    return 1
                time.sleep(0.1)
        body = b'\n'.join(batch) + b'\n'
        while True:
            if time.time() - start > a.deadline:
                print('post_beacons: FAILED: deadline passed', file=sys.stderr)
                return 1
            try:
                conn.request('POST', u.path, body, {'Content-Type': 'application/x-ndjson'})
                r = conn.getresponse()
                text = r.read()
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
                time.sleep(0.2)
                continue
            requests += 1
            if r.status == 202:
                acked += len(batch)
                break
            if r.status == 503:
                unavailable += 1
                time.sleep(min(float(r.getheader('Retry-After') or 1), 2.0))
                continue
            print(f'post_beacons: FAILED: status {r.status}: {text[:200]!r}', file=sys.stderr)
            return 1
    print(f'post_beacons: {requests} requests, {acked} lines acknowledged, '
          f'{unavailable} answered 503')
    return 0


if __name__ == '__main__':
    sys.exit(main())
