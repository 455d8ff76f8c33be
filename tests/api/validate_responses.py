"""Validates live responses of a running `duet serve` against src/serve/openapi.json.

    python validate_responses.py OPENAPI_JSON BASE_URL

Every JSON route is requested (successes and errors); each response's status must be documented
for its operation and its body must match the documented schema (OpenAPI 3.0 schema objects,
openapi-schema-validator). Keeps the document and the server from drifting apart.
"""
import json
import sys
import urllib.error
import urllib.request

from openapi_schema_validator import OAS30Validator


def fetch(base, path):
    try:
        with urllib.request.urlopen(base.rstrip('/') + path, timeout=10) as r:
            return r.status, r.headers['Content-Type'], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers['Content-Type'], e.read()


def resolve(spec, node):
    while isinstance(node, dict) and '$ref' in node:
        target = spec
        for part in node['$ref'].lstrip('#/').split('/'):
            target = target[part]
        node = target
    return node


def main():
    spec_path, base = sys.argv[1], sys.argv[2]
    spec = json.load(open(spec_path))
    status, _, body = fetch(base, '/v1/experiments')
    if status != 200:
        sys.exit(f'validate_responses: GET /v1/experiments answered {status}')
    experiments = json.loads(body)['experiments']
    if not experiments:
        sys.exit('validate_responses: no experiment to request')
    e = experiments[0]['id']
    cases = [
        ('/v1/experiments', '/v1/experiments', 200),
        ('/v1/experiments/{id}/report', f'/v1/experiments/{e}/report', 200),
        ('/v1/experiments/{id}/report', f'/v1/experiments/{e}/report?confidence=0.9', 200),
        ('/v1/experiments/{id}/report', f'/v1/experiments/{e}/report?from=0', 200),
        ('/v1/experiments/{id}/report', '/v1/experiments/nope/report', 404),
        ('/v1/experiments/{id}/report', f'/v1/experiments/{e}/report?control=zzz', 422),
        ('/v1/experiments/{id}/report', f'/v1/experiments/{e}/report?x=1', 400),
        ('/v1/experiments/{id}/timeseries', f'/v1/experiments/{e}/timeseries?metric=conversions', 200),
        ('/v1/experiments/{id}/timeseries',
         f'/v1/experiments/{e}/timeseries?metric=conversion_rate_session', 200),
        ('/v1/experiments/{id}/timeseries', f'/v1/experiments/{e}/timeseries', 400),
        ('/v1/uniques', '/v1/uniques?window=1h', 200),
        ('/v1/uniques', f'/v1/uniques?window=24h&experiment={e}', 200),
        ('/v1/uniques', '/v1/uniques?window=2h', 400),
        ('/v1/status', '/v1/status', 200),
        ('/healthz', '/healthz', 200),
        ('/readyz', '/readyz', 200),
    ]
    failures = 0
    for template, path, want in cases:
        status, ctype, body = fetch(base, path)
        problems = []
        if status != want:
            problems.append(f'status {status}, expected {want}')
        responses = spec['paths'][template]['get']['responses']
        documented = responses.get(str(status), responses.get('default'))
        if documented is None:
            problems.append(f'status {status} is not documented')
        else:
            documented = resolve(spec, documented)
            media = (ctype or '').split(';')[0].strip()
            content = documented.get('content', {})
            if media not in content:
                problems.append(f'content type {media!r} not documented (documented: {list(content)})')
            else:
                schema = {'allOf': [content[media]['schema']], 'components': spec['components']}
                errors = sorted(OAS30Validator(schema).iter_errors(json.loads(body)),
                                key=lambda x: list(x.path))
                for err in errors[:5]:
                    where = '/'.join(str(p) for p in err.path)
                    problems.append(f'at {where or "(root)"}: {err.message[:200]}')
        if problems:
            failures += 1
            print(f'MISMATCH GET {path}:')
            for p in problems:
                print('   ', p)
    if failures:
        sys.exit(f'validate_responses: {failures} of {len(cases)} responses differ from {spec_path}')
    print(f'validate_responses: {len(cases)} responses match {spec_path}')


if __name__ == '__main__':
    main()
