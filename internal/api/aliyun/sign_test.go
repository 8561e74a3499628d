package aliyun

import (
	"testing"
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
