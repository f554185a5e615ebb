package e2e

import (
	"testing"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// TestConsoleHelpers checks the console's own logic that has no server
// side, in the browser: the queue owners it shows (RocketMQ's average
// allocation), when a lag trend counts as growing, byte formatting.
func TestConsoleHelpers(t *testing.T) {
	br := newBrowser(t)
	s := startServer(t)
	br.run(t, "open", chromedp.Navigate(s.base+"/console/delayed"), chromedp.WaitVisible("#delayed-levels", chromedp.ByQuery))
	var got map[string]any
	br.run(t, "evaluate", chromedp.Evaluate(`(async () => {
		const g = await import("/console/pages/groups.js");
		const c = await import("/console/chart.js");
		const l = await import("/console/lib.js");
		return {
			owners: g.owners(["b", "a", "c"], [7, 6, 5, 4, 3, 2, 1, 0]),
			fewer: g.owners(["a", "b", "c"], [0, 1]),
			up: c.growing([1, 2, 3, 4]), down: c.growing([4, 3, 2, 1]), flat: c.growing([5, 5, 5, 5]), short: c.growing([1, 2]),
			bytes: l.fmt.bytes(1536), dur: l.fmt.dur(3725), hour: l.fmt.dur(3600),
		};
	})()`, &got, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	want := map[string]any{
		"owners": map[string]any{"0": "a", "1": "a", "2": "a", "3": "b", "4": "b", "5": "b", "6": "c", "7": "c"},
		"fewer":  map[string]any{"0": "a", "1": "b"},
		"up":     true, "down": false, "flat": false, "short": false,
		"bytes": "1.5 KiB", "dur": "1h 2m", "hour": "1h",
	}
	for k, w := range want {
		if wm, ok := w.(map[string]any); ok {
			gm, _ := got[k].(map[string]any)
			if len(gm) != len(wm) {
				t.Errorf("%s: %v, want %v", k, got[k], w)
			}
			for q, o := range wm {
				if gm[q] != o {
					t.Errorf("%s: %v, want %v", k, got[k], w)
					break
				}
			}
			continue
		}
		if got[k] != w {
			t.Errorf("%s: %v, want %v", k, got[k], w)
		}
	}
	br.noErrors(t, "helpers")
}
