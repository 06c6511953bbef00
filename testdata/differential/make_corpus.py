#!/usr/bin/python3
"""Writes corpus.json: the requests of the differential corpus.

Each case is a raw HTTP/1.1 request (method, raw target, ordered raw
headers, raw body) built to probe one way the guard and a framework behind
it could read a credential differently. The JWTs are HS256, signed with
SECRET below; JWT variants re-encode a validly signed token the way an
attacker can without knowing the key (padding, the other base64 alphabet,
unused trailing bits, whitespace). Run by generate.sh; deterministic.
"""

import base64
import gzip
import hashlib
import hmac
import json
import os
import sys
import zlib

SECRET = "differential-corpus-secret-0123456789"
HOST = "app.test"

REVOKED = "rt-revoked-1"  # an opaque refresh token
ACCESS = "at-revoked-1"  # an opaque access token


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims, header=None):
    header = header or {"alg": "HS256", "typ": "JWT"}
    h = b64u(json.dumps(header, separators=(",", ":")).encode())
    p = b64u(json.dumps(claims, separators=(",", ":")).encode())
    s = b64u(hmac.new(SECRET.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
    return f"{h}.{p}.{s}"


def parts(tok):
    return tok.split(".")


def join(h, p, s):
    return f"{h}.{p}.{s}"


def pad(seg):
    return seg + "=" * (-len(seg) % 4)


def std(seg):
    return seg.replace("-", "+").replace("_", "/")


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def trailing_bits(seg):
    """Sets unused low bits of the last character: same bytes when decoded leniently."""
    rem = len(seg) % 4
    if rem == 0:
        raise ValueError("segment has no unused bits")
    unused = {2: 4, 3: 2}[rem]
    last = B64.index(seg[-1])
    return seg[:-1] + B64[last | ((1 << unused) - 1)]


def search(base, want):
    """A token for claims base plus a filler claim, whose segments satisfy want."""
    for n in range(100000):
        claims = dict(base, n=f"~?>{n}")
        tok = sign(claims)
        if want(*parts(tok)):
            return tok
    raise RuntimeError("no token found")


def claims(i):
    return {"sub": f"user-{i}", "sid": f"sess-{i}", "jti": f"jti-{i}", "iss": "corpus"}


CASES = []


def case(name, why, method="GET", target="/", headers=(), body=b"", jwt=(), latin1=False):
    if any(c["name"] == name for c in CASES):
        raise ValueError("duplicate case " + name)
    hs = [["Host", HOST]] + [list(h) for h in headers]
    if body and not any(h[0].lower() in ("content-length", "transfer-encoding") for h in hs):
        hs.append(["Content-Length", str(len(body))])
    c = {
        "name": name,
        "why": why,
        "request": {
            "method": method,
            "target": target,
            "headers": hs,
            "body_b64": base64.b64encode(body).decode(),
        },
    }
    if latin1:
        # header values are bytes: each code point U+0000-U+00FF is one byte
        c["request"]["header_bytes"] = "latin1"
    if jwt:
        c["jwt_tokens"] = list(jwt)
    CASES.append(c)


def bearer(name, why, value, jwt=()):
    case(name, why, headers=[("Authorization", value)], jwt=jwt)


def json_body(name, why, body, ctype="application/json", extra=(), jwt=(), method="POST"):
    hs = []
    if ctype is not None:
        hs.append(("Content-Type", ctype))
    hs += list(extra)
    case(name, why, method=method, target="/refresh", headers=hs, body=body, jwt=jwt)


# ---------------------------------------------------------------- JWT encodings
T = search(claims(1), lambda h, p, s: len(p) % 4 != 0)
h, p, s = parts(T)
TSIG = search(claims(2), lambda h, p, s: "-" in s or "_" in s)  # signature with - or _
TPAY = search(claims(3), lambda h, p, s: ("-" in p or "_" in p) and len(p) % 4 != 0)
THDR_HEADER = {"alg": "HS256", "typ": "JWT", "kid": "k-12"}  # length not a multiple of 3: padded header
assert len(json.dumps(THDR_HEADER, separators=(",", ":"))) % 3 != 0
THDR = sign(claims(4), THDR_HEADER)
THDR_STD_HEADER = None
for kid in range(1000):
    cand = {"alg": "HS256", "typ": "JWT", "kid": f"k?{kid}>"}
    seg = b64u(json.dumps(cand, separators=(",", ":")).encode())
    if "-" in seg or "_" in seg:
        THDR_STD_HEADER = cand
        break
THSTD = sign(claims(5), THDR_STD_HEADER)
assert len(s) % 4 != 0 and len(p) % 4 != 0

bearer("jwt-plain", "baseline: a valid HS256 JWT as Bearer", "Bearer " + T, jwt=[T])
hs_, ps_, ss_ = parts(TSIG)
for label, tok, why in [
    ("jwt-sig-padded", join(h, p, pad(s)), "issue 8.1: '=' padding on the signature"),
    ("jwt-sig-overpadded", join(h, p, s + "=="), "extra '=' beyond the padding on the signature"),
    ("jwt-sig-std-alphabet", join(hs_, ps_, std(ss_)), "issue 8.1: signature in the standard base64 alphabet (+/)"),
    ("jwt-sig-std-padded", join(hs_, ps_, pad(std(ss_))), "signature in +/ alphabet and padded"),
    ("jwt-sig-trailing-bits", join(h, p, trailing_bits(s)), "unused trailing bits set in the signature"),
    ("jwt-payload-padded", join(h, pad(p), s), "issue 8.1: padded payload segment, original signature"),
    ("jwt-payload-std-alphabet", join(*(lambda a, b, c: (a, std(b), c))(*parts(TPAY))), "payload in +/ alphabet, original signature"),
    ("jwt-payload-trailing-bits", join(h, trailing_bits(p), s), "unused trailing bits set in the payload"),
    ("jwt-header-padded", join(pad(parts(THDR)[0]), *parts(THDR)[1:]), "issue 8.1: padded header segment, original signature"),
    ("jwt-header-std-alphabet", join(std(parts(THSTD)[0]), *parts(THSTD)[1:]), "header in +/ alphabet, original signature"),
    ("jwt-all-padded", join(pad(parts(THDR)[0]), pad(parts(THDR)[1]), pad(parts(THDR)[2])), "every segment padded"),
]:
    bearer(label, why, "Bearer " + tok, jwt=[tok])

bearer("jwt-trailing-space", "whitespace after the token (Go trims it from header values)", "Bearer " + T + " ", jwt=[T, T + " "])
TN = sign({"sub": 12345, "sid": 678, "jti": 9012, "iss": "corpus"})
bearer("jwt-numeric-claims", "issue 8.6: numeric sub, sid and jti", "Bearer " + TN, jwt=[TN])
TB = sign({"sub": 12345678901234567890, "sid": 1.5, "jti": 1e3, "iss": "corpus"})
bearer("jwt-bignum-claims", "claims that languages stringify differently (big int, float, exponent)", "Bearer " + TB, jwt=[TB])
TO = sign({"sub": ["user-6"], "sid": {"id": "sess-6"}, "jti": True, "iss": "corpus"})
bearer("jwt-nonscalar-claims", "array/object/bool claims", "Bearer " + TO, jwt=[TO])

# whitespace inside tokens: in JSON bodies any character can be carried
T7 = search(claims(7), lambda h, p, s: len(p) > 12)
h7, p7, s7 = parts(T7)
for label, tok, why in [
    ("json-jwt-trailing-newline", T7 + "\n", "token + newline: Go's base64 skips \\n, Node's decoder skips whitespace"),
    ("json-jwt-inner-newline", f"{h7}.{p7}.{s7[:10]}\n{s7[10:]}", "newline inside the signature"),
    ("json-jwt-inner-space", f"{h7}.{p7}.{s7[:10]} {s7[10:]}", "space inside the signature"),
    ("json-jwt-leading-space", " " + T7, "space before the token"),
    ("json-jwt-sig-padded", join(h7, p7, pad(s7)), "padded signature carried in a JSON refresh token"),
    ("json-jwt-payload-crlf", f"{h7}.{p7[:8]}\r\n{p7[8:]}.{s7}", "CRLF inside the payload segment"),
]:
    json_body(label, why, json.dumps({"refreshToken": tok}).encode(), jwt=[tok])

# ---------------------------------------------------------------- Authorization
for label, value, why in [
    ("auth-plain", "Bearer " + ACCESS, "baseline opaque bearer"),
    ("auth-tab", "Bearer\t" + ACCESS, "tab separator"),
    ("auth-nbsp", "Bearer\u00a0" + ACCESS, "issue 8.3: U+00A0 separator (Python str.split splits on it)"),
    ("auth-emsp", "Bearer\u2003" + ACCESS, "U+2003 EM SPACE separator"),
    ("auth-ideographic-space", "Bearer\u3000" + ACCESS, "U+3000 IDEOGRAPHIC SPACE separator"),
    ("auth-multi-space", "Bearer   " + ACCESS, "several spaces"),
    ("auth-lowercase", "bearer " + ACCESS, "lowercase scheme"),
    ("auth-uppercase", "BEARER " + ACCESS, "uppercase scheme"),
    ("auth-two-words", "Bearer " + ACCESS + " extra", "'Bearer a b'"),
    ("auth-leading-space", "  Bearer " + ACCESS, "leading whitespace (Go trims it)"),
    ("auth-comma-list", "Bearer " + ACCESS + ", Bearer at-other", "two credentials in one header"),
]:
    bearer(label, why, value)
case("auth-two-headers", "two Authorization headers", headers=[("Authorization", "Bearer at-first"), ("Authorization", "Bearer " + ACCESS)])
case("auth-nbsp-byte", "issue 8.3: a lone 0xA0 byte after Bearer (latin-1 NBSP, as WSGI and Node decode headers)",
     headers=[("Authorization", "Bearer\u00a0" + ACCESS)], latin1=True)
case("auth-nel-byte", "a lone 0x85 byte (NEL once latin-1 decoded: whitespace to Python)",
     headers=[("Authorization", "Bearer\u0085" + ACCESS)], latin1=True)
bearer("auth-obs-fold", "obsolete line folding: the value continues on the next line", "Bearer\r\n " + ACCESS)
bearer("auth-nbsp-jwt", "issue 8.3 with a JWT", "Bearer\u00a0" + T, jwt=[T])

# ---------------------------------------------------------------- custom headers
case("hdr-x-auth-token", "custom header", headers=[("X-Auth-Token", ACCESS)])
case("hdr-x-auth-token-twice", "custom header repeated", headers=[("X-Auth-Token", "at-first"), ("X-Auth-Token", ACCESS)])
case("hdr-x-session-id-list", "comma-joined values", headers=[("X-Session-Id", "sess-a, sess-revoked")])
case("hdr-lowercase-name", "lowercase header name", headers=[("x-auth-token", ACCESS)])
case("hdr-underscore-name", "underscore header name (WSGI maps _ and - alike)", headers=[("X_Auth_Token", ACCESS)])
case("hdr-padded-value", "whitespace around the value", headers=[("X-Auth-Token", "   " + ACCESS + "  ")])

# ---------------------------------------------------------------- cookies
R = REVOKED
RC = "__Host-refresh_app"


def ck(name, why, *cookie_headers, jwt=()):
    case(name, why, headers=[("Cookie", v) for v in cookie_headers], jwt=jwt)


ck("cookie-plain", "baseline", f"{RC}={R}; session=s-1; token=t-1; JSESSIONID=j-1")
ck("cookie-quoted", "quoted value", f'{RC}="{R}"')
ck("cookie-backslash-escape", "issue 8.2: backslash escape inside quotes", f'session="a\\"b"; {RC}="rt-\\revoked-1"')
ck("cookie-octal-escape", "issue 8.2: octal escape (\\054 is ',')", f'{RC}="\\162t-revoked-1"; session="a\\054b"')
ck("cookie-comma-separator", "issue 8.2: comma-separated pairs", f"session=s-1, {RC}={R}")
ck("cookie-space-separator", "issue 8.2: space-separated pairs", f"session=s-1 {RC}={R}")
ck("cookie-no-space", "';' without a space", f"session=s-1;{RC}={R};token=t-1")
ck("cookie-duplicate", "same name twice", f"{RC}=rt-first; {RC}={R}")
ck("cookie-two-headers", "two Cookie headers", "session=s-1", f"{RC}={R}")
ck("cookie-two-headers-dup", "same name in two Cookie headers", f"{RC}=rt-first", f"{RC}={R}")
ck("cookie-space-before-eq", "space before '='", f"{RC} ={R}; token =t-1")
ck("cookie-space-around-eq", "spaces around '='", f"{RC} = {R}")
ck("cookie-percent-encoded", "percent-encoded value", f"{RC}=%72t-revoked-1; session=a%2Fb%3D")
ck("cookie-express-j-json", "Express j: JSON cookie, as res.cookie() writes it", "session=" + "j%3A%7B%22refreshToken%22%3A%22" + R + "%22%7D")
ck("cookie-express-j-json-raw", "Express j: JSON cookie, unencoded", 'session=j:{"refreshToken":"' + R + '"}')
ck("cookie-express-j-json-string", "j: JSON string value", "token=j%3A%22" + R + "%22")
ck("cookie-express-signed", "s: signed-cookie prefix (cookie-parser without secret keeps it)", f"token=s%3A{R}.c2ln")
ck("cookie-base64-value", "base64-looking value with '=' padding", "token=cnQtcmV2b2tlZC0x; session=c2Vzcy0x==")
ck("cookie-semicolon-in-quotes", "';' inside a quoted value", f'session="x;{RC}={R}"')
ck("cookie-dollar-attrs", "RFC 2109 $Version/$Path attributes", f'$Version=1; JSESSIONID="j-1"; $Path="/"; {RC}={R}')
ck("cookie-empty-name", "pair with empty name first", f"={R}; token=t-1")
ck("cookie-no-eq", "a pair without '='", f"{R}; token=t-1")
ck("cookie-nbsp-value", "U+00A0 around a value", f"{RC}=\u00a0{R}\u00a0")
ck("cookie-dquote-inside", "'\"' inside an unquoted value", f'token=a"b; {RC}={R}')
ck("cookie-jwt-padded", "padded JWT signature in the refresh cookie", f"{RC}={join(h, p, pad(s))}", jwt=[join(h, p, pad(s))])
ck("cookie-jwt-quoted", "quoted JWT", f'{RC}="{T}"', jwt=[T])

# ---------------------------------------------------------------- query
for label, q, why in [
    ("query-plain", f"access_token={ACCESS}&refresh_token={R}", "baseline"),
    ("query-duplicate", f"access_token=at-first&access_token={ACCESS}&refresh_token=rt-first&refresh_token={R}", "repeated names"),
    ("query-percent-value", "access_token=%61t-revoked-1&refresh_token=%72t-revoked-1", "percent-encoded values"),
    ("query-percent-name", f"access%5Ftoken={ACCESS}&refresh%5ftoken={R}", "percent-encoded names"),
    ("query-plus-space", "access_token=at+revoked+1", "'+' for space"),
    ("query-semicolon", f"x=1;access_token={ACCESS};refresh_token={R}", "';' separators"),
    ("query-semicolon-amp", f"x=1;y=2&access_token={ACCESS}", "';' in an earlier pair"),
    ("query-bad-percent", f"x=%zz&access_token={ACCESS}", "malformed escape in another pair"),
    ("query-bad-percent-value", "access_token=at-%zzrevoked", "malformed escape in the value"),
    ("query-bare-name", "access_token&refresh_token=", "names without values"),
    ("query-brackets", f"access_token[]={ACCESS}&refresh_token[x]={R}", "qs-style brackets"),
    ("query-nul", "access_token=%00at-revoked-1", "NUL in the value"),
    ("query-double-encoded", "access_token=%2561t", "double percent-encoding"),
]:
    case(label, why, target="/api?" + q)
case("query-absolute-form", "absolute-form request target", target=f"http://{HOST}/api?access_token={ACCESS}")
case("query-hash", "'#' in the target: a fragment to some parsers, query data to others",
     target=f"/api?x=1#&access_token={ACCESS}")

# ---------------------------------------------------------------- urlencoded forms
FORM = "application/x-www-form-urlencoded"


def form(name, why, body, ctype=FORM, extra=(), target="/token"):
    hs = ([("Content-Type", ctype)] if ctype else []) + list(extra)
    case(name, why, method="POST", target=target, headers=hs, body=body)


form("form-plain", "baseline", f"grant_type=refresh_token&refresh_token={R}&access_token={ACCESS}".encode())
form("form-refreshToken", "camelCase field", f"refreshToken={R}".encode())
form("form-duplicate", "repeated field", f"refresh_token=rt-first&refresh_token={R}".encode())
form("form-malformed-pairs", "malformed escapes and empty pairs around the field", f"a=%zz&&=x&refresh_token={R}&b=%".encode())
form("form-semicolon", "';' separators", f"x=1;refresh_token={R}".encode())
form("form-percent-name", "percent-encoded name", f"refresh%5Ftoken={R}".encode())
form("form-charset-param", "charset parameter on the type", f"refresh_token={R}".encode(), ctype=FORM + "; charset=UTF-8")
form("form-no-content-type", "urlencoded body without a Content-Type", f"refresh_token={R}".encode(), ctype=None)
form("form-as-text-plain", "urlencoded body sent as text/plain", f"refresh_token={R}".encode(), ctype="text/plain")
form("form-brackets", "qs-style brackets in the body", f"refresh_token[]={R}&refreshToken[a]=rt-nested".encode())
form("form-gzip", "gzip-encoded urlencoded body", gzip.compress(f"refresh_token={R}".encode(), mtime=0),
     extra=[("Content-Encoding", "gzip")])

# ---------------------------------------------------------------- multipart
BND = "XyZzy-boundary"


def mp(fields, boundary=BND):
    out = b""
    for hdrs, value in fields:
        out += f"--{boundary}\r\n".encode()
        for k, v in hdrs:
            # a value of None writes the name alone: a line without a colon
            out += (f"{k}\r\n" if v is None else f"{k}: {v}\r\n").encode()
        out += b"\r\n" + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def fld(name, value, *extra):
    return ([("Content-Disposition", f'form-data; name="{name}"')] + list(extra), value)


MPT = "multipart/form-data; boundary=" + BND
form("multipart-plain", "refresh_token field", mp([fld("refresh_token", R.encode())]), ctype=MPT)
form("multipart-refreshToken", "refreshToken field", mp([fld("refreshToken", R.encode())]), ctype=MPT)
form("multipart-duplicate", "field repeated", mp([fld("refresh_token", b"rt-first"), fld("refresh_token", R.encode())]), ctype=MPT)
form("multipart-file-part", "value sent as a file part",
     mp([([("Content-Disposition", f'form-data; name="refresh_token"; filename="t.txt"'), ("Content-Type", "text/plain")], R.encode())]), ctype=MPT)
form("multipart-quoted-printable", "Content-Transfer-Encoding: quoted-printable part (Go decodes it)",
     mp([fld("refresh_token", b"=72t-revoked-1", ("Content-Transfer-Encoding", "quoted-printable"))]), ctype=MPT)
form("multipart-base64-cte", "Content-Transfer-Encoding: base64 part",
     mp([fld("refresh_token", base64.b64encode(R.encode()), ("Content-Transfer-Encoding", "base64"))]), ctype=MPT)
form("multipart-access-token", "access_token as a multipart field", mp([fld("access_token", ACCESS.encode())]), ctype=MPT)
form("multipart-quoted-boundary", "quoted boundary parameter", mp([fld("refresh_token", R.encode())]),
     ctype=f'multipart/form-data; boundary="{BND}"')
form("multipart-json-body", "issue 13.1: JSON body sent as multipart/form-data with a boundary",
     json.dumps({"refreshToken": R}).encode(), ctype=MPT)
form("multipart-json-no-boundary", "issue 13.1: JSON body sent as multipart/form-data without boundary",
     json.dumps({"refreshToken": R}).encode(), ctype="multipart/form-data")
form("multipart-gzip", "gzip-encoded multipart body", gzip.compress(mp([fld("refresh_token", R.encode())]), mtime=0),
     ctype=MPT, extra=[("Content-Encoding", "gzip")])

# ---------------------------------------------------------------- JSON bodies
J = json.dumps({"refreshToken": R}, separators=(",", ":"))
json_body("json-plain", "baseline", J.encode())
json_body("json-snake", "refresh_token key", json.dumps({"refresh_token": R}).encode())
json_body("json-utf8-bom", "UTF-8 with BOM", b"\xef\xbb\xbf" + J.encode())
for enc, bom, label in [
    ("utf-16-le", b"\xff\xfe", "utf16le"),
    ("utf-16-be", b"\xfe\xff", "utf16be"),
    ("utf-32-le", b"\xff\xfe\x00\x00", "utf32le"),
    ("utf-32-be", b"\x00\x00\xfe\xff", "utf32be"),
]:
    json_body(f"json-{label}-bom", f"{enc} with BOM (issue 8.4 / 13.4)", bom + J.encode(enc))
    json_body(f"json-{label}-nobom", f"{enc} without BOM (issue 8.4 / 13.4)", J.encode(enc))
json_body("json-utf16le-charset", "UTF-16LE announced by charset, no BOM", J.encode("utf-16-le"),
          ctype="application/json; charset=utf-16le")
json_body("json-utf32le-charset", "UTF-32LE announced by charset, no BOM", J.encode("utf-32-le"),
          ctype="application/json; charset=utf-32le")
json_body("json-chunked", "chunked transfer coding", f"{len(J):x}\r\n{J}\r\n0\r\n\r\n".encode(),
          extra=[("Transfer-Encoding", "chunked")])
json_body("json-duplicate-key", "duplicate keys: parsers keep the last", ('{"refreshToken":"rt-first","refreshToken":"' + R + '"}').encode())
json_body("json-both-keys", "refreshToken and refresh_token", ('{"refresh_token":"rt-snake","refreshToken":"' + R + '"}').encode())
json_body("json-nested", "key nested in an object", json.dumps({"data": {"refreshToken": R}}).encode())
json_body("json-array", "object inside a top-level array", json.dumps([{"refreshToken": R}]).encode())
json_body("json-long-s", "issue 8.4: refreſh_token with U+017F (Go folds ſ to s)", ('{"refre\u017fh_token":"' + R + '"}').encode())
json_body("json-kelvin", "issue 8.4: refresh_to\u212Aen with KELVIN SIGN (Go folds it to k)", ('{"refresh_to\u212aen":"' + R + '"}').encode())
json_body("json-long-s-escaped", "U+017F written as a \\u escape in the key", ('{"refre\\u017fhToken":"' + R + '"}').encode())
json_body("json-key-case", "key in another case (Go's struct binding folds case)", ('{"REFRESHTOKEN":"' + R + '"}').encode())
json_body("json-escaped-key", "key with \\u escapes", ('{"\\u0072efreshToken":"' + R + '"}').encode())
json_body("json-nan", "NaN elsewhere in the object (Python accepts it)", ('{"refreshToken":"' + R + '","n":NaN}').encode())
json_body("json-infinity", "Infinity elsewhere (Python accepts it)", ('{"refreshToken":"' + R + '","n":-Infinity}').encode())
json_body("json-comment", "a comment (JSON5-style parsers only)", ('{"refreshToken":"' + R + '" /* c */}').encode())
json_body("json-trailing-garbage", "garbage after the object (a stream decoder stops before it)", (J + " trailing").encode())
json_body("json-two-objects", "two concatenated objects", (J + '{"refreshToken":"rt-second"}').encode())
json_body("json-number-value", "non-string value", b'{"refreshToken":12345}')
json_body("json-invalid-utf8", "invalid UTF-8 byte inside the value", b'{"refreshToken":"rt-revoked-1\xff"}')
json_body("json-lone-surrogate", "lone surrogate escape inside the value", b'{"refreshToken":"rt-revoked-1\\ud800"}')
json_body("json-text-plain", "JSON sent as text/plain", J.encode(), ctype="text/plain")
json_body("json-no-content-type", "JSON without a Content-Type", J.encode(), ctype=None)
json_body("json-vendor-type", "application/vnd.api+json", J.encode(), ctype="application/vnd.api+json")
json_body("json-form-type", "JSON sent as a urlencoded form", J.encode(), ctype=FORM)
json_body("json-gzip", "gzip Content-Encoding (body-parser inflates, Werkzeug and Go do not)", gzip.compress(J.encode(), mtime=0),
          extra=[("Content-Encoding", "gzip")])
json_body("json-deflate", "deflate Content-Encoding (issue 13.4)", zlib.compress(J.encode()), extra=[("Content-Encoding", "deflate")])
json_body("json-gzip-uppercase", "Content-Encoding: GZIP", gzip.compress(J.encode(), mtime=0), extra=[("Content-Encoding", "GZIP")])
json_body("json-deflate-raw", "deflate without the zlib wrapper", zlib.compress(J.encode())[2:-4], extra=[("Content-Encoding", "deflate")])
PAD = b" " * (90 * 1024)  # over the guard's default 64 KiB inspect_body_limit, under body-parser's 100 KB
json_body("json-large-padded", "90 KiB of whitespace before the member: over the guard's default inspect_body_limit (64 KiB), "
          "under body-parser's default limit (100 KB)", b"{" + PAD + J.encode()[1:])
json_body("json-gzip-inflates-large", "issue 8.4: a small gzip body inflating to 90 KiB (> 4x its size, > 64 KiB) that body-parser "
          "still reads", gzip.compress(b"{" + PAD + J.encode()[1:], mtime=0), extra=[("Content-Encoding", "gzip")])
json_body("json-get-body", "GET with a JSON body", J.encode(), method="GET")

# ---------------------------------------------------------------- mixed
case("mixed-everywhere", "one credential in every place at once", method="POST",
     target=f"/api?access_token=at-q&refresh_token=rt-q",
     headers=[("Authorization", "Bearer at-h"), ("Cookie", f"{RC}=rt-c; session=s-c"), ("X-Auth-Token", "at-x"),
              ("Content-Type", FORM)],
     body=b"refresh_token=rt-f&access_token=at-f")


# ---------------------------------------------------------------- framework families (issue 17)
# Credentials long enough that a guard matching values by hash, whatever
# their name, treats them as candidates.
AT2 = "at-revoked-2-0123456789abcdef"
RT2 = "rt-revoked-2-0123456789abcdef"
PHPSID = "k3v9q2m8x7c4b1n6z5a0s2d4f6g8h0j1"  # PHP's default session id alphabet and length
JSID = "A1B2C3D4E5F60718293A4B5C6D7E8F90"  # a servlet session id (32 hex)
T8 = sign(claims(8))

# parameter names are percent-decoded (Express, PHP, Rack, servlets, Go)
case("query-percent-name-letter", "issue 17: a letter of the name percent-encoded (access_%74oken)",
     target=f"/api?access_%74oken={AT2}&refresh_%74oken={RT2}")
form("form-percent-name-letter", "issue 17: a letter of the name percent-encoded in a urlencoded body",
     f"refresh_%74oken={RT2}&access_%74oken={AT2}".encode())
# PHP's name mangling: '.', ' ' and an unmatched '[' become '_'; a NUL ends the name
for label, name, why in [
    ("dot", "access.token", "'.' in the name (PHP reads access_token)"),
    ("space", "access+token", "'+' (a space) in the name (PHP reads access_token)"),
    ("space-encoded", "access%20token", "an encoded space in the name (PHP reads access_token)"),
    ("bracket", "access[token", "an unmatched '[' in the name (PHP reads access_token)"),
    ("nul", "access_token%00x", "a NUL in the name (PHP ends the name there)"),
]:
    case(f"query-php-name-{label}", "issue 17: " + why, target=f"/api?{name}={AT2}")
    form(f"form-php-name-{label}", "issue 17, urlencoded body: " + why.replace("access_token", "refresh_token"), f"{name.replace('access', 'refresh')}={RT2}".encode())
for label, name, why in [
    ("dot", "refresh.token", "'.' in a multipart field name (PHP reads refresh_token)"),
    ("space", "refresh token", "a space in a multipart field name (PHP reads refresh_token)"),
    ("bracket", "refresh[token", "an unmatched '[' in a multipart field name (PHP reads refresh_token)"),
]:
    form(f"multipart-php-name-{label}", "issue 17: " + why, mp([fld(name, RT2.encode())]), ctype=MPT)
form("multipart-php-name-nul", "issue 17: a NUL byte inside a multipart field name",
     mp([([("Content-Disposition", 'form-data; name="refresh_token\x00x"')], RT2.encode())]), ctype=MPT)
# multipart part headers that Go's reader refuses or reads otherwise
for label, disp, why in [
    ("param-case", 'form-data; NAME="refresh_token"', "parameter name in upper case"),
    ("type-case", 'FORM-DATA; name="refresh_token"', "disposition type in upper case"),
    ("unquoted", "form-data; name=refresh_token", "unquoted name"),
    ("no-space", 'form-data;name="refresh_token"', "no space after ';'"),
    ("ext-value", "form-data; name*=UTF-8''refresh_token", "RFC 5987 name*= (extended value)"),
    ("two-names", 'form-data; name="x"; name="refresh_token"', "name given twice"),
    ("single-quotes", "form-data; name='refresh_token'", "name in single quotes"),
]:
    form(f"multipart-disposition-{label}", "issue 17: Content-Disposition with " + why,
         mp([([("Content-Disposition", disp)], RT2.encode())]), ctype=MPT)
form("multipart-header-no-colon", "issue 17: a part-header line without a colon before Content-Disposition",
     mp([([("X-Junk-Line-Without-Colon", None), ("Content-Disposition", 'form-data; name="refresh_token"')], RT2.encode())]),
     ctype=MPT)
form("multipart-lf-only", "part delimiters and headers ending in LF only",
     (f"--{BND}\nContent-Disposition: form-data; name=\"refresh_token\"\n\n{RT2}\n--{BND}--\n").encode(), ctype=MPT)
form("multipart-boundary-case", "boundary parameter name in upper case",
     mp([fld("refresh_token", RT2.encode())]), ctype="multipart/form-data; BOUNDARY=" + BND)
form("multipart-content-type-case", "media type in upper case",
     mp([fld("refresh_token", RT2.encode())]), ctype="MULTIPART/FORM-DATA; boundary=" + BND)
form("multipart-preamble", "text before the first boundary",
     b"preamble text\r\n" + mp([fld("refresh_token", RT2.encode())]), ctype=MPT)
form("multipart-no-final-boundary", "the closing boundary is missing",
     mp([fld("refresh_token", RT2.encode())])[: -len(f"--{BND}--\r\n")], ctype=MPT)
form("multipart-unterminated-tail", "no closing boundary, 20 bytes after the token: Mojolicious holds back the "
     "tail it takes for a boundary, and hands the app exactly the token",
     mp([fld("refresh_token", RT2.encode() + b"z" * 20)])[: -len(f"--{BND}--\r\n")], ctype=MPT)
# values some frameworks trim: Tornado strips whitespace and turns control characters into spaces
case("query-padded-value", "spaces around a query value (Tornado strips them)", target=f"/api?access_token=%20{AT2}%20")
case("query-control-chars", "a control character before a query value (Tornado makes it a space, then strips it)",
     target=f"/api?access_token=%01{AT2}")
form("form-padded-value", "'+' (spaces) around a form value (Tornado strips them)", f"refresh_token=+{RT2}+".encode())
form("multipart-padded-value", "spaces around a multipart value", mp([fld("refresh_token", b" " + RT2.encode() + b" ")]), ctype=MPT)
# servlet path parameters: the session id in the path
case("path-jsessionid", "issue 17: ;jsessionid= path parameter (servlet URL session tracking)",
     target=f"/api;jsessionid={JSID}")
case("path-jsessionid-mid", "issue 17: ;jsessionid= on an inner segment", target=f"/app;jsessionid={JSID}/api")
case("path-jsessionid-upper", "issue 17: ;JSESSIONID= in upper case", target=f"/api;JSESSIONID={JSID}")
case("path-jsessionid-with-query", "issue 17: ;jsessionid= then a query", target=f"/api;jsessionid={JSID}?x=1")
case("path-jsessionid-and-cookie", "issue 17: a path session id beside a cookie one",
     target=f"/api;jsessionid={JSID}", headers=[("Cookie", "JSESSIONID=B0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF")])
case("path-matrix-access-token", "a matrix variable carrying a token (Spring @MatrixVariable)",
     target=f"/api;access_token={AT2}")
case("path-jsessionid-encoded", "issue 17: ;jsessionid= with its name percent-encoded", target=f"/api;%6asessionid={JSID}")
# session ids a framework's session layer reads
case("cookie-phpsessid", "PHP's session cookie (session_start reads it)", headers=[("Cookie", f"PHPSESSID={PHPSID}")])
case("cookie-jsessionid-long", "a servlet session cookie", headers=[("Cookie", f"JSESSIONID={JSID}")])
case("cookie-jsessionid-quoted", "a quoted servlet session cookie", headers=[("Cookie", f'JSESSIONID="{JSID}"')])
case("cookie-jsessionid-dollar-version", "RFC 2109 cookie with $Version before the session id",
     headers=[("Cookie", f'$Version="1"; JSESSIONID="{JSID}"; $Path="/"')])
# PHP mangles cookie names too; some frameworks percent-decode them
ck("cookie-php-name-dot", "issue 17: '.' in the cookie name (PHP reads __Host-refresh_app)", f"__Host-refresh.app={RT2}")
ck("cookie-php-name-space", "issue 17: a space in the cookie name (PHP reads __Host-refresh_app)", f"__Host-refresh app={RT2}")
ck("cookie-php-name-bracket", "issue 17: an unmatched '[' in the cookie name", f"__Host-refresh[app={RT2}")
ck("cookie-percent-name", "a percent-encoded cookie name", f"__Host-refresh%5Fapp={RT2}; %74oken={AT2}")
ck("cookie-percent-value-long", "a percent-encoded cookie value", f"token=%61t-revoked-2-0123456789abcdef")
ck("cookie-quoted-long", "a quoted cookie value with a space inside", f'token="{AT2} x"')
ck("cookie-duplicate-long", "the same cookie twice, the revoked one last", f"token=at-first-0123456789abcdef; token={AT2}")
# Authorization beyond Bearer
for label, value, why in [
    ("auth-basic-password", "Basic " + base64.b64encode(f"x-access-token:{AT2}".encode()).decode(), "a token as the Basic password"),
    ("auth-basic-user", "Basic " + base64.b64encode(f"{AT2}:".encode()).decode(), "a token as the Basic user, empty password"),
    ("auth-basic-jwt", "Basic " + base64.b64encode(f"jwt:{T8}".encode()).decode(), "a JWT as the Basic password"),
    ("auth-basic-lowercase", "basic " + base64.b64encode(f"x:{AT2}".encode()).decode(), "lowercase basic scheme"),
    ("auth-rails-token", f'Token token="{AT2}"', "Rails' Token scheme (authenticate_with_http_token)"),
    ("auth-rails-token-options", f'Token token="{AT2}", nonce="n"', "Rails' Token scheme with options"),
    ("auth-bearer-quoted", f'Bearer "{AT2}"', "a quoted bearer token"),
    ("auth-bearer-jwt-long", "Bearer " + T8, "a JWT bearer token"),
]:
    bearer(label, "issue 17: " + why, value, jwt=[T8] if "jwt" in label else ())
case("auth-x-http-authorization", "X-HTTP_AUTHORIZATION header (Rails' request.authorization reads it)",
     headers=[("X-Http-Authorization", "Bearer " + AT2)])
# JSON members below the top level
json_body("json-nested-long", "a refresh token nested in an object", json.dumps({"data": {"refreshToken": RT2}}).encode())
json_body("json-array-member", "a refresh token in an array member", json.dumps({"refreshToken": [RT2]}).encode())


def main():
    out = {
        "comment": "Differential corpus for the guard: raw requests; expected.json holds what real framework parsers "
                   "extract from each. Generated by make_corpus.py; see README.md.",
        "hs256_secret": SECRET,
        "cases": CASES,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=True)
        f.write("\n")
    print(f"corpus.json: {len(CASES)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
