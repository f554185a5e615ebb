package broker

// testHTTP is the HTTP server a test broker with an HTTP port mounts:
// package httpapi's, set by httpapi_mount_test.go. Package httpapi
// imports this one, so only an external test package can name it.
var testHTTP HTTPMount

// SetTestHTTP sets the HTTP server test brokers mount.
func SetTestHTTP(m HTTPMount) { testHTTP = m }
