#!/usr/bin/python3
"""Runs the Python parsers over corpus.json and prints their extractions.

Each case's raw request is written to a real Werkzeug development server on
loopback (so the WSGI environ is what Werkzeug's server builds from those
bytes), and the WSGI app reads the credential slots the way Flask/Werkzeug
and Django apps do. Output on stdout:
{"results": {"<case>": {"<parser>": {"<slot>": [...]}}}, "versions": {...}}.

Parsers (see README.md for each slot):
  py-werkzeug       werkzeug Request: cookies.getlist, headers.getlist,
                    args.getlist, form.getlist, get_json(force=True), and
                    the bearer token as Authorization.split() gives it
  py-simplecookie   http.cookies.SimpleCookie on the environ's HTTP_COOKIE
  py-django         Django WSGIRequest: COOKIES, headers, GET.getlist,
                    POST.getlist, json.loads(request.body), and the bearer
                    token as djangorestframework-simplejwt splits it
                    (bytes.split(), b"Bearer" exactly, two parts)
  py-pyjwt          PyJWT jwt.decode(token, key, algorithms=["HS256"])
  py-pyjwt-unverified  PyJWT decode with verify_signature False
Run with the Debian python: /usr/bin/python3 gen.py corpus.json
"""

import base64
import http.cookies
import io
import json
import logging
import socket
import sys
import threading

try:
    import werkzeug
    from werkzeug.http import parse_cookie
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response
    from werkzeug.wsgi import get_input_stream
except ImportError:
    sys.exit("gen.py: werkzeug is missing: apt-get install python3-werkzeug (run with /usr/bin/python3)")
try:
    import jwt as pyjwt
except ImportError:
    pyjwt = None
try:
    import django
    from django.conf import settings as django_settings
except ImportError:
    django = None

COOKIES = ["__Host-refresh_app", "JSESSIONID", "session", "token"]
HEADERS = ["X-Auth-Token", "X-Session-Id"]
QUERY = ["access_token", "refresh_token"]
FORM = ["access_token", "refresh_token", "refreshToken"]
JSON_KEYS = ["refreshToken", "refresh_token"]
CLAIMS = ["sub", "sid", "jti", "iss"]


def add(out, slot, values):
    values = [v for v in values if v is not None]
    if values:
        out.setdefault(slot, []).extend(values)


def put(out, slot, v):
    """Records a JSON value as a slot carries it: a string as-is, a number
    or a boolean as JSON text (an app may stringify it); null, objects and
    arrays are no credential, and go to the informational "_nested:<slot>"."""
    if isinstance(v, str):
        add(out, slot, [v])
    elif isinstance(v, (bool, int, float)):
        add(out, slot, [json.dumps(v)])
    else:
        add(out, "_nested:" + slot, [json.dumps(v)])


def utf8(s):
    """A header-derived string as its bytes read as UTF-8, when they are.

    WSGI hands apps header values decoded as latin-1; the slot carries the
    same bytes as the UTF-8 string a Go guard compares against.
    """
    if s is None:
        return None
    try:
        return s.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def bearer_split(auth):
    """The usual Flask idiom: scheme, token = header.split() (any Unicode whitespace)."""
    if auth is None:
        return None
    parts = auth.split()
    if len(parts) >= 2 and parts[0].lower() == "bearer":
        return parts[1]
    return None


def werkzeug_view(environ):
    req = Request(environ)
    out = {}
    # get_json first: it caches the body, which form parsing then reuses;
    # the other order leaves get_json an empty body, unlike an app that
    # only reads JSON.
    body = req.get_json(force=True, silent=True)
    if isinstance(body, dict):
        for k in JSON_KEYS:
            if k in body:
                put(out, "json:" + k, body[k])
    for a in req.headers.getlist("Authorization"):
        add(out, "bearer", [utf8(bearer_split(a))])
    for n in COOKIES:
        add(out, "cookie:" + n, req.cookies.getlist(n))
    for n in HEADERS:
        add(out, "header:" + n, [utf8(v) for v in req.headers.getlist(n)])
    for n in QUERY:
        add(out, "query:" + n, req.args.getlist(n))
    for n in FORM:
        add(out, "form:" + n, req.form.getlist(n))
    simple = {}
    raw = environ.get("HTTP_COOKIE")
    if raw is not None:
        c = http.cookies.SimpleCookie()
        c.load(raw)
        for n in COOKIES:
            if n in c:
                add(simple, "cookie:" + n, [utf8(c[n].value)])
    return {"py-werkzeug": out, "py-simplecookie": simple}


