// Package snmp polls routers that export flows for the names, descriptions
// and speeds of their interfaces (IF-MIB, SNMP v2c or v3), so that records
// can carry interface names beside ifIndexes. Each router's table is kept
// as an immutable map behind an atomic pointer: the per-record lookup takes
// no lock. A router that does not answer is not asked again until a back-off
// passes (a circuit breaker), and its last good table stays in use.
package snmp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/gosnmp/gosnmp"

	"flowlog/internal/desired"
)

// Target is one router to poll and how to authenticate to it. Community and
// the passwords are secrets: String and errors never show them.
type Target struct {
	Addr    netip.Addr
	Port    int    // default 161
	Version string // "2c" (default) or "3"

	Community string // v2c

	User         string // v3 (USM)
	AuthProtocol string // MD5, SHA, SHA224, SHA256, SHA384, SHA512; "" for noAuthNoPriv
	AuthPassword string
	PrivProtocol string // DES, AES, AES192, AES256, AES192C, AES256C; "" for no privacy
	PrivPassword string
}

// String names the target without its secrets.
func (t Target) String() string {
	if t.Version == "3" {
		return fmt.Sprintf("snmpv3://%s@%s", t.User, netip.AddrPortFrom(t.Addr, uint16(t.port())))
	}
	return fmt.Sprintf("snmpv2c://%s", netip.AddrPortFrom(t.Addr, uint16(t.port())))
}

func (t Target) port() int {
	if t.Port == 0 {
		return 161
	}
	return t.Port
}

// Config tunes polling. Zero fields take the defaults.
type Config struct {
	Timeout time.Duration // per request; default 2 s
	Retries int           // per request; default 1; negative: none
	Refresh time.Duration // between good polls; default 10 minutes
	// Backoff is how long a router that failed is left alone before the
	// next try (default 1 minute); it doubles on each further failure, up
	// to MaxBackoff (default 30 minutes).
	Backoff, MaxBackoff time.Duration
}

// Defaults returns cfg with its zero fields set to the defaults.
func (cfg Config) Defaults() Config {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Retries == 0 {
		cfg.Retries = 1
	} else if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 10 * time.Minute
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Minute
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Minute
	}
	return cfg
}

// Interface is what a router says of one of its interfaces.
type Interface struct {
	Index       uint32 `json:"if_index"`
	Name        string `json:"name"`                  // ifName, else ifDescr
	Description string `json:"description,omitempty"` // ifAlias
	SpeedBps    uint64 `json:"speed_bps,omitempty"`   // ifHighSpeed × 10⁶, else ifSpeed
}

// ErrTarget reports a Target that cannot be used as given.
var ErrTarget = errors.New("snmp: bad target")

// ErrAuth reports a router that refused a v3 user's credentials.
var ErrAuth = errors.New("authentication failed (check the user, protocols and passwords)")

// authError tells a refusal of credentials from other errors: gosnmp
// reports them in several ways, one of them a plain message.
func authError(err error) error {
	switch {
	case errors.Is(err, gosnmp.ErrWrongDigest), errors.Is(err, gosnmp.ErrUnknownUsername),
		errors.Is(err, gosnmp.ErrDecryption), errors.Is(err, gosnmp.ErrUnknownSecurityLevel),
		strings.Contains(err.Error(), "not authentic"):
		return fmt.Errorf("%w: %v", ErrAuth, err)
	}
	return err
}

// Check validates a target's version and protocols.
func (t Target) Check() error {
	_, err := t.client(Config{}.Defaults())
	return err
}

var authProtocols = map[string]gosnmp.SnmpV3AuthProtocol{
	"MD5": gosnmp.MD5, "SHA": gosnmp.SHA, "SHA224": gosnmp.SHA224, "SHA256": gosnmp.SHA256,
	"SHA384": gosnmp.SHA384, "SHA512": gosnmp.SHA512,
}

var privProtocols = map[string]gosnmp.SnmpV3PrivProtocol{
	"DES": gosnmp.DES, "AES": gosnmp.AES, "AES192": gosnmp.AES192, "AES256": gosnmp.AES256,
	"AES192C": gosnmp.AES192C, "AES256C": gosnmp.AES256C,
}

// client builds the gosnmp client of a target.
func (t Target) client(cfg Config) (*gosnmp.GoSNMP, error) {
	if !t.Addr.IsValid() {
		return nil, fmt.Errorf("%w: no address", ErrTarget)
	}
	if t.Port < 0 || t.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d", ErrTarget, t.Port)
	}
	g := &gosnmp.GoSNMP{
		Target: t.Addr.Unmap().String(), Port: uint16(t.port()), Transport: "udp",
		Timeout: cfg.Timeout, Retries: cfg.Retries, MaxOids: gosnmp.MaxOids,
		MaxRepetitions: 50, ExponentialTimeout: false,
	}
	switch t.Version {
	case "", "2c":
		if t.Community == "" {
			return nil, fmt.Errorf("%w: v2c needs a community", ErrTarget)
		}
		g.Version, g.Community = gosnmp.Version2c, t.Community
	case "3":
		usm, flags, err := t.usm()
		if err != nil {
			return nil, err
		}
		g.Version, g.SecurityModel, g.MsgFlags, g.SecurityParameters = gosnmp.Version3,
			gosnmp.UserSecurityModel, flags, usm
	default:
		return nil, fmt.Errorf("%w: version %q (want 2c or 3)", ErrTarget, t.Version)
	}
	return g, nil
}

