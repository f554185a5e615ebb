package acl

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// addrMatcher matches a client's IP address (without the port) against one
// whiteRemoteAddress pattern.
type addrMatcher interface {
	match(ip netip.Addr) bool
}

type matchNone struct{}

func (matchNone) match(netip.Addr) bool { return false }

type matchAll struct{}

func (matchAll) match(netip.Addr) bool { return true }

// matchSet matches any of a list of addresses.
type matchSet []netip.Addr

func (s matchSet) match(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, a := range s {
		if a == ip {
			return true
		}
	}
	return false
}

// matchRange matches IPv4 addresses whose first len(head) octets equal head
// and whose next octet is within [lo, hi]; the octets after it are free.
type matchRange struct {
	head   []byte
	lo, hi int
}

func (r matchRange) match(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.Is4() {
		return false
	}
	b := ip.As4()
	for i, h := range r.head {
		if b[i] != h {
			return false
		}
	}
	o := int(b[len(r.head)])
	return o >= r.lo && o <= r.hi
}

// parseAddrPattern reads a whiteRemoteAddress or globalWhiteRemoteAddresses
// entry with RocketMQ's rules (RemoteAddressStrategyFactory):
//
//	""                        matches nothing
//	"*", "*.*.*.*"            matches every address (also "*:*:*:*:*:*:*:*")
//	"192.168.0.{1,2,3}"       a list: the prefix with each listed last part
//	"192.168.0.1,192.168.0.2" a list of whole addresses
//	"192.168.*.*", "192.168.1-10.*", "192.168.0.5-50"
//	                          a range: fixed octets, then one "*" or "a-b"
//	                          octet, then only "*"
//	"192.168.0.1", "::1"      one address
func parseAddrPattern(s string) (addrMatcher, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return matchNone{}, nil
	case "*", "*.*.*.*", "*:*:*:*:*:*:*:*":
		return matchAll{}, nil
	}
	switch {
	case strings.HasSuffix(s, "}"):
		open := strings.LastIndexByte(s, '{')
		if open < 0 || (open > 0 && s[open-1] != '.' && s[open-1] != ':') {
			return nil, fmt.Errorf("address %q: a {a,b,c} list must be the last part of the address", s)
		}
		prefix := s[:open]
		var set matchSet
		for _, last := range strings.Split(s[open+1:len(s)-1], ",") {
			a, err := netip.ParseAddr(prefix + strings.TrimSpace(last))
			if err != nil {
				return nil, fmt.Errorf("address %q: %q is not an IP address", s, prefix+last)
			}
			set = append(set, a.Unmap())
		}
		return set, nil
	case strings.Contains(s, ","):
		var set matchSet
		for _, part := range strings.Split(s, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(part))
			if err != nil {
				return nil, fmt.Errorf("address %q: %q is not an IP address", s, part)
			}
			set = append(set, a.Unmap())
		}
		return set, nil
	case strings.ContainsAny(s, "*-"):
		return parseRange(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, fmt.Errorf("address %q is not an IP address or a RocketMQ address pattern", s)
	}
	return matchSet{a.Unmap()}, nil
}

// parseRange reads an IPv4 range pattern: fixed octets, one "*" or "a-b"
// octet (not the first), then "*" for the rest.
func parseRange(s string) (addrMatcher, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return nil, fmt.Errorf("address range %q: want four dot-separated parts such as 192.168.*.* or 10.0.1-10.* (IPv6 ranges are not supported)", s)
	}
	k := 0
	for k < 4 && !strings.ContainsAny(parts[k], "*-") {
		k++
	}
	if k == 0 || k == 4 {
		return nil, fmt.Errorf("address range %q: the first part must be a number and one later part * or a-b", s)
	}
	r := matchRange{lo: 0, hi: 255}
	for _, p := range parts[:k] {
		o, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || o < 0 || o > 255 {
			return nil, fmt.Errorf("address range %q: %q is not an octet", s, p)
		}
		r.head = append(r.head, byte(o))
	}
	if p := strings.TrimSpace(parts[k]); p != "*" {
		a, b, _ := strings.Cut(p, "-")
		lo, err1 := strconv.Atoi(a)
		hi, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || lo < 0 || hi > 255 || lo > hi {
			return nil, fmt.Errorf("address range %q: %q must be a-b with 0 <= a <= b <= 255", s, p)
		}
		r.lo, r.hi = lo, hi
	}
	for _, p := range parts[k+1:] {
		if strings.TrimSpace(p) != "*" {
			return nil, fmt.Errorf("address range %q: the parts after the range must be *", s)
		}
	}
	return r, nil
}
