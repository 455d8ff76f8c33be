"""The peer of `duet serve`'s POST /v1/predict: the same XGBoost model behind Flask.

Serves the model that `duet models export` wrote (DIR/model.ubj, DIR/meta.json), with the same
request/response contract and the same feature encoding as duet (docs/model.md), so that both
return the same float32 probabilities for the same body.

    DUET_MODEL_DIR=DIR gunicorn -w 2 -k sync -b 127.0.0.1:8001 'app:create_app()'

`create_app()` loads the model; gunicorn calls it in each worker after the fork (never run it
with --preload: libgomp does not survive a fork, xgboost#8040). Prediction uses one thread
(`nthread=1`, OMP_NUM_THREADS=1): the workers are the parallelism, as in duet.

The encoder is plain Python over a plan built once from meta.json's "columns", then one
`inplace_predict` on a float32 array per request: the idiomatic fast path of the xgboost package.
"""

import json
import math
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

# Only the standard library at import time: the bench tools import this module for `encode`
# without Flask, numpy or xgboost.

MAX_INSTANCES = 1000
MAX_COUNT = 1_000_000_000  # duet's bounds (docs/model.md)
MAX_NUMBER = 1e12

COUNT_FIELDS = ("beacons", "pageviews", "clicks", "scrolls", "searches", "add_to_carts",
                "video_plays", "form_submits", "other_interactions", "previous_sessions",
                "previous_conversions")
NONNEGATIVE_FIELDS = ("seconds_since_start", "hours_since_previous_session")
RANGE_FIELDS = {"hour_of_day": 23, "day_of_week": 6}
NUMERIC_FIELDS = COUNT_FIELDS + NONNEGATIVE_FIELDS + tuple(RANGE_FIELDS)
STRING_FIELDS = ("device", "referrer")
KNOWN_FIELDS = frozenset(NUMERIC_FIELDS + STRING_FIELDS + ("experiments",))

DEVICES = ("desktop", "mobile", "tablet")
REFERRER_CLASSES = ("search", "social", "email", "other")
SEARCH_DOMAINS = ("google.com", "bing.com", "duckduckgo.com", "yahoo.com", "yandex.ru",
                  "baidu.com", "ecosia.org")
SOCIAL_DOMAINS = ("facebook.com", "t.co", "twitter.com", "x.com", "instagram.com",
                  "linkedin.com", "reddit.com", "pinterest.com", "youtube.com", "tiktok.com")
EXPERIMENT_PREFIX = "experiment:"

# str.lower() also folds non-ASCII letters (the Kelvin sign K lowers to "k"); duet folds A-Z only.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class InvalidInput(ValueError):
    """A request body outside the contract: answered with 422 (400 when it is not JSON)."""

    def __init__(self, detail, status=422):
        super().__init__(detail)
        self.status = status


def _is_domain(host, domains):
    return any(host == d or host.endswith("." + d) for d in domains)


def referrer_class(referrer):
    """"none", "search", "social", "email" or "other", by the rules of docs/model.md."""
    if not referrer:
        return "none"
    start = referrer.find("://")
    host = referrer[start + 3:] if start >= 0 else referrer
    for i, ch in enumerate(host):
        if ch in "/?#:":
            host = host[:i]
            break
    host = host.translate(_ASCII_LOWER)
    if host.startswith("www."):
        host = host[4:]
    elif host.startswith("m."):
        host = host[2:]
    if _is_domain(host, SEARCH_DOMAINS) or host.startswith("google."):
        return "search"
    if _is_domain(host, SOCIAL_DOMAINS):
        return "social"
    if (host.startswith("mail.") or host.startswith("newsletter.") or "newsletter" in host
            or "utm_medium=email" in referrer):
        return "email"
    return "other"


def device_class(device):
    d = device.strip(" ").translate(_ASCII_LOWER)
    return d if d in DEVICES else None


class Encoder:
    """Turns feature objects into rows of meta.json's columns (Python floats, NaN = missing)."""

    def __init__(self, columns):
        self.columns = list(columns)
        self._numeric = []      # (field, index)
        self._device = {}       # device -> index
        self._referrer = {}     # class -> index
        self._experiment = {}   # name -> {variant: index}
        template = []
        for i, name in enumerate(self.columns):
            if name in NUMERIC_FIELDS:
                self._numeric.append((name, i))
                # Absent means what training sees: 0 for counts and times, no earlier session
                # (missing) for hours_since_previous_session (docs/model.md).
                template.append(math.nan if name == "hours_since_previous_session" else 0.0)
                continue
            template.append(0.0)
            if name.startswith("device_") and name[7:] in DEVICES:
                self._device[name[7:]] = i
            elif name.startswith("referrer_") and name[9:] in REFERRER_CLASSES:
                self._referrer[name[9:]] = i
            elif name.startswith(EXPERIMENT_PREFIX) and "=" in name:
                experiment, _, variant = name[len(EXPERIMENT_PREFIX):].partition("=")
                self._experiment.setdefault(experiment, {})[variant] = i
            else:
                raise ValueError(f"meta.json column {name!r} has no encoding here")
        self._template = template

    def row(self, obj):
        """The row of one feature object; InvalidInput when it breaks the contract."""
        if not isinstance(obj, dict):
            raise InvalidInput("a feature object must be a JSON object")
        unknown = obj.keys() - KNOWN_FIELDS
        if unknown:
            raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}")
        validate(obj)
        for field in REQUIRED_FIELDS:
            if obj.get(field) is None:
                raise InvalidInput(f"{field}: missing; it is required")
        row = self._template.copy()
        for field, i in self._numeric:
            v = obj.get(field)
            if v is not None:
                row[i] = float(v)  # JSON number -> double; numpy casts it to float32 later
        device = obj.get("device")
        if device is not None:
            d = device_class(device)
            if d in self._device:
                row[self._device[d]] = 1.0
        referrer = obj.get("referrer")
        if referrer is not None:
            r = referrer_class(referrer)
            if r in self._referrer:
                row[self._referrer[r]] = 1.0
        experiments = obj.get("experiments")
        if experiments:
            for name, variant in experiments.items():
                i = self._experiment.get(name, {}).get(variant)
                if i is not None:
                    row[i] = 1.0
        return row


