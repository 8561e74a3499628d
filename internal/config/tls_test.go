package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePair writes a self-signed certificate and its key as PEM files.
func writePair(t *testing.T) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}

func TestTLSSettings(t *testing.T) {
	cert, key := writePair(t)
	env := map[string]string{"FLOWLOG_TLS_CERT": cert, "FLOWLOG_TLS_KEY": key}
	cfg, err := LoadServe("", func(k string) string { return env[k] }, Serve{})
	if err != nil {
		t.Fatal(err)
	}
	if tc, err := cfg.TLS(); err != nil || tc == nil || len(tc.Certificates) != 1 {
		t.Fatalf("TLS from env: %v %v", tc, err)
	}
	noEnv := func(string) string { return "" }
	if tc, err := (&Serve{}).TLS(); tc != nil || err != nil {
		t.Fatalf("no TLS settings must mean plain HTTP: %v %v", tc, err)
	}
	if _, err := LoadServe(writeFile(t, "tls_cert: "+cert+"\n"), noEnv, Serve{}); err == nil ||
		!strings.Contains(err.Error(), "give both files or neither") {
		t.Fatalf("cert without key: %v", err)
	}
	for _, c := range []struct {
		cfg  Serve
		want string
	}{
		{Serve{TLSCert: "/nonexistent.pem", TLSKey: key}, "tls_cert: open /nonexistent.pem: no such file"},
		{Serve{TLSCert: cert, TLSKey: "/nonexistent.pem"}, "tls_key: open /nonexistent.pem: no such file"},
		{Serve{TLSCert: key, TLSKey: cert}, "tls_cert " + key},
	} {
		if _, err := c.cfg.TLS(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.cfg, err, c.want)
		}
	}
}
