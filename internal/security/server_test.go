package security

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"flowlog/internal/client"
	"flowlog/internal/testutil"
)

// startServer starts `flowlog serve` with a known bootstrap key; env adds
// FLOWLOG_* settings.
func startServer(t *testing.T, env ...string) *testutil.Server {
	t.Helper()
	return testutil.StartServer(t, env...)
}

// bootstrapClient signs native /v1 requests with the server's bootstrap key.
func bootstrapClient(s *testutil.Server) *client.Client {
	return client.New(s.URL, s.KeyID, s.Secret)
}

// newAccount makes a new account with the bootstrap key and returns a
// client signing with the new account's key, and the account's id.
func newAccount(t *testing.T, s *testutil.Server) (*client.Client, string) {
	t.Helper()
	var key struct {
		ID      string `json:"access_key_id"`
		Secret  string `json:"access_key_secret"`
		Account string `json:"account_id"`
	}
	if err := bootstrapClient(s).JSON(context.Background(), "POST", "/v1/access-keys", nil,
		map[string]any{"new_account": true}, &key); err != nil {
		t.Fatalf("making an account: %v", err)
	}
	return client.New(s.URL, key.ID, key.Secret), key.Account
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// memory returns the resident and peak resident memory of process pid, in
// bytes.
func memory(t *testing.T, pid int) (rss, peak int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	if rss == 0 {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, peak
}

// aliyunCode asserts err is an Alibaba SDK error with status and code.
func aliyunCode(t *testing.T, err error, status int, code string) {
	t.Helper()
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) || se.HttpStatus() != status || se.ErrorCode() != code {
		t.Fatalf("Alibaba SDK: got %v, want %d %s", err, status, code)
	}
}
