#!/usr/bin/python3
"""Runs the Python framework families beyond Werkzeug and Django over corpus.json.

Each case's raw request is written over a socket to real servers on
loopback: Starlette and FastAPI apps behind uvicorn (its h11 protocol),
aiohttp's own server, and Tornado's own server, so each one's HTTP parsing
is part of the result. Output on stdout, as gen.py:
{"results": {"<case>": {"<parser>": {"<slot>": [...]}}}, "versions": {...}}.

Parsers (see README.md for each slot):
  py-starlette  Request: query_params.getlist, cookies, headers.getlist,
                await form() (urlencoded and multipart), await json();
                bearer and Basic as Starlette's authentication docs split them
  py-fastapi    a route whose parameters are Query(), Cookie(), Header(),
                Form() lists, with OAuth2PasswordBearer and HTTPBasic
  py-aiohttp    Request: query.getall, cookies, headers.getall, await
                post() (urlencoded and multipart), await json(); Basic as
                aiohttp.BasicAuth.decode
  py-tornado    RequestHandler: get_query_arguments, get_body_arguments
                (urlencoded and multipart), get_cookie, headers.get_list,
                json.loads(request.body)
Run with the Debian python: /usr/bin/python3 gen_pyfamilies.py corpus.json
"""

import asyncio
import warnings
import base64
import binascii
import json
import logging
import sys
from typing import List, Optional

try:
    import aiohttp
    import fastapi
    import starlette
    import tornado
    import tornado.web
    import uvicorn
    from aiohttp import web as aioweb
    from fastapi import Cookie, Depends, FastAPI, Form, Header, Query
    from fastapi.security import HTTPBasic, OAuth2PasswordBearer
    from starlette.applications import Starlette
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import JSONResponse
    from starlette.routing import Route
except ImportError as e:
    sys.exit(f"gen_pyfamilies.py: {e}: apt-get install python3-starlette python3-fastapi python3-uvicorn "
             "python3-multipart python3-aiohttp python3-tornado (run with /usr/bin/python3)")

COOKIES = ["__Host-refresh_app", "JSESSIONID", "session", "token"]
HEADERS = ["X-Auth-Token", "X-Session-Id"]
QUERY = ["access_token", "refresh_token"]
FORM = ["access_token", "refresh_token", "refreshToken"]
JSON_KEYS = ["refreshToken", "refresh_token"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class NotUTF8(str):
    """A value whose bytes are not valid UTF-8, given as their latin-1 reading."""


def add(out, slot, values):
    for v in values:
        if v is None:
            continue
        # A value that is not UTF-8 text (a framework cut a UTF-8 character
        # in two, or the client sent a stray byte) is no credential: it is
        # informational, under "_not_utf8:<slot>".
        key = "_not_utf8:" + slot if isinstance(v, NotUTF8) else slot
        out.setdefault(key, []).append(str(v))


def put(out, slot, v):
    """A JSON value as a slot carries it (see gen.py)."""
    if isinstance(v, str):
        add(out, slot, [v])
    elif isinstance(v, (bool, int, float)):
        add(out, slot, [json.dumps(v)])
    else:
        add(out, "_nested:" + slot, [json.dumps(v)])


def utf8(s):
    """A header-derived string as its bytes read as UTF-8, when they are.

    uvicorn and Tornado decode header bytes as latin-1, aiohttp as UTF-8
    with surrogateescape: either way the bytes come back. Bytes that are
    not UTF-8 give a NotUTF8 of their latin-1 reading.
    """
    if s is None:
        return None
    try:
        b = s.encode("latin-1")
    except UnicodeEncodeError:
        try:
            b = s.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return s
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return NotUTF8(b.decode("latin-1"))


def split_bearer(auth):
    """scheme, token = auth.split(), as the frameworks' docs show it."""
    if auth is None:
        return None
    parts = auth.split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    return None


def basic_slots(out, user, password):
    add(out, "basic:user", [user])
    add(out, "basic:password", [password])


def starlette_basic(out, auth):
    """Starlette's authentication docs: split(), 'basic', b64decode, partition(':')."""
    if auth is None:
        return
    try:
        scheme, credentials = auth.split()
        if scheme.lower() != "basic":
            return
        user, _, password = base64.b64decode(credentials).decode("ascii").partition(":")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return
    basic_slots(out, user, password)


def json_slots(out, data):
    if isinstance(data, dict):
        for k in JSON_KEYS:
            if k in data:
                put(out, "json:" + k, data[k])


def form_strings(values):
    """Form values an app reads as text: uploaded files are left out."""
    return [v for v in values if isinstance(v, str)]


# ------------------------------------------------------------------ Starlette


async def starlette_view(request: StarletteRequest):
    out = {}
    for a in request.headers.getlist("authorization"):
        add(out, "bearer", [utf8(split_bearer(a))])
        starlette_basic(out, a)
    for n in COOKIES:
        if n in request.cookies:
            add(out, "cookie:" + n, [utf8(request.cookies[n])])
    for n in HEADERS:
        add(out, "header:" + n, [utf8(v) for v in request.headers.getlist(n)])
    for n in QUERY:
        add(out, "query:" + n, request.query_params.getlist(n))
    ctype = request.headers.get("content-type", "")
    if "urlencoded" in ctype or "multipart" in ctype:
        try:
            form = await request.form()
            for n in FORM:
                add(out, "form:" + n, form_strings(form.getlist(n)))
        except Exception as e:  # an unparseable body: the view sees no form
            add(out, "_error", [f"form: {type(e).__name__}"])
    else:
        try:
            json_slots(out, await request.json())
        except Exception:
            pass
    return JSONResponse({"py-starlette": out})


# ------------------------------------------------------------------ FastAPI

fastapi_app = FastAPI()
oauth2 = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)
http_basic = HTTPBasic(auto_error=False)


