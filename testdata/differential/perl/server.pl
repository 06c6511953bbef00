#!/usr/bin/perl
# The Perl family's apps for families.py (usage: perl server.pl PORT1 PORT2):
# a PSGI app under Plack's own server (HTTP::Server::PSGI) on PORT1 reading
# Plack::Request, and a Mojolicious::Lite app under Mojo::Server::Daemon on
# PORT2. Each answers a request with what it hands an app, as JSON slots
# (see README.md). Plack's server runs in a child process of the same
# process group.
use strict;
use warnings;
use Encode ();
use JSON::PP ();
use MIME::Base64 ();

my @COOKIES   = qw(__Host-refresh_app JSESSIONID session token);
my @HEADERS   = qw(X-Auth-Token X-Session-Id);
my @QUERY     = qw(access_token refresh_token);
my @FORM      = qw(access_token refresh_token refreshToken);
my @JSON_KEYS = qw(refreshToken refresh_token);

my ($port1, $port2) = @ARGV;
die "usage: server.pl PORT1 PORT2\n" unless $port1 && $port2;

# text gives a byte string as characters: read as UTF-8 when it is valid
# UTF-8 (the bytes the guard compares), else as latin-1.
sub text {
    my ($s) = @_;
    return undef unless defined $s;
    return $s if utf8::is_utf8($s);
    my $copy = $s;
    my $d = eval { Encode::decode('UTF-8', $copy, Encode::FB_CROAK) };
    return defined $d ? $d : Encode::decode('ISO-8859-1', $s);
}

# add records values; one whose bytes are not UTF-8 text is no credential
# and goes to the informational "_not_utf8:<slot>".
sub add {
    my ($out, $slot, @v) = @_;
    for my $v (grep { defined } @v) {
        my $copy = $v;
        my $ok = utf8::is_utf8($v) || defined eval { Encode::decode('UTF-8', $copy, Encode::FB_CROAK) };
        push @{ $out->{ $ok ? $slot : "_not_utf8:$slot" } }, text($v);
    }
}

sub put {
    my ($out, $slot, $v) = @_;
    return unless defined $v;
    if (!ref $v) {
        # JSON numbers and booleans stay as the JSON text an app may stringify.
        add($out, $slot, $v);
    } elsif (JSON::PP::is_bool($v)) {
        add($out, $slot, $v ? 'true' : 'false');
    } else {
        add($out, "_nested:$slot", JSON::PP->new->canonical->encode($v));
    }
}

sub json_slots {
    my ($out, $data) = @_;
    return unless ref $data eq 'HASH';
    for my $k (@JSON_KEYS) { put($out, "json:$k", $data->{$k}) if exists $data->{$k} }
}

sub basic_slots {
    my ($out, $user, $password) = @_;
    add($out, 'basic:user', $user);
    add($out, 'basic:password', $password);
}

my $pid = fork // die "fork: $!";
if ($pid == 0) {
    require Plack::Request;
    require HTTP::Server::PSGI;
    my $app = sub {
        my $req = Plack::Request->new(shift);
        my $out = {};
        my $auth = $req->header('Authorization');
        if (defined $auth) {
            add($out, 'bearer', $1) if $auth =~ /^Bearer\s+(\S+)\s*$/i;
            # Plack::Middleware::Auth::Basic's reading
            if ($auth =~ /^Basic (.*)$/i) {
                my ($user, $pass) = split /:/, (MIME::Base64::decode_base64($1) || ':'), 2;
                basic_slots($out, $user, defined $pass ? $pass : '');
            }
        }
        my $cookies = $req->cookies;
        for my $n (@COOKIES) { add($out, "cookie:$n", $cookies->{$n}) if exists $cookies->{$n} }
        for my $n (@HEADERS) { add($out, "header:$n", $req->headers->header($n)) }
        for my $n (@QUERY) { add($out, "query:$n", $req->query_parameters->get_all($n)) }
        my $body = eval { $req->body_parameters };
        if ($@) {
            add($out, '_error', 'body_parameters: ' . (split /\n/, $@)[0]);
        } else {
            for my $n (@FORM) { add($out, "form:$n", $body->get_all($n)) }
        }
        my $content = $req->content;
        json_slots($out, eval { JSON::PP::decode_json($content) }) if length $content;
        my $json = JSON::PP->new->canonical->ascii->encode({ 'perl-plack' => $out });
        return [200, ['Content-Type' => 'application/json', 'Content-Length' => length $json], [$json]];
    };
    HTTP::Server::PSGI->new(host => '127.0.0.1', port => $port1, timeout => 20)->run($app);
    exit 0;
}

require Mojolicious::Lite;
require Mojo::Server::Daemon;
my $mojo = Mojolicious->new;
$mojo->log->level('fatal');
$mojo->max_request_size(64 << 20);
$mojo->routes->any('/*rest' => { rest => '' } => sub {
    my $c   = shift;
    my $req = $c->req;
    my $out = {};
    for my $auth (@{ $req->headers->every_header('Authorization') }) {
        add($out, 'bearer', $1) if $auth =~ /^Bearer\s+(\S+)\s*$/i;
    }
    # Mojo::URL's userinfo is filled from a Basic Authorization by to_abs.
    my $userinfo = $req->url->to_abs->userinfo;
    if (defined $userinfo) {
        my ($user, $pass) = split /:/, $userinfo, 2;
        basic_slots($out, $user, defined $pass ? $pass : '');
    }
    for my $n (@COOKIES) { add($out, "cookie:$n", map { $_->value } @{ $req->every_cookie($n) }) }
    for my $n (@HEADERS) { add($out, "header:$n", @{ $req->headers->every_header($n) }) }
    for my $n (@QUERY) { add($out, "query:$n", @{ $req->query_params->every_param($n) }) }
    for my $n (@FORM) { add($out, "form:$n", @{ $req->body_params->every_param($n) }) }
    json_slots($out, $req->json);
    $c->render(json => { 'perl-mojolicious' => $out });
});
my $daemon = Mojo::Server::Daemon->new(app => $mojo, listen => ["http://127.0.0.1:$port2"], silent => 1);
$SIG{TERM} = sub { kill 'TERM', $pid; exit 0 };
$daemon->run;
