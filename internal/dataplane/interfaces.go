package dataplane

import (
	"fmt"
	"net/netip"

	"flowlog/internal/desired"
	"flowlog/internal/enrich"
	"flowlog/internal/snmp"
)

// pollInterfaces runs an SNMP poller for each exporter gateway of the state
// that has SNMP settings; pollers whose settings are unchanged keep running
// with their tables.
func (p *Plane) pollInterfaces() {
	var targets []snmp.Target
	for _, gw := range p.state.Gateways {
		if gw.Kind != desired.KindExporter || gw.SNMP == nil {
			continue
		}
		addr, err := netip.ParseAddr(gw.Exporter)
		if err != nil {
			continue
		}
		targets = append(targets, snmp.TargetOf(addr, *gw.SNMP))
	}
	for _, err := range p.pollers.Replace(targets, p.cfg.SNMP, p.log) {
		p.log.Warn("interface poller not started", "err", err)
	}
}

// enrichInterfaces makes the plane the Enricher's source of interface
// names and speeds; without GeoIP/ASN databases (no Enricher), one that
// fills only those.
func (p *Plane) enrichInterfaces() error {
	if p.cfg.Enricher == nil {
		e, err := enrich.New(enrich.Config{Logger: p.log})
		if err != nil {
			return fmt.Errorf("dataplane: %w", err)
		}
		p.cfg.Enricher = e
	}
	p.cfg.Enricher.SetInterfaces(p)
	return nil
}

// Interface is the name and speed (bits/s) of an exporter's interface: as
// its router last answered SNMP, else as its own options data named it
// (IPFIX/v9 interfaceName or interfaceDescription; no speed).
func (p *Plane) Interface(exporter netip.Addr, ifIndex uint32) (name string, speedBps uint64, ok bool) {
	if !exporter.IsValid() {
		return "", 0, false // a capture's record
	}
	name, speedBps, ok = p.pollers.Interface(exporter, ifIndex)
	if name == "" && p.collector != nil {
		if n, found := p.collector.Interface(exporter, ifIndex); found && n.Label() != "" {
			name, ok = n.Label(), true
		}
	}
	return name, speedBps, ok
}

// SNMPStatus says how the polling of an exporter's interfaces goes, if the
// plane polls it.
func (p *Plane) SNMPStatus(exporter netip.Addr) (snmp.Status, bool) {
	poller, ok := p.pollers.Poller(exporter)
	if !ok {
		return snmp.Status{}, false
	}
	return poller.Status(), true
}
