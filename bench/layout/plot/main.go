// Command plot draws the storage-layout benchmark's chart: write
// throughput against the topic count, from the JSON file `ferry bench
// layout` writes. It lives apart from the ferry binary so that the server
// does not link the plotting library.
//
//	go run ./bench/layout/plot --out docs
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ferrymq/ferry/bench/layout"
)

// Chart file names, written next to the results.
const (
	ChartPNG = "layout-throughput.png"
	ChartSVG = "layout-throughput.svg"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "docs", "directory holding "+layout.ResultsJSON+"; the charts are written there")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := plotDir(*out); err != nil {
		fmt.Fprintf(stderr, "plot: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s and %s to %s\n", ChartPNG, ChartSVG, *out)
	return 0
}

// plotDir reads the results in dir and writes both charts there, checking
// that each is what its name says.
func plotDir(dir string) error {
	js, err := os.ReadFile(filepath.Join(dir, layout.ResultsJSON))
	if err != nil {
		return err
	}
	var r layout.Report
	if err := json.Unmarshal(js, &r); err != nil {
		return fmt.Errorf("%w: %s: %v", layout.ErrMalformed, layout.ResultsJSON, err)
	}
	for _, c := range []struct {
		name, ext string
		magic     []byte
	}{{ChartPNG, "png", []byte("\x89PNG\r\n\x1a\n")}, {ChartSVG, "svg", []byte("<svg")}} {
		var b bytes.Buffer
		if err := WriteChart(&b, r, c.ext); err != nil {
			return err
		}
		if !bytes.Contains(b.Bytes()[:min(b.Len(), 512)], c.magic) {
			return fmt.Errorf("%w: %s is not a %s", layout.ErrMalformed, c.name, c.ext)
		}
		if err := os.WriteFile(filepath.Join(dir, c.name), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}
