package netflow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"flowlog/internal/flow"
)

// SessionConfig bounds the state one exporter can make a Session keep.
type SessionConfig struct {
	TemplateTTL     time.Duration // a template unused-unannounced this long is forgotten
	MaxTemplates    int           // templates over all domains
	MaxFields       int           // template fields over all templates
	MaxTemplateSize int           // template bytes (as on the wire) over all templates
	MaxDomains      int           // observation domains / source ids
	MaxPendingBytes int           // data sets held while waiting for their template
	PendingTTL      time.Duration // how long such a set is held

	// V9FlowCount accepts v9 packets whose header count covers only their
	// flow data records, as softflowd's do. RFC 3954 counts every record,
	// so by default a count below the number of flowsets is an error.
	V9FlowCount bool
}

// DefaultSessionConfig returns the defaults: templates expire after 1800 s
// (RFC 6728's template lifetime), data waits up to 10 s for its template.
// The template limits hold one exporter's state to a few hundred KB: real
// exporters announce tens of templates of tens of fields.
func DefaultSessionConfig() SessionConfig {
	return SessionConfig{
		TemplateTTL:     1800 * time.Second,
		MaxTemplates:    1024,
		MaxFields:       4096,
		MaxTemplateSize: 32 << 10,
		MaxDomains:      256,
		MaxPendingBytes: 256 << 10,
		PendingTTL:      10 * time.Second,
	}
}

// Session is the decoding state of one exporter (one source address). It is
// not safe for concurrent use.
type Session struct {
	cfg          SessionConfig
	domains      map[domainKey]*domain
	templates    int
	fields       int    // over all templates
	tplBytes     int    // over all templates, as on the wire
	changes      uint64 // template changes, for persistence
	pending      []pendingSet
	pendingBytes int

	lastKey    domainKey // the domain of the previous packet, usually the next one's too
	lastDomain *domain
	ifChanges  uint64 // changes of interface names, for snapshots
}

// Result describes what Decode did with one packet.
type Result struct {
	Version int
	Domain  uint32 // observation domain, source id, or v5 engine type<<8|id
	Records int    // flow records appended
	Unknown int    // data sets whose template is not (yet) known
	Dropped int    // held data sets given up on (expired or over the limit)
	Refused int    // templates refused by the session's limits
	Lost    uint64 // flows, packets or records missing by sequence number
}

type domainKey struct {
	version uint16
	id      uint32
}

type domain struct {
	plans    map[uint16]*plan
	lastPlan *plan             // the plan of the previous data set, to skip the map
	samplers map[uint64]uint32 // sampler/selector id → 1:N
	rate     uint32            // rate announced without a sampler id
	sysInit  int64             // systemInitTimeMilliseconds from options data
	ifNames  map[uint32]IfName // ifIndex → what options data named it
	changes  *uint64           // the session's count of interface name changes
	// optsChanged: options data changed the sampling rates or the system
	// init time since the session last looked.
	optsChanged bool
	seqOK       bool
	nextSeq     uint32
}

// MaxSamplers bounds the sampler ids remembered per domain.
const MaxSamplers = 256

// maxIfNames bounds the interfaces named per domain, and maxIfText the
// length of a name or description kept.
const (
	maxIfNames = 4096
	maxIfText  = 255
)

// IfName is what an exporter's options data says of one of its interfaces
// (interfaceName 82 and interfaceDescription 83, keyed by the ingress or
// egress interface in the scope or the record).
type IfName struct {
	Name        string
	Description string
}

// Label is the interface's name, else its description: Cisco's v9 sends
// the full interface name as IF_DESC alone.
func (n IfName) Label() string {
	if n.Name != "" {
		return n.Name
	}
	return n.Description
}

// header is what records need from their packet's header.
type header struct {
	version  int
	exportMs int64
	sysUp    uint32
	rate     uint32 // v5 header sampling interval
}

type pendingSet struct {
	key  domainKey
	tid  uint16
	hdr  header
	at   int64 // Unix ms
	data []byte
}