@fastapi_app.api_route("/{path:path}", methods=METHODS)
async def fastapi_view(
    bearer: Optional[str] = Depends(oauth2),
    basic=Depends(http_basic),
    access_token: Optional[List[str]] = Query(None),
    refresh_token: Optional[List[str]] = Query(None),
    c_refresh: Optional[str] = Cookie(None, alias="__Host-refresh_app"),
    c_jsessionid: Optional[str] = Cookie(None, alias="JSESSIONID"),
    c_session: Optional[str] = Cookie(None, alias="session"),
    c_token: Optional[str] = Cookie(None, alias="token"),
    x_auth_token: Optional[List[str]] = Header(None),
    x_session_id: Optional[List[str]] = Header(None),
    f_access_token: Optional[List[str]] = Form(None, alias="access_token"),
    f_refresh_token: Optional[List[str]] = Form(None, alias="refresh_token"),
    f_refreshToken: Optional[List[str]] = Form(None, alias="refreshToken"),
):
    out = {}
    add(out, "bearer", [utf8(bearer)])
    if basic is not None:
        basic_slots(out, basic.username, basic.password)
    for slot, v in [("cookie:__Host-refresh_app", c_refresh), ("cookie:JSESSIONID", c_jsessionid),
                    ("cookie:session", c_session), ("cookie:token", c_token)]:
        add(out, slot, [utf8(v)])
    add(out, "header:X-Auth-Token", [utf8(v) for v in x_auth_token or []])
    add(out, "header:X-Session-Id", [utf8(v) for v in x_session_id or []])
    add(out, "query:access_token", access_token or [])
    add(out, "query:refresh_token", refresh_token or [])
    add(out, "form:access_token", form_strings(f_access_token or []))
    add(out, "form:refresh_token", form_strings(f_refresh_token or []))
    add(out, "form:refreshToken", form_strings(f_refreshToken or []))
    return {"py-fastapi": out}


# ------------------------------------------------------------------ aiohttp


async def aiohttp_view(request):
    out = {}
    for a in request.headers.getall("Authorization", []):
        add(out, "bearer", [utf8(split_bearer(a))])
        try:
            b = aiohttp.BasicAuth.decode(a)
            basic_slots(out, b.login, b.password)
        except ValueError:
            pass
    for n in COOKIES:
        if n in request.cookies:
            add(out, "cookie:" + n, [utf8(request.cookies[n])])
    for n in HEADERS:
        add(out, "header:" + n, [utf8(v) for v in request.headers.getall(n, [])])
    for n in QUERY:
        add(out, "query:" + n, request.query.getall(n, []))
    ctype = request.headers.get("Content-Type", "")
    if "urlencoded" in ctype or "multipart" in ctype:
        try:
            form = await request.post()
            for n in FORM:
                add(out, "form:" + n, form_strings(form.getall(n, [])))
        except Exception as e:
            add(out, "_error", [f"post: {type(e).__name__}"])
    else:
        try:
            json_slots(out, await request.json())
        except Exception:
            pass
    return aioweb.json_response({"py-aiohttp": out})


