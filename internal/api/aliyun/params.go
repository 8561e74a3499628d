package aliyun

import (
	"regexp"
	"strconv"
)

// params reads an action's parameters. Absent and present-but-empty differ:
// an absent optional parameter takes its default, an empty one is missing.
type params map[string]string

// opt returns the parameter, or nil when it is absent.
func (p params) opt(name string) *string {
	v, ok := p[name]
	if !ok {
		return nil
	}
	return &v
}

// need returns a parameter that must be present and non-empty.
func (p params) need(name string) (string, error) {
	v := p[name]
	if v == "" {
		return "", missingParam(name, "")
	}
	return v, nil
}

// integer returns an optional integer parameter; present but empty is
// missing, present but not a number is illegal.
func (p params) integer(name string) (*int, error) {
	v, ok := p[name]
	if !ok {
		return nil, nil
	}
	if v == "" {
		return nil, missingParam(name, "")
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, illegalParam(name, name+" must be an integer, got "+strconv.Quote(v)+".")
	}
	return &n, nil
}

// page returns PageNumber (default 1) and PageSize (default 10, at most 50).
func (p params) page() (number, size int, err error) {
	number, size = 1, 10
	for _, f := range []struct {
		name   string
		dst    *int
		lo, hi int
	}{{"PageNumber", &number, 1, 1 << 30}, {"PageSize", &size, 1, 50}} {
		v, err := p.integer(f.name)
		if err != nil {
			return 0, 0, err
		}
		if v == nil {
			continue
		}
		if *v < f.lo || *v > f.hi {
			return 0, 0, illegalParam(f.name, f.name+" must be "+strconv.Itoa(f.lo)+" to "+strconv.Itoa(f.hi)+".")
		}
		*f.dst = *v
	}
	return number, size, nil
}

// regionID is the form of a region id such as cn-shanghai.
var regionID = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

// region returns a region-id parameter that must be present and well formed.
func (p params) region(name string) (string, error) {
	v, err := p.need(name)
	if err != nil {
		return "", err
	}
	if !regionID.MatchString(v) {
		return "", illegalParam(name, name+" must be a region id such as cn-shanghai, got "+strconv.Quote(v)+".")
	}
	return v, nil
}
