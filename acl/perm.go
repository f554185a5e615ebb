package acl

import "strings"

// Perm is a permission on a topic or a group, RocketMQ's bits (part of the
// plain_acl.yml meaning).
type Perm uint8

// Permission bits (Java Permission).
const (
	// Deny refuses everything, whatever other bits are set.
	Deny Perm = 1
	// Any is only ever needed, never granted: it is met by Pub or Sub.
	Any Perm = 1 << 1
	Pub Perm = 1 << 2
	Sub Perm = 1 << 3
)

// ParsePerm reads a permission as plain_acl.yml spells it: PUB, SUB,
// PUB|SUB, SUB|PUB or DENY. Like RocketMQ, anything else (ANY included, and
// an absent value) is Deny.
func ParsePerm(s string) Perm {
	switch strings.TrimSpace(s) {
	case "PUB":
		return Pub
	case "SUB":
		return Sub
	case "PUB|SUB", "SUB|PUB":
		return Pub | Sub
	}
	return Deny
}

// String spells p as plain_acl.yml does.
func (p Perm) String() string {
	switch {
	case p&Deny != 0:
		return "DENY"
	case p&(Pub|Sub) == Pub|Sub:
		return "PUB|SUB"
	case p&Pub != 0:
		return "PUB"
	case p&Sub != 0:
		return "SUB"
	case p&Any != 0:
		return "ANY"
	}
	return "NONE"
}

// Allows reports whether an owned permission p meets needed (Java
// Permission.checkPermission): Deny refuses all, Any is met by Pub or Sub,
// otherwise one needed bit must be owned.
func (p Perm) Allows(needed Perm) bool {
	if p&Deny != 0 {
		return false
	}
	if needed&Any != 0 {
		return p&(Pub|Sub) != 0
	}
	return needed&p != 0
}
