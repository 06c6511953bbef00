package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// The admin client of caddy revocation's commands: where the admin API
// is (--address, the admin address of --config, $CADDY_ADMIN or Caddy's
// default), one call to it, and how its answer and errors are read.

// adminFlags adds the flags that find the admin endpoint, as caddy stop
// and caddy reload have them.
func adminFlags(cmd *cobra.Command) {
	cmd.Flags().String("address", "", "Admin API address (default: the admin address of --config, else $CADDY_ADMIN, else localhost:2019)")
	cmd.Flags().StringP("config", "c", "", "Configuration file to read the admin address from")
	cmd.Flags().StringP("adapter", "a", "", "Name of the config adapter for --config")
	cmd.Flags().Duration("timeout", 5*time.Second, "How long to wait for the admin API")
}

// adminJSON makes one admin call that must answer 200 with JSON: with
// --json it writes the answer as it came (printed is true), else it
// decodes it into out.
func adminJSON(fl caddycmd.Flags, op, method, path string, body []byte, out any) (printed bool, err error) {
	status, resp, err := adminCall(fl, method, path, body)
	if err != nil {
		return false, err
	}
	if status != http.StatusOK {
		return false, fmt.Errorf("%s: HTTP %d: %s", op, status, adminMessage(resp))
	}
	if fl.Bool("json") {
		_, err := os.Stdout.Write(resp)
		return true, err
	}
	if err := json.Unmarshal(resp, out); err != nil {
		return false, fmt.Errorf("decode answer: %w", err)
	}
	return false, nil
}

// exitCode is a command's exit code for its error.
func exitCode(err error) int {
	if err != nil {
		return 1
	}
	return 0
}

// adminCall sends one request to the admin API, found as the other caddy
// commands find it, and returns the status and body whatever the status.
func adminCall(fl caddycmd.Flags, method, path string, body []byte) (int, []byte, error) {
	addr, err := adminAddress(fl.String("address"), fl.String("config"), fl.String("adapter"))
	if err != nil {
		return 0, nil, fmt.Errorf("find the admin address: %w", err)
	}
	timeout := fl.Duration("timeout")
	if timeout <= 0 {
		return 0, nil, fmt.Errorf("--timeout %s: want a positive duration", timeout)
	}
	return adminRequest(addr, method, path, body, timeout)
}

// adminAddress finds the admin endpoint as the other caddy commands do
// (--address, else the admin address of --config, else $CADDY_ADMIN,
// else localhost:2019), with two differences: --address may be written
// as a URL (http://localhost:2019), and --config is adapted without
// Caddy's log lines about it, which would bury the command's own output
// (and a probe's) under JSON.
func adminAddress(address, configFile, adapterName string) (string, error) {
	if address != "" {
		if rest, ok := strings.CutPrefix(address, "http://"); ok {
			return strings.TrimSuffix(rest, "/"), nil
		}
		if strings.HasPrefix(address, "https://") {
			return "", fmt.Errorf("--address %s: the admin API speaks plain HTTP; give host:port or http://host:port", address)
		}
		return address, nil
	}
	if configFile != "" {
		listen, err := configAdminListen(configFile, adapterName)
		if err != nil {
			return "", err
		}
		if listen != "" {
			return listen, nil
		}
	}
	return caddy.DefaultAdminListen, nil // $CADDY_ADMIN, else localhost:2019
}

// configAdminListen reads admin.listen from a config file, adapting it
// as caddy run would (a file named Caddyfile*, *.caddyfile, or --adapter)
// and dropping the adapter's warnings.
func configAdminListen(configFile, adapterName string) (string, error) {
	data, err := os.ReadFile(configFile)
	if err != nil {
		return "", fmt.Errorf("reading config file: %w", err)
	}
	base := strings.ToLower(filepath.Base(configFile))
	if adapterName == "" && (strings.HasPrefix(base, "caddyfile") || filepath.Ext(base) == ".caddyfile") {
		adapterName = "caddyfile"
	}
	if adapterName != "" {
		adapter := caddyconfig.GetAdapter(adapterName)
		if adapter == nil {
			return "", fmt.Errorf("unrecognized config adapter: %s", adapterName)
		}
		data, _, err = adapter.Adapt(data, map[string]any{"filename": configFile})
		if err != nil {
			return "", fmt.Errorf("adapting config using %s: %w", adapterName, err)
		}
	}
	var cfg struct {
		Admin caddy.AdminConfig `json:"admin"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("reading the admin address from %s: %w", configFile, err)
	}
	return cfg.Admin.Listen, nil
}

// adminRequest is caddycmd.AdminAPIRequest without its turning every
// status of 400 and above into an error: a 503 from /revocation/ready
// carries the reasons this command prints.
func adminRequest(adminAddr, method, path string, body []byte, timeout time.Duration) (int, []byte, error) {
	addr, err := caddy.ParseNetworkAddress(adminAddr)
	if err != nil || addr.PortRangeSize() > 1 {
		return 0, nil, fmt.Errorf("invalid admin address %s: %v", adminAddr, err)
	}
	origin := "http://" + addr.JoinHostPort(0)
	dialAddr := addr.JoinHostPort(0)
	if addr.IsUnixNetwork() {
		// A bogus host keeps net/http happy; a socket has none. Strip the
		// optional permission bits ("path|0660") from the socket path.
		origin = "http://127.0.0.1"
		dialAddr, _, _ = strings.Cut(addr.Host, "|")
	} else if addr.IsFdNetwork() {
		return 0, nil, fmt.Errorf("admin address %s: a file descriptor cannot be dialed; give --address", adminAddr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, origin+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if !addr.IsUnixNetwork() {
		req.Header.Set("Origin", origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, addr.Network, dialAddr)
		},
	}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("admin API at %s: %w", adminAddr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("admin API at %s: read answer: %w", adminAddr, err)
	}
	return resp.StatusCode, data, nil
}

// adminMessage extracts the error of an admin API answer.
func adminMessage(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}
