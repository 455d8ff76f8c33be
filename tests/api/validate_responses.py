"""Validates live responses of a running `duet serve` against src/serve/openapi.json.

    python validate_responses.py OPENAPI_JSON BASE_URL [views|model|jobs]

Every JSON route of the group is requested (successes and errors): `views` needs a server with
views, `model` one with a promoted model. Each response's status must be documented for its
operation and its body must match the documented schema (OpenAPI 3.0 schema objects,
openapi-schema-validator); request bodies sent must match the documented request schema. Keeps the
document and the server from drifting apart.
"""
import json
import os
import sys
import urllib.error
import urllib.request

from openapi_schema_validator import OAS30Validator


def fetch(base, path, body=None, token=None):
    req = urllib.request.Request(base.rstrip('/') + path,
                                 data=None if body is None else json.dumps(body).encode())
    if body is not None:
        req.add_header('Content-Type', 'application/json')
    if token:
        req.add_header('Authorization', 'Bearer ' + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
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


def model_cases():
    f = {'beacons': 3, 'pageviews': 2, 'add_to_carts': 1, 'hour_of_day': 9, 'day_of_week': 2,
         'device': 'mobile', 'referrer': 'https://www.bing.com/', 'experiments': {'x': 'y'}}
    return [
        ('/v1/models', 'get', '/v1/models', None, 200),
        ('/v1/predict', 'post', '/v1/predict', f, 200),
        ('/v1/predict', 'post', '/v1/predict', {'instances': [f, dict(f, beacons=9)]}, 200),
        ('/v1/predict', 'post', '/v1/predict', dict(f, hour_of_day=30), 422),
        ('/v1/predict', 'post', '/v1/predict', {'instances': []}, 422),
    ]


def job_cases():
    # The admin routes, with the token from $DUET_ADMIN_TOKEN (the server's); a job id 1 exists
    # once the POST has run.
    return [
        ('/v1/jobs', 'post', '/v1/jobs', {'kind': 'batch'}, 202),
        ('/v1/jobs', 'post', '/v1/jobs', {'kind': 'nope'}, 422),
        ('/v1/jobs', 'get', '/v1/jobs', None, 200),
        ('/v1/jobs/{id}', 'get', '/v1/jobs/1', None, 200),
        ('/v1/jobs/{id}', 'get', '/v1/jobs/999999', None, 404),
    ]


def main():
    spec_path, base = sys.argv[1], sys.argv[2]
    group = sys.argv[3] if len(sys.argv) > 3 else 'views'
    spec = json.load(open(spec_path))
    if group == 'model':
        return check(spec, spec_path, base, model_cases())
    if group == 'jobs':
        return check(spec, spec_path, base, job_cases(), os.environ.get('DUET_ADMIN_TOKEN'))
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
    check(spec, spec_path, base, [(t, 'get', p, None, w) for t, p, w in cases])


def check(spec, spec_path, base, cases, token=None):
    failures = 0
    for template, method, path, request, want in cases:
        status, ctype, body = fetch(base, path, request, token)
        problems = []
        if status != want:
            problems.append(f'status {status}, expected {want}')
        operation = spec['paths'][template][method]
        if request is not None and want < 400:
            schema = {'allOf': [operation['requestBody']['content']['application/json']['schema']],
                      'components': spec['components']}
            for err in list(OAS30Validator(schema).iter_errors(request))[:3]:
                problems.append(f'request body does not match its schema: {err.message[:200]}')
        responses = operation['responses']
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
            print(f'MISMATCH {method.upper()} {path}:')
            for p in problems:
                print('   ', p)
    if failures:
        sys.exit(f'validate_responses: {failures} of {len(cases)} responses differ from {spec_path}')
    print(f'validate_responses: {len(cases)} responses match {spec_path}')


if __name__ == '__main__':
    main()
