// Package e2e holds the end-to-end tests: a real `flowlog serve` capturing
// real traffic between network namespaces, managed through the official
// cloud SDKs and the native API, delivering to its store and to a real
// nfcapd, and fed by a real softflowd.
package e2e
