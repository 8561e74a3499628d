package aliyun

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"

	flauth "flowlog/internal/api/auth"
)

// BenchmarkVerify measures checking one signed DescribeFlowLogs request:
// common parameters, timestamp, key lookup, HMAC-SHA1, nonce.
func BenchmarkVerify(b *testing.B) {
	now := time.Now()
	reqs := make([]map[string]string, b.N)
	for i := range reqs {
		p := map[string]string{
			"AccessKeyId": "AK-one", "Action": "DescribeFlowLogs", "Version": Version, "Format": "JSON",
			"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureType": "",
			"SignatureNonce": strconv.Itoa(i), "Timestamp": now.UTC().Format("2006-01-02T15:04:05Z"),
			"RegionId": "cn-shanghai", "PageSize": "50", "Status": "Active",
		}
		p["Signature"] = Sign("secret-one", StringToSign("POST", p))
		reqs[i] = p
	}
	v := verifier{window: 5 * time.Minute, now: func() time.Time { return now }, keys: testKeys,
		nonces: flauth.NewReplayCache(flauth.ReplayConfig{MaxPerAccount: b.N + 1})}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.verify(ctx, "POST", reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSDKSign is the peer: the Alibaba SDK signing the same request.
func BenchmarkSDKSign(b *testing.B) {
	provider := credentials.NewStaticAKCredentialsProvider("AK-one", "secret-one")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		req := smartag.CreateDescribeFlowLogsRequest()
		req.Status = "Active"
		req.QueryParams["PageSize"] = "50"
		if err := auth.Sign(req, nil, "cn-shanghai", provider); err != nil {
			b.Fatal(err)
		}
	}
}
