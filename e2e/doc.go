// Package e2e holds end-to-end tests of the web console: they build and
// start a real `ferry server`, seed it with data over the HTTP API and the
// Go SDK, and drive the console in headless Chromium (chromedp). It is its
// own module so that the browser driver stays out of the main go.mod.
//
// The tests take a screenshot of every page; with FERRY_SCREENSHOTS=1 they
// save them into docs/console/ (the README shows those). They skip
// when no Chromium is installed (Debian: apt-get install -y chromium).
// FERRY_CONSOLE_PERF=1 also runs the console's performance measurement
// (perf_test.go).
package e2e
