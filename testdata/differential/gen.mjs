// Runs the Node parsers over corpus.json and prints their extractions.
//
// Each case's raw request is written over a socket to real Express apps
// listening on loopback, so Node's own HTTP parser, Express and its body
// parsers see exactly the corpus bytes. Output on stdout:
// {"results": {"<case>": {"<parser>": {"<slot>": [...]}}}, "versions": {...}}.
//
// Parsers (see README.md for each slot):
//   node-express4        express 4: cookie-parser (no secret: j: JSON cookies
//                        decoded, s: signed cookies left as-is), req.query (qs),
//                        express.json(), express.urlencoded({extended:true}),
//                        multer().any() for multipart, req.headersDistinct,
//                        bearer as passport-http-bearer splits it
//   node-bearer-regex    the bearer token as /^Bearer\s+(\S+)\s*$/i matches the
//                        latin-1 header string (\s includes U+00A0)
//   node-express5        the same app on express 5 (body-parser 2, simple query)
//   node-json-lenient    express 4 express.json({strict:false, type:()=>true})
//   node-json-parse      JSON.parse(body.toString("utf8")), any Content-Type
//   node-cookie          cookie@0.7 parse(req.headers.cookie)
//   node-cookie1         cookie@1 parse(req.headers.cookie)
//   node-jose-verify     jose jwtVerify(token, secret, {algorithms:["HS256"]})
//   node-jose-decode     jose decodeJwt(token) (no verification)
//   node-jose5-verify    jose 5 jwtVerify, as node-jose-verify (jose 5 decodes
//                        base64 with Node's lenient Buffer decoder)
// Run: node gen.mjs corpus.json

import { readFileSync } from "node:fs";
import net from "node:net";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
let express4, express5, cookieParser, cookie07, cookie1, multer, jose, jose5;
try {
  express4 = require("express");
  express5 = require("express5");
  cookieParser = require("cookie-parser");
  cookie07 = require("cookie");
  cookie1 = require("cookie1");
  multer = require("multer");
  jose = await import("jose");
  jose5 = await import("jose5");
} catch (e) {
  console.error("gen.mjs: node packages missing (run npm ci in testdata/differential): " + e.message);
  process.exit(1);
}

const COOKIES = ["__Host-refresh_app", "JSESSIONID", "session", "token"];
const HEADERS = ["X-Auth-Token", "X-Session-Id"];
const QUERY = ["access_token", "refresh_token"];
const FORM = ["access_token", "refresh_token", "refreshToken"];
const JSON_KEYS = ["refreshToken", "refresh_token"];
const CLAIMS = ["sub", "sid", "jti", "iss"];

function add(out, slot, values) {
  const vs = values.filter((v) => v !== undefined && v !== null);
  if (vs.length) (out[slot] ??= []).push(...vs);
}

// put records a value as a slot carries it: a string as-is, a number or a
// boolean as JSON text (an app may stringify it); null, objects and arrays
// are no credential, and go to the informational "_nested:<slot>" as JSON.
function put(out, slot, v, conv = (x) => x) {
  if (v === undefined) return;
  if (typeof v === "string") add(out, slot, [conv(v)]);
  else if (typeof v === "number" || typeof v === "boolean") add(out, slot, [JSON.stringify(v)]);
  else add(out, "_nested:" + slot, [JSON.stringify(v)]);
}

// putAll is put for a query or form value, where an array is the
// parameter's repeated values.
function putAll(out, slot, v) {
  for (const x of Array.isArray(v) ? v : [v]) put(out, slot, x);
}

// utf8 gives a header-derived string (Node decodes header bytes as latin-1)
// as those bytes read as UTF-8, when they are valid UTF-8: the slot then
// carries the same bytes a Go guard compares against.
function utf8(s) {
  if (typeof s !== "string" || /[^\x00-\xff]/.test(s)) return s;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(s, "latin1"));
  } catch {
    return s;
  }
}

