// Command demo-token mints an HS256 access or refresh token for trying
// caddy-revocation by hand, or what an identity provider would send to
// its receivers: a back-channel logout token (-kind logout) or a Shared
// Signals SET (-kind set, a CAEP session-revoked event). It signs with the
// demo secret of Caddyfile.example unless told otherwise. It is a demo
// tool, not an identity provider.
//
//	go run ./cmd/demo-token -sub alice -sid laptop
//	go run ./cmd/demo-token -kind logout -iss https://idp.example -aud web-app -sid laptop
package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// demoSecret matches the default hmac_secret of Caddyfile.example.
const demoSecret = "demo-secret-change-me-0123456789abcdef"

func main() {
	secret := flag.String("secret", envOr("JWT_SECRET", demoSecret), "HMAC secret (default: $JWT_SECRET, else the demo secret)")
	sub := flag.String("sub", "alice", "subject (sub)")
	sid := flag.String("sid", "session-1", "session id (sid); empty for none")
	jti := flag.String("jti", "", "token id (jti); random when empty")
	ttl := flag.Duration("ttl", 15*time.Minute, "lifetime (exp - iat)")
	iss := flag.String("iss", "", "issuer (iss); none when empty")
	aud := flag.String("aud", "", "audience (aud); none when empty")
	// No default is shown for -auth-age: auth_time is added only when the
	// flag is given (0 means now).
	authAge := flag.Duration("auth-age", 0, "when given, add auth_time this long before now (0: now)")
	azp := flag.String("azp", "", "authorized party (azp), the client the token was issued to; none when empty")
	kind := flag.String("kind", "access", "access (an access or refresh token), logout (a back-channel logout token) or set (a CAEP session-revoked SET)")
	flag.Parse()
	authAgeGiven := false
	flag.Visit(func(f *flag.Flag) { authAgeGiven = authAgeGiven || f.Name == "auth-age" })

	if *jti == "" {
		b := make([]byte, 12)
		if _, err := rand.Read(b); err != nil {
			fmt.Fprintln(os.Stderr, "demo-token:", err)
			os.Exit(1)
		}
		*jti = hex.EncodeToString(b)
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": *sub, "jti": *jti, "iat": now.Unix(), "exp": now.Add(*ttl).Unix()}
	if *sid != "" {
		claims["sid"] = *sid
	}
	if *iss != "" {
		claims["iss"] = *iss
	}
	if *aud != "" {
		claims["aud"] = *aud
	}
	if authAgeGiven {
		claims["auth_time"] = now.Add(-*authAge).Unix()
	}
	if *azp != "" {
		claims["azp"] = *azp
	}
	typ := "JWT"
	switch *kind {
	case "access":
	case "logout":
		typ = "logout+jwt"
		claims["exp"] = now.Add(2 * time.Minute).Unix()
		claims["events"] = map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}
		if *sub == "" {
			delete(claims, "sub")
		}
	case "set":
		typ = "secevent+jwt"
		delete(claims, "exp")
		delete(claims, "sub")
		delete(claims, "sid")
		subject := map[string]any{"format": "iss_sub", "iss": *iss, "sub": *sub}
		if *sid != "" {
			subject = map[string]any{"format": "complex", "user": subject, "session": map[string]any{"format": "opaque", "id": *sid}}
		}
		claims["events"] = map[string]any{"https://schemas.openid.net/secevent/caep/event-type/session-revoked": map[string]any{
			"subject": subject, "event_timestamp": now.Unix(),
		}}
	default:
		fmt.Fprintf(os.Stderr, "demo-token: -kind %q: want access, logout or set\n", *kind)
		os.Exit(2)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["typ"] = typ
	tok, err := t.SignedString([]byte(*secret))
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-token:", err)
		os.Exit(1)
	}
	fmt.Println(tok)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
