// Package sdktest holds end-to-end tests that start a real `flowlog serve`
// and drive it with the official Alibaba Cloud and Huawei Cloud Go SDKs,
// unmodified, and with signed curl-style requests to the native /v1 API.
// Aliyun and Huawei build those SDK clients for other tests too.
package sdktest
