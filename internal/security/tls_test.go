package security

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3/model"

	"flowlog/internal/api/sdktest"
	"flowlog/internal/client"
	"flowlog/internal/testutil"
)

// tlsTransport trusts pool only.
func tlsTransport(pool *x509.CertPool) *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
}

// startTLSServer starts `flowlog serve` over HTTPS, with a self-signed
// certificate (returned, with a pool trusting it) and the test key; s.HTTP
// trusts the certificate.
func startTLSServer(t *testing.T) (*testutil.Server, string, *x509.CertPool) {
	t.Helper()
	cert, key, pool := testutil.SelfSignedCert(t)
	s := testutil.NewServer(t)
	s.KeyID, s.Secret = "TESTBOOTSTRAPKEY0001", "test-bootstrap-secret-0123456789abcdefgh"
	s.Account = "0123456789abcdef0123456789abcdef"
	s.Args = []string{"--tls-cert", cert, "--tls-key", key}
	s.URL = "https://" + s.Addr
	s.HTTP = &http.Client{Transport: tlsTransport(pool), Timeout: 5 * time.Second}
	s.Start()
	return s, cert, pool
}

// `flowlog serve --tls-cert --tls-key` serves HTTPS: the native client,
// the CLI and both official SDKs work over it; plain HTTP does not.
func TestTLS(t *testing.T) {
	s, cert, pool := startTLSServer(t)

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