// usm gives a v3 target's security parameters and level.
func (t Target) usm() (*gosnmp.UsmSecurityParameters, gosnmp.SnmpV3MsgFlags, error) {
	if t.User == "" {
		return nil, 0, fmt.Errorf("%w: v3 needs a user", ErrTarget)
	}
	p := &gosnmp.UsmSecurityParameters{UserName: t.User, AuthenticationProtocol: gosnmp.NoAuth,
		PrivacyProtocol: gosnmp.NoPriv}
	flags := gosnmp.NoAuthNoPriv
	if t.AuthProtocol != "" {
		a, ok := authProtocols[strings.ToUpper(t.AuthProtocol)]
		if !ok {
			return nil, 0, fmt.Errorf("%w: auth protocol %q", ErrTarget, t.AuthProtocol)
		}
		if len(t.AuthPassword) < 8 {
			return nil, 0, fmt.Errorf("%w: auth password must be at least 8 characters", ErrTarget)
		}
		p.AuthenticationProtocol, p.AuthenticationPassphrase, flags = a, t.AuthPassword, gosnmp.AuthNoPriv
	}
	if t.PrivProtocol != "" {
		pr, ok := privProtocols[strings.ToUpper(t.PrivProtocol)]
		if !ok {
			return nil, 0, fmt.Errorf("%w: privacy protocol %q", ErrTarget, t.PrivProtocol)
		}
		if flags == gosnmp.NoAuthNoPriv {
			return nil, 0, fmt.Errorf("%w: privacy needs an auth protocol", ErrTarget)
		}
		if len(t.PrivPassword) < 8 {
			return nil, 0, fmt.Errorf("%w: privacy password must be at least 8 characters", ErrTarget)
		}
		p.PrivacyProtocol, p.PrivacyPassphrase, flags = pr, t.PrivPassword, gosnmp.AuthPriv
	}
	return p, flags, nil
}

// IF-MIB columns, walked one by one.
const (
	oidIfDescr     = ".1.3.6.1.2.1.2.2.1.2"
	oidIfSpeed     = ".1.3.6.1.2.1.2.2.1.5"
	oidIfName      = ".1.3.6.1.2.1.31.1.1.1.1"
	oidIfHighSpeed = ".1.3.6.1.2.1.31.1.1.1.15"
	oidIfAlias     = ".1.3.6.1.2.1.31.1.1.1.18"
)

// Poll asks a router once for its interfaces, keyed by ifIndex.
func Poll(ctx context.Context, t Target, cfg Config) (map[uint32]Interface, error) {
	g, err := t.client(cfg.Defaults())
	if err != nil {
		return nil, err
	}
	g.Context = ctx
	if err := g.Connect(); err != nil {
		return nil, fmt.Errorf("snmp %s: %w", t, err)
	}
	defer g.Conn.Close()
	ifs := map[uint32]Interface{}
	var speed, high map[uint32]uint64
	for _, col := range []struct {
		oid  string
		keep func(i *Interface, v gosnmp.SnmpPDU)
	}{
		{oidIfDescr, func(i *Interface, v gosnmp.SnmpPDU) { i.Name = text(v) }},
		{oidIfName, func(i *Interface, v gosnmp.SnmpPDU) {
			if n := text(v); n != "" {
				i.Name = n
			}
		}},
		{oidIfAlias, func(i *Interface, v gosnmp.SnmpPDU) { i.Description = text(v) }},
		{oidIfSpeed, func(i *Interface, v gosnmp.SnmpPDU) { speed = put(speed, i.Index, v) }},
		{oidIfHighSpeed, func(i *Interface, v gosnmp.SnmpPDU) { high = put(high, i.Index, v) }},
	} {
		pdus, err := g.BulkWalkAll(col.oid)
		if err != nil {
			return nil, fmt.Errorf("snmp %s: walk %s: %w", t, col.oid, authError(err))
		}
		for _, v := range pdus {
			idx, ok := index(v.Name, col.oid)
			if !ok {
				continue
			}
			i := ifs[idx]
			i.Index = idx
			col.keep(&i, v)
			ifs[idx] = i
		}
	}
	for idx, i := range ifs {
		i.SpeedBps = high[idx] * 1_000_000
		if i.SpeedBps == 0 {
			i.SpeedBps = speed[idx]
		}
		ifs[idx] = i
	}
	return ifs, nil
}

// index reads the ifIndex that ends a column's OID.
func index(name, col string) (uint32, bool) {
	rest, ok := strings.CutPrefix(name, col+".")
	if !ok {
		return 0, false
	}
	var n uint32
	for _, c := range []byte(rest) {
		if c < '0' || c > '9' || n > (1<<32-1)/10 {
			return 0, false
		}
		n = n*10 + uint32(c-'0')
	}
	return n, rest != ""
}

func text(v gosnmp.SnmpPDU) string {
	if b, ok := v.Value.([]byte); ok {
		return strings.TrimRight(string(b), "\x00")
	}
	return ""
}

func put(m map[uint32]uint64, idx uint32, v gosnmp.SnmpPDU) map[uint32]uint64 {
	if m == nil {
		m = map[uint32]uint64{}
	}
	if n := gosnmp.ToBigInt(v.Value); n.IsUint64() {
		m[idx] = n.Uint64()
	}
	return m
}

// TargetOf is the target a gateway's SNMP settings describe, at the
// exporter's address.
func TargetOf(addr netip.Addr, c desired.SNMP) Target {
	return Target{Addr: addr, Port: c.Port, Version: c.Version, Community: c.Community, User: c.User,
		AuthProtocol: c.AuthProtocol, AuthPassword: c.AuthPassword, PrivProtocol: c.PrivProtocol,
		PrivPassword: c.PrivPassword}
}
