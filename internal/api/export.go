package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"flowlog/internal/store"
	"flowlog/internal/store/export"
	"flowlog/internal/store/query"
)

// MaxExportRecords bounds an export: the most records one raw query pages
// through, since a console download is held whole in the browser's memory.
// Larger exports are for `flowlog export`.
const MaxExportRecords = query.MaxLimit

// exportTypes are the formats the export endpoint writes, by their
// content types.
var exportTypes = map[string]string{
	"csv":     "text/csv; charset=utf-8",
	"parquet": "application/vnd.apache.parquet",
}

// exportRequest is the body of POST /v1/log-streams/{id}/export: what the
// query endpoint would page through as raw records, and the file's format.
type exportRequest struct {
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Where  string    `json:"where"`
	Format string    `json:"format"`
}

// exportStream answers POST /v1/log-streams/{id}/export with a file of the
// records the window and filter select, in the body so that nothing of the
// request (or the session) lands in a URL. It counts them first, under the
// query timeout, to refuse an export over MaxExportRecords before any byte
// is sent.
func (s *Server) exportStream(w http.ResponseWriter, r *http.Request, c caller) {
	id, ok := s.queryTarget(w, r, c)
	if !ok {
		return
	}
	var b exportRequest
	if !decode(w, r, c.body, &b) {
		return
	}
	ctype, ok := exportTypes[b.Format]
	if !ok {
		writeError(w, r, http.StatusBadRequest, "InvalidParameter.format", "format: must be csv or parquet")
		return
	}
	req := query.Request{Since: b.Since, Until: b.Until, Where: b.Where}
	if err := req.Validate(); err != nil {
		writeError(w, r, http.StatusBadRequest, "InvalidQuery", err.Error())
		return
	}
	if !s.querySlot(w, r, c) {
		return
	}
	defer s.queries.release(c.account)
	if !s.exportFits(w, r, id, req) {
		return
	}
	o := export.Options{Since: b.Since, Until: b.Until, Where: b.Where, Format: b.Format,
		Window: b.Until.Sub(b.Since)} // one window: the query endpoint's order, and one query per page
	name := fmt.Sprintf("%s-%s.%s", r.PathValue("id"), b.Since.UTC().Format("20060102T150405Z"), b.Format)
	attach := func() {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	if b.Format == "parquet" {
		s.sendParquet(w, r, id, o, attach)
		return
	}
	attach()
	o.Out = w
	if _, err := export.Export(r.Context(), s.cfg.Store, id, o); err != nil {
		abortExport(r, s, err)
	}
}

// abortExport breaks a response part of which may be out, rather than let
// a cut file pass for a whole one.
func abortExport(r *http.Request, s *Server, err error) {
	s.cfg.Logger.Warn("export failed", "err", err, "request_id", RequestID(r.Context()))
	panic(http.ErrAbortHandler)
}

// exportFits counts the records an export would hold, and refuses it
// (answering the error) beyond MaxExportRecords.
func (s *Server) exportFits(w http.ResponseWriter, r *http.Request, id store.StreamID, req query.Request) bool {
	req.Aggregates = []query.Aggregate{{Func: "count"}}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	resp, err := s.cfg.Store.Query(ctx, id, req)
	if err != nil {
		s.queryFailed(w, r, ctx, err)
		return false
	}
	var n uint64
	if len(resp.Rows) == 1 && len(resp.Rows[0]) == 1 {
		n, _ = resp.Rows[0][0].(uint64)
	}
	if n > MaxExportRecords {
		writeError(w, r, http.StatusBadRequest, "ExportTooLarge", fmt.Sprintf(
			"the window and filter select %d records, more than the %d an export holds; narrow them, or use flowlog export",
			n, MaxExportRecords))
		return false
	}
	return true
}

// sendParquet writes the Parquet file (DuckDB writes it to a path) in a
// temporary directory, then sends it with its length; attach sets the
// headers of a file.
func (s *Server) sendParquet(w http.ResponseWriter, r *http.Request, id store.StreamID, o export.Options, attach func()) {
	dir, err := os.MkdirTemp("", "flowlog-export-")
	if err != nil {
		s.internal(w, r, err)
		return
	}
	defer os.RemoveAll(dir)
	o.Path = filepath.Join(dir, "records.parquet")
	var f *os.File
	var st os.FileInfo
	if _, err = export.Export(r.Context(), s.cfg.Store, id, o); err == nil {
		if f, err = os.Open(o.Path); err == nil {
			defer f.Close()
			st, err = f.Stat()
		}
	}
	switch {
	case err != nil && r.Context().Err() != nil: // the client went away
	case err != nil:
		s.internal(w, r, err)
	default:
		attach()
		w.Header().Set("Content-Length", strconv.FormatInt(st.Size(), 10))
		if _, err := io.Copy(w, f); err != nil {
			abortExport(r, s, err)
		}
	}
}
