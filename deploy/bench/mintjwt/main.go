// Command mintjwt prints an HS256 JWT for the proxy benchmark: the secret
// from $BENCH_JWT_SECRET, the issuer and audience from flags, valid for a
// day.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func main() {
	iss := flag.String("iss", "bench", "issuer")
	aud := flag.String("aud", "bench", "audience")
	flag.Parse()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(os.Getenv("BENCH_JWT_SECRET"))}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: *iss, Audience: jwt.Audience{*aud}, Subject: "bench",
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(24 * time.Hour))}).Serialize()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(tok)
}
