package testutil

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"flowlog/internal/client"
)

// Call sends a signed /v1 request and returns the status and the decoded
// JSON object (nil if none), error answers included; it fails the test only
// when the request itself fails.
func Call(t testing.TB, c *client.Client, method, path string, body any) (int, map[string]any) {
	t.Helper()
	resp, err := c.Do(context.Background(), method, path, nil, body, nil)
	var ae *client.APIError
	if err != nil && !errors.As(err, &ae) {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	var m map[string]any
	if len(resp.Body) > 0 {
		if err := json.Unmarshal(resp.Body, &m); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %s", method, path, resp.Body)
		}
	}
	return resp.Status, m
}
