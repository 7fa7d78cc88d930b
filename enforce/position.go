package enforce

// Position says which state a set of entries is: the source it was read
// from, opaque here (enforce/kv names a bucket by its name and creation
// time, so a bucket deleted and made again is another source), and the
// revision of that source it covers.
type Position struct {
	Source   string
	Revision uint64
}
