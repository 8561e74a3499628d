// Package durability holds end-to-end tests of what `flowlog serve` keeps
// when things go wrong under it: the data dir's file system filling up,
// and the process killed while records wait in the spool. They count
// numbered records sent to the real collector against what the store
// holds, once each, in the records and in the rollups alike.
package durability
