<?php
// The PHP family's app for families.py, run by PHP's built-in server
// (php -S): every request is answered with what plain PHP
// ($_GET, $_POST, $_COOKIE, $_SERVER, session_start) and Symfony's
// HttpFoundation Request hand an app, as JSON slots (see README.md).

require_once '/usr/share/php/Symfony/Component/HttpFoundation/autoload.php';

use Symfony\Component\HttpFoundation\Request;

const COOKIES = ['__Host-refresh_app', 'JSESSIONID', 'session', 'token'];
const HEADERS = ['X-Auth-Token', 'X-Session-Id'];
const QUERY = ['access_token', 'refresh_token'];
const FORM = ['access_token', 'refresh_token', 'refreshToken'];
const JSON_KEYS = ['refreshToken', 'refresh_token'];

function add(array &$out, string $slot, $v): void
{
    if ($v === null) {
        return;
    }
    // A value whose bytes are not UTF-8 text is no credential: informational,
    // given as its latin-1 reading.
    if (!mb_check_encoding($v, 'UTF-8')) {
        $out['_not_utf8:' . $slot][] = mb_convert_encoding($v, 'UTF-8', 'ISO-8859-1');
        return;
    }
    $out[$slot][] = $v;
}

// put records a value as a slot carries it: a string as-is, a number or a
// boolean as JSON text, a list of scalars (name[]=a&name[]=b) as its values;
// anything else is no credential and goes to "_nested:<slot>".
function put(array &$out, string $slot, $v): void
{
    if (is_string($v)) {
        add($out, $slot, $v);
    } elseif (is_int($v) || is_float($v) || is_bool($v)) {
        add($out, $slot, json_encode($v));
    } elseif (is_array($v) && array_is_list($v) && count(array_filter($v, 'is_string')) === count($v)) {
        foreach ($v as $x) {
            add($out, $slot, $x);
        }
    } elseif ($v !== null) {
        add($out, '_nested:' . $slot, json_encode($v, JSON_INVALID_UTF8_SUBSTITUTE));
    }
}

// The usual PHP idiom for a bearer token.
function bearer_regex(?string $h): ?string
{
    if ($h !== null && preg_match('/Bearer\s(\S+)/', $h, $m)) {
        return $m[1];
    }
    return null;
}

// put_json records a JSON member as gen.py does: arrays are no credential.
function put_json(array &$out, string $slot, $v): void
{
    if (is_array($v)) {
        add($out, '_nested:' . $slot, json_encode($v, JSON_INVALID_UTF8_SUBSTITUTE));
    } else {
        put($out, $slot, $v);
    }
}

function json_slots(array &$out, string $body): void
{
    $data = json_decode($body, true);
    if (is_array($data) && !array_is_list($data)) {
        foreach (JSON_KEYS as $k) {
            if (array_key_exists($k, $data)) {
                put_json($out, 'json:' . $k, $data[$k]);
            }
        }
    }
}

function plain_php(): array
{
    $out = [];
    add($out, 'bearer', bearer_regex($_SERVER['HTTP_AUTHORIZATION'] ?? null));
    add($out, 'basic:user', $_SERVER['PHP_AUTH_USER'] ?? null);
    add($out, 'basic:password', $_SERVER['PHP_AUTH_PW'] ?? null);
    foreach (COOKIES as $n) {
        if (array_key_exists($n, $_COOKIE)) {
            put($out, 'cookie:' . $n, $_COOKIE[$n]);
        }
    }
    foreach (HEADERS as $n) {
        add($out, 'header:' . $n, $_SERVER['HTTP_' . strtoupper(str_replace('-', '_', $n))] ?? null);
    }
    foreach (QUERY as $n) {
        if (array_key_exists($n, $_GET)) {
            put($out, 'query:' . $n, $_GET[$n]);
        }
    }
    foreach (FORM as $n) {
        if (array_key_exists($n, $_POST)) {
            put($out, 'form:' . $n, $_POST[$n]);
        }
    }
    json_slots($out, file_get_contents('php://input'));
    // The session id session_start() takes from the PHPSESSID cookie; a
    // new id it generates itself is no credential of the request.
    $sent = $_COOKIE[session_name()] ?? null;
    if (@session_start() && is_string($sent) && session_id() === $sent) {
        add($out, 'session:' . session_name(), session_id());
    }
    return $out;
}

function symfony(): array
{
    $r = Request::createFromGlobals();
    $out = [];
    foreach ($r->headers->all('authorization') as $a) {
        // Symfony Security's HeaderAccessTokenExtractor (6.2+) pattern.
        if (preg_match('/^Bearer ([a-zA-Z0-9\-_\+~\/\.]+=*)$/', $a, $m)) {
            add($out, 'bearer', $m[1]);
        }
    }
    add($out, 'basic:user', $r->getUser());
    add($out, 'basic:password', $r->getPassword());
    foreach (COOKIES as $n) {
        if ($r->cookies->has($n)) {
            put($out, 'cookie:' . $n, $r->cookies->all()[$n]);
        }
    }
    foreach (HEADERS as $n) {
        foreach ($r->headers->all(strtolower($n)) as $v) {
            add($out, 'header:' . $n, $v);
        }
    }
    foreach (QUERY as $n) {
        if ($r->query->has($n)) {
            put($out, 'query:' . $n, $r->query->all()[$n]);
        }
    }
    foreach (FORM as $n) {
        if ($r->request->has($n)) {
            put($out, 'form:' . $n, $r->request->all()[$n]);
        }
    }
    try {
        $data = $r->toArray();
        foreach (JSON_KEYS as $k) {
            if (array_key_exists($k, $data)) {
                put_json($out, 'json:' . $k, $data[$k]);
            }
        }
    } catch (\Throwable $e) {
        // not a JSON object: nothing to extract
    }
    return $out;
}

$result = [];
foreach (['php-builtin' => 'plain_php', 'php-symfony' => 'symfony'] as $name => $f) {
    try {
        $result[$name] = (object) $f();
    } catch (\Throwable $e) {
        $result[$name] = ['_error' => [get_class($e) . ': ' . $e->getMessage()]];
    }
}
header('Content-Type: application/json');
echo json_encode($result, JSON_INVALID_UTF8_SUBSTITUTE | JSON_UNESCAPED_SLASHES);
