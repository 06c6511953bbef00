# The Ruby family's app for families.py: one Puma server on loopback
# (usage: ruby server.rb PORT) whose Rack app answers each request with
# what Rack 2 (Rack::Request, Rack::Auth) and Rails' ActionDispatch and
# ActionController::HttpAuthentication hand an app, as JSON slots (see
# README.md).

require "json"
require "stringio"
require "puma"
require "puma/server"
require "rack"
require "action_dispatch"
require "action_controller"

COOKIES = %w[__Host-refresh_app JSESSIONID session token].freeze
HEADERS = %w[X-Auth-Token X-Session-Id].freeze
QUERY = %w[access_token refresh_token].freeze
FORM = %w[access_token refresh_token refreshToken].freeze
JSON_KEYS = %w[refreshToken refresh_token].freeze

# text gives a value as a UTF-8 string: its bytes when they are valid
# UTF-8 (the bytes the guard compares), else read as latin-1.
def text(s)
  s = s.to_s.dup.force_encoding(Encoding::UTF_8)
  s.valid_encoding? ? s : s.force_encoding(Encoding::ISO_8859_1).encode(Encoding::UTF_8)
end

# add records a value; one whose bytes are not UTF-8 text is no credential
# and goes to the informational "_not_utf8:<slot>".
def add(out, slot, v)
  return if v.nil?
  utf8 = v.to_s.dup.force_encoding(Encoding::UTF_8).valid_encoding?
  (out[utf8 ? slot : "_not_utf8:#{slot}"] ||= []) << text(v)
end

# put records a value as a slot carries it: a string as-is, a number or a
# boolean as JSON text, an array of strings (name[]=a) as its values; an
# uploaded file as its file name under "_file:<slot>"; a hash or anything
# else goes to "_nested:<slot>" (no credential).
def put(out, slot, v)
  # An uploaded file part: its name, not its (per-run) Tempfile object.
  if v.respond_to?(:original_filename) || (v.is_a?(Hash) && v.key?(:tempfile))
    name = v.respond_to?(:original_filename) ? v.original_filename : v[:filename]
    return add(out, "_file:#{slot}", name)
  end
  case v
  when String then add(out, slot, v)
  when Numeric, true, false then add(out, slot, v.to_json)
  when Array
    if v.all?(String)
      v.each { |x| add(out, slot, x) }
    else
      add(out, "_nested:#{slot}", JSON.generate(v))
    end
  when nil then nil
  else add(out, "_nested:#{slot}", JSON.generate(v))
  end
end

def basic(out, user, password)
  add(out, "basic:user", user)
  add(out, "basic:password", password)
end

# put_json records a JSON member as gen.py does: arrays are no credential.
def put_json(out, slot, v)
  v.is_a?(Array) ? add(out, "_nested:#{slot}", JSON.generate(v)) : put(out, slot, v)
end

def json_slots(out, data)
  return unless data.is_a?(Hash)
  JSON_KEYS.each { |k| put_json(out, "json:#{k}", data[k]) if data.key?(k) }
end

def rack_view(env)
  req = Rack::Request.new(env)
  out = {}
  auth = Rack::Auth::AbstractRequest.new(env)
  if auth.provided?
    add(out, "bearer", auth.params) if auth.scheme == "bearer"
    b = Rack::Auth::Basic::Request.new(env)
    basic(out, *b.credentials) if b.basic? && b.credentials
  end
  cookies = req.cookies
  COOKIES.each { |n| put(out, "cookie:#{n}", cookies[n]) if cookies.key?(n) }
  HEADERS.each { |n| add(out, "header:#{n}", env["HTTP_#{n.upcase.tr('-', '_')}"]) }
  get = begin
    req.GET
  rescue StandardError => e
    add(out, "_error", "GET: #{e.class}")
    {}
  end
  QUERY.each { |n| put(out, "query:#{n}", get[n]) if get.key?(n) }
  post = begin
    req.POST
  rescue StandardError => e
    add(out, "_error", "POST: #{e.class}")
    {}
  end
  FORM.each { |n| put(out, "form:#{n}", post[n]) if post.key?(n) }
  env["rack.input"].rewind
  begin
    json_slots(out, JSON.parse(env["rack.input"].read))
  rescue JSON::ParserError, EncodingError
    nil
  end
  out
end

def rails_view(env)
  req = ActionDispatch::Request.new(env)
  out = {}
  if (token, _opts = ActionController::HttpAuthentication::Token.token_and_options(req))
    add(out, "bearer", token)
  end
  if ActionController::HttpAuthentication::Basic.has_basic_credentials?(req)
    basic(out, *ActionController::HttpAuthentication::Basic.user_name_and_password(req))
  end
  cookies = req.cookies
  COOKIES.each { |n| put(out, "cookie:#{n}", cookies[n]) if cookies.key?(n) }
  HEADERS.each { |n| add(out, "header:#{n}", req.headers[n]) }
  begin
    q = req.query_parameters
    QUERY.each { |n| put(out, "query:#{n}", q[n]) if q.key?(n) }
  rescue StandardError => e
    add(out, "_error", "query_parameters: #{e.class}")
  end
  begin
    # request_parameters: urlencoded and multipart forms, and JSON bodies
    # (ActionDispatch's JSON parameter parser).
    p = req.request_parameters
    json = req.media_type.to_s.include?("json")
    if json
      json_slots(out, p)
    else
      FORM.each { |n| put(out, "form:#{n}", p[n]) if p.key?(n) }
    end
  rescue StandardError => e
    add(out, "_error", "request_parameters: #{e.class}")
  end
  out
end

app = lambda do |env|
  body = env["rack.input"].read
  result = {}
  { "ruby-rack" => :rack_view, "ruby-rails" => :rails_view }.each do |name, view|
    e = env.merge("rack.input" => StringIO.new(body))
    result[name] = begin
      send(view, e)
    rescue StandardError => ex
      { "_error" => ["#{ex.class}: #{text(ex.message)}"] }
    end
  end
  json = JSON.generate(result)
  [200, { "Content-Type" => "application/json", "Content-Length" => json.bytesize.to_s }, [json]]
end

server = Puma::Server.new(app, Puma::Events.strings, min_threads: 1, max_threads: 1)
server.add_tcp_listener("127.0.0.1", Integer(ARGV.fetch(0)))
server.run.join