// bearer is passport-http-bearer's reading of an Authorization header.
function bearer(h) {
  if (typeof h !== "string") return undefined;
  const parts = h.split(" ");
  if (parts.length === 2 && /^Bearer$/i.test(parts[0])) return parts[1];
  return undefined;
}

// bearerRegex is the other common Express idiom.
function bearerRegex(h) {
  const m = typeof h === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  return m ? m[1] : undefined;
}

function cookieSlots(out, cookies) {
  for (const n of COOKIES) {
    if (!cookies || !Object.prototype.hasOwnProperty.call(cookies, n)) continue;
    const v = cookies[n];
    put(out, "cookie:" + n, v, utf8);
    if (v && typeof v === "object") {
      for (const k of JSON_KEYS) if (k in v) put(out, `cookie:${n}/json:${k}`, v[k]);
    }
  }
}

function jsonSlots(out, body) {
  if (!body || typeof body !== "object" || Array.isArray(body)) return;
  for (const k of JSON_KEYS) if (Object.prototype.hasOwnProperty.call(body, k)) put(out, "json:" + k, body[k]);
}

// guard ignores a parser's error (a body it cannot parse), so the next parsers still run.
function guard(mw) {
  return (req, res, next) =>
    mw(req, res, () => next());
}

function fullApp(express, name) {
  const app = express();
  app.use(guard(cookieParser()));
  app.use(guard(express.json()));
  app.use(guard(express.urlencoded({ extended: true })));
  app.use(guard(multer().any()));
  app.use((req, res) => {
    const out = {};
    for (const a of req.headersDistinct.authorization ?? []) add(out, "bearer", [utf8(bearer(a))]);
    cookieSlots(out, req.cookies);
    for (const h of HEADERS) add(out, "header:" + h, (req.headersDistinct[h.toLowerCase()] ?? []).map(utf8));
    for (const q of QUERY) putAll(out, "query:" + q, req.query?.[q]);
    const ctype = req.headers["content-type"] ?? "";
    const isForm = /urlencoded|multipart/i.test(ctype);
    if (req.body && typeof req.body === "object" && isForm) {
      for (const f of FORM) putAll(out, "form:" + f, req.body[f]);
    } else {
      jsonSlots(out, req.body);
    }
    res.json({ [name]: out });
  });
  return app;
}

function lenientApp() {
  const app = express4();
  app.use(guard(express4.json({ strict: false, type: () => true })));
  app.use((req, res) => {
    const lenient = {};
    jsonSlots(lenient, req.body);
    res.json({ "node-json-lenient": lenient });
  });
  return app;
}

function rawApp() {
  const app = express4();
  app.use((req, res, next) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      req.body = Buffer.concat(chunks);
      next();
    });
  });
  app.use((req, res) => {
    const out = {};
    const plain = {};
    if (Buffer.isBuffer(req.body) && req.body.length) {
      try {
        jsonSlots(plain, JSON.parse(req.body.toString("utf8")));
      } catch {
        // not JSON: nothing to extract
      }
    }
    out["node-json-parse"] = plain;
    const rx = {};
    for (const a of req.headersDistinct.authorization ?? []) add(rx, "bearer", [utf8(bearerRegex(a))]);
    out["node-bearer-regex"] = rx;
    const c07 = {};
    const c1 = {};
    if (req.headers.cookie !== undefined) {
      cookieSlots(c07, cookie07.parse(req.headers.cookie));
      cookieSlots(c1, cookie1.parse(req.headers.cookie));
    }
    out["node-cookie"] = c07;
    out["node-cookie1"] = c1;
    res.json(out);
  });
  return app;
}

function listen(app) {
  return new Promise((resolve) => {
    const srv = app.listen(0, "127.0.0.1", () => resolve(srv));
  });
}

function wire(req) {
  let head = `${req.method} ${req.target} HTTP/1.1\r\n`;
  for (const [k, v] of req.headers) head += `${k}: ${v}\r\n`;
  const enc = req.header_bytes === "latin1" ? "latin1" : "utf8";
  return Buffer.concat([Buffer.from(head + "\r\n", enc), Buffer.from(req.body_b64, "base64")]);
}

