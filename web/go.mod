// The console's sources and node_modules (some npm packages carry .go
// files): a module of its own keeps `go vet ./...` and `go test ./...` of
// flowlog out of this directory. The built console is in internal/web/dist.
module flowlog/web

go 1.26
