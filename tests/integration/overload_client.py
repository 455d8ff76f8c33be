"""Load generator and checker for the collector's overload test (tests/integration/overload.sh)
and measurement (bench/overload.sh). Loopback only.

  overload_client.py load URL --out RECORDS.jsonl --prefix P --duration S --connections C
      [--beacons-min A --beacons-max B] [--rate R] [--max-requests N] [--rss-pid PID]
      [--until-accepted K]
    POSTs NDJSON requests of A..B beacons, each beacon with a unique id "<P>-<conn>-<seq>-<i>",
    on C keep-alive connections for at most S seconds (and at most N requests). --rate R paces
    the whole run at R requests/s (default: as fast as the answers come: closed loop, no
    Retry-After honoured — this is overload). --until-accepted K: stop once K answers in a row
    were 202. One JSON line per request: id prefix, beacons, status (0 = transport error),
    start and latency. --rss-pid: samples that process's VmRSS every 100 ms (peak in the
    summary). Prints a one-line JSON summary.

  overload_client.py check TOPIC_IDS RECORDS.jsonl...
    TOPIC_IDS: the topic read back, one message value per line. Fails (exit 1) when one id of a
    request answered 202 is missing; prints the figures (JSON).

  overload_client.py recovery RECORDS.jsonl T0 K
    Seconds from T0 (a time.time() stamp) to the start of the first of K requests in a row, sent
    after T0, that were answered 202.
"""
import argparse
import asyncio
import json
import os
import random
import sys
import time


def beacon_lines(rid, n, now_ms):
    return ''.join(
        f'{{"id":"{rid}-{i}","visitor":"{rid}-v{i % 3}","ts":{now_ms},"type":"pageview",'
        f'"experiments":{{"e":"A"}}}}\n' for i in range(n))


async def read_response(reader):
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError('closed')
    status = int(status_line.split()[1])
    length = 0
    close = False
    while True:
        line = await reader.readline()
        if line in (b'\r\n', b'\n', b''):
            break
        name, _, value = line.decode('latin-1').partition(':')
        name = name.strip().lower()
        if name == 'content-length':
            length = int(value.strip())
        elif name == 'connection' and value.strip().lower() == 'close':
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


class Load:
    def __init__(self, a):
        self.a = a
        self.records = []
        self.started = 0
        self.streak = 0
        self.stop = False
        self.rss_peak_kib = 0
        self.rss_samples = []

    async def rss(self):
        path = f'/proc/{self.a.rss_pid}/status'
        while not self.stop:
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith('VmRSS:'):
                            kib = int(line.split()[1])
                            self.rss_peak_kib = max(self.rss_peak_kib, kib)
                            self.rss_samples.append((round(time.time(), 2), kib))
            except OSError:
                pass
            await asyncio.sleep(0.1)

    async def worker(self, conn, host, port, deadline, rng):
        a = self.a
        reader = writer = None
        seq = 0
        interval = a.connections / a.rate if a.rate > 0 else 0.0
        next_at = time.monotonic() + rng.random() * interval
        while not self.stop and time.monotonic() < deadline and self.started < a.max_requests:
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
                if time.monotonic() >= deadline:
                    break
            self.started += 1
            rid = f'{a.prefix}-{conn}-{seq}'
            seq += 1
            n = rng.randint(a.beacons_min, a.beacons_max)
            body = beacon_lines(rid, n, int(time.time() * 1000)).encode()
            head = (f'POST {a.path} HTTP/1.1\r\nHost: {host}:{port}\r\n'
                    f'Content-Type: application/x-ndjson\r\nContent-Length: {len(body)}\r\n\r\n')
            t0 = time.time()
            m0 = time.monotonic()
            status = 0
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), 10)
                writer.write(head.encode() + body)
                await writer.drain()
                status, close = await asyncio.wait_for(read_response(reader), 30)
                if close:
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError,
                    ValueError, IndexError):
                if writer is not None:
                    writer.close()
                reader = writer = None
            ms = (time.monotonic() - m0) * 1000
            self.records.append({'r': rid, 'n': n, 's': status, 't': round(t0, 4),
                                 'ms': round(ms, 3)})
            self.streak = self.streak + 1 if status == 202 else 0
            if a.until_accepted and self.streak >= a.until_accepted:
                self.stop = True
        if writer is not None:
            writer.close()

    async def run(self):
        a = self.a
        rest = a.url.split('://', 1)[1]
        hostport, _, path = rest.partition('/')
        host, _, port = hostport.partition(':')
        a.path = '/' + path
        rng = random.Random(a.seed)
        deadline = time.monotonic() + a.duration
        sampler = asyncio.ensure_future(self.rss()) if a.rss_pid else None
        t0 = time.time()
        await asyncio.gather(*(self.worker(c, host, int(port), deadline, random.Random(rng.random()))
                               for c in range(a.connections)))
        elapsed = time.time() - t0
        self.stop = True
        if sampler:
            await sampler
        with open(a.out, 'w') as f:
            for r in self.records:
                f.write(json.dumps(r) + '\n')
        if a.rss_out:
            with open(a.rss_out, 'w') as f:
                for t, kib in self.rss_samples:
                    f.write(f'{t} {kib}\n')
        codes = {}
        for r in self.records:
            codes[str(r['s'])] = codes.get(str(r['s']), 0) + 1
        print(json.dumps({'prefix': a.prefix, 'seconds': round(elapsed, 2),
                          'requests': len(self.records),
                          'offered_per_s': round(len(self.records) / elapsed, 1),
                          'codes': codes, 'rss_peak_mib': round(self.rss_peak_kib / 1024, 1)}))


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def load_records(paths):
    out = []
    for p in paths:
        with open(p) as f:
            out.extend(json.loads(line) for line in f if line.strip())
    return out


