package testtoken

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestHS256VerifiesWithTheSharedSecret(t *testing.T) {
	at := time.Now().Add(-time.Hour)
	s := HS256(t, Issued(at), jwt.MapClaims{"sid": nil, "extra": "x"})
	var c jwt.MapClaims
	tok, err := jwt.ParseWithClaims(s, &c, func(*jwt.Token) (any, error) { return []byte(Secret), nil }, jwt.WithValidMethods([]string{"HS256"}))
	if err != nil || !tok.Valid {
		t.Fatalf("parse: %v", err)
	}
	if c["sub"] != "alice" || c["extra"] != "x" || c["jti"] == "" {
		t.Fatalf("claims %v", c)
	}
	if _, ok := c["sid"]; ok {
		t.Fatal("a nil change kept the claim")
	}
	if iat, _ := c.GetIssuedAt(); iat.Unix() != at.Unix() {
		t.Fatalf("iat %v, want %v", iat, at)
	}
	if exp, _ := c.GetExpirationTime(); !exp.After(time.Now()) {
		t.Fatalf("a token issued in the past is already expired: %v", exp)
	}
}

func TestUnsignedCarriesTheHeader(t *testing.T) {
	s := Unsigned(t, jwt.MapClaims{"sub": "a"}, map[string]any{"typ": "logout+jwt"})
	tok, _, err := jwt.NewParser().ParseUnverified(s, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header["alg"] != "none" || tok.Header["typ"] != "logout+jwt" {
		t.Fatalf("header %v", tok.Header)
	}
	if a, b := ID(), ID(); a == b {
		t.Fatalf("two IDs are equal: %s", a)
	}
}

func TestMinterDefaultsAndSecret(t *testing.T) {
	m := Minter{Secret: "another-secret-0123456789abcdef", Defaults: func() jwt.MapClaims {
		return jwt.MapClaims{"iss": "idp", "exp": time.Now().Add(time.Hour).Unix()}
	}}
	s := m.Mint(t, jwt.MapClaims{"sub": "bob"})
	var c jwt.MapClaims
	if _, err := jwt.ParseWithClaims(s, &c, func(*jwt.Token) (any, error) { return []byte(m.Secret), nil }); err != nil {
		t.Fatalf("parse with the minter's secret: %v", err)
	}
	if c["iss"] != "idp" || c["sub"] != "bob" || c["sid"] != nil {
		t.Fatalf("claims %v: want the minter's defaults, changed", c)
	}
	if _, err := jwt.Parse(s, func(*jwt.Token) (any, error) { return []byte(Secret), nil }); err == nil {
		t.Fatal("a minter's token verifies with the shared secret")
	}
}
