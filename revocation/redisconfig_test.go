package revocation

import (
	"strings"
	"testing"
	"time"
)

// A configuration that can never reach a server is refused before any
// connection is tried, with a message that says what to write instead.
func TestRedisConfigOptionsRejects(t *testing.T) {
	cases := []struct {
		name string
		cfg  RedisConfig
		want string
	}{
		{"no scheme", RedisConfig{URL: "127.0.0.1:6379"}, `write redis://127.0.0.1:6379`},
		{"host name, no scheme", RedisConfig{URL: "localhost:6379"}, `write redis://localhost:6379`},
		{"port out of range", RedisConfig{URL: "redis://127.0.0.1:63790000"}, `port "63790000": want a number from 1 to 65535`},
		{"port zero", RedisConfig{URL: "redis://127.0.0.1:0"}, `port "0"`},
		{"addrs port out of range", RedisConfig{Addrs: []string{"10.0.0.1:70000"}}, `redis: address "10.0.0.1:70000": port "70000"`},
		{"addrs without port", RedisConfig{Addrs: []string{"10.0.0.1"}}, `want host:port (missing port in address)`},
		{"addrs without host", RedisConfig{Addrs: []string{":6379"}}, `no host`},
		{"wrong scheme", RedisConfig{URL: "http://127.0.0.1:6379"}, "scheme must be redis:// or rediss://"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.cfg.Options(time.Second, time.Second)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to say %q", err, c.want)
			}
		})
	}
	t.Run("no scheme, credentials not echoed", func(t *testing.T) {
		_, err := RedisConfig{URL: "user:hunter2@10.0.0.1:6379"}.Options(time.Second, time.Second)
		if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "no scheme") {
			t.Fatalf("error %v: want a no-scheme error without the password", err)
		}
	})
	for _, ok := range []RedisConfig{
		{URL: "redis://127.0.0.1:6379/0"},
		{URL: "rediss://:pw@redis.internal:6380"},
		{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "m"},
		{Addrs: []string{"[::1]:7000"}, Cluster: true},
	} {
		if _, err := ok.Options(time.Second, time.Second); err != nil {
			t.Errorf("%+v: %v", ok.Describe(), err)
		}
	}
}
