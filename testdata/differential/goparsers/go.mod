module differential/goparsers

go 1.26.0

require (
	github.com/go-jose/go-jose/v3 v3.0.5
	github.com/go-jose/go-jose/v4 v4.1.9
	github.com/golang-jwt/jwt/v5 v5.3.1
	gopkg.in/square/go-jose.v2 v2.6.0
)

require golang.org/x/crypto v0.19.0 // indirect
