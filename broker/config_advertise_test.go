package broker

import "testing"

// A broker listening on one address advertises that address unless told
// otherwise: one bound to 127.0.0.1 must not register an interface's IP
// that nothing listens on.
func TestAdvertiseAddr(t *testing.T) {
	for _, c := range []struct{ advertise, listen, want string }{
		{"", "127.0.0.1", "127.0.0.1"},
		{"", "::1", "::1"},
		{"", "::ffff:10.1.2.3", "10.1.2.3"},
		{"10.9.9.9", "127.0.0.1", "10.9.9.9"},
	} {
		if got := advertiseAddr(c.advertise, c.listen).String(); got != c.want {
			t.Errorf("advertise %q listen %q: %s, want %s", c.advertise, c.listen, got, c.want)
		}
	}
	for _, listen := range []string{"", "0.0.0.0", "::"} {
		if got := advertiseAddr("", listen); got.IsUnspecified() {
			t.Errorf("listen %q advertises %s", listen, got)
		}
	}
}
