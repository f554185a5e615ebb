// Package e2e holds end-to-end tests of the web console and the cluster
// view: they build and start a real `ferry server` (and, for the cluster,
// a second `ferry broker run` and stub brokers registered with its name
// server), seed it with data over the HTTP API and the Go SDK, and drive
// the console in headless Chromium (chromedp) and headless Firefox
// (WebDriver BiDi, bidi_test.go). It is its own module so that the
// browser drivers stay out of the main go.mod.
//
// The tests take a screenshot of every page; with FERRY_SCREENSHOTS=1 they
// save them into docs/console/ (the README shows those). A test skips
// when its browser is not installed (Debian: apt-get install -y chromium
// firefox-esr); FERRY_CHROMIUM and FERRY_FIREFOX name other binaries.
// FERRY_CONSOLE_PERF=1 also runs the console's performance measurement
// (perf_test.go).
package e2e
