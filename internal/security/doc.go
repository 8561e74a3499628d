// Package security holds the attack tests: each starts a real `flowlog
// serve`, attacks it the way a hostile client, tenant or router would (with
// the official cloud SDKs where a dialect is involved), and shows the attack
// refused. The tests are named after the attack they try.
package security