def check(topic_ids_path, record_paths):
    in_topic = set()
    with open(topic_ids_path, 'rb') as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            in_topic.add(json.loads(line)['id'])
    records = load_records(record_paths)
    missing = []
    accepted_beacons = 0
    refused = {}  # status -> [beacons, of them in the topic]
    for r in records:
        ids = [f"{r['r']}-{i}" for i in range(r['n'])]
        if r['s'] == 202:
            accepted_beacons += len(ids)
            missing.extend(i for i in ids if i not in in_topic)
        else:
            counts = refused.setdefault(str(r['s']), [0, 0])
            counts[0] += len(ids)
            counts[1] += sum(1 for i in ids if i in in_topic)
    by_code = {}
    for r in records:
        by_code.setdefault(r['s'], []).append(r['ms'])
    latency = {}
    for code, values in sorted(by_code.items()):
        values.sort()
        latency[str(code)] = {'count': len(values),
                              'p50_ms': percentile(values, 50), 'p90_ms': percentile(values, 90),
                              'p99_ms': percentile(values, 99), 'max_ms': values[-1]}
    result = {'requests': len(records), 'accepted_beacons': accepted_beacons,
              'accepted_beacons_missing_from_topic': len(missing),
              'messages_in_topic': len(in_topic),
              'refused_beacons_by_code': {k: {'beacons': v[0], 'found_in_topic': v[1]}
                                          for k, v in sorted(refused.items())},
              'latency_by_code': latency}
    print(json.dumps(result, indent=1))
    if missing:
        print(f'FAILED: {len(missing)} beacons of requests answered 202 are not in the topic, '
              f'e.g. {missing[:5]}', file=sys.stderr)
        return 1
    if refused.get('429', [0, 0])[1]:
        print(f"FAILED: {refused['429'][1]} beacons of requests answered 429 are in the topic: "
              f"a 429 must produce nothing", file=sys.stderr)
        return 1
    if accepted_beacons == 0:
        print('FAILED: no request was answered 202 at all', file=sys.stderr)
        return 1
    return 0


def recovery(path, t0, k):
    records = sorted((r for r in load_records([path]) if r['t'] >= t0), key=lambda r: r['t'])
    streak = 0
    for i, r in enumerate(records):
        streak = streak + 1 if r['s'] == 202 else 0
        if streak == k:
            first = records[i - k + 1]
            print(f"{max(0.0, first['t'] - t0):.2f}")
            return 0
    print('none')
    return 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    ld = sub.add_parser('load')
    ld.add_argument('url')
    ld.add_argument('--out', required=True)
    ld.add_argument('--prefix', required=True)
    ld.add_argument('--duration', type=float, required=True)
    ld.add_argument('--connections', type=int, default=32)
    ld.add_argument('--beacons-min', type=int, default=1)
    ld.add_argument('--beacons-max', type=int, default=100)
    ld.add_argument('--rate', type=float, default=0.0)
    ld.add_argument('--max-requests', type=int, default=1_000_000)
    ld.add_argument('--until-accepted', type=int, default=0)
    ld.add_argument('--rss-pid', type=int, default=0)
    ld.add_argument('--rss-out', default='')
    ld.add_argument('--seed', type=int, default=int(os.environ.get('DUET_TEST_SEED', '1')))
    ck = sub.add_parser('check')
    ck.add_argument('topic_ids')
    ck.add_argument('records', nargs='+')
    rc = sub.add_parser('recovery')
    rc.add_argument('records')
    rc.add_argument('t0', type=float)
    rc.add_argument('k', type=int)
    a = ap.parse_args()
    if a.cmd == 'load':
        asyncio.run(Load(a).run())
        return 0
    if a.cmd == 'check':
        return check(a.topic_ids, a.records)
    return recovery(a.records, a.t0, a.k)


if __name__ == '__main__':
    sys.exit(main())