// NewSession returns an empty Session; zero fields of cfg take defaults.
func NewSession(cfg SessionConfig) *Session {
	d := DefaultSessionConfig()
	if cfg.TemplateTTL <= 0 {
		cfg.TemplateTTL = d.TemplateTTL
	}
	if cfg.MaxTemplates <= 0 {
		cfg.MaxTemplates = d.MaxTemplates
	}
	if cfg.MaxFields <= 0 {
		cfg.MaxFields = d.MaxFields
	}
	if cfg.MaxTemplateSize <= 0 {
		cfg.MaxTemplateSize = d.MaxTemplateSize
	}
	if cfg.MaxDomains <= 0 {
		cfg.MaxDomains = d.MaxDomains
	}
	if cfg.MaxPendingBytes < 0 {
		cfg.MaxPendingBytes = 0
	} else if cfg.MaxPendingBytes == 0 {
		cfg.MaxPendingBytes = d.MaxPendingBytes
	}
	if cfg.PendingTTL <= 0 {
		cfg.PendingTTL = d.PendingTTL
	}
	return &Session{cfg: cfg, domains: make(map[domainKey]*domain)}
}

// Decode decodes one NetFlow v5, v9 or IPFIX packet and appends its flow
// records to out. On error, the records decoded before it are kept.
func (s *Session) Decode(pkt []byte, now time.Time, out []flow.Record) ([]flow.Record, Result, error) {
	v, err := Version(pkt)
	res := Result{Version: v}
	if err != nil {
		return out, res, err
	}
	if len(s.pending) > 0 {
		res.Dropped += s.expirePending(now.UnixMilli())
	}
	before := len(out)
	switch v {
	case V5:
		out, res, err = s.decodeV5(pkt, out, res)
	case V9:
		out, res, err = s.decodeV9(pkt, now, out, res)
	default:
		out, res, err = s.decodeIPFIX(pkt, now, out, res)
	}
	res.Records = len(out) - before
	return out, res, err
}

func (s *Session) domain(k domainKey) (*domain, error) {
	if s.lastDomain != nil && s.lastKey == k {
		return s.lastDomain, nil
	}
	d := s.domains[k]
	if d == nil {
		if len(s.domains) >= s.cfg.MaxDomains {
			return nil, fmt.Errorf("%w: %d observation domains", ErrLimit, len(s.domains))
		}
		d = &domain{plans: make(map[uint16]*plan), samplers: make(map[uint64]uint32), changes: &s.ifChanges}
		s.domains[k] = d
	}
	s.lastKey, s.lastDomain = k, d
	return d, nil
}

// sequence checks a packet's sequence number against the expected one and
// returns how many units went missing. Backward or huge jumps (reordering,
// exporter restart) count as no loss.
func (d *domain) sequence(seq, next uint32, known bool) uint64 {
	var lost uint64
	if d.seqOK {
		if gap := seq - d.nextSeq; gap != 0 && gap < 1<<30 {
			lost = uint64(gap)
		}
	}
	d.seqOK, d.nextSeq = known, next
	return lost
}

func (s *Session) decodeV9(pkt []byte, now time.Time, out []flow.Record, res Result) ([]flow.Record, Result, error) {
	if len(pkt) < 20 {
		return out, res, fmt.Errorf("v9 header: %w", ErrShort)
	}
	h := header{version: V9, sysUp: binary.BigEndian.Uint32(pkt[4:]),
		exportMs: int64(binary.BigEndian.Uint32(pkt[8:])) * 1000}
	seq := binary.BigEndian.Uint32(pkt[12:])
	key := domainKey{V9, binary.BigEndian.Uint32(pkt[16:])}
	res.Domain = key.id
	d, err := s.domain(key)
	if err != nil {
		return out, res, err
	}
	if !s.cfg.V9FlowCount {
		if err := checkV9Count(int(binary.BigEndian.Uint16(pkt[2:])), pkt[20:]); err != nil {
			return out, res, err
		}
	}
	out, _, err = s.sets(pkt[20:], key, d, h, now, out, &res)
	if err == nil {
		res.Lost = d.sequence(seq, seq+1, true)
	}
	return out, res, err
}

// checkV9Count rejects a v9 header count below the number of flowsets that
// follow. Exporters count records (RFC 3954) or flowsets, and either is at
// least that; a smaller count leaves flowsets that readers stopping at the
// count (tshark, goflow2) never see, so the packet means different flows to
// different collectors.
func checkV9Count(count int, sets []byte) error {
	if n := flowsets(sets); count < n {
		return fmt.Errorf("%w: v9 header count %d, but %d flowsets follow", ErrCount, count, n)
	}
	return nil
}

