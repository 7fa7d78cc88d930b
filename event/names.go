package event

// Stream, subject, bucket and header names. They are the wire contract between
// the proxy, the pipeline, the responder and operators' tools: change them
// only together with the schema version.
const (
	// StreamEvents holds every request event; it doubles as the capture buffer.
	StreamEvents = "APIGUARD_EVENTS"
	// SubjectEvents matches every event partition.
	SubjectEvents = "apiguard.events.*"
	// SubjectEventsT is the subject of one partition: fmt.Sprintf(SubjectEventsT, partition).
	SubjectEventsT = "apiguard.events.%d"

	// StreamAnomalies holds every anomaly the detectors found.
	StreamAnomalies = "APIGUARD_ANOMALIES"
	// SubjectAnomalies matches every anomaly subject.
	SubjectAnomalies = "apiguard.anomalies.>"
	// SubjectAnomaliesT is the subject of one detector's anomalies.
	SubjectAnomaliesT = "apiguard.anomalies.%s"

	// StreamActions is the audit trail of every action taken.
	StreamActions = "APIGUARD_ACTIONS"
	// SubjectActions matches every action subject.
	SubjectActions = "apiguard.actions.>"
	// SubjectActionsT is the subject of one action kind ("block", "unblock", …).
	SubjectActionsT = "apiguard.actions.%s"

	// BucketEnforcement is the KV bucket of blocks, throttles and revocations.
	// Keys are "<kind>.<escaped value>" (see enforce/kv).
	BucketEnforcement = "APIGUARD_ENFORCEMENT"
	// BucketEnforcementSnapshots is the object store holding the latest
	// complete snapshot of BucketEnforcement (enforce/kv.SharedObject), from
	// which a proxy without a local snapshot starts.
	BucketEnforcementSnapshots = "APIGUARD_ENFORCEMENT_SNAPSHOTS"
	// BucketCheckpoints is the object store of detector checkpoints, one
	// object per partition.
	BucketCheckpoints = "APIGUARD_CHECKPOINTS"

	// HeaderMsgID is JetStream's de-duplication header; apiguard sets it to the event id.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderSchema carries the schema version of a published message.
	HeaderSchema = "Apiguard-Schema"
	// HeaderRequestID is the HTTP header that carries the event id to the
	// upstream and back to the client.
	HeaderRequestID = "X-Request-Id"
)

// Principal kinds. They are also the enforcement kinds, with KindCIDR.
const (
	KindIP    = "ip"
	KindCIDR  = "cidr"
	KindKey   = "key"
	KindToken = "token"
	KindSub   = "sub"
	KindFP    = "fp"
)

// KindAPI is the principal kind of anomalies about an API itself rather
// than a client (shadow and zombie APIs, error and latency anomalies).
// It is not an enforcement kind: nothing is ever blocked by it.
const KindAPI = "api"
