// Package event provides apiguard's wire contract: the request event, the
// anomaly and the action as Protocol Buffers (schema v1), their codec, the
// sortable event id, the partitioning of principals, and the names of every
// subject, stream, KV bucket and header the parts use to talk to each other,
// and the helpers that keep a message's strings valid UTF-8 (text.go).
//
// It imports nothing of the project; everything else imports it. The
// generated files (event.pb.go, event_vtproto.pb.go) are committed; `make
// generate` rebuilds them from event.proto.
package event