// send writes the raw request and reads one response. The socket is not
// half-closed: Node's server may drop a request whose body it is still
// inflating once the client has ended its side.
function send(port, data) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(r);
    };
    const s = net.connect(port, "127.0.0.1", () => s.write(data));
    s.setTimeout(10000, () => finish({ status: "timeout" }));
    s.on("error", reject);
    s.on("data", (c) => {
      buf = Buffer.concat([buf, c]);
      const i = buf.indexOf("\r\n\r\n");
      if (i < 0) return;
      const head = buf.subarray(0, i).toString("latin1");
      const m = /content-length: *(\d+)/i.exec(head);
      if (!m || buf.length < i + 4 + Number(m[1])) return;
      const status = head.slice(0, head.indexOf("\r\n"));
      const body = buf.subarray(i + 4, i + 4 + Number(m[1])).toString("utf8");
      finish(/ 200 /.test(status) ? { status, body: JSON.parse(body) } : { status });
    });
    s.on("close", () => finish({ status: "connection closed: " + buf.toString("latin1").split("\r\n")[0] }));
  });
}

function strings(per) {
  const out = [];
  for (const slots of Object.values(per))
    for (const [k, vs] of Object.entries(slots)) if (!k.startsWith("_")) for (const v of vs) if (typeof v === "string") out.push(v);
  return out;
}

function pick(c) {
  const o = {};
  for (const k of CLAIMS) if (k in c) o[k] = c[k];
  return o;
}

function uniqSorted(claims) {
  const m = new Map();
  for (const c of claims) m.set(JSON.stringify(c, Object.keys(c).sort()), c);
  return [...m.keys()].sort().map((k) => m.get(k));
}

const corpus = JSON.parse(readFileSync(process.argv[2], "utf8"));
const key = new TextEncoder().encode(corpus.hs256_secret);
const apps = [fullApp(express4, "node-express4"), fullApp(express5, "node-express5"), lenientApp(), rawApp()];
// appParsers names the parsers each app reports, for a request its server refuses.
const appParsers = [
  ["node-express4"],
  ["node-express5"],
  ["node-json-lenient"],
  ["node-json-parse", "node-cookie", "node-cookie1", "node-bearer-regex"],
];
const servers = await Promise.all(apps.map(listen));
const results = {};
for (const c of corpus.cases) {
  const per = {};
  const data = wire(c.request);
  for (const [i, srv] of servers.entries()) {
    const { status, body } = await send(srv.address().port, data);
    if (body) Object.assign(per, body);
    else for (const name of appParsers[i]) per[name] = { _rejected: [status] };
  }
  const cands = [...(c.jwt_tokens ?? []), ...strings(per)];
  const verified = [];
  const verified5 = [];
  const decoded = [];
  for (const t of cands) {
    try {
      verified.push(pick((await jose.jwtVerify(t, key, { algorithms: ["HS256"] })).payload));
    } catch {}
    try {
      verified5.push(pick((await jose5.jwtVerify(t, key, { algorithms: ["HS256"] })).payload));
    } catch {}
    try {
      decoded.push(pick(jose.decodeJwt(t)));
    } catch {}
  }
  per["node-jose-verify"] = verified.length ? { jwt: uniqSorted(verified) } : {};
  per["node-jose5-verify"] = verified5.length ? { jwt: uniqSorted(verified5) } : {};
  per["node-jose-decode"] = decoded.length ? { jwt: uniqSorted(decoded) } : {};
  results[c.name] = per;
}
for (const s of servers) s.close();
const version = (p) => require(p + "/package.json").version;
const versions = {
  node: process.versions.node,
  express4: version("express"),
  express5: version("express5"),
  "cookie-parser": version("cookie-parser"),
  cookie: version("cookie"),
  cookie1: version("cookie1"),
  multer: version("multer"),
  jose: version("jose"),
  jose5: version("jose5"),
};
process.stdout.write(JSON.stringify({ results, versions }));
