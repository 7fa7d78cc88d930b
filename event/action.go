package event

import "fmt"

// The wire names of the action kinds: the last token of an action's
// subject (SubjectActionsT), the kind of an enforcement entry in the KV
// bucket (enforce.Action), the operators' commands and the Grafana
// plugin's action resources. They are the one vocabulary of "what is
// done" to a principal.
//
// ActionKind is different from Decision: an ActionKind is done to a
// principal and lasts (an entry in the bucket, or its removal), a
// Decision is what the proxy did with one request — it includes allowing
// a request and challenging it, and a request is blocked for many reasons
// other than an entry (a decoy, a bad token, an injection).
const (
	ActionNameBlock    = "block"
	ActionNameThrottle = "throttle"
	ActionNameRevoke   = "revoke"
	ActionNameUnblock  = "unblock"
	ActionNameAllow    = "allow"
	ActionNameUnallow  = "unallow"
)

var actionKindNames = map[ActionKind]string{
	ActionKind_ACTION_BLOCK:    ActionNameBlock,
	ActionKind_ACTION_THROTTLE: ActionNameThrottle,
	ActionKind_ACTION_REVOKE:   ActionNameRevoke,
	ActionKind_ACTION_UNBLOCK:  ActionNameUnblock,
	ActionKind_ACTION_ALLOW:    ActionNameAllow,
	ActionKind_ACTION_UNALLOW:  ActionNameUnallow,
}

// Name returns the wire name of k ("block", "unallow", …), or "" for
// ACTION_UNSPECIFIED and values this version does not know.
func (k ActionKind) Name() string { return actionKindNames[k] }

// ParseActionKind returns the action kind whose wire name is s.
func ParseActionKind(s string) (ActionKind, error) {
	for k, name := range actionKindNames {
		if name == s {
			return k, nil
		}
	}
	return ActionKind_ACTION_UNSPECIFIED, fmt.Errorf("unknown action %q (want block, throttle, revoke, unblock, allow or unallow)", s)
}

// Puts reports whether k writes an entry to the enforcement bucket (block,
// throttle, revoke, allow) rather than removing one (unblock, unallow).
func (k ActionKind) Puts() bool {
	switch k {
	case ActionKind_ACTION_BLOCK, ActionKind_ACTION_THROTTLE, ActionKind_ACTION_REVOKE, ActionKind_ACTION_ALLOW:
		return true
	}
	return false
}

// ActionSubject returns the audit stream's subject of an action of kind k
// (SubjectActionsT with its wire name, "unknown" for a kind without one).
func ActionSubject(k ActionKind) string {
	name := k.Name()
	if name == "" {
		name = "unknown"
	}
	return fmt.Sprintf(SubjectActionsT, name)
}
