// Command mmdb writes synthetic GeoIP/ASN databases the size of the real
// ones, for benchmarks (the real databases need an account to download):
// a GeoLite2-Country and a GeoLite2-ASN layout over the same random IPv4
// networks, /12 to /24, across the public address space.
//
//	go run ./bench/mmdb -out /tmp/mmdb -networks 400000
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"flowlog/internal/enrich/mmdbtest"
)

func main() {
	out := flag.String("out", ".", "directory the databases are written to (country.mmdb, asn.mmdb)")
	n := flag.Int("networks", 400000, "IPv4 networks in each database")
	flag.Parse()
	nets := mmdbtest.RandomNetworks(*n, 7)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	for name, l := range map[string]mmdbtest.Layout{"country.mmdb": mmdbtest.GeoLite2Country, "asn.mmdb": mmdbtest.GeoLite2ASN} {
		b, err := mmdbtest.Build(l, nets)
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d networks, %d bytes\n", filepath.Join(*out, name), len(nets), len(b))
	}
}
