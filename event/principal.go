package event

// PrincipalOf returns who made the request, by the strongest identifier the
// proxy saw: API key id, then token subject, then token id or hash, then
// client IP. Detectors key their state on it and the proxy partitions on it,
// so one principal's events stay in order in one partition.
func PrincipalOf(ev *RequestEvent) (kind, value string) {
	switch {
	case ev.GetApiKeyId() != "":
		return KindKey, ev.GetApiKeyId()
	case ev.GetSubject() != "":
		return KindSub, ev.GetSubject()
	case ev.GetTokenId() != "":
		return KindToken, ev.GetTokenId()
	case ev.GetTokenHash() != "":
		return KindToken, ev.GetTokenHash()
	default:
		return KindIP, ClientIPString(ev.GetClientIp())
	}
}

// Partition maps a principal to one of n partitions with 32-bit FNV-1a over
// "kind:value". It is part of the wire contract: the proxy and the pipeline
// must agree on it. n must be positive.
func Partition(kind, value string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(kind); i++ {
		h = (h ^ uint32(kind[i])) * 16777619
	}
	h = (h ^ ':') * 16777619
	for i := 0; i < len(value); i++ {
		h = (h ^ uint32(value[i])) * 16777619
	}
	return int(h % uint32(n))
}
