// Command session-app is a small stand-in for a legacy app that keeps
// its sessions in an opaque cookie, as servlet containers, PHP and
// Express do: the app of the legacy walk-through (docs/legacy.md), run
// behind caddy-revocation with cmd/session-app/Caddyfile.
//
//	go run ./cmd/session-app          # listens on 127.0.0.1:$APP_PORT (8081)
//
// POST /login (a form with user=<name>) starts a session and sets the
// JSESSIONID cookie; /logout ends it, clears the cookie and redirects to
// /login; any other path answers 200 for a live session and 401
// otherwise. Session ids are numbered from -seed, so that the
// walk-through prints the same ids, and hash prefixes, on every run; a
// real app draws them at random. It is a demo, not a session library.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:"+envOr("APP_PORT", "8081"), "address to listen on (default: 127.0.0.1:$APP_PORT, else 127.0.0.1:8081)")
	seed := flag.String("seed", "demo", "what session ids are derived from")
	flag.Parse()

	a := &app{seed: *seed, live: map[string]string{}}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("session-app: %v", err)
	}
	log.Printf("session-app: listening on %s", ln.Addr())
	log.Fatal(http.Serve(ln, a))
}

// app is the demo app: its live sessions, by id.
type app struct {
	seed string
	mu   sync.Mutex
	n    int
	live map[string]string // session id -> user
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/login":
		if r.Method != http.MethodPost {
			fmt.Fprintln(w, "log in: POST /login with user=<name>")
			return
		}
		user := strings.TrimSpace(r.FormValue("user"))
		if user == "" {
			http.Error(w, "user is required", http.StatusBadRequest)
			return
		}
		id := a.start(user)
		http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: id, Path: "/", HttpOnly: true})
		fmt.Fprintf(w, "welcome, %s\n", user)
	case "/logout":
		if c, err := r.Cookie("JSESSIONID"); err == nil {
			a.mu.Lock()
			delete(a.live, c.Value)
			a.mu.Unlock()
		}
		http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: "", Path: "/", MaxAge: -1})
		http.Redirect(w, r, "/login", http.StatusFound)
	default:
		user := ""
		if c, err := r.Cookie("JSESSIONID"); err == nil {
			a.mu.Lock()
			user = a.live[c.Value]
			a.mu.Unlock()
		}
		if user == "" {
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s's page %s\n", user, r.URL.Path)
	}
}

// start opens a session and returns its id: 32 hex digits, like a
// servlet container's.
func (a *app) start(user string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	sum := sha256.Sum256(fmt.Appendf(nil, "%s:%d", a.seed, a.n))
	id := strings.ToUpper(hex.EncodeToString(sum[:16]))
	a.live[id] = user
	return id
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