// flowsets counts the flowsets of b up to zero fill or a bad length, which
// sets then reports.
func flowsets(b []byte) int {
	n := 0
	for len(b) >= 4 {
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l < 4 || l > len(b) {
			break
		}
		b = b[l:]
		n++
	}
	return n
}

func (s *Session) decodeIPFIX(pkt []byte, now time.Time, out []flow.Record, res Result) ([]flow.Record, Result, error) {
	if len(pkt) < 16 {
		return out, res, fmt.Errorf("ipfix header: %w", ErrShort)
	}
	n := int(binary.BigEndian.Uint16(pkt[2:]))
	if n < 16 || n > len(pkt) {
		return out, res, fmt.Errorf("ipfix message length %d of %d: %w", n, len(pkt), ErrLength)
	}
	h := header{version: IPFIX, exportMs: int64(binary.BigEndian.Uint32(pkt[4:])) * 1000}
	seq := binary.BigEndian.Uint32(pkt[8:])
	key := domainKey{IPFIX, binary.BigEndian.Uint32(pkt[12:])}
	res.Domain = key.id
	d, err := s.domain(key)
	if err != nil {
		return out, res, err
	}
	var records int
	out, records, err = s.sets(pkt[16:n], key, d, h, now, out, &res)
	if err == nil {
		// The sequence counts data records, options data included; unknown
		// sets make the next expected number unknowable.
		res.Lost = d.sequence(seq, seq+uint32(records), res.Unknown == 0)
	}
	return out, res, err
}

