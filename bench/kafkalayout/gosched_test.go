package kafkalayout

import "runtime"

func runtimeGosched() { runtime.Gosched() }
