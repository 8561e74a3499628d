// Package web serves the web console: the single-page application built
// from web/ (npm run build writes dist/), embedded in the binary so that
// the console needs no Node, CDN or network at run time.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
)

//go:embed dist
var dist embed.FS

// CSP allows the page to load only its own scripts, styles and API; no
// inline script, no frames, no other origin.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Routes are the console's client-side routes (web/src/router.ts): a
// browser loading one directly gets index.html.
var Routes = []string{"/", "/sign-in", "/overview", "/explore", "/records", "/flow-logs", "/gateways", "/exporters", "/agents", "/log-groups", "/access-keys"}

// Console serves the embedded console.
type Console struct {
	files  fs.FS
	index  []byte
	static http.Handler
}

// New returns the console over the embedded build.
func New() *Console {
	files, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed pattern guarantees dist exists
	}
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		panic("web: dist/index.html is missing; run npm run build in web/")
	}
	return &Console{files: files, index: index, static: http.FileServerFS(files)}
}

// Owns reports whether the request is the console's to answer: a GET or
// HEAD of a client route or an asset. The root "/" with a query string is
// not: there, the Alibaba RPC dialect takes its parameters.
func (c *Console) Owns(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	if p == "/" {
		return r.URL.RawQuery == ""
	}
	return slices.Contains(Routes, p) || p == "/index.html" || strings.HasPrefix(p, "/assets/")
}

// ServeHTTP answers a request Owns accepted. Assets carry content hashes in
// their names and are cached for a year; index.html is revalidated on
// every load, so a new binary's console is picked up at once.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	if !strings.HasPrefix(name, "assets/") {
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.Write(c.index)
		return
	}
	if st, err := fs.Stat(c.files, name); err != nil || st.IsDir() {
		http.NotFound(w, r)
		return
	}
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	c.static.ServeHTTP(w, r)
}
