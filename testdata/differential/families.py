#!/usr/bin/python3
"""Runs the PHP, Ruby, Perl and Java framework families over corpus.json.

Each family is a real server of that language started on loopback with a
small app (php/, ruby/, perl/, java/) that reads what the framework hands an
app and answers it as JSON: {"<parser>": {"<slot>": [...]}}. This driver
writes each case's exact request bytes over a socket to it, so the
framework's own HTTP parsing is part of the result, and prints, as gen.py
does: {"results": {"<case>": {"<parser>": {"<slot>": [...]}}}, "versions": {...}}.

usage: families.py corpus.json JAVA_CLASSES_DIR
(generate.sh compiles java/ into JAVA_CLASSES_DIR first.)
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def java_cp(classes, *jars):
    return ":".join([classes] + [os.path.join("/usr/share/java", j) for j in jars])


TOMCAT_JARS = ("tomcat10-catalina.jar", "tomcat10-coyote.jar", "tomcat10-servlet-api.jar", "tomcat10-util.jar",
               "tomcat10-util-scan.jar", "tomcat10-api.jar", "tomcat10-juli.jar", "tomcat10-jni.jar",
               "tomcat10-jaspic-api.jar", "tomcat10-annotations-api.jar")
JETTY_JARS = ("jetty9-server.jar", "jetty9-http.jar", "jetty9-io.jar", "jetty9-util.jar", "jetty9-servlet.jar",
              "jetty9-security.jar", "servlet-api.jar", "spring3-web.jar", "spring3-core.jar", "spring3-beans.jar",
              "commons-logging.jar")


def families(classes, tmp):
    """Each family: the parsers its app reports, how to start it on a port,
    and the Debian packages whose versions it records."""
    return [
        {
            "name": "php",
            "parsers": ["php-builtin", "php-symfony"],
            "cmd": ["php", "-S", "127.0.0.1:{port}", "-d", "display_errors=0", "-d", "log_errors=0",
                    "-d", "session.save_path=" + tmp, "-d", "session.use_strict_mode=0",
                    os.path.join(HERE, "php", "router.php")],
            "packages": ["php8.2-cli", "php-symfony-http-foundation"],
        },
        {
            "name": "ruby",
            "parsers": ["ruby-rack", "ruby-rails"],
            "cmd": ["ruby", os.path.join(HERE, "ruby", "server.rb"), "{port}"],
            "packages": ["ruby", "ruby-rack", "puma", "ruby-rails", "ruby-actionpack"],
        },
        {
            "name": "perl",
            "parsers": ["perl-plack", "perl-mojolicious"],
            "cmd": ["perl", os.path.join(HERE, "perl", "server.pl"), "{port}", "{port2}"],
            "packages": ["perl", "libplack-perl", "libhttp-entity-parser-perl", "libcookie-baker-perl", "libmojolicious-perl"],
            "ports": 2,
        },
        {
            "name": "tomcat",
            "parsers": ["java-tomcat10"],
            "cmd": ["java", "-cp", java_cp(os.path.join(classes, "tomcat"), *TOMCAT_JARS), "TomcatParsers", "{port}", tmp],
            "packages": ["libtomcat10-java", "default-jdk-headless"],
        },
        {
            "name": "jetty",
            "parsers": ["java-jetty9", "java-spring-web"],
            "cmd": ["java", "-cp", java_cp(os.path.join(classes, "jetty"), *JETTY_JARS), "JettyParsers", "{port}", tmp],
            "packages": ["libjetty9-java", "libspring-web-java"],
        },
    ]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, name):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"families.py: {name} server exited ({proc.returncode}) before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"families.py: {name} server did not listen on {port}")


def wire(req):
    head = f"{req['method']} {req['target']} HTTP/1.1\r\n"
    for k, v in req["headers"]:
        head += f"{k}: {v}\r\n"
    enc = "latin-1" if req.get("header_bytes") == "latin1" else "utf-8"
    return head.encode(enc) + b"\r\n" + base64.b64decode(req["body_b64"])


def dechunk(body):
    out = b""
    while True:
        size, sep, rest = body.partition(b"\r\n")
        if not sep:
            return None
        n = int(size.split(b";")[0], 16)
        if n == 0:
            return out
        if len(rest) < n + 2:
            return None
        out += rest[:n]
        body = rest[n + 2:]


def send(port, data):
    """Writes the raw request, reads one response; returns (answer, status)."""
    buf = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(data)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                head, sep, body = buf.partition(b"\r\n\r\n")
                if not sep:
                    continue
                lines = [l.partition(b":") for l in head.split(b"\r\n")[1:]]
                fields = {k.strip().lower(): v.strip() for k, _, v in lines}
                if b"content-length" in fields and len(body) >= int(fields[b"content-length"]):
                    break
                if fields.get(b"transfer-encoding", b"").lower() == b"chunked" and dechunk(body) is not None:
                    break
    except socket.timeout:
        return None, "timeout"
    except OSError as e:
        if not buf:
            return None, f"connection: {e}"
    head, _, body = buf.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    if " 200 " not in status:
        return None, status or "connection closed"
    lines = [l.partition(b":") for l in head.split(b"\r\n")[1:]]
    fields = {k.strip().lower(): v.strip() for k, _, v in lines}
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = dechunk(body)
    elif b"content-length" in fields:
        body = body[: int(fields[b"content-length"])]
    return json.loads(body), status


def deb_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True)
    return r.stdout.strip() or "missing"


def main():
    corpus = json.load(open(sys.argv[1], encoding="utf-8"))
    classes = sys.argv[2]
    results = {c["name"]: {} for c in corpus["cases"]}
    versions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fam in families(classes, tmp):
            port, port2 = free_port(), free_port()
            cmd = [a.format(port=port, port2=port2) for a in fam["cmd"]]
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=open(os.path.join(tmp, fam["name"] + ".log"), "wb"), cwd=tmp,
                                    start_new_session=True)
            try:
                ports = [port] if fam.get("ports", 1) == 1 else [port, port2]
                for p in ports:
                    wait_port(p, proc, fam["name"])
                for c in corpus["cases"]:
                    data = wire(c["request"])
                    per = results[c["name"]]
                    for i, p in enumerate(ports):
                        got, status = send(p, data)
                        names = fam["parsers"] if len(ports) == 1 else [fam["parsers"][i]]
                        if got is None:
                            for n in names:
                                per[n] = {"_rejected": [status]}
                        else:
                            per.update(got)
                    if proc.poll() is not None:
                        sys.exit(f"families.py: {fam['name']} server died on case {c['name']}")
            finally:
                # The server's own process group: Perl's forked child too.
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            for pkg in fam["packages"]:
                versions[pkg] = deb_version(pkg)
    json.dump({"results": results, "versions": versions}, sys.stdout, sort_keys=True, ensure_ascii=True)


if __name__ == "__main__":
    main()
