// Package httpapi serves Ferry's HTTP port: the health endpoints, metrics,
// the console and the HTTP API (JSON under /v1, described route by route
// in docs/openapi.yaml).
//
// The broker does not import this package: it declares what it hands an
// HTTP server (broker.HTTPViews, small views of itself) and the option that
// starts one (broker.WithHTTP); Mount returns the function that option
// takes. server.Run passes it, so `ferry server` serves HTTP; a broker
// built without it serves no HTTP port.
//
// The API's handlers (one file per resource) parse the request, call the
// broker through one small interface per concern (Backend) and write the
// answer; an error they return is answered as a problem
// (application/problem+json, problem.go). The routes the broker still
// answers itself are served through Routes. Access control at the edge
// (acl.go) uses the broker's ACL rules.
//
// # Goroutines
//
// Start runs the fasthttp server's accept loop in one goroutine; Shutdown
// stops it and waits for it. fasthttp's worker pool serves the requests;
// GET /v1/cluster asks the other brokers from short-lived goroutines it
// waits for.
package httpapi