# ------------------------------------------------------------------ Tornado


class TornadoView(tornado.web.RequestHandler):
    def _view(self, *args):
        out = {}
        for a in self.request.headers.get_list("Authorization"):
            add(out, "bearer", [utf8(split_bearer(a))])
        for n in COOKIES:
            add(out, "cookie:" + n, [utf8(self.get_cookie(n))])
        for n in HEADERS:
            add(out, "header:" + n, [utf8(v) for v in self.request.headers.get_list(n)])
        for n in QUERY:
            add(out, "query:" + n, self.get_query_arguments(n))
        for n in FORM:
            add(out, "form:" + n, self.get_body_arguments(n))
        try:
            json_slots(out, json.loads(self.request.body))
        except ValueError:
            pass
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"py-tornado": out}))

    get = post = put = patch = delete = _view


# ------------------------------------------------------------------ the wire


def wire(req):
    head = f"{req['method']} {req['target']} HTTP/1.1\r\n"
    for k, v in req["headers"]:
        head += f"{k}: {v}\r\n"
    enc = "latin-1" if req.get("header_bytes") == "latin1" else "utf-8"
    return head.encode(enc) + b"\r\n" + base64.b64decode(req["body_b64"])


async def send(port, data):
    """Writes the raw request and reads one response (Content-Length or close)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    except (OSError, asyncio.TimeoutError) as e:
        return None, f"connect: {e}"
    try:
        writer.write(data)
        await writer.drain()
        buf = b""
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            if not chunk:
                break
            buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if not sep:
                continue
            length = None
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
            if length is not None and len(body) >= length:
                break
    except (OSError, asyncio.TimeoutError) as e:
        return None, f"read: {type(e).__name__}"
    finally:
        writer.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    if " 200 " not in status:
        return None, status or "connection closed"
    return json.loads(body), status


async def main():
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")  # aiohttp warns on the bad Content-Disposition the corpus sends
    corpus = json.load(open(sys.argv[1], encoding="utf-8"))

    servers = []
    starlette_app = Starlette(routes=[Route("/{path:path}", starlette_view, methods=METHODS)])
    for name, app in (("py-starlette", starlette_app), ("py-fastapi", fastapi_app)):
        cfg = uvicorn.Config(app, host="127.0.0.1", port=0, http="h11", lifespan="off", log_level="critical",
                             access_log=False)
        srv = uvicorn.Server(cfg)
        # Server.serve's first steps, without its signal handlers and main loop.
        cfg.load()
        srv.lifespan = cfg.lifespan_class(cfg)
        await srv.startup()
        servers.append((name, srv.servers[0].sockets[0].getsockname()[1], srv))

    aio = aioweb.Application(client_max_size=64 << 20)
    aio.router.add_route("*", "/{path:.*}", aiohttp_view)
    runner = aioweb.AppRunner(aio, access_log=None)
    await runner.setup()
    site = aioweb.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    servers.append(("py-aiohttp", runner.addresses[0][1], None))

    tapp = tornado.web.Application([(r"/.*", TornadoView)])
    tsrv = tapp.listen(0, "127.0.0.1")
    tport = next(iter(tsrv._sockets.values())).getsockname()[1]
    servers.append(("py-tornado", tport, None))

    results = {}
    for c in corpus["cases"]:
        per = {}
        data = wire(c["request"])
        for name, port, _ in servers:
            got, status = await send(port, data)
            if got is None:
                per[name] = {"_rejected": [status]}
            else:
                per.update(got)
        results[c["name"]] = per

    for name, _, srv in servers:
        if srv is not None:
            await srv.shutdown()
    await runner.cleanup()
    tsrv.stop()
    import multipart
    import h11
    versions = {
        "starlette": starlette.__version__,
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
        "h11": h11.__version__,
        "python-multipart": multipart.__version__,
        "aiohttp": aiohttp.__version__,
        "tornado": tornado.version,
    }
    json.dump({"results": results, "versions": versions}, sys.stdout, sort_keys=True, ensure_ascii=True)


if __name__ == "__main__":
    asyncio.run(main())
