package api_test

import "testing"

// TestFileOutputAPI: a flow log of output type file through the native
// API, its answers conforming to the OpenAPI document, its settings
// changed one at a time, and errors naming the setting at fault.
func TestFileOutputAPI(t *testing.T) {
	e := newEnv(t)
	fx := e.fixture("files")
	f := e.must(201, "POST", "/v1/flow-logs", map[string]any{"name": "f", "output_type": "file",
		"file": map[string]any{"output_dir": "vpc", "log_format": "${version}  ${srcaddr} ${tcp-flags}"}})
	file, _ := f["file"].(map[string]any)
	if file["output_dir"] != "vpc" || file["log_format"] != "${version} ${srcaddr} ${tcp-flags}" || file["file_format"] != "plain-text" ||
		file["per_hour_partition"] != false {
		t.Errorf("file settings: %v", file)
	}
	upd := e.must(200, "PATCH", "/v1/flow-logs/"+str(f, "id"), map[string]any{"file": map[string]any{"file_format": "parquet"}})
	if file, _ := upd["file"].(map[string]any); file["output_dir"] != "vpc" || file["file_format"] != "parquet" {
		t.Errorf("after a change of file_format: %v", file)
	}
	sls := e.must(200, "PATCH", "/v1/flow-logs/"+str(f, "id"), map[string]any{"output_type": "sls", "log_stream_id": fx.ls})
	if _, ok := sls["file"]; ok {
		t.Errorf("an sls flow log shows file settings: %v", sls)
	}
	for _, c := range []struct {
		code string
		file map[string]any
	}{
		{"MissingParameter.output_dir", nil},
		{"MissingParameter.output_dir", map[string]any{"file_format": "parquet"}},
		{"InvalidParameter.output_dir", map[string]any{"output_dir": "../x"}},
		{"InvalidParameter.output_dir", map[string]any{"output_dir": "/var/x"}},
		{"InvalidParameter.log_format", map[string]any{"output_dir": "x", "log_format": "${version} ${vpc_id}"}},
		{"InvalidParameter.file_format", map[string]any{"output_dir": "x", "file_format": "csv"}},
	} {
		body := map[string]any{"name": "bad", "output_type": "file"}
		if c.file != nil {
			body["file"] = c.file
		}
		e.wantErr(400, c.code, "POST", "/v1/flow-logs", body)
	}
}
