package broker_test

import (
	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/httpapi"
)

// The tests of this package that read a broker's HTTP port use package
// httpapi's server (httpmount_test.go).
func init() { broker.SetTestHTTP(httpapi.Mount()) }