REQUIRED_FIELDS = ("beacons", "hour_of_day", "day_of_week")


def validate(obj):
    """InvalidInput unless every present field has its type and range (null counts as absent)."""
    for field in COUNT_FIELDS:
        v = obj.get(field)
        low = 1 if field == "beacons" else 0
        if v is not None and (type(v) is not int or not low <= v <= MAX_COUNT):
            raise InvalidInput(f"{field} must be an integer from {low} to {MAX_COUNT}")
    for field in NONNEGATIVE_FIELDS:
        v = obj.get(field)
        if v is not None and (type(v) not in (int, float) or not 0 <= v <= MAX_NUMBER):
            raise InvalidInput(f"{field} must be a number from 0 to {MAX_NUMBER:g}")
    for field, top in RANGE_FIELDS.items():
        v = obj.get(field)
        if v is not None and (type(v) is not int or not 0 <= v <= top):
            raise InvalidInput(f"{field} must be an integer from 0 to {top}")
    for field in STRING_FIELDS:
        v = obj.get(field)
        if v is not None and type(v) is not str:
            raise InvalidInput(f"{field} must be a string")
    experiments = obj.get("experiments")
    if experiments is not None:
        if type(experiments) is not dict or not all(
                type(v) is str for v in experiments.values()):
            raise InvalidInput("experiments must map experiment names to variant names")


def parse_body(data):
    """(feature objects, batch?) from a request body; InvalidInput when it is not one."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the body is not JSON", 400) from None
    if isinstance(body, dict) and "instances" in body:
        instances = body["instances"]
        if len(body) != 1 or not isinstance(instances, list):
            raise InvalidInput("a batch is {\"instances\": [feature object, ...]}")
        if not 1 <= len(instances) <= MAX_INSTANCES:
            raise InvalidInput(f"a batch has 1 to {MAX_INSTANCES} instances")
        return instances, True
    return [body], False


def load_model(model_dir):
    """(booster, encoder, version) from DIR/model.ubj and DIR/meta.json."""
    import xgboost as xgb

    with open(os.path.join(model_dir, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    booster = xgb.Booster(model_file=os.path.join(model_dir, "model.ubj"))
    booster.set_param({"nthread": 1})
    version = meta.get("version", meta.get("model_version"))
    if version is None:
        version = int(os.environ.get("DUET_MODEL_VERSION", "1"))
    return booster, Encoder(meta["columns"]), int(version)


def create_app(model_dir=None):
    import numpy as np
    from flask import Flask, request

    booster, encoder, version = load_model(model_dir or os.environ["DUET_MODEL_DIR"])
    # The first prediction configures the booster; do it before taking traffic.
    booster.inplace_predict(np.full((1, len(encoder.columns)), np.nan, dtype=np.float32))
    app = Flask(__name__)

    titles = {400: "Bad Request", 415: "Unsupported Media Type", 422: "Unprocessable Entity"}

    def problem(status, detail):
        body = json.dumps({"type": "about:blank", "title": titles[status], "status": status,
                           "detail": detail})
        return app.response_class(body, status=status, mimetype="application/problem+json")

    @app.post("/v1/predict")
    def predict():
        if request.mimetype != "application/json":
            return problem(415, "send the features as application/json")
        try:
            objects, batch = parse_body(request.get_data())
            rows = [encoder.row(obj) for obj in objects]
        except InvalidInput as e:
            return problem(e.status, str(e))
        p = booster.inplace_predict(np.array(rows, dtype=np.float32))
        # float32 printed with 9 significant digits, as duet does: parsed back as float32 it is
        # the same number.
        if batch:
            body = '{"model_version":%d,"probabilities":[%s]}' % (
                version, ",".join("%.9g" % x for x in p.tolist()))
        else:
            body = '{"model_version":%d,"probability":%.9g}' % (version, p.item(0))
        return app.response_class(body, mimetype="application/json")

    @app.get("/readyz")
    def readyz():
        return app.response_class('{"ready":true}', mimetype="application/json")

    return app
