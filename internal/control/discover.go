package control

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"unicode/utf8"

	"flowlog/internal/snmp"
)

// DiscoveredInterface is an interface an exporter's router reports by SNMP,
// with the gateway's attachment of its ifIndex, if any.
type DiscoveredInterface struct {
	snmp.Interface
	AttachmentID string `json:"attachment_id,omitempty"`
}

// Discovery is what DiscoverInterfaces found and made.
type Discovery struct {
	Interfaces []DiscoveredInterface `json:"interfaces"` // by ifIndex
	Created    []Attachment          `json:"created"`
}

// DiscoverOptions says which attachments DiscoverInterfaces makes.
type DiscoverOptions struct {
	CreateAttachments bool
	IfIndexes         []uint32 // only these; empty: every interface not yet attached
}

// DiscoverInterfaces asks an exporter gateway's router (from the control
// plane's host, with the gateway's SNMP settings) for its interfaces, and
// optionally attaches those the gateway has no attachment for, each named
// after the interface.
func (s *Service) DiscoverInterfaces(ctx context.Context, account, gatewayID string, opt DiscoverOptions) (Discovery, error) {
	d := Discovery{Interfaces: []DiscoveredInterface{}, Created: []Attachment{}}
	g, err := s.GetGateway(ctx, account, gatewayID)
	if err != nil {
		return d, err
	}
	if g.Kind != KindExporter || g.snmp == nil {
		return d, illegal("snmp", "gateway %s has no SNMP settings (exporter gateways only)", g.ID)
	}
	ifs, err := snmp.Poll(ctx, snmp.TargetOf(netip.MustParseAddr(g.Exporter), *g.snmp), snmp.Config{})
	if err != nil {
		return d, &Error{Kind: ErrUpstream, Field: "snmp", Message: err.Error()}
	}
	atts, err := s.ListAttachments(ctx, account, gatewayID)
	if err != nil {
		return d, err
	}
	attached := map[uint32]string{}
	for _, a := range atts {
		attached[a.IfIndex] = a.ID
	}
	for _, i := range ifs {
		d.Interfaces = append(d.Interfaces, DiscoveredInterface{Interface: i, AttachmentID: attached[i.Index]})
	}
	slices.SortFunc(d.Interfaces, func(a, b DiscoveredInterface) int { return cmp.Compare(a.Index, b.Index) })
	if !opt.CreateAttachments {
		return d, nil
	}
	for k := range d.Interfaces {
		i := &d.Interfaces[k]
		if i.AttachmentID != "" || len(opt.IfIndexes) > 0 && !slices.Contains(opt.IfIndexes, i.Index) {
			continue
		}
		a, err := s.CreateAttachment(ctx, account, gatewayID, AttachmentInput{Name: ptrTo(attachmentName(i.Interface)),
			IfIndex: &i.Index})
		if err != nil {
			return d, err
		}
		i.AttachmentID = a.ID
		d.Created = append(d.Created, a)
	}
	return d, nil
}

// attachmentName names an attachment after its interface, within the
// 64 characters names may have.
func attachmentName(i snmp.Interface) string {
	n := i.Name
	if n == "" {
		n = fmt.Sprintf("ifIndex %d", i.Index)
	}
	for utf8.RuneCountInString(n) > 64 {
		_, size := utf8.DecodeLastRuneInString(n)
		n = n[:len(n)-size]
	}
	return n
}

func ptrTo[T any](v T) *T { return &v }
