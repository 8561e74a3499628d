package main

import (
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"flowlog/internal/enrich"
)

// mmdbFlag adds --mmdb, the GeoIP/ASN databases, to serve and agent.
func mmdbFlag(f *pflag.FlagSet, files *[]string) {
	f.StringArrayVar(files, "mmdb", nil, "GeoIP/ASN database (MMDB: MaxMind GeoLite2 Country/City/ASN, DB-IP lite, IPinfo) "+
		"filling records' src/dst_country, _as and _as_name at ingest; repeatable, the first database knowing a field gives it; "+
		"reloaded when the file changes (env FLOWLOG_MMDB, comma-separated)")
}

// openEnricher loads the databases. Without any, the Enricher is still
// there for interface names (Enricher.SetInterfaces).
func openEnricher(files []string, reload time.Duration, log *slog.Logger) (*enrich.Enricher, error) {
	return enrich.New(enrich.Config{Files: files, Reload: reload, Logger: log})
}
