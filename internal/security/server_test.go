package security

import (
	"testing"

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
