package sdktest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	er "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3"
)

func aliyun(t *testing.T, host string, c creds) *smartag.Client {
	return Aliyun(t, host, c.key, c.secret)
}

func huawei(t *testing.T, url string, c creds, project string) *er.ErClient {
	return Huawei(t, url, c.key, c.secret, project)
}

// aliyunCode asserts err is an Alibaba server error with status and code,
// and a complete error body.
func aliyunCode(t *testing.T, err error, status int, code string) *sdkerrors.ServerError {
	t.Helper()
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("want %d %s, got %v", status, code, err)
	}
	if se.HttpStatus() != status || se.ErrorCode() != code {
		t.Fatalf("got %d %s (%s), want %d %s", se.HttpStatus(), se.ErrorCode(), se.Message(), status, code)
	}
	if se.RequestId() == "" || se.HostId() == "" || se.Recommend() == "" || se.Message() == "" {
		t.Fatalf("incomplete error body: %v", se)
	}
	return se
}

// huaweiCode asserts err is a Huawei service error with status and code.
func huaweiCode(t *testing.T, err error, status int, code string) *sdkerr.ServiceResponseError {
	t.Helper()
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) {
		t.Fatalf("want %d %s, got %v", status, code, err)
	}
	if se.StatusCode != status || se.ErrorCode != code {
		t.Fatalf("got %d %s (%s), want %d %s", se.StatusCode, se.ErrorCode, se.ErrorMessage, status, code)
	}
	if se.RequestId == "" || se.ErrorMessage == "" {
		t.Fatalf("incomplete error: %+v", se)
	}
	return se
}

// recorder is a reverse proxy in front of a server that keeps every request
// it forwards, so a test can replay what an SDK sent.
type recorder struct {
	url, host string
	mu        sync.Mutex
	reqs      []*http.Request
}

func newRecorder(t *testing.T, target string) *recorder {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, r.Clone(r.Context()))
		rec.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	rec.url, rec.host = ts.URL, strings.TrimPrefix(ts.URL, "http://")
	return rec
}

func (r *recorder) last() *http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reqs[len(r.reqs)-1]
}
