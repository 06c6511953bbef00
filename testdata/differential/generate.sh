#!/bin/sh
# Regenerates the differential corpus and what real framework parsers
# extract from it: corpus.json (make_corpus.py), then expected.json and
# versions.json from the generators:
#   gen.py             Werkzeug, Django, PyJWT (python)
#   gen_pyfamilies.py  Starlette, FastAPI, aiohttp, Tornado (python-families)
#   gen.mjs            Express, cookie, jose (node)
#   goparsers/         net/http, gin, golang-jwt, go-jose (go)
#   families.py        PHP (php -S, Symfony HttpFoundation), Rack and Rails
#                      on Puma, Plack and Mojolicious, Tomcat 10, Jetty 9
#                      with Spring 4 (debian: the packages' versions)
# Run as root, it installs the Debian packages it needs (apt-get) and the
# node packages of package-lock.json (npm ci); it needs node with npm and go.
# Deterministic: running it twice gives the same files. PYTHON overrides
# /usr/bin/python3.
set -eu
cd "$(dirname "$0")"

DEBS="python3-werkzeug python3-jwt python3-django
python3-starlette python3-fastapi python3-uvicorn python3-multipart python3-aiohttp python3-tornado
php-cli php-mbstring php-symfony-http-foundation
ruby-rack puma ruby-rails
libplack-perl libhttp-entity-parser-perl libcookie-baker-perl libmojolicious-perl
default-jdk-headless libtomcat10-java libjetty9-java libservlet-api-java libspring-web-java libcommons-logging-java"

missing=""
for p in $DEBS; do
	dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "generate.sh: Debian packages missing:$missing (run as root to install them, or apt-get install them)" >&2
		exit 1
	fi
	echo "generate.sh: installing$missing" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2
fi

PY=${PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || { echo "generate.sh: $PY not found (the Debian python with python3-werkzeug is required)" >&2; exit 1; }
command -v node >/dev/null || { echo "generate.sh: node not found (Node.js 18+ is required)" >&2; exit 1; }
command -v npm >/dev/null || { echo "generate.sh: npm not found" >&2; exit 1; }
command -v go >/dev/null || { echo "generate.sh: go not found" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The Java families: one servlet source for both servlet APIs.
J=/usr/share/java
mkdir -p "$tmp/src/tomcat" "$tmp/src/jetty" "$tmp/java/tomcat" "$tmp/java/jetty"
sed 's/@SERVLET@/jakarta.servlet/g' java/ParsersServlet.java.in >"$tmp/src/tomcat/ParsersServlet.java"
sed 's/@SERVLET@/javax.servlet/g' java/ParsersServlet.java.in >"$tmp/src/jetty/ParsersServlet.java"
javac -nowarn -d "$tmp/java/tomcat" \
	-cp "$J/tomcat10-catalina.jar:$J/tomcat10-servlet-api.jar:$J/tomcat10-coyote.jar:$J/tomcat10-util.jar:$J/tomcat10-juli.jar:$J/tomcat10-api.jar" \
	"$tmp/src/tomcat/ParsersServlet.java" java/TomcatParsers.java 2>&1 | grep -v '^Note:' >&2 || true
javac -nowarn -d "$tmp/java/jetty" \
	-cp "$J/jetty9-server.jar:$J/jetty9-servlet.jar:$J/jetty9-util.jar:$J/jetty9-http.jar:$J/jetty9-io.jar:$J/jetty9-security.jar:$J/servlet-api.jar:$J/spring3-web.jar:$J/spring3-core.jar" \
	"$tmp/src/jetty/ParsersServlet.java" java/JettyParsers.java 2>&1 | grep -v '^Note:' >&2 || true
[ -f "$tmp/java/tomcat/TomcatParsers.class" ] && [ -f "$tmp/java/jetty/JettyParsers.class" ] ||
	{ echo "generate.sh: javac failed" >&2; exit 1; }

"$PY" make_corpus.py
[ -d node_modules ] || npm ci --no-audit --no-fund >&2
"$PY" gen.py corpus.json >"$tmp/python.json"
"$PY" gen_pyfamilies.py corpus.json >"$tmp/pyfamilies.json"
node gen.mjs corpus.json >"$tmp/node.json"
(cd goparsers && go run . ../corpus.json) >"$tmp/go.json"
"$PY" families.py corpus.json "$tmp/java" >"$tmp/families.json"
"$PY" merge.py corpus.json python="$tmp/python.json" python-families="$tmp/pyfamilies.json" \
	node="$tmp/node.json" go="$tmp/go.json" debian="$tmp/families.json"