def simplejwt_bearer(meta):
    """djangorestframework-simplejwt's JWTAuthentication.get_raw_token."""
    auth = meta.get("HTTP_AUTHORIZATION")
    if auth is None:
        return None
    parts = auth.encode("iso-8859-1").split()
    if len(parts) != 2 or parts[0] != b"Bearer":
        return None
    return parts[1].decode("utf-8", "replace")


def django_view(environ):
    from django.core.handlers.wsgi import WSGIRequest

    req = WSGIRequest(environ)
    out = {}
    add(out, "bearer", [simplejwt_bearer(req.META)])
    for n in COOKIES:
        if n in req.COOKIES:
            add(out, "cookie:" + n, [utf8(req.COOKIES[n])])
    for n in HEADERS:
        add(out, "header:" + n, [utf8(req.headers.get(n))])
    for n in QUERY:
        add(out, "query:" + n, req.GET.getlist(n))
    try:
        body = req.body
        for n in FORM:
            add(out, "form:" + n, req.POST.getlist(n))
    except Exception:  # unparseable multipart: the view sees no form
        body = req.body
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for k in JSON_KEYS:
            if k in data:
                put(out, "json:" + k, data[k])
    return {"py-django": out}


class Recorder:
    """A WSGI app that answers each request with its extraction as JSON.

    The body is read once, then each framework gets its own copy of the
    environ with that body.
    """

    def __call__(self, environ, start_response):
        body = get_input_stream(environ).read()
        result = {}
        views = [("py-werkzeug", werkzeug_view)]
        if django is not None:
            views.append(("py-django", django_view))
        for name, view in views:
            env = dict(environ, **{"wsgi.input": io.BytesIO(body)})
            try:
                result.update(view(env))
            except Exception as e:  # a parser crashing is a result too
                result[name] = {"_error": [f"{type(e).__name__}: {e}"]}
        return Response(json.dumps(result), mimetype="application/json")(environ, start_response)


def wire(req):
    head = f"{req['method']} {req['target']} HTTP/1.1\r\n"
    for k, v in req["headers"]:
        head += f"{k}: {v}\r\n"
    enc = "latin-1" if req.get("header_bytes") == "latin1" else "utf-8"
    return head.encode(enc) + b"\r\n" + base64.b64decode(req["body_b64"])


def send(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        resp = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
    head, _, body = resp.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    if " 200 " not in status:
        return None, status
    return json.loads(body), status


def jwt_claims(tokens, verify):
    found = []
    for t in tokens:
        try:
            if verify:
                c = pyjwt.decode(t, KEY, algorithms=["HS256"])
            else:
                c = pyjwt.decode(t, options={"verify_signature": False}, algorithms=["HS256"])
        except Exception:
            continue
        if isinstance(c, dict):
            found.append({k: c[k] for k in CLAIMS if k in c})
    uniq = {json.dumps(c, sort_keys=True): c for c in found}
    return [uniq[k] for k in sorted(uniq)]


def strings(slots):
    return [v for k, vs in slots.items() if not k.startswith("_") for v in vs if isinstance(v, str)]


KEY = None


def main():
    global KEY
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if django is not None:
        django_settings.configure(
            ALLOWED_HOSTS=["*"],
            DATA_UPLOAD_MAX_MEMORY_SIZE=None,
            FILE_UPLOAD_HANDLERS=["django.core.files.uploadhandler.MemoryFileUploadHandler"],
            SECRET_KEY="differential-corpus",
        )
        django.setup()
    corpus = json.load(open(sys.argv[1], encoding="utf-8"))
    KEY = corpus["hs256_secret"]
    srv = make_server("127.0.0.1", 0, Recorder())
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    results = {}
    for c in corpus["cases"]:
        got, status = send(srv.server_port, wire(c["request"]))
        per = {}
        if got is None:
            for name in ("py-werkzeug", "py-simplecookie") + (("py-django",) if django else ()):
                per[name] = {"_rejected": [status]}
        else:
            per.update(got)
        if pyjwt is not None:
            cands = list(c.get("jwt_tokens", []))
            for slots in per.values():
                cands += strings(slots)
            for name, verify in (("py-pyjwt", True), ("py-pyjwt-unverified", False)):
                claims = jwt_claims(cands, verify)
                per[name] = {"jwt": claims} if claims else {}
        results[c["name"]] = per
    srv.shutdown()
    versions = {
        "python": sys.version.split()[0],
        "werkzeug": werkzeug.__version__,
        "pyjwt": pyjwt.__version__ if pyjwt else "missing",
        "django": django.get_version() if django else "missing",
    }
    json.dump({"results": results, "versions": versions}, sys.stdout, sort_keys=True, ensure_ascii=True)


if __name__ == "__main__":
    main()
