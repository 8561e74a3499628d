package aliyun

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"sort"
	"strings"
)

// percentEncode escapes s the RFC 3986 way signature v1 requires: only
// A–Z a–z 0–9 - _ . ~ stay as they are, and a space becomes %20.
func percentEncode(s string) string {
	// QueryEscape already leaves exactly those unescaped (it escapes * and
	// keeps ~); only its + for a space differs.
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// StringToSign is the text signature v1 signs: the method, the encoded path
// "/" and the encoded canonical query made of every parameter except
// Signature, empty ones included, sorted by key.
func StringToSign(method string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(percentEncode(k))
		b.WriteByte('=')
		b.WriteString(percentEncode(params[k]))
	}
	return method + "&" + percentEncode("/") + "&" + percentEncode(b.String())
}

// Sign returns the base64 HMAC-SHA1 of stringToSign under secret+"&".
func Sign(secret, stringToSign string) string {
	m := hmac.New(sha1.New, []byte(secret+"&"))
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
