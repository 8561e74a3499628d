package security

import (
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flowlog/internal/testutil"
)

// An account's flow log of output type file writes only inside the
// account's directory of the server's file directory: a path out of it is
// refused, and a directory named like another account's is the account's
// own. Its files hold only its records.
func TestFileOutputIntoOtherDirectories(t *testing.T) {
	port := testutil.FreeUDPPort(t)
	root := t.TempDir()
	s := startServer(t, fmt.Sprintf("FLOWLOG_NETFLOW_LISTEN=127.0.0.1:%d", port), "FLOWLOG_FILE_DIR="+root)
	boot := bootstrapClient(s)
	a, idA := newAccount(t, s)
	_, idB := newAccount(t, s)
	tenancyGrant(t, boot, idA, "exporter_addr", "127.0.0.0/24")
	gw := tenancyMust(t, a, 201, "POST", "/v1/gateways", tenancyExporter("127.0.0.2"))["id"].(string)
	flowLog := func(dir string) map[string]any {
		return map[string]any{"name": "files", "output_type": "file", "file": map[string]any{"output_dir": dir},
			"targets": []map[string]any{{"gateway_id": gw}}}
	}
	for _, dir := range []string{"../" + idB, "/tmp", "x/../../" + idB + "/y"} {
		tenancyRefused(t, a, 400, "InvalidParameter.output_dir", "must be a relative path inside the server's file directory",
			"POST", "/v1/flow-logs", flowLog(dir))
	}
	id := tenancyMust(t, a, 201, "POST", "/v1/flow-logs", flowLog(idB))["id"].(string)
	waitFor(t, "the file flow log available", 10*time.Second, func() bool {
		return tenancyMust(t, a, 200, "GET", "/v1/flow-logs/"+id, nil)["state"] == "available"
	})
	tenancySend(t, port, "127.0.0.2", 1000)
	handed := fmt.Sprintf(`flowlog_flow_log_records_total{flow_log="%s",output="file"}`, id)
	waitFor(t, "the records handed to the files", 10*time.Second, func() bool { return s.Metrics()[handed] == 3 })
	s.Stop() // publishes the files

	var files []string
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if len(files) != 1 || !strings.HasPrefix(files[0], filepath.Join(root, idA, idB, "AWSLogs", "aws-account-id="+idA)+string(filepath.Separator)) {
		t.Fatalf("files %v; want one in %s's directory", files, idA)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(gz)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "version account-id ") {
		t.Fatalf("file holds:\n%s", b)
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "2 "+idA+" ") {
			t.Errorf("record of another account: %s", l)
		}
	}
}
