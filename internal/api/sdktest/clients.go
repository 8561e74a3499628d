package sdktest

import (
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/smartag"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/region"
	er "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/er/v3"
)

// Aliyun returns an unmodified Alibaba smartag client pointed at host
// (HOST:PORT of a flowlog server).
func Aliyun(t testing.TB, host, key, secret string) *smartag.Client {
	t.Helper()
	cl, err := smartag.NewClientWithAccessKey("cn-shanghai", key, secret)
	if err != nil {
		t.Fatal(err)
	}
	cl.Domain = host
	return cl
}

// Huawei returns an unmodified Huawei ER client for project, pointed at the
// flowlog server at url.
func Huawei(t testing.TB, url, key, secret, project string) *er.ErClient {
	t.Helper()
	cred, err := basic.NewCredentialsBuilder().WithAk(key).WithSk(secret).WithProjectId(project).SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	hc, err := er.ErClientBuilder().WithRegion(region.NewRegion("local-1", url)).WithCredential(cred).SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	return er.NewErClient(hc)
}
