package clickhouse

import "testing"

func TestLiteral(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want string
	}{
		{uint64(18446744073709551615), "18446744073709551615"},
		{int64(-5), "-5"},
		{"", "unhex('')"},
		{"a'b\\\x00", "unhex('6127625C00')"},
	} {
		if got := literal(tt.in); got != tt.want {
			t.Errorf("literal(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestUnescapeTSV(t *testing.T) {
	for in, want := range map[string]string{
		`plain`: "plain", `a\tb\nc\\d\'e\0f`: "a\tb\nc\\d'e\x00f", `\b\f\r`: "\b\f\r",
	} {
		if got, err := unescapeTSV(in); err != nil || got != want {
			t.Errorf("unescapeTSV(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := unescapeTSV(`dangling\`); err == nil {
		t.Error("a dangling backslash was accepted")
	}
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"18.16.1": false, "19.6.1.1": true, "19.5.9": false, "24.8.4.13": true, "junk": false} {
		if got := versionAtLeast(v, 19, 6); got != want {
			t.Errorf("versionAtLeast(%q) = %v", v, got)
		}
	}
}