// sets walks the (flow)sets of a v9 or IPFIX packet. It returns the data
// records (options data included) of the packet's own data sets, which the
// IPFIX sequence number counts.
func (s *Session) sets(b []byte, key domainKey, d *domain, h header, now time.Time, out []flow.Record, res *Result) ([]flow.Record, int, error) {
	records := 0
	for len(b) > 0 {
		if len(b) < 4 {
			if allZero(b) {
				return out, records, nil
			}
			return out, records, fmt.Errorf("set header: %w", ErrShort)
		}
		id := binary.BigEndian.Uint16(b)
		n := int(binary.BigEndian.Uint16(b[2:]))
		if n < 4 {
			if allZero(b) { // zero fill after the last set
				return out, records, nil
			}
			return out, records, fmt.Errorf("set %d length %d: %w", id, n, ErrLength)
		}
		if n > len(b) {
			return out, records, fmt.Errorf("set %d length %d of %d: %w", id, n, len(b), ErrLength)
		}
		body := b[4:n]
		b = b[n:]
		var err error
		switch {
		case (h.version == V9 && id == 0) || (h.version == IPFIX && id == 2):
			err = s.templateSet(body, key, d, h, false, now, &out, res)
		case (h.version == V9 && id == 1) || (h.version == IPFIX && id == 3):
			err = s.templateSet(body, key, d, h, true, now, &out, res)
		case id >= 256:
			p := d.lastPlan
			if p == nil || p.tpl.ID != id {
				p = d.plans[id]
				d.lastPlan = p
			}
			if p != nil && now.Unix()-p.learned > int64(s.cfg.TemplateTTL/time.Second) {
				s.forget(d, id)
				p = nil
			}
			if p == nil {
				res.Unknown++
				res.Dropped += s.hold(key, id, h, body, now.UnixMilli())
				continue
			}
			var n int
			out, n, err = s.data(d, p, body, h, now.Unix(), out)
			records += n
		}
		if err != nil {
			return out, records, err
		}
	}
	return out, records, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// templates reads a template or options template set and learns each one.
// A template over the session's limits is refused and counted, and the set
// goes on: a replacement of a known template may still fit. The first
// refusal is returned at the end.
func (s *Session) templateSet(b []byte, key domainKey, d *domain, h header, options bool, now time.Time, out *[]flow.Record, res *Result) error {
	var refused error
	for len(b) >= 4 {
		t, n, err := parseTemplate(b, h.version, options)
		if err != nil {
			if allZero(b) { // set padding
				return nil
			}
			return err
		}
		b = b[n:]
		if len(t.Fields) == 0 { // IPFIX withdrawal
			s.forget(d, t.ID)
			continue
		}
		if err := s.learn(key, d, t, now); errors.Is(err, ErrLimit) {
			res.Refused++
			if refused == nil {
				refused = err
			}
			continue
		} else if err != nil {
			return err
		}
		*out = s.release(key, d, t.ID, now.Unix(), *out, res)
	}
	return refused
}

// parseTemplate reads one template record and returns it and its length.
func parseTemplate(b []byte, version int, options bool) (Template, int, error) {
	var t Template
	if len(b) < 4 {
		return t, 0, fmt.Errorf("template: %w", ErrShort)
	}
	t.ID = binary.BigEndian.Uint16(b)
	off := 4
	var count int
	switch {
	case !options:
		count = int(binary.BigEndian.Uint16(b[2:]))
	case version == V9:
		if len(b) < 6 {
			return t, 0, fmt.Errorf("options template: %w", ErrShort)
		}
		scopeLen, optLen := int(binary.BigEndian.Uint16(b[2:])), int(binary.BigEndian.Uint16(b[4:]))
		if scopeLen%4 != 0 || optLen%4 != 0 {
			return t, 0, fmt.Errorf("%w: options template %d lengths %d/%d", ErrTemplate, t.ID, scopeLen, optLen)
		}
		t.ScopeCount = scopeLen / 4
		count = t.ScopeCount + optLen/4
		off = 6
	default:
		if len(b) < 6 {
			return t, 0, fmt.Errorf("options template: %w", ErrShort)
		}
		count = int(binary.BigEndian.Uint16(b[2:]))
		t.ScopeCount = int(binary.BigEndian.Uint16(b[4:]))
		if t.ScopeCount == 0 && count > 0 || t.ScopeCount > count {
			return t, 0, fmt.Errorf("%w: options template %d scope %d of %d", ErrTemplate, t.ID, t.ScopeCount, count)
		}
		off = 6
	}
	if count > maxFields {
		return t, 0, fmt.Errorf("%w: template %d has %d fields", ErrTemplate, t.ID, count)
	}
	if count > 0 {
		t.Fields = make([]Field, 0, count)
	}
	for i := 0; i < count; i++ {
		if off+4 > len(b) {
			return t, 0, fmt.Errorf("template %d field %d: %w", t.ID, i, ErrShort)
		}
		f := Field{ID: binary.BigEndian.Uint16(b[off:]), Len: binary.BigEndian.Uint16(b[off+2:])}
		off += 4
		if version == IPFIX && f.ID&0x8000 != 0 {
			if off+4 > len(b) {
				return t, 0, fmt.Errorf("template %d field %d enterprise: %w", t.ID, i, ErrShort)
			}
			f.ID &= 0x7FFF
			f.PEN = binary.BigEndian.Uint32(b[off:])
			off += 4
		}
		t.Fields = append(t.Fields, f)
	}
	if options && version == V9 {
		// v9 options templates are padded to 4 bytes within the record.
		if pad := off % 4; pad != 0 && off+4-pad <= len(b) && allZero(b[off:off+4-pad]) {
			off += 4 - pad
		}
	}
	if t.ID < 256 {
		return t, 0, fmt.Errorf("%w: id %d below 256", ErrTemplate, t.ID)
	}
	return t, off, nil
}

func (s *Session) learn(key domainKey, d *domain, t Template, now time.Time) error {
	old := d.plans[t.ID]
	if old != nil && old.tpl.ScopeCount == t.ScopeCount && slices.Equal(old.tpl.Fields, t.Fields) {
		old.learned = now.Unix() // a re-announcement: nothing changes
		return nil
	}
	templates, fields, size := s.templates+1, s.fields+len(t.Fields), s.tplBytes+wireSize(t)
	if old != nil {
		templates, fields, size = templates-1, fields-len(old.tpl.Fields), size-wireSize(old.tpl)
	}
	switch {
	case templates > s.cfg.MaxTemplates:
		return fmt.Errorf("%w: template %d would be template %d of %d", ErrLimit, t.ID, templates, s.cfg.MaxTemplates)
	case fields > s.cfg.MaxFields:
		return fmt.Errorf("%w: template %d would make %d template fields of %d", ErrLimit, t.ID, fields, s.cfg.MaxFields)
	case size > s.cfg.MaxTemplateSize:
		return fmt.Errorf("%w: template %d would make %d template bytes of %d", ErrLimit, t.ID, size, s.cfg.MaxTemplateSize)
	}
	// Compiled only once within the limits: a flood of refused templates
	// costs no compilation.
	p, err := compile(t, int(key.version))
	if err != nil {
		return err
	}
	p.learned = now.Unix()
	s.templates, s.fields, s.tplBytes = templates, fields, size
	s.changes++
	d.plans[t.ID] = p
	d.lastPlan = nil
	return nil
}

func (s *Session) forget(d *domain, id uint16) {
	if p := d.plans[id]; p != nil {
		delete(d.plans, id)
		s.templates--
		s.fields -= len(p.tpl.Fields)
		s.tplBytes -= wireSize(p.tpl)
		s.changes++
	}
	d.lastPlan = nil
}

// wireSize is a template record's length on the wire: its header, four
// bytes a field and four more for an enterprise number.
func wireSize(t Template) int {
	n := 4
	if t.ScopeCount > 0 {
		n = 6
	}
	for _, f := range t.Fields {
		n += 4
		if f.PEN != 0 {
			n += 4
		}
	}
	return n
}

// Changes counts the changes to the session's templates (learned, replaced,
// withdrawn or expired); it moves only when what Templates returns does,
// besides the learned times.
func (s *Session) Changes() uint64 { return s.changes }

// hold keeps a data set whose template is unknown, within the byte budget;
// it returns 1 if the set had to be dropped.
func (s *Session) hold(key domainKey, tid uint16, h header, body []byte, nowMs int64) int {
	if s.pendingBytes+len(body) > s.cfg.MaxPendingBytes {
		return 1
	}
	s.pending = append(s.pending, pendingSet{key: key, tid: tid, hdr: h, at: nowMs, data: append([]byte(nil), body...)})
	s.pendingBytes += len(body)
	return 0
}

// release decodes the held data sets of a template that just arrived.
func (s *Session) release(key domainKey, d *domain, tid uint16, now int64, out []flow.Record, res *Result) []flow.Record {
	if len(s.pending) == 0 {
		return out
	}
	kept := s.pending[:0]
	for _, ps := range s.pending {
		if ps.key != key || ps.tid != tid {
			kept = append(kept, ps)
			continue
		}
		s.pendingBytes -= len(ps.data)
		var err error
		if out, _, err = s.data(d, d.plans[tid], ps.data, ps.hdr, now, out); err != nil {
			res.Dropped++
		}
	}
	clear(s.pending[len(kept):])
	s.pending = kept
	return out
}

func (s *Session) expirePending(nowMs int64) int {
	ttl := s.cfg.PendingTTL.Milliseconds()
	kept := s.pending[:0]
	dropped := 0
	for _, ps := range s.pending {
		if nowMs-ps.at > ttl {
			s.pendingBytes -= len(ps.data)
			dropped++
			continue
		}
		kept = append(kept, ps)
	}
	clear(s.pending[len(kept):])
	s.pending = kept
	return dropped
}

// data decodes a data set with plan p. Options data that changed what the
// domain knows (sampling rates, system init time) is a change of its options
// template, announced now, so that the knowledge is saved and shared with it.
func (s *Session) data(d *domain, p *plan, b []byte, h header, now int64, out []flow.Record) ([]flow.Record, int, error) {
	out, n, err := d.data(p, b, h, out)
	if d.optsChanged {
		d.optsChanged = false
		p.learned = max(p.learned, now)
		s.changes++
	}
	return out, n, err
}

// data decodes the records of one data set: flow records are appended to
// out, options records update the domain. It returns how many records of
// either kind it decoded.
func (d *domain) data(p *plan, b []byte, h header, out []flow.Record) ([]flow.Record, int, error) {
	var x raw
	records := 0
	if p.options {
		var r flow.Record
		for len(b) >= p.minLen {
			x = raw{}
			n := p.record(b, &r, &x)
			if n < 0 {
				return out, records, fmt.Errorf("options record of template %d: %w", p.tpl.ID, ErrShort)
			}
			b = b[n:]
			records++
			d.options(&x, &r)
		}
		return out, records, nil
	}
	for len(b) >= p.minLen {
		out = append(out, flow.Record{})
		r := &out[len(out)-1]
		x = raw{}
		n := p.record(b, r, &x)
		if n < 0 {
			out = out[:len(out)-1]
			return out, records, fmt.Errorf("data record of template %d: %w", p.tpl.ID, ErrShort)
		}
		b = b[n:]
		d.finish(r, &x, &h)
		records++
	}
	return out, records, nil
}

// options takes sampling rates, the system init time and interface names
// from options data.
func (d *domain) options(x *raw, r *flow.Record) {
	if x.sysInit != 0 && x.sysInit != d.sysInit {
		d.sysInit, d.optsChanged = x.sysInit, true
	}
	if x.ifName != nil || x.ifDesc != nil {
		d.ifName(x, r)
	}
	rate := x.samplingRate()
	if rate == 0 {
		return
	}
	if !x.hasSampler {
		d.optsChanged = d.optsChanged || d.rate != rate
		d.rate = rate
		return
	}
	d.sampler(x.samplerID, rate)
}

// sampler keeps a sampler's rate, within MaxSamplers.
func (d *domain) sampler(id uint64, rate uint32) {
	if old, ok := d.samplers[id]; ok && old == rate || !ok && len(d.samplers) >= MaxSamplers {
		return
	}
	d.samplers[id] = rate
	d.optsChanged = true
}

// ifName keeps the name and description an options record gives its
// interface (ingress, else egress).
func (d *domain) ifName(x *raw, r *flow.Record) {
	idx := r.InputIfIndex
	if idx == 0 {
		idx = r.OutputIfIndex
	}
	if idx == 0 {
		return
	}
	n := IfName{Name: ifText(x.ifName), Description: ifText(x.ifDesc)}
	if old, ok := d.ifNames[idx]; ok && old == n || !ok && len(d.ifNames) >= maxIfNames {
		return
	}
	if d.ifNames == nil {
		d.ifNames = make(map[uint32]IfName)
	}
	d.ifNames[idx] = n
	*d.changes++
}

// ifText turns a string field into a name: fixed-length fields are padded
// with NULs, and an exporter's text is bounded.
func ifText(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if len(b) > maxIfText {
		b = b[:maxIfText]
	}
	return strings.ToValidUTF8(string(b), "")
}

// finish resolves a record's times and sampling rate.
func (d *domain) finish(r *flow.Record, x *raw, h *header) {
	r.Start, r.End = x.startMs, x.endMs
	if x.hasUp != 0 {
		sysInit := x.sysInit
		if sysInit == 0 {
			sysInit = d.sysInit
		}
		if x.hasUp&1 != 0 && r.Start == 0 {
			r.Start = h.upToMs(x.startUp, sysInit)
		}
		if x.hasUp&2 != 0 && r.End == 0 {
			r.End = h.upToMs(x.endUp, sysInit)
		}
	}
	if r.End == 0 {
		r.End = h.exportMs
	}
	if r.Start == 0 {
		r.Start = r.End
	}
	rate := x.samplingRate()
	if rate == 0 && x.hasSampler {
		rate = d.samplers[x.samplerID]
	}
	if rate == 0 {
		rate = d.rate
	}
	if rate == 0 && len(d.samplers) == 1 {
		for _, v := range d.samplers {
			rate = v
		}
	}
	if rate == 0 {
		rate = h.rate
	}
	r.SamplingInterval = rate
	if r.IPVersion == 0 {
		if r.SrcAddr.Is4() {
			r.IPVersion = 4
		} else if r.SrcAddr.Is6() {
			r.IPVersion = 6
		}
	}
}

// upToMs converts a system uptime in ms to Unix ms. v5/v9 headers carry the
// uptime at export, so the difference is taken modulo 2^32 as a signed
// number: a counter that wrapped between the flow and the export still gives
// the right time. IPFIX uses systemInitTimeMilliseconds when known.
func (h *header) upToMs(up uint32, sysInit int64) int64 {
	if h.version == IPFIX {
		if sysInit == 0 {
			return 0
		}
		return sysInit + int64(up)
	}
	return h.exportMs - int64(int32(h.sysUp-up))
}

// Interfaces returns the interface names the exporter's options data gave,
// by ifIndex, over all its observation domains (ifIndexes are the
// device's), as a new map.
func (s *Session) Interfaces() map[uint32]IfName {
	m := map[uint32]IfName{}
	for _, d := range s.domains {
		for idx, n := range d.ifNames {
			m[idx] = n
		}
	}
	return m
}

// InterfaceChanges counts the changes of interface names, so that a caller
// keeping a copy of Interfaces takes a new one only when it moved.
func (s *Session) InterfaceChanges() uint64 { return s.ifChanges }

// TemplateCount is the number of templates (options templates included)
// the session holds.
func (s *Session) TemplateCount() int { return s.templates }

// SavedTemplate is a learned template as persisted across restarts and
// shared between collectors.
type SavedTemplate struct {
	Version  int    `json:"version"`
	Domain   uint32 `json:"domain"`
	Learned  int64  `json:"learned"` // Unix seconds
	Template `json:"template"`
	// Options, on options templates, is what the domain's options data
	// said, without which its data records lack their sampling rates (or
	// times, for IPFIX from uptimes).
	Options *DomainOptions `json:"options,omitempty"`
}

// DomainOptions is what options data told of an observation domain.
type DomainOptions struct {
	Rate     uint32            `json:"rate,omitempty"`     // 1:N announced without a sampler id
	Samplers map[uint64]uint32 `json:"samplers,omitempty"` // sampler/selector id → 1:N
	SysInit  int64             `json:"sys_init,omitempty"` // systemInitTimeMilliseconds
}

func (d *domain) savedOptions() *DomainOptions {
	if d.rate == 0 && len(d.samplers) == 0 && d.sysInit == 0 {
		return nil
	}
	return &DomainOptions{Rate: d.rate, Samplers: maps.Clone(d.samplers), SysInit: d.sysInit}
}

// restoreOptions takes what saved options data told, where the domain
// knows nothing newer.
func (d *domain) restoreOptions(o *DomainOptions) {
	if o == nil {
		return
	}
	if o.Rate != 0 {
		d.rate = o.Rate
	}
	for id, r := range o.Samplers {
		d.sampler(id, r)
	}
	if o.SysInit != 0 {
		d.sysInit = o.SysInit
	}
	d.optsChanged = false // known already: this is no news to share
}

// Equal says whether t and o are the same template learned at the same time.
func (t SavedTemplate) Equal(o SavedTemplate) bool {
	return t.Version == o.Version && t.Domain == o.Domain && t.Learned == o.Learned && t.ID == o.ID &&
		t.ScopeCount == o.ScopeCount && slices.Equal(t.Fields, o.Fields) && t.Options.equal(o.Options)
}

func (o *DomainOptions) equal(p *DomainOptions) bool {
	if o == nil || p == nil {
		return o == p
	}
	return o.Rate == p.Rate && o.SysInit == p.SysInit && maps.Equal(o.Samplers, p.Samplers)
}

// Templates returns the templates the session knows, for persistence.
func (s *Session) Templates() []SavedTemplate {
	var out []SavedTemplate
	for k, d := range s.domains {
		for _, p := range d.plans {
			t := SavedTemplate{Version: int(k.version), Domain: k.id, Learned: p.learned, Template: p.tpl}
			if p.options {
				t.Options = d.savedOptions()
			}
			out = append(out, t)
		}
	}
	return out
}

// Restore learns saved templates that have not expired by now: those
// kept by an earlier run, or those another collector of the same exporter
// shared. Of two different templates under one id, the one announced last
// wins; the same template keeps the later of the two learned times. Data
// sets held for a template it learns are decoded and appended to out.
// res counts what was decoded and what was dropped. Templates that fail
// to compile or exceed the limits are returned as an error after the
// others are restored.
func (s *Session) Restore(ts []SavedTemplate, now time.Time, out []flow.Record) ([]flow.Record, Result, error) {
	var first error
	var res Result
	before := len(out)
	ttl := int64(s.cfg.TemplateTTL / time.Second)
	type learned struct {
		key domainKey
		d   *domain
		id  uint16
	}
	var news []learned
	for _, t := range ts {
		if now.Unix()-t.Learned > ttl || (t.Version != V9 && t.Version != IPFIX) {
			continue
		}
		key := domainKey{uint16(t.Version), t.Domain}
		d, err := s.domain(key)
		if err == nil {
			if old := d.plans[t.ID]; old != nil && old.learned >= t.Learned {
				continue // known as announced then, or replaced since
			}
			if err = s.learn(key, d, t.Template, time.Unix(t.Learned, 0)); err == nil {
				d.restoreOptions(t.Options)
				news = append(news, learned{key, d, t.ID})
			}
		}
		if err != nil && first == nil {
			first = err
		}
	}
	// Held data is decoded once every template and option is in.
	for _, l := range news {
		out = s.release(l.key, l.d, l.id, now.Unix(), out, &res)
	}
	res.Records = len(out) - before
	return out, res, first
}
