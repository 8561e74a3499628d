package web

import (
	"io/fs"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestOwns(t *testing.T) {
	c := New()
	for _, tc := range []struct {
		method, target string
		want           bool
	}{
		{"GET", "/", true},
		{"HEAD", "/", true},
		{"GET", "/explore", true},
		{"GET", "/flow-logs", true},
		{"GET", "/sign-in", true},
		{"GET", "/index.html", true},
		{"GET", "/assets/x.js", true},
		{"GET", "/?Action=DescribeFlowLogs&RegionId=cn-shanghai", false}, // the Alibaba dialect
		{"POST", "/", false},
		{"POST", "/explore", false},
		{"GET", "/v1/flow-logs", false},
		{"GET", "/v3/p/enterprise-router/er/flow-logs", false},
		{"GET", "/metrics", false},
		{"GET", "/healthz", false},
		{"GET", "/nothing", false},
	} {
		if got := c.Owns(httptest.NewRequest(tc.method, tc.target, nil)); got != tc.want {
			t.Errorf("Owns(%s %s) = %v, want %v", tc.method, tc.target, got, tc.want)
		}
	}
}

// TestRoutesMatchRouter keeps Routes in step with the client's router, so
// that loading any page of the console directly works.
func TestRoutesMatchRouter(t *testing.T) {
	src, err := os.ReadFile("../../web/src/router.ts")
	if err != nil {
		t.Fatal(err)
	}
	var client []string
	for _, m := range regexp.MustCompile(`path: '(/[a-z-]*)', (?:component|redirect):`).FindAllStringSubmatch(string(src), -1) {
		client = append(client, m[1])
	}
	slices.Sort(client)
	server := slices.Sorted(slices.Values(Routes))
	if !slices.Equal(client, server) {
		t.Errorf("router.ts routes %v, web.Routes %v", client, server)
	}
}

func TestServe(t *testing.T) {
	c := New()
	get := func(target string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		return w
	}
	page := get("/explore")
	if page.Code != 200 || page.Header().Get("Content-Type") != "text/html; charset=utf-8" ||
		page.Header().Get("Cache-Control") != "no-cache" || page.Header().Get("Content-Security-Policy") != CSP {
		t.Fatalf("/explore: %d %v", page.Code, page.Header())
	}
	body := page.Body.String()
	if strings.Contains(body, "<script>") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("index.html has an inline script or an external URL:\n%s", body)
	}
	assets := regexp.MustCompile(`"/(assets/[^"]+)"`).FindAllStringSubmatch(body, -1)
	if len(assets) < 2 {
		t.Fatalf("index.html links %d assets, want the script and the style sheet:\n%s", len(assets), body)
	}
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	for _, a := range assets {
		w := get("/" + a[1])
		ext := a[1][strings.LastIndex(a[1], "."):]
		if w.Code != 200 || w.Header().Get("Content-Type") != types[ext] ||
			w.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s: %d %v", a[1], w.Code, w.Header())
		}
	}
	if w := get("/assets/missing.js"); w.Code != 404 {
		t.Errorf("a missing asset: %d, want 404", w.Code)
	}
}

// TestNoExternalSources: nothing in the build loads from another origin
// (the console must work with no internet); the CSP would block it anyway.
func TestNoExternalSources(t *testing.T) {
	sub, _ := fs.Sub(dist, "dist")
	fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(sub, name)
		for _, bad := range regexp.MustCompile(`(?:src|href)\s*=\s*["']https?://[^"']+`).FindAll(b, -1) {
			t.Errorf("%s loads %s", name, bad)
		}
		return nil
	})
}
