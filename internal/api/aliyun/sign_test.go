package aliyun

import (
	"testing"
	"time"
)

func TestPercentEncode(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"abcXYZ019-_.~", "abcXYZ019-_.~"},
		{"a b", "a%20b"},
		{"a*b", "a%2Ab"},
		{"a+b", "a%2Bb"},
		{"/:=&", "%2F%3A%3D%26"},
		{"é", "%C3%A9"},
		{"", ""},
	} {
		if got := percentEncode(c.in); got != c.want {
			t.Errorf("percentEncode(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// The worked example of Alibaba's signature v1 documentation (ECS
// DescribeRegions with key testid/testsecret).
func TestSignDocumentedExample(t *testing.T) {
	params := map[string]string{
		"AccessKeyId":      "testid",
		"Action":           "DescribeRegions",
		"Format":           "XML",
		"SignatureMethod":  "HMAC-SHA1",
		"SignatureNonce":   "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
		"SignatureVersion": "1.0",
		"Timestamp":        "2016-02-23T12:46:24Z",
		"Version":          "2014-05-26",
		"Signature":        "ignored",
	}
	sts := StringToSign("GET", params)
	wantSTS := "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
	if sts != wantSTS {
		t.Fatalf("string to sign\n got %s\nwant %s", sts, wantSTS)
	}
	if got, want := Sign("testsecret", sts), "OLeaidS1JvxuMvnyHOwuJ+uX5qY="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
}

func TestStringToSignKeepsEmptyParams(t *testing.T) {
	a := StringToSign("POST", map[string]string{"A": "1", "SignatureType": ""})
	b := StringToSign("POST", map[string]string{"A": "1"})
	if a == b {
		t.Fatal("an empty parameter must be part of the string to sign")
	}
}

func TestNonceCache(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newNonceCache(2)
	if r := c.add("a", t0.Add(time.Minute), t0); r != nonceFresh {
		t.Fatalf("first a: %v", r)
	}
	if r := c.add("a", t0.Add(time.Minute), t0.Add(30*time.Second)); r != nonceUsed {
		t.Fatalf("replayed a inside its life: %v", r)
	}
	if r := c.add("b", t0.Add(2*time.Minute), t0); r != nonceFresh {
		t.Fatalf("b: %v", r)
	}
	if r := c.add("c", t0.Add(2*time.Minute), t0); r != nonceFull {
		t.Fatalf("c beyond the bound: %v", r)
	}
	// After a expires it is forgotten, which frees room for c.
	if r := c.add("c", t0.Add(3*time.Minute), t0.Add(time.Minute)); r != nonceFresh {
		t.Fatalf("c after a expired: %v", r)
	}
	if n := c.len(); n != 2 {
		t.Fatalf("live nonces %d, want 2", n)
	}
	if r := c.add("a", t0.Add(4*time.Minute), t0.Add(time.Minute)); r != nonceFull {
		t.Fatalf("a again while b and c live: %v", r)
	}
}
