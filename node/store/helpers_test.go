package store_test

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

func runtimeGosched() { runtime.Gosched() }

// counterValue returns the value of the unlabelled counter name in reg.
func counterValue(reg *prometheus.Registry, name string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}
