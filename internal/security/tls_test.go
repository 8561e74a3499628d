package security

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3/model"

	"flowlog/internal/api/sdktest"
	"flowlog/internal/client"
	"flowlog/internal/testutil"
)

// tlsSelfSigned writes a self-signed certificate for 127.0.0.1 and
// localhost, and its key, as PEM files; it returns them and a pool trusting
// the certificate.
func tlsSelfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "flowlog test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pool
}

// tlsTransport trusts pool only.
func tlsTransport(pool *x509.CertPool) *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
}

// `flowlog serve --tls-cert --tls-key` serves HTTPS: the native client,
// the CLI and both official SDKs work over it; plain HTTP does not.
func TestTLS(t *testing.T) {
	cert, key, pool := tlsSelfSigned(t)
	s := testutil.NewServer(t)
	s.KeyID, s.Secret = "TESTBOOTSTRAPKEY0001", "test-bootstrap-secret-0123456789abcdefgh"
	s.Account = "0123456789abcdef0123456789abcdef"
	s.Args = []string{"--tls-cert", cert, "--tls-key", key}
	s.URL = "https://" + s.Addr
	s.HTTP = &http.Client{Transport: tlsTransport(pool), Timeout: 5 * time.Second}
	s.Start()

	c := client.New(s.URL, s.KeyID, s.Secret)
	if err := c.TrustCA(cert); err != nil {
		t.Fatal(err)
	}
	er := authNewER(t, c)

	cli := exec.Command(testutil.Binary(t), "gateways", "list", "--server", s.URL, "-o", "id")
	cli.Env = append(os.Environ(), "FLOWLOG_ACCESS_KEY_ID="+s.KeyID, "FLOWLOG_ACCESS_KEY_SECRET="+s.Secret,
		"FLOWLOG_CA_FILE="+cert)
	if out, err := cli.CombinedOutput(); err != nil || !strings.Contains(string(out), er.router) {
		t.Fatalf("CLI over HTTPS: %v\n%s", err, out)
	}

	hw := authHuawei(t, s, tlsTransport(pool))
	if _, err := hw.CreateFlowLog(er.create("tls")); err != nil {
		t.Fatalf("Huawei SDK over HTTPS: %v", err)
	}
	if res, err := hw.ListFlowLogs(&model.ListFlowLogsRequest{ErId: er.router}); err != nil || *res.TotalCount != 1 {
		t.Fatalf("Huawei SDK list over HTTPS: %v %v", res, err)
	}

	al := sdktest.Aliyun(t, s.Addr, s.KeyID, s.Secret)
	al.GetConfig().WithScheme("HTTPS")
	al.SetTransport(tlsTransport(pool))
	if _, err := al.DescribeFlowLogs(smartag.CreateDescribeFlowLogsRequest()); err != nil {
		t.Fatalf("Alibaba SDK over HTTPS: %v", err)
	}

	// A half or broken TLS setting stops serve with a message that names it.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", cert}, "give both files or neither"},
		{[]string{"--tls-cert", cert, "--tls-key", cert + ".missing"}, "tls_key: open " + cert + ".missing"},
	} {
		cmd := exec.Command(testutil.Binary(t), append([]string{"serve", "--listen", "127.0.0.1:0",
			"--data-dir", t.TempDir()}, c.args...)...)
		cmd.Env = []string{"FLOWLOG_NETFLOW_LISTEN=off", "FLOWLOG_SFLOW_LISTEN=off"}
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("serve %v: %v\n%s", c.args, err, out)
		}
	}

	// Plain HTTP to the TLS port is refused, signed or not; so is a client
	// that does not trust the certificate.
	resp, err := http.Get("http://" + s.Addr + "/healthz")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
			t.Fatalf("plain HTTP to the TLS port: %d %s", resp.StatusCode, body)
		}
	}
	if err := client.New("http://"+s.Addr, s.KeyID, s.Secret).JSON(t.Context(), "GET", "/v1/gateways", nil, nil, nil); err == nil {
		t.Fatal("a plain-HTTP client was served by the TLS port")
	}
	if _, err := http.Get(s.URL + "/healthz"); err == nil {
		t.Fatal("a client without the CA accepted the self-signed certificate")
	}
}
