package control

import (
	"crypto/rand"
)

const (
	lowerAlnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	secretSet  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	hexDigits  = "0123456789abcdef"
)

// randomString returns n characters drawn uniformly from set, from the
// system's cryptographic random source.
func randomString(set string, n int) string {
	out := make([]byte, n)
	buf := make([]byte, 1)
	// Rejection sampling keeps the distribution uniform.
	limit := 256 - 256%len(set)
	for i := 0; i < n; {
		if _, err := rand.Read(buf); err != nil {
			panic("crypto/rand failed: " + err.Error())
		}
		if int(buf[0]) < limit {
			out[i] = set[int(buf[0])%len(set)]
			i++
		}
	}
	return string(out)
}

// Resource id prefixes.
const (
	prefixFlowLog    = "fl-"
	prefixGateway    = "gw-"
	prefixAttachment = "att-"
	prefixLogGroup   = "lg-"
	prefixLogStream  = "ls-"
	prefixGrant      = "gr-"
)

func newID(prefix string) string { return prefix + randomString(lowerAlnum, 20) }

// NewAccountID returns a new account id: 32 hex digits, the shape of a
// Huawei project id.
func NewAccountID() string { return randomString(hexDigits, 32) }

// NewAccessKey returns a new access key id (20 characters) and secret (40).
func NewAccessKey() (id, secret string) {
	return randomString(upperAlnum, 20), randomString(secretSet, 40)
}
