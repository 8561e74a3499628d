package export_test

import (
	"log"

	"flowlog/internal/export"
	"flowlog/internal/flow"
)

// A meter exports what it produces: parse --netflow-version, make one
// exporter per flow log (its own observation domain), hand it each batch.
func ExampleNew() {
	version, err := export.ParseVersion("V10") // from --netflow-version
	if err != nil {
		log.Fatal(err)
	}
	e, err := export.New(export.Config{
		Collector: "127.0.0.1:2055", // from --netflow
		Version:   version,
		Domain:    export.DomainID("fl-0123456789"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	var batch []flow.Record // records from the meter
	if err := e.Export(batch); err != nil {
		log.Print(err) // send errors are also counted in e.Stats().Errors
	}
}
