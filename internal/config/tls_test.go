package config

import (
	"strings"
	"testing"

	"flowlog/internal/testutil"
)

func TestTLSSettings(t *testing.T) {
	cert, key, _ := testutil.SelfSignedCert(t)
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
